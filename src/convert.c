/* convert: see convert.h. Real data sets into the layout of dataset.h.
 *
 * Every converter reads its whole input into memory first (checking it as it goes,
 * with the file and line of the first fault), then writes OUT.tmp and renames it to
 * OUT (h5io_create_atomic / h5io_commit): a failed convert never leaves a half-written
 * OUT nor damages an existing one. Exit codes: 2 for bad input or options, 1 for I/O
 * failures while writing.
 *
 * Inputs are read through zlib's gz* functions, which read gzip and plain files alike.
 */
#include "convert.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>
#include <zlib.h>

#include "error.h"
#include "h5io.h"
#include "log.h"
#include "rng.h"

#define CONVERT_LINE_MAX ((size_t)8 << 20)  /* longest text line accepted: 8 MiB */
#define CONVERT_MAX_CLASSES 65536            /* more distinct labels: wrong column? */
#define IDX_CHUNK ((size_t)16 << 20)             /* IDX read buffer growth step */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist/"

static const char *const FASHION_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                              "Ankle boot"};

/* ---- options shared by the converters ------------------------------------------- */

typedef struct {
    const char *out;
    double val_fraction;  /* random held-out fraction of the training rows */
    size_t val_tail;      /* or: the last val_tail rows (idx only) */
    bool val_tail_set, val_fraction_set;
    double test_fraction; /* csv, libsvm: random fraction for /test */
    uint64_t seed;
    int gzip;
} OutOptions;

static Status opt_size(const char *cmd, const char *opt, const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || *end || errno || s[0] == '-') {
        log_error("convert %s: %s '%s': expected a non-negative integer", cmd, opt, s);
        return XT_ERR_USAGE;
    }
    *out = (size_t)v;
    return XT_OK;
}

static Status opt_fraction(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!s[0] || *end || errno || !(v >= 0.0 && v < 1.0)) {
        log_error("convert %s: %s '%s': expected a fraction in [0, 1)", cmd, opt, s);
        return XT_ERR_USAGE;
    }
    *out = v;
    return XT_OK;
}

/* Handles the output options shared by every converter. Returns true when `opt` was one
 * of them (then *st says whether its value was valid). */
static bool out_option(const char *cmd, const char *opt, const char *val, OutOptions *o,
                       Status *st)
{
    *st = XT_OK;
    if (!strcmp(opt, "--out")) {
        o->out = val;
    } else if (!strcmp(opt, "--val-fraction")) {
        *st = opt_fraction(cmd, opt, val, &o->val_fraction);
        o->val_fraction_set = true;
    } else if (!strcmp(opt, "--test-fraction")) {
        *st = opt_fraction(cmd, opt, val, &o->test_fraction);
    } else if (!strcmp(opt, "--seed")) {
        char *end = NULL;
        errno = 0;
        o->seed = strtoull(val, &end, 0);
        if (!val[0] || *end || errno || val[0] == '-') {
            log_error("convert %s: --seed '%s': expected a non-negative 64-bit integer", cmd, val);
            *st = XT_ERR_USAGE;
        }
    } else if (!strcmp(opt, "--gzip")) {
        size_t g = 0;
        *st = opt_size(cmd, opt, val, &g);
        if (*st == XT_OK && g > 9) {
            log_error("convert %s: --gzip %zu: expected a level in 0..9", cmd, g);
            *st = XT_ERR_USAGE;
        }
        o->gzip = (int)g;
    } else {
        return false;
    }
    return true;
}

static void out_defaults(OutOptions *o)
{
    memset(o, 0, sizeof *o);
    o->val_fraction = 0.1;
    o->seed = 1;
}

