/* convert idx: IDX image and label files (MNIST, Fashion-MNIST) into the dataset.h
 * layout, keeping the pixels as uint8 with scale = 1/255. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "convert_common.h"
#include "dataset.h"
#include "log.h"

#define IDX_CHUNK ((size_t)16 << 20) /* read buffer growth step */
#define IDX_MAX_IMAGE_BYTES ((size_t)1 << 24)
#define IDX_PIXEL_SCALE (1.0 / 255.0)

typedef struct {
    const char *images, *labels, *test_images, *test_labels, *class_names;
} IdxOptions;

static IdxOptions g_idx;

static size_t idx_options(OptSpec *specs, OutOptions *out)
{
    IdxOptions *o = &g_idx;
    *o = (IdxOptions){0};
    const OptSpec mine[] = {
        {.name = "images", OPT_STRING, &o->images, "F", "training images", .required = true},
        {.name = "labels", OPT_STRING, &o->labels, "F", "training labels", .required = true},
        {.name = "test-images", OPT_STRING, &o->test_images, "F", "test images (no /test without)"},
        {.name = "test-labels", OPT_STRING, &o->test_labels, "F", "test labels"},
        {.name = "val-tail", OPT_SIZE, &out->val_tail, "n",
         "the last n training rows as /val (instead of\n--val-fraction)",
         .given = &out->val_tail_set},
        {.name = "class-names", OPT_STRING, &o->class_names, "a,b,c",
         "class names (file attribute class_names)"},
    };
    memcpy(specs, mine, sizeof mine);
    return sizeof mine / sizeof mine[0];
}

