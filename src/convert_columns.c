/* convert_columns: see convert_columns.h. */
#include "convert_columns.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_common.h"
#include "log.h"
#include "strutil.h"

/* ---- names ------------------------------------------------------------------------------ */

/* Whether a header name is a usual name for class labels: one of its words (split on
 * anything but letters and digits) is in the list. */
static bool likely_label_name(const char *name)
{
    static const char *const usual[] = {"label",   "labels",    "class",  "classes", "target",
                                        "targets", "y",         "outcome", "response", "category",
                                        "species", "diagnosis", "letter", "lettr",   "digit",
                                        "survived", NULL};
    char word[64];
    const char *p = name;
    while (*p) {
        size_t n = 0;
        while (*p && !isalnum((unsigned char)*p)) p++;
        while (*p && isalnum((unsigned char)*p)) {
            if (n < sizeof word - 1) word[n++] = *p;
            p++;
        }
        word[n] = '\0';
        for (size_t i = 0; n && usual[i]; i++)
            if (strutil_ieq(word, usual[i])) return true;
    }
    return false;
}

/* "id", "ID", "PassengerId", "customer_id", "CustomerID" */
static bool id_like_name(const char *name)
{
    size_t n = strlen(name);
    if (strutil_ieq(name, "id")) return true;
    if (n < 3) return false;
    const char *e = name + n - 2;
    bool tail = (e[0] == 'I' && (e[1] == 'd' || e[1] == 'D')) ||
                (strutil_ieq(e, "id") && !isalnum((unsigned char)e[-1]));
    return tail && (!isalnum((unsigned char)e[-1]) || islower((unsigned char)e[-1]) ||
                    e[0] == 'I');
}

/* An empty header field, or pandas' name for one read back ("Unnamed: 0"). */
static bool unnamed(const char *name)
{
    return !name[0] || !strncmp(name, "Unnamed: ", 9);
}

static bool listed(const CsvTable *t, const char *const *list, size_t n, size_t j)
{
    for (size_t i = 0; i < n; i++) {
        char *end = NULL;
        long long v = strtoll(list[i], &end, 10);
        if (end != list[i] && !*end && (v < 0 ? (long long)t->ncol + v : v) == (long long)j)
            return true;
        if (t->header && !strcmp(list[i], t->first[j])) return true;
    }
    return false;
}

/* Every name of a list must be a column. */
static Status check_list(const CsvTable *t, const char *const *list, size_t n, const char *opt)
{
    for (size_t i = 0; i < n; i++)
        if (table_resolve_column(t, list[i], opt) == SIZE_MAX) return XT_ERR_USAGE;
    return XT_OK;
}

/* ---- the label ---------------------------------------------------------------------------- */

/* Distinct label values, how many are not integers (and one of them). */
typedef struct {
    size_t distinct, fractions;
    const char *a_fraction, *a_value;
} LabelLook;

static void label_look(const CsvTable *t, size_t j, LabelLook *l)
{
    *l = (LabelLook){0};
    ColumnStats s;
    table_column_stats(t, j, &s);
    l->distinct = t->dict[j].n;
    double v;
    for (size_t i = 0; i < t->n; i++) { /* the first of each in file order */
        uint32_t c = t->cells[i * t->ncol + j];
        if (cell_is_missing(c)) continue;
        const char *w = cell_is_word(c) ? t->dict[j].words[cell_word_id(c)] : NULL;
        if (!l->a_value) l->a_value = w ? w : "a number";
        bool frac = w ? convert_parse_number(w, &v) && v != floor(v)
                      : cell_number(c) != floorf(cell_number(c));
        if (frac && l->fractions++ == 0) l->a_fraction = w ? w : "a fraction";
    }
    if (s.n_num > 0) /* a label column read as numbers (the default moved left) */
        l->distinct = s.min == s.max ? 1 : s.all_int ? (size_t)(s.max - s.min + 1.0) : s.n_num;
}

