/* convert csv: delimited text with one label column into the dataset.h layout.
 *
 * The steps, each in its own module: read the file into typed cells (convert_table.c),
 * decide the header line, decide what every column is (convert_columns.c: the label,
 * dropped columns, numeric or categorical, missing values), read a --test-input file and
 * match its columns by name, map the labels to class ids (convert.c), split the rows,
 * fit categories and fill values on the training rows, and encode every row.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_columns.h"
#include "convert_common.h"
#include "convert_table.h"
#include "h5io.h"
#include "log.h"

#define CSV_MAX_LIST 4096 /* names in one list option */

typedef struct {
    const char *label_col;   /* NULL: the last column */
    int header;              /* -1 detect, 0 no, 1 yes */
    const char *delimiter;
    bool delimiter_given;
    char delim;
    size_t skip_rows;
    const char *test_input;  /* a second file with the same columns: it becomes /test */
    const char *drop, *keep, *categorical, *na_values, *missing;
} CsvOptions;

static CsvOptions g_csv;

static size_t csv_options(OptSpec *specs, OutOptions *out)
{
    (void)out; /* --input and the output options are convert.c's */
    CsvOptions *o = &g_csv;
    *o = (CsvOptions){.header = -1, .delimiter = ",", .categorical = "auto",
                      .na_values = "NA,N/A,#N/A,NaN,nan,?,NULL,null,None", .missing = "refuse"};
    const OptSpec mine[] = {
        {.name = "label-column", OPT_STRING, &o->label_col, "N|NAME",
         "label column: index from 0 (negative counts from the\nend) or header name "
         "(default: the last column)"},
        {.name = "header", OPT_SET, &o->header, NULL,
         "line 1 names the columns (detected when neither\nis given)", .ival = 1},
        {.name = "no-header", OPT_SET, &o->header, NULL, "line 1 is data", .ival = 0},
        {.name = "delimiter", OPT_STRING, &o->delimiter, "C",
         "field separator, one character or 'tab' (default ',';\na first line with tabs or ';' "
         "and no ',' uses those)", .given = &o->delimiter_given},
        {.name = "skip-rows", OPT_SIZE, &o->skip_rows, "N",
         "ignore the first N lines (scikit-learn's CSVs start\nwith a line of counts and "
         "names: --skip-rows 1)", 0, 1e12},
        {.name = "test-input", OPT_STRING, &o->test_input, "F",
         "a second file with the same columns (matched by\nheader name): all its rows become "
         "/test (without\nthe label column: X only, rows to predict)"},
        {.name = "drop-columns", OPT_STRING, &o->drop, "LIST",
         "columns to leave out (indices or names, comma-separated)"},
        {.name = "keep-columns", OPT_STRING, &o->keep, "LIST",
         "keep columns that look like row numbers or ids"},
        {.name = "categorical", OPT_STRING, &o->categorical, "auto|none|LIST",
         "one-hot encoded columns: auto = every column of\nwords (default), or those named"},
        {.name = "na-values", OPT_STRING, &o->na_values, "LIST",
         "texts that mark a missing value besides the empty\nfield (default "
         "NA,N/A,#N/A,NaN,nan,?,NULL,null,None)"},
        {.name = "missing", OPT_STRING, &o->missing, "POLICY",
         "refuse (default), drop (the rows), mean or median\n(fill from the training rows)"},
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
    const char *d = g_csv.delimiter, *m = g_csv.missing;
    if (!strcmp(d, "tab") || !strcmp(d, "\\t")) g_csv.delim = '\t';
    else if (strlen(d) == 1 && d[0] != '"' && d[0] != '\n') g_csv.delim = d[0];
    else {
        log_error("convert csv: --delimiter '%s': expected one character or 'tab'", d);
        return XT_ERR_USAGE;
    }
    if (strcmp(m, "refuse") && strcmp(m, "drop") && strcmp(m, "mean") && strcmp(m, "median")) {
        log_error("convert csv: --missing '%s': expected refuse, drop, mean or median", m);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* ---- lists ------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    const char *item[CSV_MAX_LIST];
    size_t n;
} NameList;

/* Splits a comma-separated option value (NULL: empty) into items, blanks trimmed. */
static Status list_split(const char *text, const char *opt, NameList *l)
{
    l->n = 0;
    l->buf = NULL;
    if (!text || !text[0]) return XT_OK;
    if (!(l->buf = strdup(text))) return XT_ERR_RUNTIME;
    for (char *p = l->buf, *e;; p = e + 1) {
        e = strchr(p, ',');
        if (e) *e = '\0';
        if (l->n == CSV_MAX_LIST) {
            log_error("convert csv: --%s: more than %d names", opt, CSV_MAX_LIST);
            return XT_ERR_USAGE;
        }
        l->item[l->n++] = convert_trim(p);
        if (!e) return XT_OK;
    }
}

/* ---- the state of one conversion ------------------------------------------------------------ */

typedef struct {
    NameList drop, keep, cats, na;
    const char *word_cols[CSV_MAX_LIST + 1];
    TableOptions topt, test_opt;
    CsvTable main, test;
    ColumnPlan plan;
    size_t *map;            /* plan column -> test column */
    bool *keep_main, *keep_test;
    size_t n_main, n_test;  /* rows kept */
    size_t *rows;           /* kept rows: main rows, then test rows */
} CsvState;

static CsvState g_state;

static void csv_release(void)
{
    CsvState *s = &g_state;
    free(s->drop.buf);
    free(s->keep.buf);
    free(s->cats.buf);
    free(s->na.buf);
    table_free(&s->main);
    table_free(&s->test);
    columns_free(&s->plan);
    free(s->map);
    free(s->keep_main);
    free(s->keep_test);
    free(s->rows);
    memset(s, 0, sizeof *s);
}

static Status write_encoding(H5File *f, const void *ctx)
{
    return columns_write(&((const CsvState *)ctx)->plan, f);
}

/* Whether a list names a column rather than giving its index. */
static bool list_has_names(const NameList *l)
{
    for (size_t i = 0; i < l->n; i++) {
        char *end = NULL;
        errno = 0;
        (void)strtoll(l->item[i], &end, 10);
        if (end == l->item[i] || *end) return true;
    }
    return false;
}

/* The main file's reading options; a name in any column list means a header. */
static Status main_options(CsvState *s, const CsvOptions *o, const char *input, int *header)
{
    Status st = list_split(o->drop, "drop-columns", &s->drop);
    if (st == XT_OK) st = list_split(o->keep, "keep-columns", &s->keep);
    bool cat_auto = !strcmp(o->categorical, "auto"), cat_none = !strcmp(o->categorical, "none");
    if (st == XT_OK && !cat_auto && !cat_none) st = list_split(o->categorical, "categorical", &s->cats);
    if (st == XT_OK) st = list_split(o->na_values, "na-values", &s->na);
    if (st != XT_OK) return st;
    size_t n = 0;
    s->word_cols[n++] = o->label_col ? o->label_col : "-1";
    for (size_t i = 0; i < s->cats.n; i++) s->word_cols[n++] = s->cats.item[i];
    s->topt = (TableOptions){.path = input, .delim = o->delim, .delim_given = o->delimiter_given,
                             .skip_rows = o->skip_rows, .na = s->na.item, .n_na = s->na.n,
                             .word_cols = s->word_cols, .n_word_cols = n};
    NameList label = {.n = 1, .item = {s->word_cols[0]}};
    bool names = list_has_names(&label) || list_has_names(&s->drop) ||
                 list_has_names(&s->keep) || list_has_names(&s->cats);
    *header = o->header;
    if (names && o->header == 0) {
        log_error("convert csv: %s: a column option names a column but --no-header says the "
                  "file has no header: give columns by index from 0", input);
        return XT_ERR_USAGE;
    }
    if (names) *header = 1;
    return XT_OK;
}

/* Reads the main file and decides its columns. */
static Status read_main(CsvState *s, const CsvOptions *o, const char *input)
{
    int header = -1;
    Status st = main_options(s, o, input, &header);
    if (st == XT_OK) st = table_read(&s->main, &s->topt);
    if (st == XT_OK) st = table_decide_header(&s->main, header);
    ColumnOptions co = {.label = o->label_col, .drop = s->drop.item, .n_drop = s->drop.n,
                        .keep = s->keep.item, .n_keep = s->keep.n,
                        .categorical_auto = !strcmp(o->categorical, "auto"),
                        .categorical_given = s->cats.n > 0,
                        .missing = !strcmp(o->missing, "drop")     ? MISSING_DROP
                                   : !strcmp(o->missing, "mean")   ? MISSING_MEAN
                                   : !strcmp(o->missing, "median") ? MISSING_MEDIAN
                                                                   : MISSING_REFUSE};
    if (st == XT_OK) st = columns_plan(&s->plan, &s->main, &co);
    if (st == XT_OK && s->main.n == 0) {
        log_error("%s: no data rows", input);
        st = XT_ERR_USAGE;
    }
    return st;
}

/* Whether the test file's first line is the training header (the same names). */
static bool same_names(const CsvTable *train, const CsvTable *test)
{
    if (!train->header || train->ncol != test->ncol) return false;
    for (size_t j = 0; j < test->ncol; j++) {
        bool found = false;
        for (size_t m = 0; m < train->ncol && !found; m++)
            found = !strcmp(test->first[j], train->first[m]);
        if (!found) return false;
    }
    return true;
}

/* Reads --test-input: the columns read as words are named as in the training file. */
static Status read_test(CsvState *s, const CsvOptions *o)
{
    s->test_opt = s->topt;
    s->test_opt.path = o->test_input;
    size_t n = 0;
    const ColumnPlan *p = &s->plan;
    static const char *names[CSV_MAX_LIST + 1];
    for (size_t j = 0; s->main.header && j < p->ncol; j++)
        if (s->main.as_words[j] && (p->role[j] == COL_LABEL || p->role[j] == COL_CATEGORICAL))
            names[n++] = p->name[j];
    if (s->main.header) {
        s->test_opt.word_cols = names;
        s->test_opt.n_word_cols = n;
        s->test_opt.lenient_names = true;
    }
    Status st = table_read(&s->test, &s->test_opt);
    int header = o->header;
    if (st == XT_OK && header < 0 && same_names(&s->main, &s->test)) header = 1;
    if (st == XT_OK) st = table_decide_header(&s->test, header);
    s->map = st == XT_OK ? malloc(p->ncol * sizeof *s->map) : NULL;
    if (st == XT_OK && !s->map) st = XT_ERR_RUNTIME;
    if (st == XT_OK) st = columns_match(p, &s->main, &s->test, s->map);
    return st;
}

/* Rows kept after the missing-value policy, main rows then test rows. */
static Status keep_rows(CsvState *s)
{
    s->keep_main = malloc((s->main.n + 1) * sizeof *s->keep_main);
    s->keep_test = malloc((s->test.n + 1) * sizeof *s->keep_test);
    s->rows = malloc((s->main.n + s->test.n + 1) * sizeof *s->rows);
    if (!s->keep_main || !s->keep_test || !s->rows) return XT_ERR_RUNTIME;
    Status st = columns_check_missing(&s->plan, &s->main, NULL, s->keep_main);
    if (st == XT_OK && s->test.n) st = columns_check_missing(&s->plan, &s->test, s->map, s->keep_test);
    for (size_t i = 0; st == XT_OK && i < s->main.n; i++)
        if (s->keep_main[i]) s->rows[s->n_main++] = i;
    for (size_t i = 0; st == XT_OK && i < s->test.n; i++)
        if (s->keep_test[i]) s->rows[s->n_main + s->n_test++] = i;
    return st;
}

/* Class ids of every kept row (one map for both files). */
static Status csv_labels(const CsvState *s, int32_t *y, LabelMap *m)
{
    size_t n = s->n_main + s->n_test;
    char **labs = calloc(n ? n : 1, sizeof *labs);
    Status st = labs ? XT_OK : XT_ERR_RUNTIME;
    bool unlabelled = s->n_test && s->map[s->plan.label] == SIZE_MAX;
    size_t nl = unlabelled ? s->n_main : n; /* rows with a label */
    for (size_t i = 0; st == XT_OK && i < nl; i++) {
        char buf[40];
        bool test = i >= s->n_main;
        const char *text = columns_label_text(&s->plan, test ? &s->test : &s->main,
                                              test ? s->map : NULL, s->rows[i], buf, sizeof buf);
        if (!(labs[i] = strdup(text))) st = XT_ERR_RUNTIME;
    }
    for (size_t i = nl; i < n; i++) y[i] = 0; /* no label: /test gets X only */
    if (st == XT_OK) st = convert_labels_from_text(s->main.path, labs, nl, y, m);
    for (size_t i = 0; labs && i < n; i++) free(labs[i]);
    free(labs);
    return st;
}

/* Categories and fill values from the training rows, then every kept row encoded. */
static Status csv_encode(CsvState *s, const int32_t *y, const OutOptions *out, float **X)
{
    RowSet sets[3] = {{0}};
    size_t n = s->n_main + s->n_test;
    Status st = convert_split_rows(n, y, out, &sets[0], &sets[1], &sets[2]);
    size_t *train = st == XT_OK ? malloc((sets[0].n + 1) * sizeof *train) : NULL;
    if (st == XT_OK && !train) st = XT_ERR_RUNTIME;
    for (size_t i = 0; st == XT_OK && i < sets[0].n; i++) train[i] = s->rows[sets[0].idx[i]];
    if (st == XT_OK) st = columns_fit(&s->plan, &s->main, train, sets[0].n);
    *X = st == XT_OK ? malloc((n * s->plan.d + 1) * sizeof **X) : NULL;
    if (st == XT_OK && !*X) st = XT_ERR_RUNTIME;
    if (st == XT_OK)
        st = columns_encode(&s->plan, &s->main, NULL, s->rows, s->n_main, *X,
                            out->val_fraction > 0 || out->test_fraction > 0 ? "/val or /test"
                                                                            : "/train");
    if (st == XT_OK && s->n_test)
        st = columns_encode(&s->plan, &s->test, s->map, s->rows + s->n_main, s->n_test,
                            *X + s->n_main * s->plan.d, "/test");
    free(train);
    for (int g = 0; g < 3; g++) convert_rowset_free(&sets[g]);
    return st;
}

static Status csv_table(OutOptions *out, ConvertTable *t, LabelMap *m)
{
    CsvState *s = &g_state;
    csv_release();
    Status st = read_main(s, &g_csv, out->input);
    if (st == XT_OK && g_csv.test_input) st = read_test(s, &g_csv);
    if (st == XT_OK) st = keep_rows(s);
    size_t n = s->n_main + s->n_test;
    int32_t *y = st == XT_OK ? malloc((n + 1) * sizeof *y) : NULL;
    if (st == XT_OK && !y) st = XT_ERR_RUNTIME;
    if (st == XT_OK) st = csv_labels(s, y, m);
    out->fixed_test = s->n_test;
    float *X = NULL;
    if (st == XT_OK) st = csv_encode(s, y, out, &X);
    if (st == XT_ERR_RUNTIME) log_error("convert csv: out of memory");
    *t = (ConvertTable){.X = X, .n = n, .d = s->plan.d, .y = y,
                        .feature_names = st == XT_OK ? s->plan.feature_names : NULL,
                        .test_unlabelled = s->n_test && s->map[s->plan.label] == SIZE_MAX,
                        .write_extra = write_encoding, .extra_ctx = s};
    if (st == XT_OK) s->plan.feature_names = NULL; /* the table owns them now */
    return st;
}

/* Delimited text: one label column, the others numeric or categorical features. */
const ConvertReader convert_csv_reader = {
    .name = "csv",
    .notes = "Fields may be double-quoted (\"a,b\"; \"\" is a quote); blank lines are skipped.\n"
             "The label column, dropped columns, categorical columns and missing values are\n"
             "decided on the main file and said on stdout; the output's /encoding group keeps\n"
             "them. See docs/data.md.",
    .about = "One row per line: one label column, the other columns features: numbers, or\n"
             "words (one-hot encoded, one column per category of the training rows).\n"
             "Integer labels >= 0 stay class ids; other numbers map to 0..K-1 in sorted order,\n"
             "words in alphabetical order (kept as label_values; words also as class_names).",
    .text_input = true,
    .options = csv_options,
    .check = csv_check,
    .read = csv_table,
    .release = csv_release};
