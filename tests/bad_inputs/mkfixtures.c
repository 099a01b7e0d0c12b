/* mkfixtures: writes the hostile HDF5 files of the bad-input corpus that the xentrain
 * command line cannot make (broken layouts, unsupported types, NaN/Inf, enormous
 * claimed dimensions, models and checkpoints of a newer format or an impossible shape).
 *
 * Usage: xt_mkfixtures OUTDIR      (OUTDIR must exist; every file is (re)created)
 *
 * A test helper, not a test: tests/bad_inputs/run.sh calls it once per run, so no binary
 * fixture is kept in git. Every file is tiny on disk: the "enormous" data sets are
 * chunked and never written, so HDF5 stores only their metadata. Serial, no MPI.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "log.h"
#include "xt_h5fixture.h"

#define N_ROWS 40
#define N_FEAT 3

static const char *g_dir;
static int g_failures;

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static void check(Status st, const char *what)
{
    if (st != XT_OK) {
        fprintf(stderr, "mkfixtures: %s failed\n", what);
        g_failures++;
    }
}

/* A small valid split: X (N_ROWS, N_FEAT) float32, y (N_ROWS,) int32 in 0..2. */
static void good_rows(float *X, int32_t *y)
{
    for (int i = 0; i < N_ROWS; i++) {
        y[i] = i % 3;
        for (int j = 0; j < N_FEAT; j++) X[i * N_FEAT + j] = (float)(y[i] * 2 + j) + 0.01f * (float)i;
    }
}

/* Writes /train and /val from the given arrays (the same rows in both). */
static void write_splits(H5File *f, H5ioType xt, int xrank, const size_t *xd, const void *X,
                         H5ioType yt, int yrank, const size_t *yd, const void *y)
{
    static const char *const groups[2] = {"/train", "/val"};
    for (int g = 0; g < 2; g++) {
        char p[64];
        snprintf(p, sizeof p, "%s/X", groups[g]);
        check(h5io_write(f, p, xt, xrank, xd, X, 0), p);
        snprintf(p, sizeof p, "%s/y", groups[g]);
        check(h5io_write(f, p, yt, yrank, yd, y, 0), p);
    }
}

static H5File *create(const char *name)
{
    char p[1200];
    H5File *f = NULL;
    path_of(p, sizeof p, name);
    check(h5io_create(p, &f), name);
    return f;
}

static void close_file(H5File **f, const char *name) { check(h5io_close(f), name); }

/* ---- data files ----------------------------------------------------------------- */