/* The default label column must look like one. */
static Status check_default_label(const CsvTable *t, size_t j, const ColumnOptions *o)
{
    char a[96], b[96];
    table_col_label(t, j, a, sizeof a);
    for (size_t k = 0; t->header && k < t->ncol && !likely_label_name(t->first[j]); k++) {
        if (k == j || !likely_label_name(t->first[k]) || listed(t, o->drop, o->n_drop, k)) continue;
        log_error("%s: the label column would be the last column, column %s (the default), but "
                  "the header names column %s, a usual name for the label: give --label-column "
                  "%s (or --label-column %s to keep the last column)", t->path, a,
                  table_col_label(t, k, b, sizeof b), t->first[k], t->first[j]);
        return XT_ERR_USAGE;
    }
    LabelLook l;
    label_look(t, j, &l);
    if (l.fractions > 0) {
        log_error("%s: the last column, column %s (the default label column), holds numbers that are not "
                  "whole ('%s'): a feature or a regression target, not class labels. Name the "
                  "label column: --label-column N|NAME", t->path, a, l.a_fraction);
        return XT_ERR_USAGE;
    }
    if (t->n >= 20 && 2 * l.distinct > t->n) {
        log_error("%s: the last column, column %s (the default label column), holds %zu different values "
                  "in %zu rows: a feature or an id, not class labels. Name the label column: "
                  "--label-column N|NAME", t->path, a, l.distinct, t->n);
        return XT_ERR_USAGE;
    }
    ColumnStats s0;
    table_column_stats(t, 0, &s0);
    bool words0 = j != 0 && s0.n_word > 0 && s0.n_num == 0 && !t->as_words[0] &&
                  (t->n < 20 || 2 * t->dict[0].n <= t->n); /* few words: classes? */
    if (words0 && !o->categorical_given && !(t->dict[j].n > 0 && l.distinct == 0)) {
        ColumnStats sj;
        table_column_stats(t, j, &sj);
        double v;
        bool numeric_label = sj.n_num > 0 || (t->dict[j].n > 0 &&
                                              convert_parse_number(t->dict[j].words[0], &v));
        if (numeric_label) {
            char c0[32], cj[32];
            log_error("%s: the first column, column %s, holds words ('%s', ...) and the last, "
                      "column %s (the default label column), numbers: the label is likely the "
                      "first column: --label-column 0 (or, if the words are a feature, "
                      "--categorical %s --label-column %s)", t->path,
                      table_col_label(t, 0, b, sizeof b), t->dict[0].words[0], a,
                      table_col_ref(t, 0, c0, sizeof c0), table_col_ref(t, j, cj, sizeof cj));
            return XT_ERR_USAGE;
        }
    }
    return XT_OK;
}

/* The label: --label-column, or the last column (an unnamed, empty last column, as a
 * trailing delimiter makes, is passed over). Says which and why. */
static Status choose_label(ColumnPlan *p, const CsvTable *t, const ColumnOptions *o)
{
    size_t j = t->ncol - 1;
    if (o->label) {
        j = table_resolve_column(t, o->label, "--label-column");
        if (j == SIZE_MAX) return XT_ERR_USAGE;
        p->label_why = "given by --label-column";
    } else {
        ColumnStats s;
        table_column_stats(t, j, &s);
        if (t->header && !t->first[j][0] && s.n_miss == t->n && j > 1) j--;
        p->label_why = "the last column, the default; --label-column names another";
        if (check_default_label(t, j, o) != XT_OK) return XT_ERR_USAGE;
    }
    LabelLook l;
    label_look(t, j, &l);
    char a[96];
    table_col_label(t, j, a, sizeof a);
    if (l.distinct == 1) {
        log_error("%s: the label column, column %s, holds one value ('%s') in every row: nothing to "
                  "classify. Is it the label column? --label-column N|NAME", t->path, a,
                  l.a_value);
        return XT_ERR_USAGE;
    }
    if (o->label && l.fractions > 0)
        log_warn("convert csv: %s: the label column, column %s, holds numbers that are not whole ('%s'): "
                 "each distinct value becomes a class", t->path, a, l.a_fraction);
    p->label = j;
    p->role[j] = COL_LABEL;
    log_info("convert csv: %s: the label is column %s (of %zu; index %zu from 0): %s", t->path,
             a, t->ncol, j, p->label_why);
    return XT_OK;
}