static Status idx_check(OutOptions *out)
{
    if (out->val_tail_set && !out->val_fraction_set) out->val_fraction = 0.0;
    if (!g_idx.test_images != !g_idx.test_labels) {
        log_error("convert idx: give both --test-images and --test-labels, or neither");
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

typedef struct {
    uint8_t *data;
    size_t n, rows, cols; /* labels: rows = cols = 1 */
} IdxArray;

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Reads exactly len bytes; returns the count read, or -1 on a gzip error (logged). */
static long long gz_read_all(gzFile gz, const char *path, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t m = len - got > ((size_t)1 << 30) ? ((size_t)1 << 30) : len - got;
        int r = gzread(gz, (char *)buf + got, (unsigned)m);
        if (r < 0) {
            int err = 0;
            const char *msg = gzerror(gz, &err);
            log_error("%s: cannot read: %s (corrupt or truncated gzip file?)", path,
                      err == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* The header: magic, counts and sizes, checked. */
static Status idx_header(gzFile gz, const char *path, int ndims, IdxArray *a)
{
    const char *what = ndims == 3 ? "images" : "labels";
    unsigned char head[16];
    size_t hlen = 4 + 4 * (size_t)ndims;
    long long got = gz_read_all(gz, path, head, hlen);
    if (got < 0) return XT_ERR_USAGE;
    if (got < 4) {
        log_error("%s: truncated IDX file: %lld bytes, shorter than the 4-byte magic", path, got);
        return XT_ERR_USAGE;
    }
    uint32_t magic = be32(head), want = 0x0800u | (uint32_t)ndims;
    if (magic != want) {
        log_error("%s: bad IDX magic 0x%08" PRIx32 " for %s: expected 0x%08" PRIx32
                  " (unsigned bytes, %d dimension%s)%s", path, magic, what, want, ndims,
                  ndims > 1 ? "s" : "", (magic >> 16) ? " (not an IDX file?)" : "");
        return XT_ERR_USAGE;
    }
    if ((size_t)got < hlen) {
        log_error("%s: truncated IDX header: %lld of %zu bytes", path, got, hlen);
        return XT_ERR_USAGE;
    }
    a->n = be32(head + 4);
    a->rows = ndims == 3 ? be32(head + 8) : 1;
    a->cols = ndims == 3 ? be32(head + 12) : 1;
    if (a->n == 0 || a->rows == 0 || a->cols == 0 || a->rows * a->cols > IDX_MAX_IMAGE_BYTES) {
        log_error("%s: IDX dimensions %zu x %zu x %zu: expected non-empty %s of at most 2^24 "
                  "bytes each", path, a->n, a->rows, a->cols, what);
        return XT_ERR_USAGE;
    }
    double phys = convert_physical_memory();
    if (phys > 0.0 && (double)(a->n * a->rows * a->cols) > phys) {
        log_error("%s: the IDX header declares %zu %s of %zu x %zu bytes (%zu bytes), more than "
                  "this machine's memory: a corrupt header?", path, a->n, what, a->rows, a->cols,
                  a->n * a->rows * a->cols);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* The data: exactly the bytes the header declares. The buffer grows as data arrive, so
 * a header that claims far more than the file holds fails as "truncated" without
 * allocating the claimed size. */
static Status idx_data(gzFile gz, const char *path, const char *what, IdxArray *a)
{
    size_t bytes = a->n * a->rows * a->cols, cap = 0, filled = 0;
    while (filled < bytes) {
        if (filled == cap) {
            size_t ncap = cap ? (cap > bytes / 2 ? bytes : cap * 2)
                              : (bytes < IDX_CHUNK ? bytes : IDX_CHUNK);
            uint8_t *q = realloc(a->data, ncap);
            if (!q) {
                log_error("%s: out of memory for %zu bytes", path, ncap);
                return XT_ERR_RUNTIME;
            }
            a->data = q;
            cap = ncap;
        }
        long long got = gz_read_all(gz, path, a->data + filled, cap - filled);
        if (got < 0) return XT_ERR_USAGE;
        filled += (size_t)got;
        if (filled < cap) break; /* end of file */
    }
    if (filled < bytes) {
        log_error("%s: truncated IDX file: the header declares %zu %s (%zu bytes of data) but "
                  "only %zu bytes follow", path, a->n, what, bytes, filled);
        return XT_ERR_USAGE;
    }
    unsigned char extra;
    long long got = gz_read_all(gz, path, &extra, 1);
    if (got < 0) return XT_ERR_USAGE;
    if (got > 0) {
        log_error("%s: more data than the header declares (%zu %s): corrupt IDX file?", path,
                  a->n, what);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

static Status idx_read(const char *path, int ndims, IdxArray *a)
{
    memset(a, 0, sizeof *a);
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        log_error("convert idx: %s: cannot open: %s", path,
                  errno ? strerror(errno) : "out of memory");
        return XT_ERR_USAGE;
    }
    Status st = idx_header(gz, path, ndims, a);
    if (st == XT_OK) st = idx_data(gz, path, ndims == 3 ? "images" : "labels", a);
    gzclose(gz);
    if (st != XT_OK) {
        free(a->data);
        a->data = NULL;
    }
    return st;
}

/* Splits "a,b,c" into malloc'd names. */
static Status split_names(const char *s, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t k = 1;
    for (const char *p = s; *p; p++) k += *p == ',';
    char **v = calloc(k, sizeof *v);
    if (!v) return XT_ERR_RUNTIME;
    const char *p = s;
    for (size_t i = 0; i < k; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        v[i] = malloc(len + 1);
        if (!v[i]) {
            h5io_strs_free(v, k);
            return XT_ERR_RUNTIME;
        }
        memcpy(v[i], p, len);
        v[i][len] = '\0';
        if (len == 0) {
            log_error("convert idx: --class-names '%s': name %zu is empty", s, i + 1);
            h5io_strs_free(v, k);
            return XT_ERR_USAGE;
        }
        p = e ? e + 1 : p + len;
    }
    *out = v;
    *n = k;
    return XT_OK;
}

/* Loads an images/labels pair and checks they agree. y gets int32 labels. */
static Status idx_load_pair(const char *images, const char *labels, IdxArray *img,
                            int32_t **y, size_t *kmax)
{
    IdxArray lab = {0};
    *y = NULL;
    Status st = idx_read(images, 3, img);
    if (st == XT_OK) st = idx_read(labels, 1, &lab);
    if (st == XT_OK && lab.n != img->n) {
        log_error("convert idx: image and label counts differ: %s has %zu images, %s has %zu "
                  "labels", images, img->n, labels, lab.n);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        *y = malloc(lab.n * sizeof **y);
        if (!*y) {
            log_error("convert idx: out of memory");
            st = XT_ERR_RUNTIME;
        }
    }
    for (size_t i = 0; st == XT_OK && i < lab.n; i++) {
        (*y)[i] = lab.data[i];
        if ((size_t)lab.data[i] + 1 > *kmax) *kmax = (size_t)lab.data[i] + 1;
    }
    free(lab.data);
    return st;
}

/* The images of one split and their attributes. */
static Status idx_write_split(H5File *f, const char *group, const IdxArray *img,
                              const int32_t *y, const RowSet *rows, int gzip)
{
    DatasetRows r = {.X = img->data, .x_u8 = true, .d = img->rows * img->cols, .y = y,
                     .rows = rows ? rows->idx : NULL, .n = rows ? rows->n : img->n,
                     .scale = IDX_PIXEL_SCALE};
    if (r.n == 0) return XT_OK;
    char xp[32];
    snprintf(xp, sizeof xp, "%s/X", group);
    Status st = dataset_write_split(f, group, &r, gzip);
    if (st == XT_OK) st = h5io_attr_write_i64(f, xp, "image_rows", (int64_t)img->rows);
    if (st == XT_OK) st = h5io_attr_write_i64(f, xp, "image_cols", (int64_t)img->cols);
    return st;
}

/* What idx_main holds. */
typedef struct {
    IdxArray tr, te;
    int32_t *ytr, *yte;
    char **names;
    size_t n_names, k;
    RowSet s_tr, s_va, s_te;
} IdxData;

static Status idx_load(const IdxOptions *o, const OutOptions *out, IdxData *x)
{
    Status st = XT_OK;
    if (o->class_names) st = split_names(o->class_names, &x->names, &x->n_names);
    if (st == XT_OK) st = idx_load_pair(o->images, o->labels, &x->tr, &x->ytr, &x->k);
    if (st == XT_OK && o->test_images)
        st = idx_load_pair(o->test_images, o->test_labels, &x->te, &x->yte, &x->k);
    if (st == XT_OK && x->te.data && (x->te.rows != x->tr.rows || x->te.cols != x->tr.cols)) {
        log_error("convert idx: test images are %zu x %zu, training images %zu x %zu",
                  x->te.rows, x->te.cols, x->tr.rows, x->tr.cols);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK && x->names && x->n_names < x->k) {
        log_error("convert idx: %zu class names for labels up to %zu: give at least %zu names",
                  x->n_names, x->k - 1, x->k);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) st = convert_split_rows(x->tr.n, x->ytr, out, &x->s_tr, &x->s_va, &x->s_te);
    return st;
}

static Status idx_write(const OutOptions *out, const IdxData *x)
{
    H5File *f = NULL;
    int gz = (int)out->gzip;
    Status st = h5io_create_atomic(out->out, &f);
    if (st == XT_OK) st = idx_write_split(f, "/train", &x->tr, x->ytr, &x->s_tr, gz);
    if (st == XT_OK) st = idx_write_split(f, "/val", &x->tr, x->ytr, &x->s_va, gz);
    if (st == XT_OK && x->te.data) st = idx_write_split(f, "/test", &x->te, x->yte, NULL, gz);
    if (st == XT_OK && x->names)
        st = h5io_attr_write_strs(f, "/", "class_names", (const char *const *)x->names,
                                  x->n_names);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "created_by", "xentrain convert idx");
    if (st == XT_OK) st = h5io_commit(&f);
    h5io_close(&f);
    if (st != XT_OK) return XT_ERR_RUNTIME;
    log_info("convert idx: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu "
             "(%zu x %zu uint8, scale 1/255), K = %zu", out->out, x->s_tr.n, x->s_va.n,
             x->te.n, x->tr.rows * x->tr.cols, x->tr.rows, x->tr.cols,
             x->names ? x->n_names : x->k);
    return XT_OK;
}

static Status idx_run(const OutOptions *out)
{
    const IdxOptions o = g_idx;
    IdxData x = {0};
    Status st = idx_load(&o, out, &x);
    if (st == XT_OK) st = idx_write(out, &x);
    convert_rowset_free(&x.s_tr);
    convert_rowset_free(&x.s_va);
    convert_rowset_free(&x.s_te);
    free(x.tr.data);
    free(x.te.data);
    free(x.ytr);
    free(x.yte);
    h5io_strs_free(x.names, x.n_names);
    return st;
}

const ConvertReader convert_idx_reader = {
    .name = "idx",
    .synopsis = "--images F --labels F [options] --out F.h5",
    .about = "IDX images (magic 0x00000803: N x rows x cols bytes) and labels (0x00000801).\n"
             "/train and /val come from the training files, /test from the test files; X\n"
             "stays uint8 (N, rows*cols) with scale = 1/255 (scripts/prepare-fashion-mnist.sh\n"
             "uses it).",
    .options = idx_options,
    .check = idx_check,
    .run = idx_run};