static void data_files(void)
{
    float X[N_ROWS * N_FEAT];
    int32_t y[N_ROWS];
    size_t xd[2] = {N_ROWS, N_FEAT}, yd[1] = {N_ROWS};
    H5File *f;

    good_rows(X, y);
    f = create("d_good.h5");
    write_splits(f, H5IO_F32, 2, xd, X, H5IO_I32, 1, yd, y);
    close_file(&f, "d_good.h5");

    /* X is 1-D */
    f = create("d_x1d.h5");
    write_splits(f, H5IO_F32, 1, yd, X, H5IO_I32, 1, yd, y);
    close_file(&f, "d_x1d.h5");

    /* X is 3-D (N, 3, 1) */
    {
        size_t d3[3] = {N_ROWS, N_FEAT, 1};
        f = create("d_x3d.h5");
        write_splits(f, H5IO_F32, 3, d3, X, H5IO_I32, 1, yd, y);
        close_file(&f, "d_x3d.h5");
    }

    /* X of strings, y compound, y enum */
    {
        char p[1024];
        f = create("d_xstring.h5");
        check(h5io_write(f, "/train/y", H5IO_I32, 1, yd, y, 0), "y");
        close_file(&f, "d_xstring.h5");
        path_of(p, sizeof p, "d_xstring.h5");
        check(xt_h5_write_unsupported(p, "/train/X", "string", N_ROWS), "string X");
        f = create("d_ycompound.h5");
        check(h5io_write(f, "/train/X", H5IO_F32, 2, xd, X, 0), "X");
        close_file(&f, "d_ycompound.h5");
        path_of(p, sizeof p, "d_ycompound.h5");
        check(xt_h5_write_unsupported(p, "/train/y", "compound", N_ROWS), "compound y");
        f = create("d_yenum.h5");
        check(h5io_write(f, "/train/X", H5IO_F32, 2, xd, X, 0), "X");
        close_file(&f, "d_yenum.h5");
        path_of(p, sizeof p, "d_yenum.h5");
        check(xt_h5_write_unsupported(p, "/train/y", "enum", N_ROWS), "enum y");
    }

    /* y as (N,) floats that are not whole numbers: not class ids (whole ones would be) */
    {
        float yf[N_ROWS];
        for (int i = 0; i < N_ROWS; i++) yf[i] = (float)y[i] + 0.5f;
        f = create("d_yfloat1d.h5");
        write_splits(f, H5IO_F32, 2, xd, X, H5IO_F32, 1, yd, yf);
        close_file(&f, "d_yfloat1d.h5");
    }

    /* NaN in row 17 (rank 0's shard at P = 2), +Inf in row 31 (rank 1's shard) */
    {
        float Xn[N_ROWS * N_FEAT];
        memcpy(Xn, X, sizeof Xn);
        Xn[17 * N_FEAT + 1] = NAN;
        f = create("d_nan.h5");
        write_splits(f, H5IO_F32, 2, xd, Xn, H5IO_I32, 1, yd, y);
        close_file(&f, "d_nan.h5");
        memcpy(Xn, X, sizeof Xn);
        Xn[31 * N_FEAT + 2] = INFINITY;
        f = create("d_inf.h5");
        write_splits(f, H5IO_F32, 2, xd, Xn, H5IO_I32, 1, yd, y);
        close_file(&f, "d_inf.h5");
    }

    /* float64 1e300: finite on disk, +Inf as float32 */
    {
        double Xd[N_ROWS * N_FEAT];
        for (int i = 0; i < N_ROWS * N_FEAT; i++) Xd[i] = X[i];
        Xd[5 * N_FEAT] = 1e300;
        f = create("d_f64big.h5");
        write_splits(f, H5IO_F64, 2, xd, Xd, H5IO_I32, 1, yd, y);
        close_file(&f, "d_f64big.h5");
    }

    /* labels: negative, implying > 4096 classes, out of the training range in /val */
    {
        int32_t yb[N_ROWS];
        memcpy(yb, y, sizeof yb);
        yb[33] = -3;
        f = create("d_labelneg.h5");
        write_splits(f, H5IO_F32, 2, xd, X, H5IO_I32, 1, yd, yb);
        close_file(&f, "d_labelneg.h5");
        memcpy(yb, y, sizeof yb);
        yb[3] = 5000;
        f = create("d_labelhuge.h5");
        write_splits(f, H5IO_F32, 2, xd, X, H5IO_I32, 1, yd, yb);
        close_file(&f, "d_labelhuge.h5");
        memcpy(yb, y, sizeof yb);
        yb[36] = 7;
        f = create("d_labelval.h5");
        check(h5io_write(f, "/train/X", H5IO_F32, 2, xd, X, 0), "X");
        check(h5io_write(f, "/train/y", H5IO_I32, 1, yd, y, 0), "y");
        check(h5io_write(f, "/val/X", H5IO_F32, 2, xd, X, 0), "X");
        check(h5io_write(f, "/val/y", H5IO_I32, 1, yd, yb, 0), "y");
        close_file(&f, "d_labelval.h5");
    }
    /* int64 labels beyond int32 */
    {
        int64_t y64[N_ROWS];
        for (int i = 0; i < N_ROWS; i++) y64[i] = y[i];
        y64[9] = (int64_t)1 << 40;
        f = create("d_label64.h5");
        write_splits(f, H5IO_F32, 2, xd, X, H5IO_I64, 1, yd, y64);
        close_file(&f, "d_label64.h5");
    }

    /* N of X and y differ */
    {
        size_t yd2[1] = {N_ROWS - 1};
        f = create("d_mismatch.h5");
        write_splits(f, H5IO_F32, 2, xd, X, H5IO_I32, 1, yd2, y);
        close_file(&f, "d_mismatch.h5");
    }

    /* zero rows, zero features */
    {
        size_t z[2] = {0, N_FEAT}, zy[1] = {0};
        f = create("d_zerorows.h5");
        write_splits(f, H5IO_F32, 2, z, X, H5IO_I32, 1, zy, y);
        close_file(&f, "d_zerorows.h5");
        size_t zf[2] = {N_ROWS, 0};
        f = create("d_zerofeat.h5");
        write_splits(f, H5IO_F32, 2, zf, X, H5IO_I32, 1, yd, y);
        close_file(&f, "d_zerofeat.h5");
    }

    /* missing group, missing y */
    f = create("d_nogroup.h5");
    check(h5io_write(f, "/other/X", H5IO_F32, 2, xd, X, 0), "X");
    check(h5io_write(f, "/other/y", H5IO_I32, 1, yd, y, 0), "y");
    close_file(&f, "d_nogroup.h5");
    f = create("d_noy.h5");
    check(h5io_write(f, "/train/X", H5IO_F32, 2, xd, X, 0), "X");
    check(h5io_write(f, "/val/X", H5IO_F32, 2, xd, X, 0), "X");
    close_file(&f, "d_noy.h5");

    /* a negative scale attribute */
    f = create("d_scale.h5");
    write_splits(f, H5IO_F32, 2, xd, X, H5IO_I32, 1, yd, y);
    check(h5io_attr_write_f64(f, "/train/X", "scale", -1.0), "scale");
    close_file(&f, "d_scale.h5");

    /* dense targets outside [0, 1] */
    {
        float t[N_ROWS * 2];
        for (int i = 0; i < N_ROWS * 2; i++) t[i] = (float)(i % 2);
        t[2 * 29 + 1] = 1.5f;
        size_t td[2] = {N_ROWS, 2};
        f = create("d_softbad.h5");
        write_splits(f, H5IO_F32, 2, xd, X, H5IO_F32, 2, td, t);
        close_file(&f, "d_softbad.h5");
    }

    /* Enormous claimed dimensions, chunked and never written (a few KiB on disk).
     * d_overflow: N x D = 2^35 x 2^29 = 2^64 elements: the product wraps size_t to 0.
     * d_bigmem:   N x D = 2^32 x 2^10 bytes: 4 TiB, no overflow, but no node holds it. */
    {
        size_t ox[2] = {(size_t)1 << 35, (size_t)1 << 29}, oy[1] = {(size_t)1 << 35};
        f = create("d_overflow.h5");
        check(h5io_create_dataset(f, "/train/X", H5IO_U8, 2, ox, 1), "overflow X");
        check(h5io_create_dataset(f, "/train/y", H5IO_I32, 1, oy, 1), "overflow y");
        close_file(&f, "d_overflow.h5");
        size_t bx[2] = {(size_t)1 << 32, (size_t)1 << 10}, by[1] = {(size_t)1 << 32};
        f = create("d_bigmem.h5");
        check(h5io_create_dataset(f, "/train/X", H5IO_U8, 2, bx, 1), "bigmem X");
        check(h5io_create_dataset(f, "/train/y", H5IO_I32, 1, by, 1), "bigmem y");
        close_file(&f, "d_bigmem.h5");
    }

    /* extreme magnitudes: features of +-1e30 (finite in float32) whose signs do not
     * separate the classes, so the gradient never vanishes: without normalisation a
     * large learning rate overflows the logits to Inf */
    {
        float Xe[N_ROWS * N_FEAT];
        int32_t ye[N_ROWS];
        for (int i = 0; i < N_ROWS; i++) {
            ye[i] = i % 2;
            for (int j = 0; j < N_FEAT; j++)
                Xe[i * N_FEAT + j] = (float)(((i * 7 + j * 3) % 5 - 1.5) * (1.0 + 0.01 * i) * 1e30);
        }
        f = create("d_extreme.h5");
        write_splits(f, H5IO_F32, 2, xd, Xe, H5IO_I32, 1, yd, ye);
        close_file(&f, "d_extreme.h5");
    }
}