/* ---- dropped columns ------------------------------------------------------------------------- */

/* Why column j is dropped without being asked (NULL: it is not). *refuse: it may be
 * neither dropped nor kept silently. */
static const char *auto_drop(const CsvTable *t, size_t j, bool *refuse)
{
    *refuse = false;
    ColumnStats s;
    table_column_stats(t, j, &s);
    if (s.n_miss == t->n) return "it has no value in any row";
    if (t->header && unnamed(t->first[j])) {
        if (table_column_distinct(t, j))
            return "it has no name in the header and all-different values: row names, as R's "
                   "write.csv and pandas' to_csv write them";
        *refuse = true;
        return "it has no name in the header (name it, or --drop-columns it)";
    }
    if (t->header && id_like_name(t->first[j]) && table_column_distinct(t, j))
        return "its name says id and its values are all different: an identifier, not a "
               "feature (--keep-columns keeps it)";
    bool row_numbers = s.consecutive && (s.min == 0.0 || s.min == 1.0) && t->n >= 20;
    if (s.increasing && (row_numbers || t->n >= 50)) {
        *refuse = true;
        return "it holds whole numbers increasing down the file: row numbers or ids, which "
               "would let a model learn the file's order (a file sorted by class leaks its "
               "labels through them). --drop-columns drops it; --keep-columns keeps it";
    }
    return NULL;
}

static Status choose_drops(ColumnPlan *p, const CsvTable *t, const ColumnOptions *o)
{
    char a[96];
    for (size_t j = 0; j < t->ncol; j++) {
        bool asked = listed(t, o->drop, o->n_drop, j), refuse = false;
        if (j == p->label) {
            if (!asked) continue;
            log_error("%s: --drop-columns names the label column, column %s", t->path,
                      table_col_label(t, j, a, sizeof a));
            return XT_ERR_USAGE;
        }
        const char *why = asked ? "--drop-columns"
                          : listed(t, o->keep, o->n_keep, j) ? NULL : auto_drop(t, j, &refuse);
        if (!why) continue;
        table_col_label(t, j, a, sizeof a);
        if (refuse) {
            char buf[32];
            const char *r = table_col_ref(t, j, buf, sizeof buf);
            log_error("%s: column %s: %s (--drop-columns %s or --keep-columns %s)", t->path, a,
                      why, r, r);
            return XT_ERR_USAGE;
        }
        p->role[j] = COL_DROPPED;
        log_info("convert csv: %s: column %s dropped: %s", t->path, a, why);
    }
    return XT_OK;
}

/* ---- kinds -------------------------------------------------------------------------------------- */

/* A column with words where numbers were expected: refused with the first word. */
static Status refuse_words(const CsvTable *t, size_t j, const ColumnStats *s,
                           const ColumnOptions *o)
{
    float v;
    const char *w = t->dict[j].words[cell_word_id(t->cells[s->first_word * t->ncol + j])];
    const char *why = convert_parse_float(w, &v);
    char a[96], nums[200] = "";
    table_col_label(t, j, a, sizeof a);
    if (s->n_num > 0)
        snprintf(nums, sizeof nums, "; column %s holds numbers elsewhere (line %zu)", a,
                 t->line[s->first_num]);
    char r[32];
    log_error("%s:%zu: field %zu '%.40s': %s%s. If '%.40s' marks a missing value: --na-values "
              "'%.40s'; if the column is categorical: %s %s", t->path,
              t->line[s->first_word], j + 1, w, why ? why : "not a number", nums, w, w,
              o->categorical_given ? "add it to --categorical," : "--categorical",
              table_col_ref(t, j, r, sizeof r));
    return XT_ERR_USAGE;
}

/* The line where word w of column j first occurs. */
static size_t first_line_of(const CsvTable *t, size_t j, size_t w)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->cells[i * t->ncol + j] == cell_from_word((uint32_t)w)) return t->line[i];
    return t->first_line;
}

