/* convert libsvm: LIBSVM / svmlight sparse text into the dataset.h layout: X as CSR (an
 * AnnData csr_matrix group) when that is the smaller, else dense; --sparse/--dense force. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_common.h"
#include "log.h"
#include "strutil.h"

typedef struct {
    const char *input; /* from the common --input */
    size_t features;   /* 0: infer */
    int base;        /* -1 detect, 0, 1 */
    int form;        /* X: -1 auto, 0 dense, 1 CSR */
} SvmOptions;

/* auto writes CSR when it takes at most this share of the dense bytes. */
#define SVM_CSR_SHARE 0.5

static SvmOptions g_svm;

static size_t svm_options(OptSpec *specs, OutOptions *unused)
{
    SvmOptions *o = &g_svm;
    *o = (SvmOptions){.base = -1, .form = -1};
    (void)unused;
    const OptSpec mine[] = {
        {.name = "features", OPT_SIZE, &o->features, "D",
         "number of features (inferred: largest index)", 1, 1e15},
        {.name = "zero-based", OPT_SET, &o->base, NULL,
         "indices start at 0 (when neither is given: zero-based\nif index 0 occurs or a "
         "'# Column indices are\nzero-based' comment says so, else one-based,\nwith a "
         "warning)", .ival = 0},
        {.name = "one-based", OPT_SET, &o->base, NULL, "indices start at 1", .ival = 1},
        {.name = "sparse", OPT_SET, &o->form, NULL,
         "write X as CSR (an AnnData csr_matrix group;\nwhen neither is given: CSR when it "
         "takes at\nmost half the bytes of dense float32)", .ival = 1},
        {.name = "dense", OPT_SET, &o->form, NULL, "write X as a dense (N, D) float32 dataset",
         .ival = 0},
    };
    memcpy(specs, mine, sizeof mine);
    return sizeof mine / sizeof mine[0];
}