/* ---- model and checkpoint files -------------------------------------------------- */

/* A softmax model D -> K with every attribute model_io writes; overrides make it bad. */
typedef struct {
    int64_t version;
    const char *type;
    int64_t sizes[4];
    size_t n_sizes;
    int64_t classes;
    size_t w_rows, w_cols; /* the W actually stored */
    H5ioType w_type;
} ModelSpec;

static void write_model_group(H5File *f, const char *g, const ModelSpec *m)
{
    char p[128];
    check(h5io_create_group(f, g), g);
    check(h5io_attr_write_str(f, g, "format", "xentrain-model"), "format");
    check(h5io_attr_write_i64(f, g, "format_version", m->version), "format_version");
    check(h5io_attr_write_str(f, g, "model_type", m->type), "model_type");
    check(h5io_attr_write_str(f, g, "activation", "relu"), "activation");
    check(h5io_attr_write_str(f, g, "head", "softmax"), "head");
    check(h5io_attr_write_i64s(f, g, "layer_sizes", m->sizes, m->n_sizes), "layer_sizes");
    check(h5io_attr_write_i64(f, g, "classes", m->classes), "classes");
    check(h5io_attr_write_str(f, g, "normalize", "none"), "normalize");
    size_t wd[2] = {m->w_rows, m->w_cols}, bd[1] = {m->w_rows};
    size_t n = m->w_rows * m->w_cols;
    float *w = calloc(n ? n : 1, sizeof *w);
    int32_t *wi = calloc(n ? n : 1, sizeof *wi);
    if (!w || !wi) {
        fprintf(stderr, "mkfixtures: out of memory\n");
        exit(1);
    }
    snprintf(p, sizeof p, "%s/layer1/W", g);
    check(h5io_write(f, p, m->w_type, 2, wd, m->w_type == H5IO_I32 ? (void *)wi : (void *)w, 0), p);
    snprintf(p, sizeof p, "%s/layer1/b", g);
    check(h5io_write(f, p, H5IO_F32, 1, bd, w, 0), p);
    free(w);
    free(wi);
}