static Status choose_kinds(ColumnPlan *p, const CsvTable *t, const ColumnOptions *o)
{
    char a[96];
    for (size_t j = 0; j < t->ncol; j++) {
        if (p->role[j] != COL_NUMERIC) continue;
        ColumnStats s;
        table_column_stats(t, j, &s);
        bool words = t->as_words[j] || (o->categorical_auto && s.n_num == 0 && s.n_word > 0);
        if (!words && s.n_word > 0) return refuse_words(t, j, &s, o);
        if (!words) continue;
        size_t k = t->dict[j].n;
        table_col_label(t, j, a, sizeof a);
        if (!t->as_words[j] && (k > COLUMNS_MAX_AUTO_CATEGORIES || (k > 20 && 2 * k > t->n))) {
            char buf[32];
            const char *r = table_col_ref(t, j, buf, sizeof buf);
            log_error("%s: column %s holds %zu different words in %zu rows: free text or ids, "
                      "not categories. --drop-columns %s drops it (--categorical %s encodes it "
                      "anyway, one column per word)", t->path, a, k, t->n, r, r);
            return XT_ERR_USAGE;
        }
        for (size_t w = 0; w < k; w++)
            if (!convert_valid_utf8(t->dict[j].words[w])) {
                log_error("%s: column %s: the category on line %zu is not valid UTF-8 text "
                          "(convert the file to UTF-8, e.g. with iconv)", t->path, a,
                          first_line_of(t, j, w));
                return XT_ERR_USAGE;
            }
        p->role[j] = COL_CATEGORICAL;
        log_info("convert csv: %s: column %s is categorical (%zu different words; %s): one-hot "
                 "encoded", t->path, a, k, t->as_words[j] ? "--categorical" : "no number in it");
    }
    return XT_OK;
}

/* ---- the plan ------------------------------------------------------------------------------------ */

Status columns_plan(ColumnPlan *p, const CsvTable *t, const ColumnOptions *o)
{
    memset(p, 0, sizeof *p);
    p->ncol = t->ncol;
    p->missing = o->missing;
    p->role = calloc(t->ncol, sizeof *p->role);
    p->name = calloc(t->ncol, sizeof *p->name);
    p->cats = calloc(t->ncol, sizeof *p->cats);
    p->n_cats = calloc(t->ncol, sizeof *p->n_cats);
    p->fill = malloc(t->ncol * sizeof *p->fill);
    p->fill_cat = malloc(t->ncol * sizeof *p->fill_cat);
    if (!p->role || !p->name || !p->cats || !p->n_cats || !p->fill || !p->fill_cat) {
        log_error("%s: out of memory", t->path);
        return XT_ERR_RUNTIME;
    }
    for (size_t j = 0; j < t->ncol; j++) {
        char buf[32];
        snprintf(buf, sizeof buf, "column %zu", j + 1);
        p->fill[j] = NAN;
        p->fill_cat[j] = -1;
        if (!(p->name[j] = strdup(t->header ? t->first[j] : buf))) return XT_ERR_RUNTIME;
        if (!convert_valid_utf8(p->name[j])) {
            log_error("%s:%zu: header field %zu is not valid UTF-8 text (convert the file to "
                      "UTF-8, e.g. with iconv)", t->path, t->first_line, j + 1);
            return XT_ERR_USAGE;
        }
    }
    Status st = check_list(t, o->drop, o->n_drop, "--drop-columns");
    if (st == XT_OK) st = check_list(t, o->keep, o->n_keep, "--keep-columns");
    if (st == XT_OK) st = choose_label(p, t, o);
    if (st == XT_OK) st = choose_drops(p, t, o);
    if (st == XT_OK) st = choose_kinds(p, t, o);
    return st;
}

void columns_free(ColumnPlan *p)
{
    for (size_t j = 0; j < p->ncol; j++) {
        if (p->name) free(p->name[j]);
        if (p->cats && p->cats[j]) h5io_strs_free(p->cats[j], p->n_cats[j]);
    }
    if (p->feature_names) h5io_strs_free(p->feature_names, p->d);
    free(p->role);
    free(p->name);
    free(p->cats);
    free(p->n_cats);
    free(p->fill);
    free(p->fill_cat);
    memset(p, 0, sizeof *p);
}

