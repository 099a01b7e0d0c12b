/* convert csv: delimited text with one label column into the dataset.h layout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_common.h"
#include "h5io.h"
#include "log.h"

typedef struct {
    const char *input; /* from the common --input */
    const char *label_col;
    int header; /* -1 detect, 0 no, 1 yes */
    const char *delimiter;
    char delim;
    size_t skip_rows;    /* lines before the data (and the header) */
    const char *test_input; /* a second file with the same columns: it becomes /test */
} CsvOptions;

static CsvOptions g_csv;

/* --label-column, --header, --no-header, --delimiter */
static size_t csv_options(OptSpec *specs, OutOptions *out)
{
    (void)out; /* --input and the output options are convert.c's */
    CsvOptions *o = &g_csv;
    *o = (CsvOptions){.header = -1, .delimiter = ",", .label_col = "-1"};
    const OptSpec mine[] = {
        {.name = "label-column", OPT_STRING, &o->label_col, "N|NAME",
         "label column: index from 0 (negative counts from the\nend; -1: the last column) "
         "or header name"},
        {.name = "header", OPT_SET, &o->header, NULL,
         "line 1 names the columns (detected when neither\nis given: a header has a "
         "non-numeric feature field)", .ival = 1},
        {.name = "no-header", OPT_SET, &o->header, NULL, "line 1 is data", .ival = 0},
        {.name = "delimiter", OPT_STRING, &o->delimiter, "C",
         "field separator, one character or 'tab' (,)"},
        {.name = "skip-rows", OPT_SIZE, &o->skip_rows, "N",
         "ignore the first N lines (scikit-learn's CSVs start\nwith a line of counts and "
         "names: --skip-rows 1)", 0, 1e12},
        {.name = "test-input", OPT_STRING, &o->test_input, "F",
         "a second file with the same columns: all its rows\nbecome /test (then no "
         "--test-fraction)"},
    };
    memcpy(specs, mine, sizeof mine);
    return sizeof mine / sizeof mine[0];
}