static ModelSpec good_model(void)
{
    ModelSpec m = {.version = 1, .type = "softmax", .sizes = {N_FEAT, 3}, .n_sizes = 2,
                   .classes = 3, .w_rows = 3, .w_cols = N_FEAT, .w_type = H5IO_F32};
    return m;
}

static void model_file(const char *name, const ModelSpec *m)
{
    H5File *f = create(name);
    write_model_group(f, "/model", m);
    close_file(&f, name);
}

static void model_files(void)
{
    ModelSpec m = good_model();
    model_file("m_good.h5", &m);
    m.version = 99;
    model_file("m_newer.h5", &m);
    m = good_model();
    m.type = "svm";
    model_file("m_badtype.h5", &m);
    m = good_model();
    m.w_rows = 2;
    model_file("m_wshape.h5", &m);
    m = good_model();
    m.w_type = H5IO_I32;
    model_file("m_wint.h5", &m);
    /* layer_sizes claim a 2^26 x 2^26 MLP (2^52 parameters); the stored W is tiny */
    m = (ModelSpec){.version = 1, .type = "mlp", .sizes = {(int64_t)1 << 26, (int64_t)1 << 26, 3},
                    .n_sizes = 3, .classes = 3, .w_rows = 2, .w_cols = 2, .w_type = H5IO_F32};
    model_file("m_hugeshape.h5", &m);
    /* layer_sizes claim D = 2^26 for a softmax: 2^26 x 3 floats, 768 MiB */
    m = (ModelSpec){.version = 1, .type = "softmax", .sizes = {(int64_t)1 << 26, 3},
                    .n_sizes = 2, .classes = 3, .w_rows = 3, .w_cols = 2, .w_type = H5IO_F32};
    model_file("m_bigd.h5", &m);
}

static void state_group(H5File *f, const char *format, int64_t version)
{
    check(h5io_create_group(f, "/state"), "/state");
    check(h5io_attr_write_str(f, "/state", "format", format), "format");
    check(h5io_attr_write_i64(f, "/state", "format_version", version), "format_version");
}

static void checkpoint_files(void)
{
    H5File *f = create("c_newer.h5");
    state_group(f, "xentrain-checkpoint", 99);
    ModelSpec m = good_model();
    write_model_group(f, "/model", &m);
    close_file(&f, "c_newer.h5");
    f = create("c_wrongformat.h5");
    state_group(f, "xentrain-model", 1);
    close_file(&f, "c_wrongformat.h5");
}