/* ---- the test file --------------------------------------------------------------------------------- */

static size_t find_name(const CsvTable *t, const char *name, const bool *used)
{
    for (size_t m = 0; m < t->ncol; m++)
        if (!used[m] && !strcmp(t->first[m], name)) return m;
    return SIZE_MAX;
}

/* "a, b, c" of names into buf. */
static void add_name(char *buf, size_t len, const char *name)
{
    size_t u = strlen(buf);
    if (u + 4 < len) snprintf(buf + u, len - u, "%s'%.60s'", u ? ", " : "", name);
}

static Status match_names(const ColumnPlan *p, const CsvTable *train, const CsvTable *test,
                          size_t *map, bool *used)
{
    char missing[512] = "", extra[512] = "";
    bool reordered = false;
    for (size_t j = 0; j < p->ncol; j++) {
        map[j] = find_name(test, train->first[j], used);
        if (map[j] != SIZE_MAX) used[map[j]] = true;
        else if (p->role[j] != COL_DROPPED && j != p->label)
            add_name(missing, sizeof missing, train->first[j]);
        reordered |= map[j] != SIZE_MAX && map[j] != j;
    }
    for (size_t m = 0; m < test->ncol; m++)
        if (!used[m]) add_name(extra, sizeof extra, test->first[m]);
    if (missing[0] || extra[0]) {
        log_error("%s: its columns differ from %s's (matched by header name): %s%s%s%s%s. "
                  "The test file needs the training file's columns, in any order", test->path,
                  train->path, missing[0] ? "missing " : "", missing,
                  missing[0] && extra[0] ? "; " : "", extra[0] ? "not in the training file " : "",
                  extra);
        return XT_ERR_USAGE;
    }
    if (reordered)
        log_info("convert csv: %s: columns matched to %s's by header name (in another order)",
                 test->path, train->path);
    if (map[p->label] == SIZE_MAX)
        log_info("convert csv: %s: no label column '%s': its rows become /test with X only (for "
                 "predict)", test->path, train->first[p->label]);
    return XT_OK;
}

Status columns_match(const ColumnPlan *p, const CsvTable *train, const CsvTable *test,
                     size_t *map)
{
    Status st = XT_OK;
    if (train->header && test->header) {
        bool *used = calloc(test->ncol, sizeof *used);
        st = used ? match_names(p, train, test, map, used) : XT_ERR_RUNTIME;
        free(used);
    } else if (test->ncol != train->ncol) {
        log_error("%s: %zu columns, but %s has %zu: the test file needs the same columns",
                  test->path, test->ncol, train->path, train->ncol);
        st = XT_ERR_USAGE;
    } else {
        for (size_t j = 0; j < p->ncol; j++) map[j] = j;
        log_info("convert csv: %s: columns matched to %s's by position (%s has no header)",
                 test->path, train->path, train->header ? test->path : train->path);
    }
    for (size_t j = 0; st == XT_OK && j < p->ncol; j++) {
        if (p->role[j] != COL_NUMERIC) continue;
        ColumnStats s;
        table_column_stats(test, map[j], &s);
        if (s.n_word > 0) {
            ColumnOptions none = {0};
            st = refuse_words(test, map[j], &s, &none);
        }
    }
    return st;
}

/* ---- missing values ------------------------------------------------------------------------------ */

static Status refuse_missing(const ColumnPlan *p, const CsvTable *t, size_t j, size_t m,
                             const ColumnStats *s)
{
    size_t i = s->first_miss;
    const char *text = table_missing_text(t, t->cells[i * t->ncol + m]);
    char a[96];
    table_col_label(t, m, a, sizeof a);
    if (j == p->label) {
        log_error("%s:%zu: field %zu (the label) '%.40s': missing value; %zu row(s) have no "
                  "label: --missing drop drops them", t->path, t->line[i], m + 1, text,
                  s->n_miss);
        return XT_ERR_USAGE;
    }
    log_error("%s:%zu: field %zu '%.40s': %s; column %s has %zu missing value(s): --missing "
              "drop drops those rows, --missing mean or median fills them from the training "
              "rows, --drop-columns drops the column (--na-values sets what marks a missing "
              "value)", t->path, t->line[i], m + 1, text,
              text[0] ? "missing value" : "empty field (missing value)", a, s->n_miss);
    return XT_ERR_USAGE;
}