static Status csv_check(OutOptions *out)
{
    if (g_csv.test_input && out->test_fraction > 0.0) {
        log_error("convert csv: give --test-input or --test-fraction, not both");
        return XT_ERR_USAGE;
    }
    const char *d = g_csv.delimiter;
    if (!strcmp(d, "tab") || !strcmp(d, "\\t")) g_csv.delim = '\t';
    else if (strlen(d) == 1 && d[0] != '"' && d[0] != '\n') g_csv.delim = d[0];
    else {
        log_error("convert csv: --delimiter '%s': expected one character or 'tab'", d);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Splits line in place into fields. Returns NULL or what is wrong. */
static const char *csv_split(char *line, char delim, char ***fields, size_t *nf, size_t *cap)
{
    *nf = 0;
    char *p = line;
    for (;;) {
        if (!convert_grow((void **)fields, cap, *nf + 1, sizeof **fields)) return "out of memory";
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

/* Whether --label-column is a number (an index) rather than a header name. */
static bool label_col_is_index(const char *s, long long *v)
{
    char *end = NULL;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return s[0] && !*end && !errno;
}

/* Resolves the label column from an index or a header name. */
static Status csv_label_index(const CsvOptions *o, char **head, size_t nf, bool have_header,
                              size_t *col)
{
    long long v = 0;
    if (label_col_is_index(o->label_col, &v)) {
        long long idx = v < 0 ? (long long)nf + v : v;
        if (idx < 0 || idx >= (long long)nf) {
            log_error("%s: --label-column %s is outside the %zu columns of line 1", o->input,
                      o->label_col, nf);
            return XT_ERR_USAGE;
        }
        *col = (size_t)idx;
        return XT_OK;
    }
    if (!have_header) {
        log_error("%s: --label-column %s names a column but the file has no header (--no-header)",
                  o->input, o->label_col);
        return XT_ERR_USAGE;
    }
    for (size_t j = 0; j < nf; j++)
        if (!strcmp(convert_trim(head[j]), o->label_col)) {
            *col = j;
            return XT_OK;
        }
    log_error("%s:1: no column named '%s' in the header", o->input, o->label_col);
    return XT_ERR_USAGE;
}

/* What the reader has seen so far. */
typedef struct {
    const CsvOptions *o;
    char **fields;
    size_t fcap, nf;
    size_t ncol, col, d, first_line;
    bool started;
    float *X;
    size_t xcap, n;
    char **labs;
    size_t lcap;
    char **names;  /* the header's feature names, or NULL */
} CsvRead;

/* The header's feature names (all columns but the label), for feature_names. */
static Status keep_names(const CsvOptions *o, CsvRead *r, size_t lineno)
{
    r->names = calloc(r->d, sizeof *r->names);
    for (size_t j = 0, c = 0; r->names && j < r->nf; j++) {
        if (j == r->col) continue;
        r->names[c] = strdup(convert_trim(r->fields[j]));
        if (!r->names[c++]) {
            h5io_strs_free(r->names, r->d);
            r->names = NULL;
        }
    }
    if (r->names) return XT_OK;
    log_error("%s:%zu: out of memory for the column names", o->input, lineno);
    return XT_ERR_RUNTIME;
}

/* The first non-blank line: column count, header or not, the label column. Returns
 * XT_OK with *is_header set when the line is a header to skip. */
static Status csv_first_line(const CsvOptions *o, CsvRead *r, size_t lineno, bool *is_header)
{
    r->started = true;
    r->first_line = lineno;
    r->ncol = r->nf;
    if (r->ncol < 2) {
        log_error("%s:%zu: 1 field with delimiter '%c': expected a label column and at least "
                  "one feature (is --delimiter right?)", o->input, lineno,
                  o->delim == '\t' ? 't' : o->delim);
        return XT_ERR_USAGE;
    }
    long long v;
    int header = o->header;
    if (header < 0 && !label_col_is_index(o->label_col, &v)) header = 1;
    bool detected = false;
    if (header < 0) {
        /* A header names every feature column; a line with some numbers and some
         * non-numbers is neither, and taking it for a header would drop a data row. */
        size_t probe_col = 0, words = 0, first_word = 0, first_number = 0;
        Status st = csv_label_index(o, r->fields, r->nf, false, &probe_col);
        if (st != XT_OK) return st;
        for (size_t j = 0; j < r->nf; j++) {
            float tmp;
            if (j == probe_col) continue;
            if (convert_parse_float(r->fields[j], &tmp)) {
                if (words++ == 0) first_word = j;
            } else if (first_number == 0) {
                first_number = j + 1;
            }
        }
        if (words > 0 && words < r->nf - 1) {
            log_error("%s:%zu: field %zu '%.40s' is not a number but field %zu is: the line is "
                      "neither a header (every feature column named) nor data. A preamble "
                      "(scikit-learn's CSVs start with a line of counts and class names): "
                      "--skip-rows 1; a header: --header; data: fix the value", o->input,
                      lineno, first_word + 1, convert_trim(r->fields[first_word]), first_number);
            return XT_ERR_USAGE;
        }
        header = words > 0;
        detected = header == 1;
    }
    r->d = r->ncol - 1;
    *is_header = header == 1;
    Status st = csv_label_index(o, r->fields, r->nf, header == 1, &r->col);
    if (st == XT_OK && header == 1) st = keep_names(o, r, lineno);
    if (st == XT_OK && detected)
        printf("convert csv: line %zu taken as the header (no feature field is a number; "
               "--no-header if it is data)\n", lineno);
    return st;
}

/* One data line's fields into X and the label list. */
static Status csv_data_line(const CsvOptions *o, CsvRead *r, size_t lineno)
{
    if (r->nf != r->ncol) {
        bool preamble = r->n == 0; /* the first data line disagrees with line 1 */
        log_error("%s:%zu: %zu fields, expected %zu (as on line %zu)%s", o->input, lineno, r->nf,
                  r->ncol, r->first_line,
                  preamble ? "; if the first line is a preamble (scikit-learn's CSVs start with "
                             "a line of counts and class names), skip it: --skip-rows 1" : "");
        return XT_ERR_USAGE;
    }
    if (!convert_grow((void **)&r->X, &r->xcap, (r->n + 1) * r->d, sizeof *r->X) ||
        !convert_grow((void **)&r->labs, &r->lcap, r->n + 1, sizeof *r->labs)) {
        log_error("%s:%zu: out of memory", o->input, lineno);
        return XT_ERR_RUNTIME;
    }
    float *x = r->X + r->n * r->d;
    for (size_t j = 0, c = 0; j < r->nf; j++) {
        if (j == r->col) continue;
        const char *w = convert_parse_float(r->fields[j], &x[c++]);
        if (w) {
            char hint[96] = "";
            if (r->n == 0)
                snprintf(hint, sizeof hint, " (if this column holds the labels: --label-column %zu)",
                         j);
            log_error("%s:%zu: field %zu '%.40s': %s%s", o->input, lineno, j + 1,
                      convert_trim(r->fields[j]), w, hint);
            return XT_ERR_USAGE;
        }
    }
    char *lab = convert_trim(r->fields[r->col]);
    if (!lab[0]) {
        log_error("%s:%zu: field %zu (the label): empty field (missing value)", o->input, lineno,
                  r->col + 1);
        return XT_ERR_USAGE;
    }
    r->labs[r->n] = strdup(lab);
    if (!r->labs[r->n]) {
        log_error("%s:%zu: out of memory", o->input, lineno);
        return XT_ERR_RUNTIME;
    }
    r->n++;
    return XT_OK;
}

static Status csv_line(char *line, size_t lineno, void *ctx)
{
    CsvRead *r = ctx;
    const CsvOptions *o = r->o;
    if (lineno <= o->skip_rows) return XT_OK;
    const char *why = csv_split(line, o->delim, &r->fields, &r->nf, &r->fcap);
    if (why) {
        log_error("%s:%zu: %s", o->input, lineno, why);
        return XT_ERR_USAGE;
    }
    bool is_header = false;
    Status st = r->started ? XT_OK : csv_first_line(o, r, lineno, &is_header);
    if (st == XT_OK && !is_header) st = csv_data_line(o, r, lineno);
    return st;
}

static Status csv_read(const CsvOptions *o, CsvRead *r)
{
    r->o = o;
    Status st = convert_each_line("csv", o->input, csv_line, r);
    return st == XT_OK ? convert_rows_read(o->input, r->n) : st;
}

static void csv_read_free(CsvRead *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->labs[i]);
    free(r->labs);
    free(r->fields);
    free(r->X);
    h5io_strs_free(r->names, r->d);
    memset(r, 0, sizeof *r);
}

/* Appends the test file's rows (same columns) to the main file's, so one label map
 * covers both; out->fixed_test says they are /test. */
static Status csv_append_test(const CsvOptions *o, CsvRead *r, OutOptions *out)
{
    CsvOptions to = *o;
    to.input = o->test_input;
    CsvRead t = {0};
    Status st = csv_read(&to, &t);
    if (st == XT_OK && t.d != r->d) {
        log_error("%s: %zu features, but %s has %zu: the test file needs the same columns",
                  to.input, t.d, o->input, r->d);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK && (!convert_grow((void **)&r->X, &r->xcap, (r->n + t.n) * r->d, sizeof *r->X) ||
                        !convert_grow((void **)&r->labs, &r->lcap, r->n + t.n, sizeof *r->labs))) {
        log_error("%s: out of memory", to.input);
        st = XT_ERR_RUNTIME;
    }
    if (st == XT_OK) {
        memcpy(r->X + r->n * r->d, t.X, t.n * t.d * sizeof *t.X);
        memcpy(r->labs + r->n, t.labs, t.n * sizeof *t.labs);
        r->n += t.n;
        out->fixed_test = t.n;
        t.n = 0; /* the labels moved */
    }
    csv_read_free(&t);
    return st;
}

static Status csv_table(OutOptions *out, ConvertTable *t, LabelMap *m)
{
    CsvOptions o = g_csv;
    o.input = out->input;
    CsvRead r = {0};
    Status st = csv_read(&o, &r);
    if (st == XT_OK && o.test_input) st = csv_append_test(&o, &r, out);
    int32_t *y = st == XT_OK ? malloc(r.n * sizeof *y) : NULL;
    if (st == XT_OK) st = y ? convert_labels_from_text(o.input, r.labs, r.n, y, m) : XT_ERR_RUNTIME;
    *t = (ConvertTable){.X = r.X, .n = r.n, .d = r.d, .y = y, .feature_names = r.names};
    r.X = NULL;
    r.names = NULL;
    csv_read_free(&r);
    return st;
}

/* Delimited text: one label column, the others numeric features. */
const ConvertReader convert_csv_reader = {
    .name = "csv",
    .notes = "Fields may be double-quoted (\"a,b\"; \"\" is a quote); blank lines are skipped.",
    .about = "One row per line: one label column, every other column a numeric feature.\n"
             "Integer labels >= 0 stay class ids; other numbers map to 0..K-1 in sorted order,\n"
             "words in alphabetical order (kept as label_values; words also as class_names).",
    .text_input = true,
    .options = csv_options,
    .check = csv_check,
    .read = csv_table};
