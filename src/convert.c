/* convert: `xentrain convert {idx|csv|libsvm|h5}` and what its readers share (see
 * convert_common.h): output options, line reading, number parsing, label remapping,
 * the train/val/test split and the atomic write.
 *
 * Every reader reads its whole input into memory first (checking it as it goes, with
 * the file and line of the first fault), then writes OUT.tmp and renames it to OUT: a
 * failed convert never leaves a half-written OUT nor damages an existing one.
 */
#include "convert.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>
#include <zlib.h>

#include "convert_common.h"
#include "dataset.h"
#include "log.h"
#include "rng.h"

/* ---- output options ------------------------------------------------------------- */

static void out_defaults(OutOptions *o)
{
    memset(o, 0, sizeof *o);
    o->val_fraction = 0.1;
    o->seed = 1;
}

/* The output options every reader takes, after the reader's own. */
static size_t out_opts(OutOptions *o, OptSpec *specs)
{
    const OptSpec common[] = {
        {.name = "val-fraction", OPT_DOUBLE, &o->val_fraction, "f",
         "seeded random fraction of rows for /val (0.1; 0: none)", 0.0, 1.0,
         .hi_open = true, .given = &o->val_fraction_set},
        {.name = "test-fraction", OPT_DOUBLE, &o->test_fraction, "f",
         "seeded random fraction of rows for /test (0)", 0.0, 1.0, .hi_open = true},
        {.name = "seed", OPT_U64, &o->seed, "s", "seed of the random split (1)"},
        {.name = "stratify", OPT_FLAG, &o->stratify, NULL,
         "take the val and test fractions class by class\n(the splits keep the class "
         "proportions)"},
        {.name = "gzip", OPT_SIZE, &o->gzip, "L",
         "deflate level 1..9 for chunked storage (0: contiguous)", 0, 9},
        {.name = "out", OPT_STRING, &o->out, "F.h5", "output (written to F.h5.tmp, then renamed)",
         .required = true},
    };
    memcpy(specs, common, sizeof common);
    return sizeof common / sizeof common[0];
}