Status columns_check_missing(const ColumnPlan *p, const CsvTable *t, const size_t *map,
                             bool *keep)
{
    size_t dropped = 0;
    for (size_t i = 0; i < t->n; i++) keep[i] = true;
    for (size_t j = 0; j < p->ncol; j++) {
        size_t m = map ? map[j] : j;
        if (p->role[j] == COL_DROPPED || m == SIZE_MAX) continue;
        ColumnStats s;
        table_column_stats(t, m, &s);
        if (s.n_miss == 0) continue;
        bool drop = p->missing == MISSING_DROP || (j == p->label && p->missing != MISSING_REFUSE);
        if (!drop) {
            if (p->missing == MISSING_REFUSE || j == p->label) return refuse_missing(p, t, j, m, &s);
            continue;
        }
        for (size_t i = 0; i < t->n; i++)
            if (cell_is_missing(t->cells[i * t->ncol + m]) && keep[i]) {
                keep[i] = false;
                dropped++;
            }
    }
    if (dropped)
        log_info("convert csv: %s: %zu of %zu rows dropped for missing values (%s)", t->path,
                 dropped, t->n, p->missing == MISSING_DROP ? "--missing drop" : "no label");
    return dropped == t->n ? (log_error("%s: no row left", t->path), XT_ERR_USAGE) : XT_OK;
}

const char *columns_label_text(const ColumnPlan *p, const CsvTable *t, const size_t *map,
                               size_t i, char *buf, size_t len)
{
    return table_cell_text(t, i, map ? map[p->label] : p->label, buf, len);
}

/* ---- fitting ------------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Column j's categories: the distinct texts of the training rows, sorted; the most
 * frequent one is the fill. */
static Status fit_categories(ColumnPlan *p, const CsvTable *t, size_t j, const size_t *rows,
                             size_t n)
{
    size_t k = t->dict[j].n, *count = calloc(k ? k : 1, sizeof *count), nc = 0;
    char **cats = calloc(k ? k : 1, sizeof *cats);
    if (!count || !cats) goto oom;
    for (size_t r = 0; r < n; r++) {
        uint32_t c = t->cells[rows[r] * t->ncol + j];
        if (cell_is_word(c)) count[cell_word_id(c)]++;
    }
    for (size_t w = 0; w < k; w++)
        if (count[w] && !(cats[nc++] = strdup(t->dict[j].words[w]))) goto oom;
    qsort(cats, nc, sizeof *cats, cmp_str);
    size_t best = 0;
    for (size_t w = 1; w < k; w++)
        if (count[w] > count[best] || (count[w] == count[best] && count[w] &&
                                       strcmp(t->dict[j].words[w], t->dict[j].words[best]) < 0))
            best = w;
    if (nc && p->missing >= MISSING_MEAN) {
        const char *const *hit = bsearch(&t->dict[j].words[best], cats, nc, sizeof *cats, cmp_str);
        p->fill_cat[j] = hit - (const char *const *)cats;
    }
    free(count);
    p->cats[j] = cats;
    p->n_cats[j] = nc;
    return XT_OK;
oom:
    free(count);
    if (cats) h5io_strs_free(cats, nc);
    log_error("%s: out of memory for the categories", t->path);
    return XT_ERR_RUNTIME;
}

/* The training rows' mean or median of a numeric column, for its missing values. */
static Status fit_fill(ColumnPlan *p, const CsvTable *t, size_t j, const size_t *rows, size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof *v), sum = 0.0;
    size_t m = 0;
    if (!v) return XT_ERR_RUNTIME;
    for (size_t r = 0; r < n; r++) {
        uint32_t c = t->cells[rows[r] * t->ncol + j];
        if (cell_is_number(c)) sum += (v[m++] = (double)cell_number(c));
    }
    if (p->missing == MISSING_MEDIAN && m) {
        qsort(v, m, sizeof *v, cmp_dbl);
        p->fill[j] = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
    } else if (m) {
        p->fill[j] = sum / (double)m;
    }
    free(v);
    return XT_OK;
}

