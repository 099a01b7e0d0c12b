/* gen: see gen.h. Synthetic data sets, bit-reproducible from the seed: every number
 * comes from one rng.h stream consumed in a fixed order (parameters first, then the
 * rows one by one), and the rows are split in order: train, then val, then test.
 */
#include "gen.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "csr.h"
#include "dataset.h"
#include "h5io.h"
#include "log.h"
#include "opts.h"
#include "rng.h"

#define GEN_PI 3.14159265358979323846

typedef enum { GEN_BLOBS, GEN_XOR, GEN_SPIRALS, GEN_MULTILABEL, GEN_SPARSE,
               GEN_SPARSE_MULTILABEL } GenKind;

typedef struct {
    GenKind kind;
    const char *name;
    size_t rows, d, k;
    uint64_t seed;
    double val_fraction, test_fraction, noise;
    bool soft;  /* blobs: (N, K) class probabilities instead of class ids */
    int gzip;
    bool x_u8;  /* X stored as uint8: round(16 x + 128), clamped to 0..255 */
    size_t nnz; /* sparse kinds: mean non-zeros per row */
    const char *out;
} GenOptions;

static const char *const GEN_NAMES[] = {"blobs",      "xor",    "spirals",
                                        "multilabel", "sparse", "sparse-multilabel"};
#define GEN_KINDS (sizeof GEN_NAMES / sizeof GEN_NAMES[0])
#define GEN_MAX_ROWS ((double)((size_t)1 << 40))
#define GEN_MAX_FEATURES ((double)((size_t)1 << 20))
#define GEN_MAX_CLASSES 100000.0
#define GEN_SOFT_MAX_K 256

static const char GEN_ABOUT[] =
    "Writes a seeded synthetic data set with /train, /val and /test splits\n"
    "(X float32 (N, D); y int32 class ids, or float32 (N, K) 0/1 for multilabel).\n"
    "The same options and seed give the same file, bit for bit. Rows are made and\n"
    "written in blocks of about 64 MiB, so the file may be larger than memory\n"
    "(progress is printed for files over 256 MiB).\n"
    "\n"
    "  blobs       K Gaussian clusters (close to linearly separable)\n"
    "  xor         2 classes by the sign of x0*x1: needs a hidden layer (D >= 2)\n"
    "  spirals     K interleaved spirals in (x0, x1): needs a hidden layer (D >= 2)\n"
    "  multilabel  K labels per row, each from its own random linear rule\n"
    "  sparse      X as CSR (an AnnData csr_matrix group): about --nnz non-zeros per\n"
    "              row in [0.5, 1.5), features drawn with a long-tailed (Zipf 1.1)\n"
    "              frequency; K classes by a random linear rule (made in memory:\n"
    "              the CSR rows must fit)\n"
    "  sparse-multilabel  the same X, K labels from their own rules";