typedef struct {
    const SvmOptions *o;
    double *lab;
    size_t n, lab_cap;
    size_t *row_ptr; /* n + 1 */
    size_t rp_cap;
    int64_t *idx;
    float *val;
    size_t nnz, nz_cap, val_cap;
    int64_t min_idx, max_idx;
    size_t min_line, max_line; /* where the smallest and largest index occur */
    int stated_base;           /* a "# Column indices are zero-based" comment: 0/1, else -1 */
    size_t stated_line;
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
    if (strchr(t, ':') || !convert_parse_number(t, &lab)) return "the label is not a finite number";
    if (!convert_grow((void **)&s->lab, &s->lab_cap, s->n + 1, sizeof *s->lab) ||
        !convert_grow((void **)&s->row_ptr, &s->rp_cap, s->n + 2, sizeof *s->row_ptr))
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
        const char *w = convert_parse_float(colon + 1, &v);
        if (w) return w;
        if (!convert_grow((void **)&s->idx, &s->nz_cap, s->nnz + 1, sizeof *s->idx) ||
            !convert_grow((void **)&s->val, &s->val_cap, s->nnz + 1, sizeof *s->val))
            return "out of memory";
        s->idx[s->nnz] = ix;
        s->val[s->nnz] = v;
        s->nnz++;
        if (s->nnz == 1 || ix < s->min_idx) {
            s->min_idx = ix;
            s->min_line = lineno;
        }
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

static Status svm_read_line(char *line, size_t lineno, void *ctx)
{
    Sparse *s = ctx;
    /* scikit-learn's dump_svmlight_file(comment=...) states the base in a comment */
    if (s->stated_base < 0 && line[0] == '#') {
        if (strstr(line, "Column indices are zero-based")) s->stated_base = 0;
        if (strstr(line, "Column indices are one-based")) s->stated_base = 1;
        if (s->stated_base >= 0) s->stated_line = lineno;
    }
    char *tok = NULL;
    const char *why = svm_line(s, line, s->o->base, lineno, &tok);
    if (!why) return XT_OK;
    log_error("%s:%zu: '%.40s': %s", s->o->input, lineno, tok ? tok : "", why);
    return strcmp(why, "out of memory") ? XT_ERR_USAGE : XT_ERR_RUNTIME;
}

/* Reads every line into s. */
static Status svm_read(const SvmOptions *o, Sparse *s)
{
    s->o = o;
    Status st = convert_each_line("libsvm", o->input, svm_read_line, s);
    return st == XT_OK ? convert_rows_read(o->input, s->n) : st;
}

/* The index base: given, stated in the file, or guessed, and the guess is said with its
 * reason (a wrong base shifts every column by one without any other sign). */
static int svm_base(const SvmOptions *o, const Sparse *s)
{
    if (o->base >= 0) return o->base;
    if (s->nnz > 0 && s->min_idx == 0) {
        log_info("convert libsvm: %s: zero-based indices (index 0 occurs on line %zu)", o->input,
                 s->min_line);
        return 0;
    }
    if (s->stated_base >= 0) {
        log_info("convert libsvm: %s: %s-based indices, as line %zu of the file says", o->input,
                 s->stated_base ? "one" : "zero", s->stated_line);
        return s->stated_base;
    }
    if (o->features > 0 && s->nnz > 0 && (size_t)s->max_idx == o->features) {
        log_info("convert libsvm: %s: one-based indices (the largest index, %" PRId64
                 ", equals --features)", o->input, s->max_idx);
        return 1;
    }
    log_warn("convert libsvm: %s: no index 0 occurs, so indices are taken as one-based (the "
             "LIBSVM convention) and D = largest index%s. A file written zero-based whose first "
             "feature is always 0 looks the same (scikit-learn's dump_svmlight_file writes "
             "zero-based by default): then every feature is shifted by one. Give --zero-based "
             "or --one-based to decide.", o->input, o->features ? " or --features" : "");
    return 1;
}

/* D from --features or the largest index; checks that the dense table fits. */
static Status svm_width(const SvmOptions *o, const Sparse *s, int base, size_t *d)
{
    *d = o->features;
    if (s->nnz == 0 && *d == 0) {
        log_error("%s: no features on any line: give --features D", o->input);
        return XT_ERR_USAGE;
    }
    if (s->nnz > 0 && *d > 0 && (size_t)(s->max_idx - base) >= *d) {
        log_error("%s:%zu: index %" PRId64 " is beyond --features %zu (%s-based)", o->input,
                  s->max_line, s->max_idx, *d, base ? "one" : "zero");
        return XT_ERR_USAGE;
    }
    if (*d == 0) *d = (size_t)(s->max_idx - base) + 1;
    return XT_OK;
}

/* Whether X is written as CSR: as forced, else when CSR takes at most SVM_CSR_SHARE of the
 * dense bytes (and D fits its int32 indices); the choice is printed with its reason. Dense
 * must fit in memory. */
static Status svm_form(const SvmOptions *o, const Sparse *s, size_t d, bool *csr)
{
    double dense = (double)s->n * (double)d * sizeof(float), phys = convert_physical_memory();
    double sparse = (double)s->nnz * (sizeof(int32_t) + sizeof(float)) +
                    (double)(s->n + 1) * sizeof(int64_t);
    bool fits = d <= INT32_MAX;
    *csr = o->form == 1 || (o->form < 0 && fits && sparse <= SVM_CSR_SHARE * dense);
    if (*csr && !fits) {
        log_error("%s: D = %zu features: CSR column indices go up to 2^31 - 1; the largest index "
                  "is %" PRId64 " on line %zu: is it right?", o->input, d, s->max_idx, s->max_line);
        return XT_ERR_USAGE;
    }
    if (!*csr && (dense > (double)SIZE_MAX / 4 || (phys > 0.0 && dense > phys))) {
        log_error("%s: %zu rows x %zu features do not fit in memory as dense float32 (%.3g "
                  "bytes); the largest index is %" PRId64 " on line %zu: is it right? (or give "
                  "--features D)", o->input, s->n, d, dense, s->max_idx, s->max_line);
        return XT_ERR_USAGE;
    }
    char hs[32], hd[32];
    strutil_human_bytes(sparse, hs, sizeof hs);
    strutil_human_bytes(dense, hd, sizeof hd);
    log_info("convert libsvm: %s: X written %s: %.3g%% of its %zu x %zu values are non-zero; "
             "CSR takes %s, dense %s (%s)", o->input, *csr ? "as CSR" : "dense",
             100.0 * (double)s->nnz / ((double)s->n * (double)d), s->n, d, hs, hd,
             o->form >= 0 ? (*csr ? "--sparse" : "--dense")
             : *csr ? "auto: CSR is the smaller by half or more; --dense to force dense"
                    : "auto: CSR would not halve it; --sparse to force CSR");
    return XT_OK;
}

/* The rows as CSR (indices made zero-based; a line's indices increase, so sorted). */
static Status svm_csr(const Sparse *s, int base, size_t d, CsrRows **out)
{
    CsrRows *c = calloc(1, sizeof *c);
    if (!c || csr_init(c, s->n, s->nnz, d) != XT_OK) {
        free(c);
        return XT_ERR_RUNTIME;
    }
    for (size_t i = 0; i <= s->n; i++) c->indptr[i] = s->row_ptr[i];
    for (size_t k = 0; k < s->nnz; k++) c->indices[k] = (int32_t)(s->idx[k] - base);
    memcpy(c->values, s->val, s->nnz * sizeof *c->values);
    c->m = s->n;
    *out = c;
    return XT_OK;
}

static Status svm_table(OutOptions *out, ConvertTable *t, LabelMap *m)
{
    SvmOptions o = g_svm;
    o.input = out->input;
    Sparse s = {.stated_base = -1};
    float *X = NULL;
    int32_t *y = NULL;
    size_t d = 0;
    CsrRows *csr = NULL;
    bool as_csr = false;
    Status st = svm_read(&o, &s);
    int base = st == XT_OK ? svm_base(&o, &s) : 1;
    if (st == XT_OK) st = svm_width(&o, &s, base, &d);
    if (st == XT_OK) st = svm_form(&o, &s, d, &as_csr);
    if (st == XT_OK && as_csr) {
        y = malloc(s.n * sizeof *y);
        if (!y || svm_csr(&s, base, d, &csr) != XT_OK) {
            log_error("%s: out of memory for %zu non-zeros as CSR", o.input, s.nnz);
            st = XT_ERR_RUNTIME;
        }
        if (st == XT_OK) st = convert_labels_from_numbers(o.input, s.lab, s.n, false, y, m);
    } else if (st == XT_OK) {
        X = calloc(s.n * d, sizeof *X);
        y = malloc(s.n * sizeof *y);
        if (!X || !y) {
            log_error("%s: out of memory for %zu x %zu dense float32 values", o.input, s.n, d);
            st = XT_ERR_RUNTIME;
        }
    }
    if (st == XT_OK && !as_csr) {
        for (size_t i = 0; i < s.n; i++)
            for (size_t p = s.row_ptr[i]; p < s.row_ptr[i + 1]; p++)
                X[i * d + (size_t)(s.idx[p] - base)] = s.val[p];
        st = convert_labels_from_numbers(o.input, s.lab, s.n, false, y, m);
    }
    *t = (ConvertTable){.X = X, .csr = csr, .n = s.n, .d = d, .y = y};
    sparse_free(&s);
    return st;
}

/* Sparse LABEL INDEX:VALUE text, made dense. */
const ConvertReader convert_libsvm_reader = {
    .name = "libsvm",
    .text_input = true,
    .about = "LIBSVM / svmlight sparse text: \"LABEL INDEX:VALUE ...\" per line, indices\n"
             "increasing; '#' starts a comment, qid:N tokens are ignored. X is written as\n"
             "CSR or dense, whichever auto or --sparse/--dense says (the choice is printed);\n"
             "the labels map to 0..K-1 in increasing numeric order (originals kept as\n"
             "label_values: -1, 1 -> 0, 1).",
    .options = svm_options,
    .read = svm_table};