/* Output names: a numeric column's name; "name=category" per one-hot column. */
static Status fit_names(ColumnPlan *p)
{
    size_t d = 0;
    for (size_t j = 0; j < p->ncol; j++)
        d += p->role[j] == COL_NUMERIC ? 1 : p->role[j] == COL_CATEGORICAL ? p->n_cats[j] : 0;
    p->feature_names = calloc(d ? d : 1, sizeof *p->feature_names);
    if (!p->feature_names) return XT_ERR_RUNTIME;
    p->d = d;
    size_t o = 0;
    for (size_t j = 0; j < p->ncol; j++) {
        for (size_t c = 0; p->role[j] == COL_CATEGORICAL && c < p->n_cats[j]; c++) {
            size_t len = strlen(p->name[j]) + strlen(p->cats[j][c]) + 2;
            if (!(p->feature_names[o] = malloc(len))) return XT_ERR_RUNTIME;
            snprintf(p->feature_names[o++], len, "%s=%s", p->name[j], p->cats[j][c]);
        }
        if (p->role[j] == COL_NUMERIC && !(p->feature_names[o++] = strdup(p->name[j])))
            return XT_ERR_RUNTIME;
    }
    return d > 0 ? XT_OK : (log_error("no feature column is left"), XT_ERR_USAGE);
}

/* Says how column j's missing values are filled; refuses when the training rows have no
 * value to fill with. */
static Status report_fill(const ColumnPlan *p, const CsvTable *t, size_t j)
{
    ColumnStats s;
    table_column_stats(t, j, &s);
    if (s.n_miss == 0 || p->missing < MISSING_MEAN) return XT_OK;
    const char *how = p->missing == MISSING_MEAN ? "mean" : "median";
    char a[96];
    table_col_label(t, j, a, sizeof a);
    if (p->role[j] == COL_NUMERIC ? isnan(p->fill[j]) : p->fill_cat[j] < 0) {
        char r[32];
        log_error("%s: column %s has no value in the training rows to fill its missing values "
                  "with: --drop-columns %s", t->path, a, table_col_ref(t, j, r, sizeof r));
        return XT_ERR_USAGE;
    }
    if (p->role[j] == COL_NUMERIC)
        log_info("convert csv: %s: column %s: %zu missing value(s) filled with the training "
                 "rows' %s, %.7g", t->path, a, s.n_miss, how, p->fill[j]);
    else
        log_info("convert csv: %s: column %s: %zu missing value(s) filled with the training "
                 "rows' most frequent category, '%s'", t->path, a, s.n_miss,
                 p->cats[j][p->fill_cat[j]]);
    return XT_OK;
}

Status columns_fit(ColumnPlan *p, const CsvTable *t, const size_t *rows, size_t n)
{
    Status st = XT_OK;
    for (size_t j = 0; j < p->ncol && st == XT_OK; j++) {
        if (p->role[j] == COL_CATEGORICAL) st = fit_categories(p, t, j, rows, n);
        else if (p->role[j] == COL_NUMERIC && p->missing >= MISSING_MEAN)
            st = fit_fill(p, t, j, rows, n);
        if (st == XT_OK && (p->role[j] == COL_CATEGORICAL || p->role[j] == COL_NUMERIC))
            st = report_fill(p, t, j);
    }
    if (st == XT_OK) st = fit_names(p);
    if (st == XT_ERR_RUNTIME) log_error("%s: out of memory", t->path);
    return st;
}

/* ---- encoding ------------------------------------------------------------------------------------ */

/* One categorical cell: its category index, -1 for one the training rows lack. */
static long category_of(const ColumnPlan *p, const CsvTable *t, size_t j, size_t m, size_t i)
{
    uint32_t c = t->cells[i * t->ncol + m];
    if (cell_is_missing(c)) return p->fill_cat[j];
    char buf[40];
    const char *text = table_cell_text(t, i, m, buf, sizeof buf);
    const char *const *hit = bsearch(&text, p->cats[j], p->n_cats[j], sizeof *p->cats[j], cmp_str);
    return hit ? hit - (const char *const *)p->cats[j] : -1;
}