/* The rules between options. */
static Status gen_check(const GenOptions *o, bool k_given)
{
    if (o->kind == GEN_XOR && k_given && o->k != 2) {
        log_error("gen: xor has exactly 2 classes, got --classes %zu", o->k);
        return XT_ERR_USAGE;
    }
    if ((o->kind == GEN_XOR || o->kind == GEN_SPIRALS) && o->d < 2) {
        log_error("gen: %s needs --features >= 2, got %zu", o->name, o->d);
        return XT_ERR_USAGE;
    }
    if (o->kind != GEN_MULTILABEL && o->kind != GEN_SPARSE_MULTILABEL && o->k < 2) {
        log_error("gen: --classes %zu: %s needs at least 2 classes", o->k, o->name);
        return XT_ERR_USAGE;
    }
    if (o->soft && (o->kind != GEN_BLOBS || o->k > GEN_SOFT_MAX_K)) {
        log_error("gen: --soft applies to blobs with at most %d classes", GEN_SOFT_MAX_K);
        return XT_ERR_USAGE;
    }
    bool sparse = o->kind == GEN_SPARSE || o->kind == GEN_SPARSE_MULTILABEL;
    if (sparse && (o->x_u8 || o->soft || o->nnz > o->d || o->d > INT32_MAX)) {
        log_error("gen: %s: --nnz %zu must be at most --features %zu (< 2^31), without --soft "
                  "or --dtype uint8", o->name, o->nnz, o->d);
        return XT_ERR_USAGE;
    }
    if (o->val_fraction + o->test_fraction >= 1.0) {
        log_error("gen: --val-fraction %g + --test-fraction %g leave no training rows",
                  o->val_fraction, o->test_fraction);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Parses "gen KIND [options]" (argv[0] = "gen"). */
static Status gen_parse(int argc, char **argv, GenOptions *o, bool *help)
{
    *o = (GenOptions){.rows = 1000, .d = 2, .seed = 1, .val_fraction = 0.1, .nnz = 10,
                      .test_fraction = 0.1, .noise = -1.0};
    size_t gzip = 0;
    const char *dtype = "float32";
    bool k_given = false, d_given = false;
    const char *kind = NULL;
    size_t n_pos = 0;
    const OptSpec opts[] = {
        {.name = "rows", OPT_SIZE, &o->rows, "N", "rows over all splits (1000)", 1, GEN_MAX_ROWS},
        {.name = "features", OPT_SIZE, &o->d, "D",
         "features (2, sparse kinds 1000; beyond 2 they are noise\nfor xor and spirals)", 1,
         GEN_MAX_FEATURES * 1024, .given = &d_given},
        {.name = "nnz", OPT_SIZE, &o->nnz, "M", "sparse kinds: mean non-zeros per row (10)", 1,
         GEN_MAX_FEATURES},
        {.name = "classes", OPT_SIZE, &o->k, "K",
         "classes (blobs 3, xor 2 (fixed), spirals 3, multilabel 4 labels)", 1,
         GEN_MAX_CLASSES, .given = &k_given},
        {.name = "seed", OPT_U64, &o->seed, "S", "PRNG seed, any 64-bit value (1)"},
        {.name = "val-fraction", OPT_DOUBLE, &o->val_fraction, "f",
         "fraction of rows in /val (0.1; 0 = no /val group)", 0.0, 1.0},
        {.name = "test-fraction", OPT_DOUBLE, &o->test_fraction, "f",
         "fraction of rows in /test (0.1; 0 = no /test group)", 0.0, 1.0},
        {.name = "noise", OPT_DOUBLE, &o->noise, "x", "noise std (blobs 1.0, others 0.1)", 0.0,
         1e6},
        {.name = "soft", OPT_FLAG, &o->soft, NULL,
         "blobs: y holds (N,K) class probabilities (soft targets:\nthe posterior given x) "
         "instead of class ids"},
        {.name = "gzip", OPT_SIZE, &gzip, "L",
         "deflate level 1..9 for chunked storage (0: contiguous)", 0, 9},
        {.name = "dtype", OPT_STRING, &dtype, "T",
         "X's type: float32, or uint8 (round(16 x + 128) clamped to\n0..255, as 8-bit "
         "pixels are stored; labels from the unrounded x)"},
        {.name = "out", OPT_STRING, &o->out, "F.h5",
         "output file (written to F.h5.tmp, then renamed)", .required = true},
    };
    OptTable t = {.cmd = "gen",
                  .synopsis = "{blobs|xor|spirals|multilabel|sparse|sparse-multilabel} "
                              "[options] --out F.h5",
                  .about = GEN_ABOUT, .opts = opts, .n_opts = sizeof opts / sizeof opts[0],
                  .positional = "KIND", .pos = &kind, .pos_cap = 1, .n_pos = &n_pos};
    Status st = opts_parse(&t, argc, argv, help);
    if (*help) opts_print_help(&t, stdout);
    if (st != XT_OK || *help) return st;
    size_t which = GEN_KINDS;
    for (size_t i = 0; kind && i < GEN_KINDS; i++)
        if (!strcmp(kind, GEN_NAMES[i])) which = i;
    if (which == GEN_KINDS) {
        log_error("gen: %s '%s' (expected blobs, xor, spirals, multilabel, sparse or "
                  "sparse-multilabel)",
                  kind ? "unknown generator" : "missing generator", kind ? kind : "");
        return XT_ERR_USAGE;
    }
    o->kind = (GenKind)which;
    o->name = GEN_NAMES[which];
    if (strcmp(dtype, "float32") != 0 && strcmp(dtype, "uint8") != 0) {
        log_error("gen: --dtype '%s' (expected float32 or uint8)", dtype);
        return XT_ERR_USAGE;
    }
    o->x_u8 = !strcmp(dtype, "uint8");
    o->gzip = (int)gzip;
    static const size_t default_k[] = {3, 2, 3, 4, 3, 4}; /* in GEN_NAMES order */
    if (!k_given) o->k = default_k[which];
    bool sparse = o->kind == GEN_SPARSE || o->kind == GEN_SPARSE_MULTILABEL;
    if (sparse && !d_given) o->d = 1000;
    if ((double)o->d > GEN_MAX_FEATURES && !sparse) {
        log_error("gen: --features %zu: dense kinds take at most %.0f", o->d, GEN_MAX_FEATURES);
        return XT_ERR_USAGE;
    }
    if (o->noise < 0.0) o->noise = o->kind == GEN_BLOBS ? 1.0 : 0.1;
    return gen_check(o, k_given);
}

/* ---- generators ----------------------------------------------------------------- */

/* Soft targets of a blob row: the posterior class probabilities given x (equal priors,
 * isotropic Gaussians of std noise around the centres par), p_k ~ exp(-|x - c_k|^2 /
 * (2 noise^2)). Consumes no random numbers: X is the same as without --soft. */
static void posterior(float *p, const float *x, const double *par, size_t d, size_t k,
                      double noise)
{
    double logit[GEN_SOFT_MAX_K], mx = -INFINITY, sum = 0.0;
    for (size_t c = 0; c < k; c++) {
        double dist = 0.0;
        for (size_t j = 0; j < d; j++) {
            double dx = (double)x[j] - par[c * d + j];
            dist += dx * dx;
        }
        logit[c] = -dist / (2.0 * noise * noise);
        mx = fmax(mx, logit[c]);
    }
    for (size_t c = 0; c < k; c++) sum += exp(logit[c] - mx);
    for (size_t c = 0; c < k; c++) p[c] = (float)(exp(logit[c] - mx) / sum);
}

/* The parameters (centres, rules): the first numbers of the stream. */
static void gen_params(const GenOptions *o, Rng *rng, double *par)
{
    Rng r = *rng;
    size_t d = o->d, k = o->k;
    if (o->kind == GEN_BLOBS) {
        /* Centres ~ N(0, 4^2): with unit noise the clusters barely overlap. */
        for (size_t i = 0; i < k * d; i++) par[i] = 4.0 * rng_normal(&r);
    } else if (o->kind == GEN_MULTILABEL) {
        /* Rule j: w_j ~ N(0, 1/D), bias ~ N(0, 0.25): each label is on for some rows. */
        double s = 1.0 / sqrt((double)d);
        for (size_t i = 0; i < k * d; i++) par[i] = s * rng_normal(&r);
        for (size_t j = 0; j < k; j++) par[k * d + j] = 0.5 * rng_normal(&r);
    }
    *rng = r;
}

/* The next n rows of the stream: X (n, d) and either y (n) or t (n, k). */
static void gen_rows(const GenOptions *o, Rng *rng, const double *par, size_t n, float *X,
                     int32_t *y, float *t)
{
    Rng r = *rng;
    size_t d = o->d, k = o->k;
    double noise = o->noise;
    for (size_t i = 0; i < n; i++) {
        float *x = X + i * d;
        switch (o->kind) {
        case GEN_BLOBS: {
            size_t c = (size_t)rng_below(&r, k);
            for (size_t j = 0; j < d; j++) x[j] = (float)(par[c * d + j] + noise * rng_normal(&r));
            if (t) posterior(t + i * k, x, par, d, k, noise);
            else y[i] = (int32_t)c;
            break;
        }
        case GEN_XOR: {
            double a = 2.0 * rng_uniform(&r) - 1.0, b = 2.0 * rng_uniform(&r) - 1.0;
            y[i] = (a > 0.0) != (b > 0.0) ? 1 : 0;
            x[0] = (float)(a + noise * rng_normal(&r));
            x[1] = (float)(b + noise * rng_normal(&r));
            for (size_t j = 2; j < d; j++) x[j] = (float)(2.0 * rng_uniform(&r) - 1.0);
            break;
        }
        case GEN_SPIRALS: {
            size_t c = (size_t)rng_below(&r, k);
            double u = rng_uniform(&r);
            double rad = 0.1 + 0.9 * u;
            double ang = 2.0 * GEN_PI * (double)c / (double)k + 3.0 * GEN_PI * u;
            x[0] = (float)(rad * cos(ang) + noise * rng_normal(&r));
            x[1] = (float)(rad * sin(ang) + noise * rng_normal(&r));
            for (size_t j = 2; j < d; j++) x[j] = (float)(2.0 * rng_uniform(&r) - 1.0);
            y[i] = (int32_t)c;
            break;
        }
        case GEN_MULTILABEL: {
            for (size_t j = 0; j < d; j++) x[j] = (float)rng_normal(&r);
            for (size_t c = 0; c < k; c++) {
                double z = par[k * d + c] + noise * rng_normal(&r);
                for (size_t j = 0; j < d; j++) z += par[c * d + j] * (double)x[j];
                t[i * k + c] = z > 0.0 ? 1.0f : 0.0f;
            }
            break;
        }
        case GEN_SPARSE:
        case GEN_SPARSE_MULTILABEL: break; /* made by gen_sparse */
        }
    }
    *rng = r;
}

#define GEN_BLOCK_BYTES ((size_t)64 << 20)
#define GEN_PROGRESS_BYTES ((size_t)256 << 20)
#define GEN_PROGRESS_EVERY_S 5.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The three splits, in row order. */
typedef struct {
    const char *group;
    size_t first, n;
} GenSplit;

/* Writes generated rows [row0, row0 + n) (block memory) into the splits they fall in. */
static Status write_block(H5File *f, const GenOptions *o, const GenSplit *sp, size_t row0,
                          size_t n, const void *X, const int32_t *y, const float *t)
{
    size_t xw = o->d * (o->x_u8 ? 1 : sizeof(float));
    for (int s = 0; s < 3; s++) {
        size_t lo = row0 > sp[s].first ? row0 : sp[s].first;
        size_t hi = row0 + n < sp[s].first + sp[s].n ? row0 + n : sp[s].first + sp[s].n;
        if (lo >= hi) continue;
        size_t i = lo - row0;
        DatasetRows r = {.X = (const char *)X + i * xw, .x_u8 = o->x_u8, .d = o->d,
                         .y = y ? y + i : NULL, .t = t ? t + i * o->k : NULL, .k = o->k,
                         .n = hi - lo};
        Status st = dataset_write_rows(f, sp[s].group, lo - sp[s].first, &r);
        if (st != XT_OK) return st;
    }
    return XT_OK;
}

static void quantize(const float *x, uint8_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        long v = lrintf(16.0f * x[i] + 128.0f);
        q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* The attributes that say how the file was made. */
static Status write_attributes(H5File *f, const GenOptions *o, const GenSplit *sp)
{
    Status st = XT_OK;
    if (o->x_u8) /* the quantisation, for readers of the file */
        for (int s = 0; s < 3 && st == XT_OK; s++) {
            char xp[64];
            snprintf(xp, sizeof xp, "%s/X", sp[s].group);
            if (sp[s].n > 0)
                st = h5io_attr_write_str(f, xp, "encoding", "uint8 = round(16 x + 128), clamped");
        }
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "generator", o->name);
    if (st == XT_OK) st = h5io_attr_write_i64(f, "/", "seed", (int64_t)o->seed);
    if (st == XT_OK) st = h5io_attr_write_f64(f, "/", "noise", o->noise);
    if (st == XT_OK) st = h5io_attr_write_i64(f, "/", "classes", (int64_t)o->k);
    return st;
}

/* Block buffers for the rows being generated. */
typedef struct {
    size_t rows;
    float *X, *t;
    uint8_t *X8;
    int32_t *y;
    double *par;
} GenBlock;

static void block_free(GenBlock *b)
{
    free(b->X);
    free(b->X8);
    free(b->y);
    free(b->t);
    free(b->par);
}

/* Rows in blocks of GEN_BLOCK_BYTES, written as they come, with progress for big files. */
static Status write_rows(H5File *f, const GenOptions *o, const GenSplit *sp, GenBlock *b,
                         Rng *rng)
{
    const size_t n = o->rows, d = o->d;
    double bytes = (double)n * (double)d * (o->x_u8 ? 1.0 : 4.0), t0 = now_s(), last = t0;
    bool progress = bytes >= (double)GEN_PROGRESS_BYTES;
    Status st = XT_OK;
    for (size_t row0 = 0; row0 < n && st == XT_OK; row0 += b->rows) {
        size_t m = n - row0 < b->rows ? n - row0 : b->rows;
        gen_rows(o, rng, b->par, m, b->X, b->y, b->t);
        if (o->x_u8) quantize(b->X, b->X8, m * d);
        st = write_block(f, o, sp, row0, m, o->x_u8 ? (const void *)b->X8 : b->X, b->y, b->t);
        double now = now_s();
        if (progress && st == XT_OK && row0 + m < n && now - last >= GEN_PROGRESS_EVERY_S) {
            double done = (double)(row0 + m) / (double)n, rate = done * bytes / (now - t0);
            log_info("gen: %3.0f%%  %.2f of %.2f GB of X written, %.0f MB/s, about %.0f s left",
                     100.0 * done, done * bytes / 1e9, bytes / 1e9, rate / 1e6,
                     (1.0 - done) * bytes / rate);
            last = now;
        }
    }
    if (st == XT_OK && progress) log_info("gen: %.2f GB of X in %.1f s", bytes / 1e9, now_s() - t0);
    return st;
}

/* ---- sparse kinds ------------------------------------------------------------------ */

/* The long tail: cdf[j] = P(feature <= j) with P(j) ~ 1 / (j + 1)^1.1. */
static double *zipf_cdf(size_t d)
{
    double *cdf = malloc(d * sizeof *cdf), sum = 0.0;
    for (size_t j = 0; cdf && j < d; j++) cdf[j] = sum += pow((double)(j + 1), -1.1);
    for (size_t j = 0; cdf && j < d; j++) cdf[j] /= sum;
    return cdf;
}

/* Up to `want` distinct columns drawn from the cdf, sorted, into cols; returns how many. */
static size_t draw_columns(Rng *r, const double *cdf, size_t d, size_t want, int32_t *cols)
{
    size_t n = 0;
    for (size_t tries = 0; n < want && tries < 20 * want; tries++) {
        double u = rng_uniform(r);
        size_t lo = 0, hi = d - 1; /* the first j with cdf[j] > u */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        size_t at = n;
        while (at > 0 && cols[at - 1] > (int32_t)lo) at--;
        if (at > 0 && cols[at - 1] == (int32_t)lo) continue; /* drawn already */
        memmove(cols + at + 1, cols + at, (n - at) * sizeof *cols);
        cols[at] = (int32_t)lo;
        n++;
    }
    return n;
}

/* The rows (after the rules w (k, d) and biases drawn from rng): about o->nnz columns per
 * row from the long tail, values in [0.5, 1.5); y = the best rule's class, or t (n, k) =
 * each rule on or off. */
static void sparse_rows(const GenOptions *o, Rng *rng, const double *cdf, const float *w,
                        CsrRows *c, int32_t *y, float *t)
{
    const size_t d = o->d, k = o->k;
    c->m = 0;
    c->indptr[0] = 0;
    for (size_t i = 0; i < o->rows; i++) {
        size_t at = c->indptr[i];
        size_t want = 1 + (size_t)rng_below(rng, 2 * o->nnz - 1);
        size_t got = draw_columns(rng, cdf, d, want > d ? d : want, c->indices + at);
        for (size_t q = 0; q < got; q++) c->values[at + q] = (float)(0.5 + rng_uniform(rng));
        c->indptr[i + 1] = at + got;
        c->m = i + 1;
        double best = -INFINITY;
        for (size_t cl = 0; cl < k; cl++) {
            double z = w[k * d + cl] + o->noise * rng_normal(rng);
            for (size_t q = at; q < at + got; q++)
                z += (double)c->values[q] * (double)w[cl * d + (size_t)c->indices[q]];
            if (t) t[i * k + cl] = z > 0.0 ? 1.0f : 0.0f;
            else if (z > best) {
                best = z;
                y[i] = (int32_t)cl;
            }
        }
    }
}

/* The sparse kinds: every row made in memory, then each split written as CSR. */
static Status gen_sparse(const GenOptions *o, const GenSplit *sp)
{
    const size_t n = o->rows, d = o->d, k = o->k;
    bool ml = o->kind == GEN_SPARSE_MULTILABEL;
    CsrRows c = {0};
    double *cdf = zipf_cdf(d);
    float *w = malloc((k * d + k) * sizeof *w), *t = ml ? malloc(n * k * sizeof *t) : NULL;
    int32_t *y = ml ? NULL : malloc(n * sizeof *y);
    size_t *idx = malloc(n * sizeof *idx);
    H5File *f = NULL;
    Status st = cdf && w && (t || y) && idx ? csr_init(&c, n, n * (2 * o->nnz - 1), d)
                                            : XT_ERR_RUNTIME;
    if (st != XT_OK) log_error("gen: out of memory for %zu rows of about %zu non-zeros", n, o->nnz);
    Rng rng;
    rng_seed(&rng, o->seed);
    double sw = 1.0 / sqrt((double)o->nnz); /* rules: a row's score is about N(0, 1) */
    for (size_t i = 0; st == XT_OK && i < k * d + k; i++)
        w[i] = (float)((i < k * d ? 2.0 * sw : 0.5) * rng_normal(&rng));
    for (size_t i = 0; st == XT_OK && i < n; i++) idx[i] = i;
    if (st == XT_OK) sparse_rows(o, &rng, cdf, w, &c, y, t);
    if (st == XT_OK) st = h5io_create_atomic(o->out, &f);
    for (int s = 0; s < 3 && st == XT_OK; s++) {
        DatasetRows r = {.csr = &c, .d = d, .y = y, .t = t, .k = k, .rows = idx + sp[s].first,
                         .n = sp[s].n};
        st = dataset_write_split(f, sp[s].group, &r, o->gzip);
    }
    if (st == XT_OK) st = write_attributes(f, o, sp);
    if (st == XT_OK) st = h5io_commit(&f);
    if (st == XT_OK)
        log_info("gen %s: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu, %zu non-zeros "
                 "(CSR), %s = %zu", o->name, o->out, sp[0].n, sp[1].n, sp[2].n, d, csr_nnz(&c),
                 ml ? "labels" : "classes", k);
    h5io_close(&f);
    csr_free(&c);
    free(cdf), free(w), free(t), free(y), free(idx);
    return st;
}

int gen_main(int argc, char **argv)
{
    GenOptions o;
    bool help = false;
    Status st = gen_parse(argc, argv, &o, &help);
    if (help || st != XT_OK) return (int)st;
    size_t n = o.rows, d = o.d, k = o.k;
    size_t n_val = (size_t)llround(o.val_fraction * (double)n);
    size_t n_test = (size_t)llround(o.test_fraction * (double)n);
    if (n_val + n_test >= n) {
        log_error("gen: %zu rows leave no training rows after %zu val and %zu test rows", n,
                  n_val, n_test);
        return XT_ERR_USAGE;
    }
    size_t n_train = n - n_val - n_test;
    const GenSplit sp[3] = {{"/train", 0, n_train}, {"/val", n_train, n_val},
                            {"/test", n_train + n_val, n_test}};
    if (o.kind == GEN_SPARSE || o.kind == GEN_SPARSE_MULTILABEL)
        return gen_sparse(&o, sp) == XT_OK ? 0 : XT_ERR_RUNTIME;
    bool dense = o.kind == GEN_MULTILABEL || o.soft;
    size_t rows = GEN_BLOCK_BYTES / (d * sizeof(float));
    rows = rows < 1 ? 1 : rows > n ? n : rows;
    GenBlock b = {.rows = rows, .X = malloc(rows * d * sizeof(float)),
                  .X8 = o.x_u8 ? malloc(rows * d) : NULL,
                  .y = dense ? NULL : malloc(rows * sizeof(int32_t)),
                  .t = dense ? malloc(rows * k * sizeof(float)) : NULL,
                  .par = malloc((k * d + k) * sizeof(double))};
    H5File *f = NULL;
    if (!b.X || (o.x_u8 && !b.X8) || (!b.y && !b.t) || !b.par) {
        log_error("gen: out of memory for a block of %zu x %zu rows", rows, d);
        block_free(&b);
        return XT_ERR_RUNTIME;
    }
    Rng rng;
    rng_seed(&rng, o.seed);
    gen_params(&o, &rng, b.par);
    st = h5io_create_atomic(o.out, &f);
    for (int s = 0; s < 3 && st == XT_OK; s++)
        st = dataset_create_split(f, sp[s].group, sp[s].n, d, o.x_u8, dense, k, o.gzip);
    if (st == XT_OK) st = write_rows(f, &o, sp, &b, &rng);
    if (st == XT_OK) st = write_attributes(f, &o, sp);
    if (st == XT_OK) st = h5io_commit(&f);
    if (st == XT_OK)
        log_info("gen %s: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu (%s), %s = %zu",
                 o.name, o.out, n_train, n_val, n_test, d, o.x_u8 ? "uint8" : "float32",
                 o.soft ? "soft classes" : dense ? "labels" : "classes", k);
    h5io_close(&f);
    block_free(&b);
    return st == XT_OK ? 0 : XT_ERR_RUNTIME; /* input was validated: what is left is I/O */
}