/* ---- CSR data files (issue 27) ----------------------------------------------------- */

/* GROUP/X as a CSR group (encoding-type `kind`: csr_matrix or csc_matrix) and GROUP/y. */
static void write_csr(H5File *f, const char *group, const char *kind, const int64_t *ip,
                      const int64_t *ix, const float *v, size_t nnz, const int32_t *y)
{
    char p[64];
    size_t dn[1] = {N_ROWS + 1}, dz[1] = {nnz}, dy[1] = {N_ROWS};
    int64_t shape[2] = {N_ROWS, N_FEAT};
    snprintf(p, sizeof p, "%s/X/indptr", group);
    check(h5io_write(f, p, H5IO_I64, 1, dn, ip, 0), p);
    snprintf(p, sizeof p, "%s/X/indices", group);
    check(h5io_write(f, p, H5IO_I64, 1, dz, ix, 0), p);
    snprintf(p, sizeof p, "%s/X/data", group);
    check(h5io_write(f, p, H5IO_F32, 1, dz, v, 0), p);
    snprintf(p, sizeof p, "%s/X", group);
    check(h5io_attr_write_str(f, p, "encoding-type", kind), p);
    check(h5io_attr_write_str(f, p, "encoding-version", "0.1.0"), p);
    check(h5io_attr_write_i64s(f, p, "shape", shape, 2), p);
    snprintf(p, sizeof p, "%s/y", group);
    check(h5io_write(f, p, H5IO_I32, 1, dy, y, 0), p);
}

/* The good rows as CSR (every value is stored), then one fault per file in /train. */
static void csr_files(void)
{
    float X[N_ROWS * N_FEAT], v[N_ROWS * N_FEAT];
    int32_t y[N_ROWS];
    int64_t ip[N_ROWS + 1], ix[N_ROWS * N_FEAT];
    const size_t nnz = N_ROWS * N_FEAT;
    good_rows(X, y);
    for (size_t k = 0; k < nnz; k++) {
        ix[k] = (int64_t)(k % N_FEAT);
        v[k] = X[k];
    }
    for (size_t i = 0; i <= N_ROWS; i++) ip[i] = (int64_t)(i * N_FEAT);
    static const char *const names[] = {"d_csr_index.h5", "d_csr_indptr.h5", "d_csr_end.h5",
                                        "d_csr_nan.h5",   "d_csr_dup.h5",    "d_csr_csc.h5"};
    for (int c = 0; c < 6; c++) {
        int64_t ipc[N_ROWS + 1], ixc[N_ROWS * N_FEAT];
        float vc[N_ROWS * N_FEAT];
        memcpy(ipc, ip, sizeof ipc);
        memcpy(ixc, ix, sizeof ixc);
        memcpy(vc, v, sizeof vc);
        if (c == 0) ixc[25 * N_FEAT + 1] = N_FEAT;     /* row 25: column 3 of D = 3 */
        if (c == 1) ipc[11] = ipc[10] - 2;             /* indptr decreases after row 10 */
        if (c == 2) ipc[N_ROWS] = (int64_t)nnz - 1;    /* does not end at nnz */
        if (c == 3) vc[17 * N_FEAT + 2] = NAN;         /* row 17, column 2 */
        if (c == 4) ixc[8 * N_FEAT + 2] = 1;           /* row 8: column 1 twice */
        H5File *f = create(names[c]);
        write_csr(f, "/train", c == 5 ? "csc_matrix" : "csr_matrix", ipc, ixc, vc, nnz, y);
        write_csr(f, "/val", "csr_matrix", ip, ix, v, nnz, y);
        close_file(&f, names[c]);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: xt_mkfixtures OUTDIR\n");
        return 2;
    }
    g_dir = argv[1];
    log_set_quiet(true);
    data_files();
    csr_files();
    model_files();
    checkpoint_files();
    if (g_failures) fprintf(stderr, "mkfixtures: %d failures\n", g_failures);
    return g_failures ? 1 : 0;
}