static Status out_check(const char *cmd, const OutOptions *o)
{
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

/* ---- splitting ------------------------------------------------------------------ */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Splits rows [0, n) into train, val and test: val is the tail (val_tail) or a seeded
 * random fraction; test a seeded random fraction. Each set keeps the file order. */
/* Random (or tail) split of rows [0, n) into train, val and test, as counts say. */
static void split_random(size_t n, size_t n_val, size_t n_test, const OutOptions *o,
                         uint32_t *perm, RowSet *train, RowSet *val, RowSet *test)
{
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    Rng r;
    rng_seed(&r, o->seed);
    if (o->val_tail_set) {
        rng_shuffle_u32(&r, perm, n - n_val); /* the tail is val; test comes from the rest */
    } else {
        rng_shuffle_u32(&r, perm, n);
        for (size_t i = 0; i < n_val; i++) { /* val rows at the end, as in the tail case */
            uint32_t t = perm[i];
            perm[i] = perm[n - n_val + i];
            perm[n - n_val + i] = t;
        }
    }
    size_t n_train = n - n_val - n_test;
    for (size_t i = 0; i < n_test; i++) test->idx[test->n++] = perm[i];
    for (size_t i = 0; i < n_train; i++) train->idx[train->n++] = perm[n_test + i];
    for (size_t i = 0; i < n_val; i++) val->idx[val->n++] = perm[n - n_val + i];
}

/* Stratified: within each class, the seeded fractions of its rows (rounded) go to test
 * and val, the rest to train, so every split keeps the class proportions. */
static void split_stratified(size_t n, const int32_t *y, const OutOptions *o, uint32_t *perm,
                             RowSet *train, RowSet *val, RowSet *test)
{
    int32_t kmax = 0;
    for (size_t i = 0; i < n; i++)
        if (y[i] > kmax) kmax = y[i];
    for (int32_t c = 0; c <= kmax; c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (y[i] == c) perm[m++] = (uint32_t)i;
        Rng r;
        rng_seed_tuple(&r, o->seed, (uint64_t)c, 0x57);
        rng_shuffle_u32(&r, perm, m);
        size_t nt = (size_t)llround(o->test_fraction * (double)m);
        size_t nv = (size_t)llround(o->val_fraction * (double)m);
        if (nt + nv > m) nv = m - nt;
        for (size_t i = 0; i < m; i++) {
            RowSet *to = i < nt ? test : i < nt + nv ? val : train;
            to->idx[to->n++] = perm[i];
        }
    }
}

Status convert_split_rows(size_t n, const int32_t *y, const OutOptions *o, RowSet *train,
                          RowSet *val, RowSet *test)
{
    size_t pool = n - o->fixed_test; /* rows that train (and val) come from */
    size_t n_val = o->val_tail_set ? o->val_tail : (size_t)llround(o->val_fraction * (double)pool);
    size_t n_test = (size_t)llround(o->test_fraction * (double)pool);
    if (n_val + n_test >= pool) {
        log_error("convert: %zu rows leave no training rows after %zu val and %zu test rows",
                  pool, n_val, n_test);
        return XT_ERR_USAGE;
    }
    if (n > UINT32_MAX) {
        log_error("convert: %zu rows: more than 2^32 rows are not supported", n);
        return XT_ERR_USAGE;
    }
    uint32_t *perm = malloc((n ? n : 1) * sizeof *perm);
    train->idx = malloc((n ? n : 1) * sizeof(size_t));
    val->idx = malloc((n ? n : 1) * sizeof(size_t));
    test->idx = malloc((n ? n : 1) * sizeof(size_t));
    train->n = val->n = test->n = 0;
    if (!perm || !train->idx || !val->idx || !test->idx) {
        free(perm);
        log_error("convert: out of memory splitting %zu rows", n);
        return XT_ERR_RUNTIME;
    }
    if (o->stratify && y && !o->val_tail_set) split_stratified(pool, y, o, perm, train, val, test);
    else split_random(pool, n_val, n_test, o, perm, train, val, test);
    for (size_t i = pool; i < n; i++) test->idx[test->n++] = i;
    free(perm);
    qsort(train->idx, train->n, sizeof(size_t), cmp_size);
    qsort(val->idx, val->n, sizeof(size_t), cmp_size);
    qsort(test->idx, test->n, sizeof(size_t), cmp_size);
    return train->n > 0 ? XT_OK : XT_ERR_USAGE;
}

void convert_rowset_free(RowSet *s)
{
    free(s->idx);
    s->idx = NULL;
    s->n = 0;
}

/* ---- line reading and numbers ----------------------------------------------------- */

typedef struct {
    gzFile gz;
    const char *path;
    size_t lineno;
    char *buf;
} LineReader;

static Status lines_open(LineReader *lr, const char *cmd, const char *path)
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

static void lines_close(LineReader *lr)
{
    if (lr->gz) gzclose(lr->gz);
    free(lr->buf);
    lr->gz = NULL;
    lr->buf = NULL;
}

static int lines_next(LineReader *lr, char **line)
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

Status convert_each_line(const char *cmd, const char *path, ConvertLineFn fn, void *ctx)
{
    LineReader lr;
    char *line = NULL;
    Status st = lines_open(&lr, cmd, path);
    int rc;
    while (st == XT_OK && (rc = lines_next(&lr, &line)) != 0) {
        if (rc < 0) st = XT_ERR_USAGE;
        else if (!convert_blank(line)) st = fn(line, lr.lineno, ctx);
    }
    lines_close(&lr);
    return st;
}

Status convert_rows_read(const char *path, size_t n)
{
    if (n > 0) return XT_OK;
    log_error("%s: no data rows", path);
    return XT_ERR_USAGE;
}

bool convert_blank(const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

const char *convert_parse_float(const char *s, float *out)
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

bool convert_parse_number(const char *s, double *out)
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

char *convert_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

bool convert_grow(void **p, size_t *cap, size_t need, size_t elem)
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

/* ---- label remapping ------------------------------------------------------------ */

void convert_labelmap_free(LabelMap *m)
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

/* The distinct labels of lab (n elements of elem bytes, ordered by cmp), sorted, into
 * *u (malloc'd, *k of them); y[i] = the rank of lab[i] among them. */
static Status distinct_labels(const char *path, const void *lab, size_t n, size_t elem,
                              int (*cmp)(const void *, const void *), const char *hint,
                              int32_t *y, void **u, size_t *k)
{
    char *v = malloc((n ? n : 1) * elem);
    *u = v;
    *k = 0;
    if (!v) {
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    memcpy(v, lab, n * elem);
    qsort(v, n, elem, cmp);
    for (size_t i = 0; i < n; i++)
        if (*k == 0 || cmp(v + i * elem, v + (*k - 1) * elem))
            memmove(v + (*k)++ * elem, v + i * elem, elem);
    if (*k > CONVERT_MAX_CLASSES) {
        log_error("%s: %zu distinct labels, more than %d (is the label column right%s?)", path,
                  *k, CONVERT_MAX_CLASSES, hint);
        return XT_ERR_USAGE;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = bsearch((const char *)lab + i * elem, v, *k, elem, cmp);
        y[i] = (int32_t)((size_t)(p - v) / elem);
    }
    return XT_OK;
}

/* m->values[c] = text(u, c) for the k distinct labels. */
static Status labelmap_fill(const char *path, LabelMap *m, const void *u, size_t k,
                            const char *(*text)(const void *u, size_t c, char *buf))
{
    m->values = calloc(k ? k : 1, sizeof *m->values);
    m->remapped = true;
    for (size_t c = 0; m->values && c < k; c++) {
        char buf[40];
        m->values[c] = strdup(text(u, c, buf));
        if (!m->values[c]) break;
        m->k = c + 1;
    }
    if (m->k == k) return XT_OK;
    convert_labelmap_free(m);
    log_error("%s: out of memory for the labels", path);
    return XT_ERR_RUNTIME;
}

static const char *number_text(const void *u, size_t c, char *buf)
{
    format_number(((const double *)u)[c], buf, 40);
    return buf;
}

static const char *word_text(const void *u, size_t c, char *buf)
{
    (void)buf;
    return ((char *const *)u)[c];
}

Status convert_labels_from_numbers(const char *path, const double *lab, size_t n, bool keep_ids,
                                   int32_t *y, LabelMap *m)
{
    memset(m, 0, sizeof *m);
    bool ids = keep_ids;
    double max = -1.0, min = INFINITY;
    for (size_t i = 0; i < n && ids; i++) {
        ids = lab[i] >= 0.0 && lab[i] < 2147483647.0 && lab[i] == floor(lab[i]);
        if (lab[i] > max) max = lab[i];
        if (lab[i] < min) min = lab[i];
    }
    if (ids && min > 0.0) {
        /* 1..K (or any ids without a 0) would make class 0 a class nobody has */
        log_info("%s: the labels start at %g, not 0: mapped to class ids 0..K-1 in sorted "
                 "order (the originals are kept as label_values)", path, min);
        ids = false;
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
    void *u = NULL;
    size_t k = 0;
    Status st = distinct_labels(path, lab, n, sizeof *lab, cmp_double,
                                ", or is it a regression target", y, &u, &k);
    if (st == XT_OK) st = labelmap_fill(path, m, u, k, number_text);
    if (st == XT_OK) { /* labels 0..K-1 in order map to themselves: nothing was remapped */
        bool identity = true;
        for (size_t c = 0; c < k && identity; c++) identity = ((const double *)u)[c] == (double)c;
        if (identity) m->remapped = false;
    }
    free(u);
    return st;
}

/* Whether s is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool convert_valid_utf8(const char *s)
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

Status convert_labels_from_text(const char *path, char *const *lab, size_t n, int32_t *y,
                               LabelMap *m)
{
    memset(m, 0, sizeof *m);
    double *num = malloc((n ? n : 1) * sizeof *num);
    if (!num) {
        log_error("%s: out of memory for the labels", path);
        return XT_ERR_RUNTIME;
    }
    bool numeric = true;
    for (size_t i = 0; i < n && numeric; i++) numeric = convert_parse_number(lab[i], &num[i]);
    if (numeric) {
        Status st = convert_labels_from_numbers(path, num, n, true, y, m);
        free(num);
        return st;
    }
    free(num);
    /* Word labels become the class_names attribute, stored as UTF-8 strings: refuse
     * bytes that are not UTF-8 (h5py and h5dump could not read them back). */
    for (size_t i = 0; i < n; i++)
        if (!convert_valid_utf8(lab[i])) {
            log_error("%s: the label of data row %zu is not valid UTF-8 text (convert the "
                      "file to UTF-8, e.g. with iconv)", path, i + 1);
            return XT_ERR_USAGE;
        }
    void *u = NULL;
    size_t k = 0;
    Status st = distinct_labels(path, lab, n, sizeof *lab, cmp_str, "", y, &u, &k);
    if (st == XT_OK) st = labelmap_fill(path, m, u, k, word_text);
    m->names = st == XT_OK;
    free(u);
    return st;
}

/* ---- writing --------------------------------------------------------------------- */

Status convert_write(const char *cmd, const ConvertTable *t, const LabelMap *m,
                     const OutOptions *o)
{
    if (m->k > 2 && 2 * m->k > t->n)
        log_warn("convert %s: %zu classes for %zu rows: are the labels classes (not a feature "
                 "or a regression target)?%s", cmd, m->k, t->n,
                 strcmp(cmd, "csv") ? "" : " See --label-column");
    RowSet sets[3] = {{0}};
    const char *groups[3] = {"/train", "/val", "/test"};
    H5File *f = NULL;
    Status st = convert_split_rows(t->n, t->y, o, &sets[0], &sets[1], &sets[2]);
    if (st != XT_OK) goto cleanup;
    st = h5io_create_atomic(o->out, &f);
    for (int g = 0; g < 3 && st == XT_OK; g++) {
        DatasetRows r = {.X = t->X, .x_u8 = t->x_u8, .d = t->d, .y = t->y, .csr = t->csr,
                         .rows = sets[g].idx, .n = sets[g].n, .scale = t->scale};
        if (g == 2 && t->test_unlabelled) r.y = NULL; /* rows to predict: X only */
        st = dataset_write_split(f, groups[g], &r, (int)o->gzip);
    }
    size_t counts[3] = {sets[0].n, sets[1].n, sets[2].n};
    for (int g = 0; g < 3 && st == XT_OK && m->remapped; g++)
        if (counts[g] && !(g == 2 && t->test_unlabelled))
            st = h5io_attr_write_strs(f, groups[g], "label_values",
                                      (const char *const *)m->values, m->k);
    if (st == XT_OK && (m->names || t->class_names))
        st = h5io_attr_write_strs(f, "/", "class_names",
                                  (const char *const *)(m->names ? m->values : t->class_names),
                                  m->k);
    if (st == XT_OK && t->feature_names)
        st = h5io_attr_write_strs(f, "/", "feature_names", (const char *const *)t->feature_names,
                                  t->d);
    if (st == XT_OK && t->write_extra) st = t->write_extra(f, t->extra_ctx);
    char src[64];
    snprintf(src, sizeof src, "xentrain convert %s", cmd);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "created_by", src);
    if (st == XT_OK) st = h5io_commit(&f);
    if (st != XT_OK) st = XT_ERR_RUNTIME; /* the input was fine: writing failed */
    else
        log_info("convert %s: wrote %s: /train %zu, /val %zu, /test %zu rows; D = %zu, K = %zu%s",
                 cmd, o->out, counts[0], counts[1], counts[2], t->d, m->k,
                 m->remapped ? " (labels remapped, see attribute label_values)" : "");
cleanup:
    h5io_close(&f);
    for (int g = 0; g < 3; g++) convert_rowset_free(&sets[g]);
    return st;
}

double convert_physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
}

/* ---- dispatch ------------------------------------------------------------------- */

static void convert_usage(FILE *f)
{
    fprintf(f,
            "usage: xentrain convert {idx|csv|libsvm|h5} [options] --out F.h5\n"
            "\n"
            "  idx     IDX image and label files (MNIST, Fashion-MNIST), gzip or plain\n"
            "  csv     delimited text with a label column\n"
            "  libsvm  LIBSVM / svmlight sparse text\n"
            "  h5      one split of an HDF5 file (X and y; AnnData's categories too), split\n"
            "          into /train, /val and /test with labels mapped to 0..K-1\n"
            "\n"
            "Run `xentrain convert FORMAT --help` for the options. Exit codes: 0 done,\n"
            "1 I/O failure while writing, 2 bad options or bad input (the message names\n"
            "the file and line).\n");
}

/* Parses a reader's options and the output options as one table, then runs it. */
static int run_reader(const ConvertReader *r, int argc, char **argv)
{
    OutOptions out;
    out_defaults(&out);
    OptSpec specs[CONVERT_READER_OPTS + 10];
    size_t n = 0;
    if (r->text_input)
        specs[n++] = (OptSpec){.name = "input", OPT_STRING, &out.input, "F",
                               "the text file (gzip or plain)", .required = true};
    n += r->options(specs + n, &out);
    XT_ASSERT(n <= CONVERT_READER_OPTS);
    n += out_opts(&out, specs + n);
    char cmd[32], epilog[1024];
    snprintf(cmd, sizeof cmd, "convert %s", r->name);
    snprintf(epilog, sizeof epilog, "%s%s%s", CONVERT_WRITES, r->notes ? "\n" : "",
             r->notes ? r->notes : "");
    const char *synopsis = r->synopsis ? r->synopsis : "--input F [options] --out F.h5";
    OptTable t = {.cmd = cmd, .synopsis = synopsis, .about = r->about, .opts = specs,
                  .n_opts = n, .epilog = epilog};
    bool help = false;
    Status st = opts_parse(&t, argc, argv, &help);
    if (help) {
        opts_print_help(&t, stdout);
        return 0;
    }
    if (st == XT_OK && r->check) st = r->check(&out);
    if (st == XT_OK) st = out_check(r->name, &out);
    if (st == XT_OK && r->run) return (int)r->run(&out);
    ConvertTable table = {0};
    LabelMap m = {0};
    if (st == XT_OK) st = r->read(&out, &table, &m);
    if (st == XT_OK) st = convert_write(r->name, &table, &m, &out);
    free((void *)table.X);
    csr_free(table.csr);
    free(table.csr);
    free((void *)table.y);
    if (table.feature_names) h5io_strs_free(table.feature_names, table.d);
    convert_labelmap_free(&m);
    if (r->release) r->release();
    return (int)st;
}

int convert_main(int argc, char **argv)
{
    static const ConvertReader *const readers[] = {&convert_idx_reader, &convert_csv_reader,
                                                   &convert_libsvm_reader, &convert_h5_reader};
    if (argc < 2) {
        convert_usage(stderr);
        return XT_ERR_USAGE;
    }
    const char *fmt = argv[1];
    if (!strcmp(fmt, "--help") || !strcmp(fmt, "-h")) {
        convert_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++)
        if (!strcmp(fmt, readers[i]->name)) return run_reader(readers[i], argc - 1, argv + 1);
    log_error("convert: unknown format '%s' (expected idx, csv, libsvm or h5)", fmt);
    return XT_ERR_USAGE;
}