Status columns_encode(const ColumnPlan *p, const CsvTable *t, const size_t *map,
                      const size_t *rows, size_t n, float *X, const char *what)
{
    for (size_t j = 0; j < p->ncol; j++) {
        size_t unseen = 0, o = 0, first = SIZE_MAX;
        for (size_t q = 0; q < j; q++)
            o += p->role[q] == COL_NUMERIC ? 1 : p->role[q] == COL_CATEGORICAL ? p->n_cats[q] : 0;
        size_t m = map ? map[j] : j;
        for (size_t r = 0; r < n && p->role[j] == COL_NUMERIC; r++) {
            uint32_t c = t->cells[rows[r] * t->ncol + m];
            XT_ASSERT(!cell_is_word(c) && (cell_is_number(c) || !isnan(p->fill[j])));
            X[r * p->d + o] = cell_is_number(c) ? cell_number(c) : (float)p->fill[j];
        }
        for (size_t r = 0; r < n && p->role[j] == COL_CATEGORICAL; r++) {
            float *x = X + r * p->d + o;
            memset(x, 0, p->n_cats[j] * sizeof *x);
            long k = category_of(p, t, j, m, rows[r]);
            if (k >= 0) x[k] = 1.0f;
            else if (unseen++ == 0) first = rows[r];
        }
        char a[96], buf[40];
        if (unseen)
            log_warn("convert csv: %s: %zu row(s) of %s have a category of column %s that the "
                     "training rows lack (e.g. '%.40s' on line %zu): encoded as all zeros",
                     t->path, unseen, what, table_col_label(t, m, a, sizeof a),
                     table_cell_text(t, first, m, buf, sizeof buf), t->line[first]);
    }
    return XT_OK;
}

/* ---- the /encoding group --------------------------------------------------------------------------- */

static const char *role_name(ColumnRole r)
{
    return r == COL_NUMERIC ? "numeric" : r == COL_CATEGORICAL ? "categorical"
           : r == COL_LABEL ? "label" : "dropped";
}

Status columns_write(const ColumnPlan *p, H5File *f)
{
    const char *g = "/encoding";
    const char **roles = calloc(p->ncol, sizeof *roles);
    char **fill = calloc(p->ncol, sizeof *fill);
    Status st = roles && fill ? h5io_create_group(f, g) : XT_ERR_RUNTIME;
    for (size_t j = 0; st == XT_OK && j < p->ncol; j++) {
        char buf[48] = "";
        roles[j] = role_name(p->role[j]);
        if (p->role[j] == COL_NUMERIC && !isnan(p->fill[j])) snprintf(buf, sizeof buf, "%.17g", p->fill[j]);
        const char *text = p->role[j] == COL_CATEGORICAL && p->fill_cat[j] >= 0
                               ? p->cats[j][p->fill_cat[j]] : buf;
        if (!(fill[j] = strdup(text))) st = XT_ERR_RUNTIME;
    }
    static const char *const policy[] = {"refuse", "drop", "mean", "median"};
    if (st == XT_OK) st = h5io_attr_write_strs(f, g, "columns", (const char *const *)p->name, p->ncol);
    if (st == XT_OK) st = h5io_attr_write_strs(f, g, "roles", roles, p->ncol);
    if (st == XT_OK) st = h5io_attr_write_strs(f, g, "fill", (const char *const *)fill, p->ncol);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "missing", policy[p->missing]);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "label_column", p->name[p->label]);
    for (size_t j = 0; st == XT_OK && j < p->ncol; j++) {
        char attr[48];
        snprintf(attr, sizeof attr, "categories_%zu", j);
        if (p->role[j] == COL_CATEGORICAL && p->n_cats[j])
            st = h5io_attr_write_strs(f, g, attr, (const char *const *)p->cats[j], p->n_cats[j]);
    }
    for (size_t j = 0; fill && j < p->ncol; j++) free(fill[j]);
    free(fill);
    free(roles);
    return st;
}
