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

#include "error.h"
#include "h5io.h"
#include "log.h"
#include "rng.h"

#define GEN_PI 3.14159265358979323846

typedef enum { GEN_BLOBS, GEN_XOR, GEN_SPIRALS, GEN_MULTILABEL } GenKind;

typedef struct {
    GenKind kind;
    const char *name;
    size_t rows, d, k;
    uint64_t seed;
    double val_fraction, test_fraction, noise;
    int gzip;
    const char *out;
} GenOptions;

static void gen_usage(FILE *f)
{
    fprintf(f,
            "usage: xentrain gen {blobs|xor|spirals|multilabel} [options] --out F.h5\n"
            "\n"
            "Writes a seeded synthetic data set with /train, /val and /test splits\n"
            "(X float32 (N, D); y int32 class ids, or float32 (N, K) 0/1 for multilabel).\n"
            "The same options and seed give the same file, bit for bit.\n"
            "\n"
            "  blobs       K Gaussian clusters (close to linearly separable)\n"
            "  xor         2 classes by the sign of x0*x1: needs a hidden layer (D >= 2)\n"
            "  spirals     K interleaved spirals in (x0, x1): needs a hidden layer (D >= 2)\n"
            "  multilabel  K labels per row, each from its own random linear rule\n"
            "\n"
            "options (default):\n"
            "  --rows N            rows over all splits (1000)\n"
            "  --features D        features (2; extra features beyond 2 are noise for\n"
            "                      xor and spirals)\n"
            "  --classes K         classes (blobs 3, xor 2 (fixed), spirals 3,\n"
            "                      multilabel 4 labels)\n"
            "  --seed S            PRNG seed, any 64-bit value (1)\n"
            "  --val-fraction f    fraction of rows in /val (0.1; 0 = no /val group)\n"
            "  --test-fraction f   fraction of rows in /test (0.1; 0 = no /test group)\n"
            "  --noise x           noise std (blobs 1.0, others 0.1)\n"
            "  --gzip L            deflate level 1..9 for chunked storage (0: contiguous)\n"
            "  --out F.h5          output file (written to F.h5.tmp, then renamed)\n");
}

/* ---- option parsing ------------------------------------------------------------ */

static Status parse_size(const char *opt, const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || *end || errno || s[0] == '-') {
        log_error("gen: %s '%s': expected a non-negative integer", opt, s);
        return XT_ERR_USAGE;
    }
    *out = (size_t)v;
    return XT_OK;
}

static Status parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!s[0] || *end || errno || !(v >= lo && v <= hi)) {
        log_error("gen: %s '%s': expected a number in [%g, %g]", opt, s, lo, hi);
        return XT_ERR_USAGE;
    }
    *out = v;
    return XT_OK;
}