static Status out_check(const char *cmd, const OutOptions *o)
{
    if (!o->out || !o->out[0]) {
        log_error("convert %s: --out F.h5 is required (see xentrain convert %s --help)", cmd,
                  cmd);
        return XT_ERR_USAGE;
    }
    if (o->val_tail_set && o->val_fraction_set) {
        log_error("convert %s: give --val-fraction or --val-tail, not both", cmd);
        return XT_ERR_USAGE;
    }
    if (o->val_fraction + o->test_fraction >= 1.0) {
        log_error("convert %s: --val-fraction %g + --test-fraction %g leave no training rows",
                  cmd, o->val_fraction, o->test_fraction);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Iterates "--opt value" and "--opt=value" arguments. `flags` lists the options that
 * take no value. On return *opt and *val point into argv or buf. */
typedef struct {
    int argc, i;
    char **argv;
    char buf[256];
} ArgIter;

static int arg_next(ArgIter *it, const char *cmd, const char *const *flags, const char **opt,
                    const char **val, Status *st)
{
    *st = XT_OK;
    if (it->i >= it->argc) return 0;
    const char *a = it->argv[it->i++];
    *val = NULL;
    if (strncmp(a, "--", 2) != 0) {
        log_error("convert %s: unexpected argument '%s' (see xentrain convert %s --help)", cmd,
                  a, cmd);
        *st = XT_ERR_USAGE;
        return 1;
    }
    const char *eq = strchr(a, '=');
    if (eq && (size_t)(eq - a) < sizeof it->buf) {
        memcpy(it->buf, a, (size_t)(eq - a));
        it->buf[eq - a] = '\0';
        *opt = it->buf;
        *val = eq + 1;
        return 1;
    }
    *opt = a;
    for (size_t k = 0; flags[k]; k++)
        if (!strcmp(a, flags[k])) return 1;
    if (it->i >= it->argc) {
        log_error("convert %s: %s needs a value", cmd, a);
        *st = XT_ERR_USAGE;
        return 1;
    }
    *val = it->argv[it->i++];
    return 1;
}

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* ---- splitting and writing ------------------------------------------------------ */

/* Rows of one table: X (n, d) as uint8 or float32, y (n) int32. */
typedef struct {
    const void *X;
    H5ioType xtype; /* H5IO_U8 or H5IO_F32 */
    size_t n, d;
    const int32_t *y;
} Table;

typedef struct {
    size_t *idx;
    size_t n;
} RowSet;

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Splits rows [0, n) into train, val and test: val is the tail (val_tail) or a seeded
 * random fraction; test a seeded random fraction. Each set keeps the file order. */
static Status split_rows(size_t n, const OutOptions *o, RowSet *train, RowSet *val,
                         RowSet *test)
{
    size_t n_val = o->val_tail_set ? o->val_tail
                                   : (size_t)llround(o->val_fraction * (double)n);
    size_t n_test = (size_t)llround(o->test_fraction * (double)n);
    if (n_val + n_test >= n) {
        log_error("convert: %zu rows leave no training rows after %zu val and %zu test rows", n,
                  n_val, n_test);
        return XT_ERR_USAGE;
    }
    if (n > UINT32_MAX) {
        log_error("convert: %zu rows: more than 2^32 rows are not supported", n);
        return XT_ERR_USAGE;
    }
    uint32_t *perm = malloc(n * sizeof *perm);
    train->idx = malloc((n - n_val - n_test) * sizeof(size_t));
    val->idx = malloc((n_val ? n_val : 1) * sizeof(size_t));
    test->idx = malloc((n_test ? n_test : 1) * sizeof(size_t));
    if (!perm || !train->idx || !val->idx || !test->idx) {
        free(perm);
        log_error("convert: out of memory splitting %zu rows", n);
        return XT_ERR_RUNTIME;
    }
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    if (o->val_tail_set) {
        /* The tail is val; test (if any) is drawn from the rest. */
        Rng r;
        rng_seed(&r, o->seed);
        rng_shuffle_u32(&r, perm, n - n_val);
    } else {
        Rng r;
        rng_seed(&r, o->seed);
        rng_shuffle_u32(&r, perm, n);
        /* Put the val rows at the end, like the tail case. */
        for (size_t i = 0; i < n_val; i++) {
            uint32_t t = perm[i];
            perm[i] = perm[n - n_val + i];
            perm[n - n_val + i] = t;
        }
    }
    size_t n_train = n - n_val - n_test;
    for (size_t i = 0; i < n_test; i++) test->idx[i] = perm[i];
    for (size_t i = 0; i < n_train; i++) train->idx[i] = perm[n_test + i];
    for (size_t i = 0; i < n_val; i++) val->idx[i] = perm[n - n_val + i];
    free(perm);
    train->n = n_train;
    val->n = n_val;
    test->n = n_test;
    qsort(train->idx, train->n, sizeof(size_t), cmp_size);
    qsort(val->idx, val->n, sizeof(size_t), cmp_size);
    qsort(test->idx, test->n, sizeof(size_t), cmp_size);
    return XT_OK;
}

static void rowset_free(RowSet *s)
{
    free(s->idx);
    s->idx = NULL;
    s->n = 0;
}

/* Writes GROUP/X and GROUP/y from the rows `rows` of t (all rows, in order, when rows is
 * NULL). Nothing is written for an empty selection. */
static Status write_split(H5File *f, const char *group, const Table *t, const RowSet *rows,
                          double scale, int gzip)
{
    size_t n = rows ? rows->n : t->n;
    if (n == 0) return XT_OK;
    size_t esz = t->xtype == H5IO_U8 ? 1 : sizeof(float), rb = t->d * esz;
    char xp[64], yp[64];
    snprintf(xp, sizeof xp, "%s/X", group);
    snprintf(yp, sizeof yp, "%s/y", group);
    const void *X = t->X;
    const int32_t *y = t->y;
    char *xbuf = NULL;
    int32_t *ybuf = NULL;
    Status st = XT_OK;
    if (rows) {
        xbuf = malloc(n * rb);
        ybuf = malloc(n * sizeof *ybuf);
        if (!xbuf || !ybuf) {
            log_error("convert: out of memory writing %s (%zu rows)", group, n);
            st = XT_ERR_RUNTIME;
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++) {
            memcpy(xbuf + i * rb, (const char *)t->X + rows->idx[i] * rb, rb);
            ybuf[i] = t->y[rows->idx[i]];
        }
        X = xbuf;
        y = ybuf;
    }
    size_t xd[2] = {n, t->d}, yd[1] = {n};
    st = h5io_create_group(f, group);
    if (st == XT_OK) st = h5io_write(f, xp, t->xtype, 2, xd, X, gzip);
    if (st == XT_OK) st = h5io_write(f, yp, H5IO_I32, 1, yd, y, gzip);
    if (st == XT_OK && scale > 0.0) st = h5io_attr_write_f64(f, xp, "scale", scale);
cleanup:
    free(xbuf);
    free(ybuf);
    return st;
}

/* ---- line reading --------------------------------------------------------------- */

typedef struct {
    gzFile gz;
    const char *path;
    size_t lineno;
    char *buf;
} LineReader;

static Status lr_open(LineReader *lr, const char *cmd, const char *path)
{
    memset(lr, 0, sizeof *lr);
    lr->path = path;
    lr->gz = gzopen(path, "rb");
    if (!lr->gz) {
        log_error("convert %s: %s: cannot open: %s", cmd, path,
                  errno ? strerror(errno) : "out of memory");
        return XT_ERR_USAGE;
    }
    lr->buf = malloc(CONVERT_LINE_MAX + 2);
    if (!lr->buf) {
        log_error("convert %s: out of memory for the line buffer", cmd);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

static void lr_close(LineReader *lr)
{
    if (lr->gz) gzclose(lr->gz);
    free(lr->buf);
    lr->gz = NULL;
    lr->buf = NULL;
}

/* Next line without its "\n" / "\r\n" in *line. Returns 1 for a line, 0 at the end, -1
 * on an error (logged). */
static int lr_next(LineReader *lr, char **line)
{
    int cap = (int)(CONVERT_LINE_MAX + 2);
    if (!gzgets(lr->gz, lr->buf, cap)) {
        int err = 0;
        const char *msg = gzerror(lr->gz, &err);
        if (err != Z_OK && err != Z_STREAM_END) {
            log_error("%s:%zu: cannot read: %s (corrupt or truncated gzip file?)", lr->path,
                      lr->lineno + 1, err == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        return 0;
    }
    lr->lineno++;
    size_t len = strlen(lr->buf);
    if (len > CONVERT_LINE_MAX) {
        log_error("%s:%zu: line longer than %zu bytes (the limit; a binary file?)", lr->path,
                  lr->lineno, CONVERT_LINE_MAX);
        return -1;
    }
    if (len > 0 && lr->buf[len - 1] == '\n') {
        lr->buf[--len] = '\0';
    } else if (!gzeof(lr->gz)) {
        log_error("%s:%zu: line contains a NUL byte (a binary file?)", lr->path, lr->lineno);
        return -1;
    }
    if (len > 0 && lr->buf[len - 1] == '\r') lr->buf[--len] = '\0';
    *line = lr->buf;
    return 1;
}

static bool blank(const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

/* Parses a whole field as a finite float32. Returns NULL or what is wrong. */
static const char *parse_float(const char *s, float *out)
{
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return "empty field (missing value)";
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return "not a number";
    while (isspace((unsigned char)*end)) end++;
    if (*end) return "trailing characters after the number";
    if (isnan(v)) return "NaN is not allowed";
    if (isinf(v) || fabs(v) > FLT_MAX) return "outside the float32 range (or infinite)";
    *out = (float)v;
    return NULL;
}

/* Parses a whole string as a finite double. */
static bool parse_number(const char *s, double *out)
{
    while (isspace((unsigned char)*s)) s++;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return false;
    while (isspace((unsigned char)*end)) end++;
    if (*end || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* The shortest "%.*g" that reads back as v. */
static void format_number(double v, char *buf, size_t len)
{
    for (int p = 6; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* ---- label remapping ------------------------------------------------------------ */

typedef struct {
    char **values;  /* distinct labels in class order, as text (NULL when !remapped) */
    size_t k;
    bool names;     /* the labels were words: use them as class names too */
    bool remapped;  /* false: the labels were already class ids 0..K-1 (kept as is) */
} LabelMap;

static void labelmap_free(LabelMap *m)
{
    for (size_t i = 0; m->values && i < m->k; i++) free(m->values[i]);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Numeric labels -> ids in sorted order of the distinct values. keep_ids: labels that
 * are all integers in [0, 2^31) are kept as they are. */
static Status labels_from_numbers(const char *path, const double *lab, size_t n, bool keep_ids,
                                  int32_t *y, LabelMap *m)
{
    memset(m, 0, sizeof *m);
    bool ids = keep_ids;
    double max = -1.0;
    for (size_t i = 0; i < n && ids; i++) {
        ids = lab[i] >= 0.0 && lab[i] < 2147483647.0 && lab[i] == floor(lab[i]);
        if (lab[i] > max) max = lab[i];
    }
    if (ids) {
        if (max + 1.0 > CONVERT_MAX_CLASSES) {
            log_error("%s: label %g implies more than %d classes (is the label column right?)",
                      path, max, CONVERT_MAX_CLASSES);
            return XT_ERR_USAGE;
        }
        for (size_t i = 0; i < n; i++) y[i] = (int32_t)lab[i];
        m->k = (size_t)(max + 1.0);
        return XT_OK;
    }
    double *u = malloc((n ? n : 1) * sizeof *u);
    if (!u) {
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    memcpy(u, lab, n * sizeof *u);
    qsort(u, n, sizeof *u, cmp_double);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || u[i] != u[k - 1]) u[k++] = u[i];
    if (k > CONVERT_MAX_CLASSES) {
        log_error("%s: %zu distinct labels, more than %d (is the label column right, or is it "
                  "a regression target?)", path, k, CONVERT_MAX_CLASSES);
        free(u);
        return XT_ERR_USAGE;
    }
    for (size_t i = 0; i < n; i++) {
        const double *p = bsearch(&lab[i], u, k, sizeof *u, cmp_double);
        y[i] = (int32_t)(p - u);
    }
    m->values = calloc(k, sizeof *m->values);
    m->remapped = true;
    for (size_t c = 0; m->values && c < k; c++) {
        char buf[40];
        format_number(u[c], buf, sizeof buf);
        m->values[c] = strdup(buf);
        if (!m->values[c]) break;
        m->k = c + 1;
    }
    free(u);
    if (m->k != k) {
        labelmap_free(m);
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

/* Whether s is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0) return false;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        p += len;
    }
    return true;
}

/* Text labels: numbers if every label is one, else words in sorted (strcmp) order. */
static Status labels_from_text(const char *path, char *const *lab, size_t n, int32_t *y,
                               LabelMap *m)
{
    memset(m, 0, sizeof *m);
    double *num = malloc((n ? n : 1) * sizeof *num);
    if (!num) {
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    bool numeric = true;
    for (size_t i = 0; i < n && numeric; i++) numeric = parse_number(lab[i], &num[i]);
    if (numeric) {
        Status st = labels_from_numbers(path, num, n, true, y, m);
        free(num);
        return st;
    }
    free(num);
    /* Word labels become the class_names attribute, stored as UTF-8 strings: refuse
     * bytes that are not UTF-8 (h5py and h5dump could not read them back). */
    for (size_t i = 0; i < n; i++)
        if (!valid_utf8(lab[i])) {
            log_error("%s: the label of data row %zu is not valid UTF-8 text (convert the "
                      "file to UTF-8, e.g. with iconv)", path, i + 1);
            return XT_ERR_USAGE;
        }
    char **u = malloc((n ? n : 1) * sizeof *u);
    if (!u) {
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    memcpy(u, lab, n * sizeof *u);
    qsort(u, n, sizeof *u, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(u[i], u[k - 1])) u[k++] = u[i];
    if (k > CONVERT_MAX_CLASSES) {
        log_error("%s: %zu distinct labels, more than %d (is the label column right?)", path,
                  k, CONVERT_MAX_CLASSES);
        free(u);
        return XT_ERR_USAGE;
    }
    for (size_t i = 0; i < n; i++) {
        char *const *p = bsearch(&lab[i], u, k, sizeof *u, cmp_str);
        y[i] = (int32_t)(p - u);
    }
    m->values = calloc(k, sizeof *m->values);
    m->remapped = true;
    m->names = true;
    for (size_t c = 0; m->values && c < k; c++) {
        m->values[c] = strdup(u[c]);
        if (!m->values[c]) break;
        m->k = c + 1;
    }
    free(u);
    if (m->k != k) {
        labelmap_free(m);
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

/* Writes train/val/test of a float table and the label attributes, atomically. */
static Status write_table(const char *cmd, const Table *t, const LabelMap *m,
                          const OutOptions *o)
{
    RowSet tr = {0}, va = {0}, te = {0};
    H5File *f = NULL;
    Status st = split_rows(t->n, o, &tr, &va, &te);
    if (st != XT_OK) goto cleanup;
    st = h5io_create_atomic(o->out, &f);
    if (st == XT_OK) st = write_split(f, "/train", t, &tr, 0.0, o->gzip);
    if (st == XT_OK) st = write_split(f, "/val", t, &va, 0.0, o->gzip);
    if (st == XT_OK) st = write_split(f, "/test", t, &te, 0.0, o->gzip);
    const char *groups[3] = {"/train", "/val", "/test"};
    size_t counts[3] = {tr.n, va.n, te.n};
    for (int g = 0; g < 3 && st == XT_OK && m->remapped; g++)
        if (counts[g])
            st = h5io_attr_write_strs(f, groups[g], "label_values",
                                      (const char *const *)m->values, m->k);
    if (st == XT_OK && m->names)
        st = h5io_attr_write_strs(f, "/", "class_names", (const char *const *)m->values, m->k);
    char src[64];
    snprintf(src, sizeof src, "xentrain convert %s", cmd);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "created_by", src);
    if (st == XT_OK) st = h5io_commit(&f);
    if (st != XT_OK) st = XT_ERR_RUNTIME; /* the input was fine: writing failed */
    else
        log_info("convert %s: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu, K = %zu%s",
                 cmd, o->out, tr.n, va.n, te.n, t->d, m->k,
                 m->remapped ? " (labels remapped, see attribute label_values)" : "");
cleanup:
    h5io_close(&f);
    rowset_free(&tr);
    rowset_free(&va);
    rowset_free(&te);
    return st;
}

/* Physical memory of this machine in bytes, or 0 when unknown. */
static double physical_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
}

/* ---- growing buffers ------------------------------------------------------------ */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

/* ---- csv ------------------------------------------------------------------------ */

static void csv_usage(FILE *f)
{
    fprintf(f,
            "usage: xentrain convert csv --input F [options] --out F.h5\n"
            "\n"
            "Reads a delimited text file (gzip or plain): one row per line, one label column,\n"
            "every other column a numeric feature. Writes /train, /val (and /test) with\n"
            "X float32 (N, D) and y int32 class ids.\n"
            "Labels that are all integers >= 0 are kept as class ids; other numbers are\n"
            "remapped to 0..K-1 in sorted order and words in alphabetical order, with the\n"
            "original labels in the string attribute label_values of each group (words\n"
            "also become the file's class_names).\n"
            "\n"
            "options (default):\n"
            "  --input F             the text file\n"
            "  --label-column N|NAME label column: index from 0 (negative counts from the\n"
            "                        end) or header name (-1: the last column)\n"
            "  --header|--no-header  whether line 1 names the columns (detected: a header\n"
            "                        has a non-numeric feature field)\n"
            "  --delimiter C         field separator, one character or 'tab' (,)\n"
            "  --val-fraction f      seeded random fraction of rows for /val (0.1; 0: none)\n"
            "  --test-fraction f     seeded random fraction of rows for /test (0)\n"
            "  --seed s              seed of the random split (1)\n"
            "  --gzip L              deflate level 1..9 for chunked storage (0: contiguous)\n"
            "  --out F.h5            output (written to F.h5.tmp, then renamed)\n"
            "Fields may be double-quoted (\"a,b\"; \"\" is a quote). Lines are limited to %zu\n"
            "bytes; blank lines are skipped.\n",
            CONVERT_LINE_MAX);
}

/* Splits line in place into fields. Returns NULL or what is wrong. */
static const char *csv_split(char *line, char delim, char ***fields, size_t *nf, size_t *cap)
{
    *nf = 0;
    char *p = line;
    for (;;) {
        if (!grow((void **)fields, cap, *nf + 1, sizeof **fields)) return "out of memory";
        char *q = p;
        while (*q == ' ' && delim != ' ') q++;
        if (*q == '"') {
            char *w = q, *r = q + 1;
            for (;;) {
                if (*r == '\0') return "unterminated quoted field";
                if (*r == '"' && r[1] == '"') {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
            while (*r == ' ' && delim != ' ') r++;
            if (*r != delim && *r != '\0') return "characters after a closing quote";
            (*fields)[(*nf)++] = q;
            char end = *r;
            *w = '\0';
            if (end == '\0') return NULL;
            p = r + 1;
        } else {
            char *e = strchr(q, delim);
            (*fields)[(*nf)++] = q;
            if (!e) return NULL;
            *e = '\0';
            p = e + 1;
        }
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

typedef struct {
    const char *input, *label_col;
    int header; /* -1 detect, 0 no, 1 yes */
    char delim;
    OutOptions out;
} CsvOptions;

static Status csv_parse_args(int argc, char **argv, CsvOptions *o, bool *help)
{
    memset(o, 0, sizeof *o);
    out_defaults(&o->out);
    o->header = -1;
    o->delim = ',';
    o->label_col = "-1";
    static const char *const flags[] = {"--header", "--no-header", "--help", "-h", NULL};
    ArgIter it = {.argc = argc, .i = 1, .argv = argv};
    const char *opt, *val;
    Status st;
    while (arg_next(&it, "csv", flags, &opt, &val, &st)) {
        if (st != XT_OK) return st;
        if (is_help(opt)) {
            *help = true;
            return XT_OK;
        }
        if (out_option("csv", opt, val, &o->out, &st)) {
            if (st != XT_OK) return st;
        } else if (!strcmp(opt, "--input")) o->input = val;
        else if (!strcmp(opt, "--label-column")) o->label_col = val;
        else if (!strcmp(opt, "--header")) o->header = 1;
        else if (!strcmp(opt, "--no-header")) o->header = 0;
        else if (!strcmp(opt, "--delimiter")) {
            if (!strcmp(val, "tab") || !strcmp(val, "\\t")) o->delim = '\t';
            else if (strlen(val) == 1 && val[0] != '"' && val[0] != '\n') o->delim = val[0];
            else {
                log_error("convert csv: --delimiter '%s': expected one character or 'tab'", val);
                return XT_ERR_USAGE;
            }
        } else {
            log_error("convert csv: unknown option %s (see xentrain convert csv --help)", opt);
            return XT_ERR_USAGE;
        }
    }
    if (!o->input) {
        log_error("convert csv: --input F is required");
        return XT_ERR_USAGE;
    }
    return out_check("csv", &o->out);
}

/* Resolves the label column from an index or a header name. */
static Status csv_label_index(const CsvOptions *o, const char *path, char **head, size_t nf,
                              bool have_header, size_t *col)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(o->label_col, &end, 10);
    if (o->label_col[0] && !*end && !errno) {
        long long idx = v < 0 ? (long long)nf + v : v;
        if (idx < 0 || idx >= (long long)nf) {
            log_error("%s: --label-column %s is outside the %zu columns of line 1", path,
                      o->label_col, nf);
            return XT_ERR_USAGE;
        }
        *col = (size_t)idx;
        return XT_OK;
    }
    if (!have_header) {
        log_error("%s: --label-column %s names a column but the file has no header (--no-header)",
                  path, o->label_col);
        return XT_ERR_USAGE;
    }
    for (size_t j = 0; j < nf; j++)
        if (!strcmp(trim(head[j]), o->label_col)) {
            *col = j;
            return XT_OK;
        }
    log_error("%s:1: no column named '%s' in the header", path, o->label_col);
    return XT_ERR_USAGE;
}

static int csv_main(int argc, char **argv)
{
    CsvOptions o;
    bool help = false;
    Status st = csv_parse_args(argc, argv, &o, &help);
    if (help) {
        csv_usage(stdout);
        return 0;
    }
    if (st != XT_OK) return (int)st;

    LineReader lr;
    char **fields = NULL, *line = NULL;
    size_t fcap = 0, nf = 0, ncol = 0, col = 0, n = 0, d = 0;
    float *X = NULL;
    size_t xcap = 0;
    char **labs = NULL;
    size_t lcap = 0;
    int32_t *y = NULL;
    LabelMap m = {0};
    bool first = true;
    size_t first_line = 0;
    st = lr_open(&lr, "csv", o.input);
    int rc;
    while (st == XT_OK && (rc = lr_next(&lr, &line)) != 0) {
        if (rc < 0) {
            st = XT_ERR_USAGE;
            break;
        }
        if (blank(line)) continue;
        const char *why = csv_split(line, o.delim, &fields, &nf, &fcap);
        if (why) {
            log_error("%s:%zu: %s", o.input, lr.lineno, why);
            st = XT_ERR_USAGE;
            break;
        }
        if (first) {
            first = false;
            first_line = lr.lineno;
            ncol = nf;
            if (ncol < 2) {
                log_error("%s:%zu: 1 field with delimiter '%c': expected a label column and at "
                          "least one feature (is --delimiter right?)", o.input, lr.lineno,
                          o.delim == '\t' ? 't' : o.delim);
                st = XT_ERR_USAGE;
                break;
            }
            bool named = false;
            {
                char *e = NULL;
                errno = 0;
                (void)strtoll(o.label_col, &e, 10);
                named = !o.label_col[0] || *e || errno;
            }
            int header = o.header;
            size_t probe_col = 0;
            if (header < 0 && named) header = 1;
            if (header < 0) {
                st = csv_label_index(&o, o.input, fields, nf, false, &probe_col);
                if (st != XT_OK) break;
                header = 0;
                for (size_t j = 0; j < nf; j++) {
                    float tmp;
                    if (j != probe_col && parse_float(fields[j], &tmp)) header = 1;
                }
            }
            st = csv_label_index(&o, o.input, fields, nf, header == 1, &col);
            if (st != XT_OK) break;
            d = ncol - 1;
            if (header == 1) continue;
        }
        if (nf != ncol) {
            log_error("%s:%zu: %zu fields, expected %zu (as on line %zu)", o.input, lr.lineno, nf,
                      ncol, first_line);
            st = XT_ERR_USAGE;
            break;
        }
        if (!grow((void **)&X, &xcap, (n + 1) * d, sizeof *X) ||
            !grow((void **)&labs, &lcap, n + 1, sizeof *labs)) {
            log_error("%s:%zu: out of memory", o.input, lr.lineno);
            st = XT_ERR_RUNTIME;
            break;
        }
        float *x = X + n * d;
        for (size_t j = 0, c = 0; j < nf; j++) {
            if (j == col) continue;
            const char *w = parse_float(fields[j], &x[c++]);
            if (w) {
                log_error("%s:%zu: field %zu '%.40s': %s", o.input, lr.lineno, j + 1,
                          trim(fields[j]), w);
                st = XT_ERR_USAGE;
                break;
            }
        }
        if (st != XT_OK) break;
        char *lab = trim(fields[col]);
        if (!lab[0]) {
            log_error("%s:%zu: field %zu (the label): empty field (missing value)", o.input,
                      lr.lineno, col + 1);
            st = XT_ERR_USAGE;
            break;
        }
        labs[n] = strdup(lab);
        if (!labs[n]) {
            log_error("%s:%zu: out of memory", o.input, lr.lineno);
            st = XT_ERR_RUNTIME;
            break;
        }
        n++;
    }
    if (st == XT_OK && n == 0) {
        log_error("%s: no data rows", o.input);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        y = malloc(n * sizeof *y);
        st = y ? labels_from_text(o.input, labs, n, y, &m) : XT_ERR_RUNTIME;
    }
    if (st == XT_OK) {
        Table t = {.X = X, .xtype = H5IO_F32, .n = n, .d = d, .y = y};
        st = write_table("csv", &t, &m, &o.out);
    }
    lr_close(&lr);
    for (size_t i = 0; i < n; i++) free(labs[i]);
    free(labs);
    free(fields);
    free(X);
    free(y);
    labelmap_free(&m);
    return (int)st;
}

/* ---- libsvm --------------------------------------------------------------------- */

static void libsvm_usage(FILE *f)
{
    fprintf(f,
            "usage: xentrain convert libsvm --input F [options] --out F.h5\n"
            "\n"
            "Reads LIBSVM / svmlight sparse text (gzip or plain): one row per line,\n"
            "\"LABEL INDEX:VALUE INDEX:VALUE ...\" with increasing indices; '#' starts a\n"
            "comment; qid:N tokens are ignored. Writes /train, /val (and /test) with dense\n"
            "X float32 (N, D) and y int32: the distinct labels are remapped to 0..K-1 in\n"
            "increasing numeric order, the originals kept in the string attribute\n"
            "label_values of each group (e.g. -1, 1 -> 0, 1).\n"
            "\n"
            "options (default):\n"
            "  --input F                  the text file\n"
            "  --features D               number of features (inferred: largest index)\n"
            "  --zero-based|--one-based   index base (detected: zero-based when some index\n"
            "                             is 0, else one-based, the LIBSVM convention)\n"
            "  --val-fraction f           seeded random fraction for /val (0.1; 0: none)\n"
            "  --test-fraction f          seeded random fraction for /test (0)\n"
            "  --seed s                   seed of the random split (1)\n"
            "  --gzip L                   deflate level 1..9 (0: contiguous)\n"
            "  --out F.h5                 output (written to F.h5.tmp, then renamed)\n"
            "Lines are limited to %zu bytes.\n",
            CONVERT_LINE_MAX);
}

typedef struct {
    const char *input;
    size_t features; /* 0: infer */
    int base;        /* -1 detect, 0, 1 */
    OutOptions out;
} SvmOptions;

static Status svm_parse_args(int argc, char **argv, SvmOptions *o, bool *help)
{
    memset(o, 0, sizeof *o);
    out_defaults(&o->out);
    o->base = -1;
    static const char *const flags[] = {"--zero-based", "--one-based", "--help", "-h", NULL};
    ArgIter it = {.argc = argc, .i = 1, .argv = argv};
    const char *opt, *val;
    Status st;
    while (arg_next(&it, "libsvm", flags, &opt, &val, &st)) {
        if (st != XT_OK) return st;
        if (is_help(opt)) {
            *help = true;
            return XT_OK;
        }
        if (out_option("libsvm", opt, val, &o->out, &st)) {
            if (st != XT_OK) return st;
        } else if (!strcmp(opt, "--input")) o->input = val;
        else if (!strcmp(opt, "--features")) {
            if ((st = opt_size("libsvm", opt, val, &o->features)) != XT_OK) return st;
            if (o->features == 0) {
                log_error("convert libsvm: --features 0: expected D >= 1");
                return XT_ERR_USAGE;
            }
        } else if (!strcmp(opt, "--zero-based")) o->base = 0;
        else if (!strcmp(opt, "--one-based")) o->base = 1;
        else {
            log_error("convert libsvm: unknown option %s (see xentrain convert libsvm --help)",
                      opt);
            return XT_ERR_USAGE;
        }
    }
    if (!o->input) {
        log_error("convert libsvm: --input F is required");
        return XT_ERR_USAGE;
    }
    return out_check("libsvm", &o->out);
}

typedef struct {
    double *lab;
    size_t n, lab_cap;
    size_t *row_ptr; /* n + 1 */
    size_t rp_cap;
    int64_t *idx;
    float *val;
    size_t nnz, nz_cap, val_cap;
    int64_t min_idx, max_idx;
    size_t max_line; /* where the largest index occurs */
} Sparse;

static void sparse_free(Sparse *s)
{
    free(s->lab);
    free(s->row_ptr);
    free(s->idx);
    free(s->val);
    memset(s, 0, sizeof *s);
}

/* Parses one non-blank line into s. Returns NULL or what is wrong (tok = the token). */
static const char *svm_line(Sparse *s, char *line, int base, size_t lineno, char **tok)
{
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL;
    char *t = strtok_r(line, " \t", &save);
    *tok = t;
    if (!t) return NULL; /* only a comment */
    if (strchr(t, ',')) return "multi-label LIBSVM lines are not supported";
    double lab;
    if (strchr(t, ':') || !parse_number(t, &lab)) return "the label is not a finite number";
    if (!grow((void **)&s->lab, &s->lab_cap, s->n + 1, sizeof *s->lab) ||
        !grow((void **)&s->row_ptr, &s->rp_cap, s->n + 2, sizeof *s->row_ptr))
        return "out of memory";
    if (s->n == 0) s->row_ptr[0] = 0;
    int64_t prev = -1;
    while ((t = strtok_r(NULL, " \t", &save)) != NULL) {
        *tok = t;
        if (!strncmp(t, "qid:", 4)) continue;
        char *colon = strchr(t, ':');
        if (!colon) return "expected INDEX:VALUE";
        *colon = '\0';
        char *end = NULL;
        errno = 0;
        long long ix = strtoll(t, &end, 10);
        bool bad_ix = !t[0] || *end || errno || ix < 0;
        *colon = ':';
        if (bad_ix) return "the index is not an integer >= 0";
        if (base == 1 && ix == 0) return "index 0 with --one-based";
        if (ix <= prev) return "indices must increase along a line";
        prev = ix;
        float v;
        const char *w = parse_float(colon + 1, &v);
        if (w) return w;
        if (!grow((void **)&s->idx, &s->nz_cap, s->nnz + 1, sizeof *s->idx) ||
            !grow((void **)&s->val, &s->val_cap, s->nnz + 1, sizeof *s->val))
            return "out of memory";
        s->idx[s->nnz] = ix;
        s->val[s->nnz] = v;
        s->nnz++;
        if (s->nnz == 1 || ix < s->min_idx) s->min_idx = ix;
        if (s->nnz == 1 || ix > s->max_idx) {
            s->max_idx = ix;
            s->max_line = lineno;
        }
    }
    s->lab[s->n] = lab;
    s->n++;
    s->row_ptr[s->n] = s->nnz;
    return NULL;
}

static int libsvm_main(int argc, char **argv)
{
    SvmOptions o;
    bool help = false;
    Status st = svm_parse_args(argc, argv, &o, &help);
    if (help) {
        libsvm_usage(stdout);
        return 0;
    }
    if (st != XT_OK) return (int)st;
    LineReader lr;
    Sparse s = {0};
    char *line = NULL;
    float *X = NULL;
    int32_t *y = NULL;
    LabelMap m = {0};
    st = lr_open(&lr, "libsvm", o.input);
    int rc;
    while (st == XT_OK && (rc = lr_next(&lr, &line)) != 0) {
        if (rc < 0) {
            st = XT_ERR_USAGE;
            break;
        }
        if (blank(line)) continue;
        char *tok = NULL;
        const char *why = svm_line(&s, line, o.base, lr.lineno, &tok);
        if (why) {
            if (!strcmp(why, "out of memory")) st = XT_ERR_RUNTIME;
            else st = XT_ERR_USAGE;
            log_error("%s:%zu: '%.40s': %s", o.input, lr.lineno, tok ? tok : "", why);
        }
    }
    if (st == XT_OK && s.n == 0) {
        log_error("%s: no data rows", o.input);
        st = XT_ERR_USAGE;
    }
    int base = o.base;
    if (base < 0) base = s.nnz > 0 && s.min_idx == 0 ? 0 : 1;
    size_t d = o.features;
    if (st == XT_OK) {
        if (s.nnz == 0 && d == 0) {
            log_error("%s: no features on any line: give --features D", o.input);
            st = XT_ERR_USAGE;
        } else if (s.nnz > 0 && d > 0 && (size_t)(s.max_idx - base) >= d) {
            log_error("%s:%zu: index %" PRId64 " is beyond --features %zu (%s-based)", o.input,
                      s.max_line, s.max_idx, d, base ? "one" : "zero");
            st = XT_ERR_USAGE;
        } else if (d == 0) {
            d = (size_t)(s.max_idx - base) + 1;
        }
    }
    double dense = (double)s.n * (double)d * sizeof(float), phys = physical_memory_bytes();
    if (st == XT_OK && (dense > (double)SIZE_MAX / 4 || (phys > 0.0 && dense > phys))) {
        log_error("%s: %zu rows x %zu features do not fit in memory as dense float32 (%.3g "
                  "bytes); the largest index is %" PRId64 " on line %zu: is it right? (or give "
                  "--features D)", o.input, s.n, d, dense, s.max_idx, s.max_line);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        X = calloc(s.n * d, sizeof *X);
        y = malloc(s.n * sizeof *y);
        if (!X || !y) {
            log_error("%s: out of memory for %zu x %zu dense float32 values", o.input, s.n, d);
            st = XT_ERR_RUNTIME;
        }
    }
    if (st == XT_OK) {
        for (size_t i = 0; i < s.n; i++)
            for (size_t p = s.row_ptr[i]; p < s.row_ptr[i + 1]; p++)
                X[i * d + (size_t)(s.idx[p] - base)] = s.val[p];
        st = labels_from_numbers(o.input, s.lab, s.n, false, y, &m);
    }
    if (st == XT_OK) {
        Table t = {.X = X, .xtype = H5IO_F32, .n = s.n, .d = d, .y = y};
        st = write_table("libsvm", &t, &m, &o.out);
    }
    lr_close(&lr);
    sparse_free(&s);
    free(X);
    free(y);
    labelmap_free(&m);
    return (int)st;
}

/* ---- idx ------------------------------------------------------------------------ */

static void idx_usage(FILE *f)
{
    fprintf(f,
            "usage: xentrain convert idx --images F --labels F [options] --out F.h5\n"
            "       xentrain convert idx --fashion-mnist --out F.h5\n"
            "\n"
            "Reads IDX files (the MNIST format, gzip or plain): images with magic 0x00000803\n"
            "(unsigned bytes, N x rows x cols) and labels with magic 0x00000801 (N unsigned\n"
            "bytes). Writes /train and /val from the training files and /test from the\n"
            "test files; X stays uint8 (N, rows*cols) with attribute scale = 1/255 (and\n"
            "image_rows, image_cols), y int32.\n"
            "\n"
            "options (default):\n"
            "  --images F, --labels F            training images and labels\n"
            "  --test-images F, --test-labels F  test images and labels (no /test without)\n"
            "  --val-fraction f                  seeded random fraction of training rows\n"
            "                                    held out as /val (0.1; 0: no /val)\n"
            "  --val-tail n                      or: the last n training rows as /val\n"
            "  --seed s                          seed of the random split (1)\n"
            "  --class-names a,b,c               class names (file attribute class_names)\n"
            "  --fashion-mnist                   the 10 Fashion-MNIST class names and, when\n"
            "                                    no file option is given, the files in\n"
            "                                    " FASHION_DIR "\n"
            "  --gzip L                          deflate level 1..9 (0: contiguous)\n"
            "  --out F.h5                        output (written to F.h5.tmp, then renamed)\n");
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

static Status idx_read(const char *path, int ndims, IdxArray *a)
{
    memset(a, 0, sizeof *a);
    const char *what = ndims == 3 ? "images" : "labels";
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        log_error("convert idx: %s: cannot open: %s", path,
                  errno ? strerror(errno) : "out of memory");
        return XT_ERR_USAGE;
    }
    Status st = XT_ERR_USAGE;
    unsigned char head[16];
    size_t hlen = 4 + 4 * (size_t)ndims;
    long long got = gz_read_all(gz, path, head, hlen);
    if (got < 0) goto cleanup;
    if (got < 4) {
        log_error("%s: truncated IDX file: %lld bytes, shorter than the 4-byte magic", path, got);
        goto cleanup;
    }
    uint32_t magic = be32(head), want = 0x0800u | (uint32_t)ndims;
    if (magic != want) {
        log_error("%s: bad IDX magic 0x%08" PRIx32 " for %s: expected 0x%08" PRIx32
                  " (unsigned bytes, %d dimension%s)%s", path, magic, what, want, ndims,
                  ndims > 1 ? "s" : "",
                  (magic >> 16) ? " (not an IDX file?)" : "");
        goto cleanup;
    }
    if ((size_t)got < hlen) {
        log_error("%s: truncated IDX header: %lld of %zu bytes", path, got, hlen);
        goto cleanup;
    }
    a->n = be32(head + 4);
    a->rows = ndims == 3 ? be32(head + 8) : 1;
    a->cols = ndims == 3 ? be32(head + 12) : 1;
    if (a->n == 0 || a->rows == 0 || a->cols == 0 || a->rows * a->cols > ((size_t)1 << 24)) {
        log_error("%s: IDX dimensions %zu x %zu x %zu: expected non-empty %s of at most 2^24 "
                  "bytes each", path, a->n, a->rows, a->cols, what);
        goto cleanup;
    }
    size_t bytes = a->n * a->rows * a->cols;
    double phys = physical_memory_bytes();
    if (phys > 0.0 && (double)bytes > phys) {
        log_error("%s: the IDX header declares %zu %s of %zu x %zu bytes (%zu bytes), more than "
                  "this machine's memory: a corrupt header?", path, a->n, what, a->rows, a->cols,
                  bytes);
        goto cleanup;
    }
    /* Grow the buffer as data arrive: a header that claims far more than the file holds
     * (truncated or corrupt) fails as "truncated" without allocating the claimed size. */
    size_t cap = 0, filled = 0;
    while (filled < bytes) {
        if (filled == cap) {
            size_t ncap = cap ? (cap > bytes / 2 ? bytes : cap * 2) : (bytes < IDX_CHUNK ? bytes : IDX_CHUNK);
            uint8_t *q = realloc(a->data, ncap);
            if (!q) {
                log_error("%s: out of memory for %zu bytes", path, ncap);
                st = XT_ERR_RUNTIME;
                goto cleanup;
            }
            a->data = q;
            cap = ncap;
        }
        got = gz_read_all(gz, path, a->data + filled, cap - filled);
        if (got < 0) goto cleanup;
        filled += (size_t)got;
        if (filled < cap) break; /* end of file */
    }
    if (filled < bytes) {
        log_error("%s: truncated IDX file: the header declares %zu %s (%zu bytes of data) but "
                  "only %zu bytes follow", path, a->n, what, bytes, filled);
        goto cleanup;
    }
    unsigned char extra;
    got = gz_read_all(gz, path, &extra, 1);
    if (got < 0) goto cleanup;
    if (got > 0) {
        log_error("%s: more data than the header declares (%zu %s): corrupt IDX file?", path,
                  a->n, what);
        goto cleanup;
    }
    st = XT_OK;
cleanup:
    gzclose(gz);
    if (st != XT_OK) {
        free(a->data);
        a->data = NULL;
    }
    return st;
}

typedef struct {
    const char *images, *labels, *test_images, *test_labels, *class_names;
    bool fashion;
    OutOptions out;
} IdxOptions;

static Status idx_parse_args(int argc, char **argv, IdxOptions *o, bool *help)
{
    memset(o, 0, sizeof *o);
    out_defaults(&o->out);
    static const char *const flags[] = {"--fashion-mnist", "--help", "-h", NULL};
    ArgIter it = {.argc = argc, .i = 1, .argv = argv};
    const char *opt, *val;
    Status st;
    while (arg_next(&it, "idx", flags, &opt, &val, &st)) {
        if (st != XT_OK) return st;
        if (is_help(opt)) {
            *help = true;
            return XT_OK;
        }
        if (out_option("idx", opt, val, &o->out, &st)) {
            if (st != XT_OK) return st;
        } else if (!strcmp(opt, "--images")) o->images = val;
        else if (!strcmp(opt, "--labels")) o->labels = val;
        else if (!strcmp(opt, "--test-images")) o->test_images = val;
        else if (!strcmp(opt, "--test-labels")) o->test_labels = val;
        else if (!strcmp(opt, "--class-names")) o->class_names = val;
        else if (!strcmp(opt, "--fashion-mnist")) o->fashion = true;
        else if (!strcmp(opt, "--val-tail")) {
            if ((st = opt_size("idx", opt, val, &o->out.val_tail)) != XT_OK) return st;
            o->out.val_tail_set = true;
            o->out.val_fraction = 0.0;
        } else {
            log_error("convert idx: unknown option %s (see xentrain convert idx --help)", opt);
            return XT_ERR_USAGE;
        }
    }
    if (o->fashion && !o->images && !o->labels && !o->test_images && !o->test_labels) {
        o->images = FASHION_DIR "train-images-idx3-ubyte.gz";
        o->labels = FASHION_DIR "train-labels-idx1-ubyte.gz";
        o->test_images = FASHION_DIR "t10k-images-idx3-ubyte.gz";
        o->test_labels = FASHION_DIR "t10k-labels-idx1-ubyte.gz";
    }
    if (!o->images || !o->labels) {
        log_error("convert idx: --images F and --labels F are required (or --fashion-mnist)");
        return XT_ERR_USAGE;
    }
    if (!o->test_images != !o->test_labels) {
        log_error("convert idx: give both --test-images and --test-labels, or neither");
        return XT_ERR_USAGE;
    }
    if (o->fashion && o->class_names) {
        log_error("convert idx: --fashion-mnist sets the class names: drop --class-names");
        return XT_ERR_USAGE;
    }
    return out_check("idx", &o->out);
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

static int idx_main(int argc, char **argv)
{
    IdxOptions o;
    bool help = false;
    Status st = idx_parse_args(argc, argv, &o, &help);
    if (help) {
        idx_usage(stdout);
        return 0;
    }
    if (st != XT_OK) return (int)st;
    IdxArray tr = {0}, te = {0};
    int32_t *ytr = NULL, *yte = NULL;
    char **names = NULL;
    size_t n_names = 0, k = 0;
    RowSet s_tr = {0}, s_va = {0}, s_te = {0};
    H5File *f = NULL;

    if (o.class_names) st = split_names(o.class_names, &names, &n_names);
    if (st == XT_OK) st = idx_load_pair(o.images, o.labels, &tr, &ytr, &k);
    if (st == XT_OK && o.test_images) st = idx_load_pair(o.test_images, o.test_labels, &te, &yte, &k);
    if (st == XT_OK && te.data && (te.rows != tr.rows || te.cols != tr.cols)) {
        log_error("convert idx: test images are %zu x %zu, training images %zu x %zu",
                  te.rows, te.cols, tr.rows, tr.cols);
        st = XT_ERR_USAGE;
    }
    const char *const *cn = names ? (const char *const *)names : o.fashion ? FASHION_NAMES : NULL;
    size_t ncn = names ? n_names : o.fashion ? 10 : 0;
    if (st == XT_OK && cn && ncn < k) {
        log_error("convert idx: %zu class names for labels up to %zu: give at least %zu names",
                  ncn, k - 1, k);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) st = split_rows(tr.n, &o.out, &s_tr, &s_va, &s_te);
    if (st != XT_OK) goto cleanup;

    size_t d = tr.rows * tr.cols;
    Table ttr = {.X = tr.data, .xtype = H5IO_U8, .n = tr.n, .d = d, .y = ytr};
    Table tte = {.X = te.data, .xtype = H5IO_U8, .n = te.n, .d = d, .y = yte};
    st = h5io_create_atomic(o.out.out, &f);
    if (st == XT_OK) st = write_split(f, "/train", &ttr, &s_tr, 1.0 / 255.0, o.out.gzip);
    if (st == XT_OK) st = write_split(f, "/val", &ttr, &s_va, 1.0 / 255.0, o.out.gzip);
    if (st == XT_OK && te.data) st = write_split(f, "/test", &tte, NULL, 1.0 / 255.0, o.out.gzip);
    const char *groups[3] = {"/train", "/val", "/test"};
    size_t counts[3] = {s_tr.n, s_va.n, te.n};
    for (int g = 0; g < 3 && st == XT_OK; g++) {
        if (!counts[g]) continue;
        char xp[32];
        snprintf(xp, sizeof xp, "%s/X", groups[g]);
        st = h5io_attr_write_i64(f, xp, "image_rows", (int64_t)tr.rows);
        if (st == XT_OK) st = h5io_attr_write_i64(f, xp, "image_cols", (int64_t)tr.cols);
    }
    if (st == XT_OK && cn) st = h5io_attr_write_strs(f, "/", "class_names", cn, ncn);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "created_by", "xentrain convert idx");
    if (st == XT_OK) st = h5io_commit(&f);
    if (st != XT_OK) st = XT_ERR_RUNTIME;
    else
        log_info("convert idx: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu "
                 "(%zu x %zu uint8, scale 1/255), K = %zu", o.out.out, s_tr.n, s_va.n, te.n, d,
                 tr.rows, tr.cols, cn ? ncn : k);
cleanup:
    h5io_close(&f);
    rowset_free(&s_tr);
    rowset_free(&s_va);
    rowset_free(&s_te);
    free(tr.data);
    free(te.data);
    free(ytr);
    free(yte);
    h5io_strs_free(names, n_names);
    return (int)st;
}

/* ---- dispatch ------------------------------------------------------------------- */

static void convert_usage(FILE *f)
{
    fprintf(f,
            "usage: xentrain convert {idx|csv|libsvm} [options] --out F.h5\n"
            "\n"
            "  idx     IDX image and label files (MNIST, Fashion-MNIST), gzip or plain\n"
            "  csv     delimited text with a label column\n"
            "  libsvm  LIBSVM / svmlight sparse text\n"
            "\n"
            "Run `xentrain convert FORMAT --help` for the options. Exit codes: 0 done,\n"
            "1 I/O failure while writing, 2 bad options or bad input (the message names\n"
            "the file and line).\n");
}

int convert_main(int argc, char **argv)
{
    if (argc < 2) {
        convert_usage(stderr);
        return XT_ERR_USAGE;
    }
    const char *fmt = argv[1];
    if (is_help(fmt)) {
        convert_usage(stdout);
        return 0;
    }
    if (!strcmp(fmt, "idx")) return idx_main(argc - 1, argv + 1);
    if (!strcmp(fmt, "csv")) return csv_main(argc - 1, argv + 1);
    if (!strcmp(fmt, "libsvm")) return libsvm_main(argc - 1, argv + 1);
    log_error("convert: unknown format '%s' (expected idx, csv or libsvm)", fmt);
    return XT_ERR_USAGE;
}