static Status gen_parse(int argc, char **argv, GenOptions *o, bool *help)
{
    *help = false;
    memset(o, 0, sizeof *o);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        *help = argc >= 2;
        if (!*help) {
            gen_usage(stderr);
            return XT_ERR_USAGE;
        }
        return XT_OK;
    }
    const char *kinds[] = {"blobs", "xor", "spirals", "multilabel"};
    size_t kind = 4;
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(argv[1], kinds[i])) kind = i;
    if (kind == 4) {
        log_error("gen: unknown generator '%s' (expected blobs, xor, spirals or multilabel)",
                  argv[1]);
        return XT_ERR_USAGE;
    }
    o->kind = (GenKind)kind;
    o->name = kinds[kind];
    o->rows = 1000;
    o->d = 2;
    o->k = o->kind == GEN_BLOBS ? 3 : o->kind == GEN_XOR ? 2 : o->kind == GEN_SPIRALS ? 3 : 4;
    o->seed = 1;
    o->val_fraction = 0.1;
    o->test_fraction = 0.1;
    o->noise = o->kind == GEN_BLOBS ? 1.0 : 0.1;
    bool k_given = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return XT_OK;
        }
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            log_error("gen: %s: %s (see xentrain gen --help)", a,
                      strncmp(a, "--", 2) ? "unexpected argument" : "missing value");
            return XT_ERR_USAGE;
        }
        const char *v = argv[++i];
        Status st = XT_OK;
        size_t gz = 0;
        if (!strcmp(a, "--rows")) st = parse_size(a, v, &o->rows);
        else if (!strcmp(a, "--features")) st = parse_size(a, v, &o->d);
        else if (!strcmp(a, "--classes")) {
            st = parse_size(a, v, &o->k);
            k_given = true;
        } else if (!strcmp(a, "--seed")) {
            char *end = NULL;
            errno = 0;
            o->seed = strtoull(v, &end, 0);
            if (!v[0] || *end || errno || v[0] == '-') {
                log_error("gen: --seed '%s': expected a non-negative 64-bit integer", v);
                st = XT_ERR_USAGE;
            }
        } else if (!strcmp(a, "--val-fraction")) st = parse_double(a, v, 0.0, 1.0, &o->val_fraction);
        else if (!strcmp(a, "--test-fraction")) st = parse_double(a, v, 0.0, 1.0, &o->test_fraction);
        else if (!strcmp(a, "--noise")) st = parse_double(a, v, 0.0, 1e6, &o->noise);
        else if (!strcmp(a, "--gzip")) {
            st = parse_size(a, v, &gz);
            if (st == XT_OK && gz > 9) {
                log_error("gen: --gzip %zu: expected a level in 0..9", gz);
                st = XT_ERR_USAGE;
            }
            o->gzip = (int)gz;
        } else if (!strcmp(a, "--out")) o->out = v;
        else {
            log_error("gen: unknown option %s (see xentrain gen --help)", a);
            st = XT_ERR_USAGE;
        }
        if (st != XT_OK) return st;
    }
    if (!o->out || !o->out[0]) {
        log_error("gen: --out F.h5 is required");
        return XT_ERR_USAGE;
    }
    if (o->rows == 0 || o->d == 0 || o->rows > ((size_t)1 << 40) || o->d > ((size_t)1 << 20)) {
        log_error("gen: --rows %zu --features %zu: expected 1..2^40 rows and 1..2^20 features",
                  o->rows, o->d);
        return XT_ERR_USAGE;
    }
    if (o->kind == GEN_XOR && k_given && o->k != 2) {
        log_error("gen: xor has exactly 2 classes, got --classes %zu", o->k);
        return XT_ERR_USAGE;
    }
    if ((o->kind == GEN_XOR || o->kind == GEN_SPIRALS) && o->d < 2) {
        log_error("gen: %s needs --features >= 2, got %zu", o->name, o->d);
        return XT_ERR_USAGE;
    }
    size_t kmin = o->kind == GEN_MULTILABEL ? 1 : 2;
    if (o->k < kmin || o->k > 100000) {
        log_error("gen: --classes %zu: expected %zu..100000", o->k, kmin);
        return XT_ERR_USAGE;
    }
    if (o->val_fraction + o->test_fraction >= 1.0) {
        log_error("gen: --val-fraction %g + --test-fraction %g leave no training rows",
                  o->val_fraction, o->test_fraction);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* ---- generators ----------------------------------------------------------------- */

/* Fills X (n, d) and either y (n) or t (n, k). Parameters (centres, rules) come first
 * from the stream, then the rows in order. */
static void gen_fill(const GenOptions *o, float *X, int32_t *y, float *t, double *par)
{
    Rng r;
    rng_seed(&r, o->seed);
    size_t n = o->rows, d = o->d, k = o->k;
    double noise = o->noise;
    if (o->kind == GEN_BLOBS) {
        /* Centres ~ N(0, 4^2): with unit noise the clusters barely overlap. */
        for (size_t i = 0; i < k * d; i++) par[i] = 4.0 * rng_normal(&r);
    } else if (o->kind == GEN_MULTILABEL) {
        /* Rule j: w_j ~ N(0, 1/D), bias ~ N(0, 0.25): each label is on for some rows. */
        double s = 1.0 / sqrt((double)d);
        for (size_t i = 0; i < k * d; i++) par[i] = s * rng_normal(&r);
        for (size_t j = 0; j < k; j++) par[k * d + j] = 0.5 * rng_normal(&r);
    }
    for (size_t i = 0; i < n; i++) {
        float *x = X + i * d;
        switch (o->kind) {
        case GEN_BLOBS: {
            size_t c = (size_t)rng_below(&r, k);
            for (size_t j = 0; j < d; j++) x[j] = (float)(par[c * d + j] + noise * rng_normal(&r));
            y[i] = (int32_t)c;
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
        }
    }
}

static Status gen_write_split(H5File *f, const GenOptions *o, const char *group,
                              const float *X, const int32_t *y, const float *t, size_t row0,
                              size_t n)
{
    if (n == 0) return XT_OK;
    char xp[64], yp[64];
    snprintf(xp, sizeof xp, "%s/X", group);
    snprintf(yp, sizeof yp, "%s/y", group);
    size_t xd[2] = {n, o->d}, yd[2] = {n, o->k};
    Status st = h5io_create_group(f, group);
    if (st == XT_OK) st = h5io_write(f, xp, H5IO_F32, 2, xd, X + row0 * o->d, o->gzip);
    if (st == XT_OK) {
        if (t) st = h5io_write(f, yp, H5IO_F32, 2, yd, t + row0 * o->k, o->gzip);
        else st = h5io_write(f, yp, H5IO_I32, 1, yd, y + row0, o->gzip);
    }
    return st;
}

int gen_main(int argc, char **argv)
{
    GenOptions o;
    bool help = false;
    Status st = gen_parse(argc, argv, &o, &help);
    if (help) {
        gen_usage(stdout);
        return 0;
    }
    if (st != XT_OK) return (int)st;

    size_t n = o.rows, d = o.d, k = o.k;
    size_t n_val = (size_t)llround(o.val_fraction * (double)n);
    size_t n_test = (size_t)llround(o.test_fraction * (double)n);
    if (n_val + n_test >= n) {
        log_error("gen: %zu rows leave no training rows after %zu val and %zu test rows", n,
                  n_val, n_test);
        return XT_ERR_USAGE;
    }
    size_t n_train = n - n_val - n_test;
    bool dense = o.kind == GEN_MULTILABEL;
    float *X = malloc(n * d * sizeof *X);
    int32_t *y = dense ? NULL : malloc(n * sizeof *y);
    float *t = dense ? malloc(n * k * sizeof *t) : NULL;
    double *par = malloc((k * d + k) * sizeof *par);
    H5File *f = NULL;
    if (!X || (!y && !t) || !par) {
        log_error("gen: out of memory for %zu x %zu rows", n, d);
        st = XT_ERR_RUNTIME;
        goto cleanup;
    }
    gen_fill(&o, X, y, t, par);

    st = h5io_create_atomic(o.out, &f);
    if (st == XT_OK) st = gen_write_split(f, &o, "/train", X, y, t, 0, n_train);
    if (st == XT_OK) st = gen_write_split(f, &o, "/val", X, y, t, n_train, n_val);
    if (st == XT_OK) st = gen_write_split(f, &o, "/test", X, y, t, n_train + n_val, n_test);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "generator", o.name);
    if (st == XT_OK) st = h5io_attr_write_i64(f, "/", "seed", (int64_t)o.seed);
    if (st == XT_OK) st = h5io_attr_write_f64(f, "/", "noise", o.noise);
    if (st == XT_OK) st = h5io_attr_write_i64(f, "/", "classes", (int64_t)k);
    if (st == XT_OK) st = h5io_commit(&f);
    if (st == XT_OK)
        log_info("gen %s: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu, %s = %zu",
                 o.name, o.out, n_train, n_val, n_test, d, dense ? "labels" : "classes", k);
cleanup:
    if (st != XT_OK) st = XT_ERR_RUNTIME; /* input was validated: what is left is I/O */
    h5io_close(&f);
    free(X);
    free(y);
    free(t);
    free(par);
    return (int)st;
}
