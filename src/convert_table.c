/* convert_table: see convert_table.h. */
#include "convert_table.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "convert_common.h"
#include "h5io.h"
#include "log.h"
#include "strutil.h"

/* ---- dictionary ---------------------------------------------------------------------- */

static uint64_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static long dict_find(const WordDict *d, const char *s)
{
    if (!d->nslots) return -1;
    for (size_t i = hash_text(s) & (d->nslots - 1);; i = (i + 1) & (d->nslots - 1)) {
        uint32_t v = d->slots[i];
        if (!v) return -1;
        if (!strcmp(d->words[v - 1], s)) return (long)v - 1;
    }
}

static bool dict_rehash(WordDict *d, size_t nslots)
{
    uint32_t *s = calloc(nslots, sizeof *s);
    if (!s) return false;
    for (size_t w = 0; w < d->n; w++) {
        size_t i = hash_text(d->words[w]) & (nslots - 1);
        while (s[i]) i = (i + 1) & (nslots - 1);
        s[i] = (uint32_t)w + 1;
    }
    free(d->slots);
    d->slots = s;
    d->nslots = nslots;
    return true;
}

/* The id of s, added when new; -1 when out of memory or past CELL_MAX_WORDS. */
static long dict_add(WordDict *d, const char *s)
{
    long id = dict_find(d, s);
    if (id >= 0) return id;
    if (d->n >= CELL_MAX_WORDS) return -1;
    if (2 * (d->n + 1) > d->nslots && !dict_rehash(d, d->nslots ? 2 * d->nslots : 64)) return -1;
    if (!convert_grow((void **)&d->words, &d->cap, d->n + 1, sizeof *d->words)) return -1;
    char *c = strdup(s);
    if (!c) return -1;
    d->words[d->n] = c;
    size_t i = hash_text(s) & (d->nslots - 1);
    while (d->slots[i]) i = (i + 1) & (d->nslots - 1);
    d->slots[i] = (uint32_t)++d->n;
    return (long)d->n - 1;
}

static void dict_free(WordDict *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->words[i]);
    free(d->words);
    free(d->slots);
    memset(d, 0, sizeof *d);
}

/* ---- fields ---------------------------------------------------------------------------- */

/* Splits line in place into fields. Returns NULL or what is wrong. */
static const char *split_fields(char *line, char delim, char ***fields, size_t *nf, size_t *cap)
{
    *nf = 0;
    char *p = line;
    for (;;) {
        if (!convert_grow((void **)fields, cap, *nf + 1, sizeof **fields)) return "out of memory";
        char *q = p;
        while (*q == ' ' && delim != ' ') q++;
        if (*q != '"') {
            char *e = strchr(q, delim);
            (*fields)[(*nf)++] = q;
            if (!e) return NULL;
            *e = '\0';
            p = e + 1;
            continue;
        }
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
    }
}

/* The marker index of a missing text (0: empty, i + 1: na[i]), or -1. */
static long missing_marker(const TableOptions *o, const char *text)
{
    if (!text[0]) return 0;
    for (size_t i = 0; i < o->n_na && i < 0x1ffffe; i++)
        if (!strcmp(text, o->na[i])) return (long)i + 1;
    return -1;
}

bool table_is_missing_text(const TableOptions *o, const char *text)
{
    return missing_marker(o, text) >= 0;
}

const char *table_missing_text(const CsvTable *t, uint32_t cell)
{
    uint32_t m = cell & 0x1fffffu;
    return m == 0 || m > t->opt->n_na ? "" : t->opt->na[m - 1];
}

/* One field into a cell. Returns NULL or what is wrong (a number beyond float32). */
static const char *field_cell(CsvTable *t, size_t j, char *field, uint32_t *cell)
{
    char *f = convert_trim(field);
    long marker = missing_marker(t->opt, f);
    if (marker >= 0) {
        *cell = CELL_MISSING | (uint32_t)marker;
        return NULL;
    }
    float v;
    const char *why = t->as_words[j] ? "word" : convert_parse_float(f, &v);
    if (!why) {
        memcpy(cell, &v, sizeof v);
        return NULL;
    }
    if (!strcmp(why, "NaN is not allowed")) { /* "nan", "-nan": a missing value */
        *cell = CELL_MISSING | 0x1fffffu;
        return NULL;
    }
    if (strstr(why, "float32 range")) return why;
    long id = dict_add(&t->dict[j], f);
    if (id < 0) return "out of memory (or more than 2 million distinct texts in one column)";
    *cell = cell_from_word((uint32_t)id);
    return NULL;
}

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct {
    CsvTable *t;
    char **fields;
    size_t nf, fcap;
    bool started;
} ReadCtx;

/* The default delimiter is ','; a first line without one that has tabs (or ';') uses that,
 * and says so. */
static void guess_delimiter(CsvTable *t, const char *line)
{
    if (t->opt->delim_given || strchr(line, ',')) return;
    char d = strchr(line, '\t') ? '\t' : strchr(line, ';') ? ';' : 0;
    if (!d) return;
    t->delim = d;
    log_info("convert csv: %s: line 1 has no ',' but %s: fields are separated by %s "
             "(--delimiter to choose)", t->path, d == '\t' ? "tabs" : "';'",
             d == '\t' ? "tabs" : "';'");
}

static Status resolve_word_cols(CsvTable *t);

/* The first line: the column count, kept as text. */
static Status first_line(ReadCtx *c, size_t lineno)
{
    CsvTable *t = c->t;
    t->ncol = c->nf;
    t->first_line = lineno;
    t->first = calloc(t->ncol, sizeof *t->first);
    t->dict = calloc(t->ncol, sizeof *t->dict);
    t->as_words = calloc(t->ncol, sizeof *t->as_words);
    for (size_t j = 0; t->first && j < t->ncol; j++)
        if (!(t->first[j] = strdup(convert_trim(c->fields[j])))) break;
    if (!t->first || !t->dict || !t->as_words || (t->ncol && !t->first[t->ncol - 1])) {
        log_error("%s:%zu: out of memory", t->path, lineno);
        return XT_ERR_RUNTIME;
    }
    if (t->ncol < 2) {
        log_error("%s:%zu: 1 field with delimiter '%s': expected a label column and at least "
                  "one feature (is --delimiter right?)", t->path, lineno,
                  t->delim == '\t' ? "tab" : (char[]){t->delim, 0});
        return XT_ERR_USAGE;
    }
    return resolve_word_cols(t);
}

static Status data_line(ReadCtx *c, size_t lineno)
{
    CsvTable *t = c->t;
    if (c->nf != t->ncol) {
        log_error("%s:%zu: %zu fields, expected %zu (as on line %zu)%s", t->path, lineno, c->nf,
                  t->ncol, t->first_line,
                  t->n == 0 ? "; if the first line is a preamble (scikit-learn's CSVs start with "
                              "a line of counts and class names), skip it: --skip-rows 1" : "");
        return XT_ERR_USAGE;
    }
    if (!convert_grow((void **)&t->cells, &t->cap, (t->n + 1) * t->ncol, sizeof *t->cells) ||
        !convert_grow((void **)&t->line, &t->lcap, t->n + 1, sizeof *t->line)) {
        log_error("%s:%zu: out of memory", t->path, lineno);
        return XT_ERR_RUNTIME;
    }
    uint32_t *row = t->cells + t->n * t->ncol;
    for (size_t j = 0; j < t->ncol; j++) {
        const char *why = field_cell(t, j, c->fields[j], &row[j]);
        if (why) {
            log_error("%s:%zu: field %zu '%.40s': %s", t->path, lineno, j + 1,
                      convert_trim(c->fields[j]), why);
            return strstr(why, "memory") ? XT_ERR_RUNTIME : XT_ERR_USAGE;
        }
    }
    t->line[t->n++] = lineno;
    return XT_OK;
}

static Status on_line(char *line, size_t lineno, void *ctx)
{
    ReadCtx *c = ctx;
    CsvTable *t = c->t;
    if (lineno <= t->opt->skip_rows) return XT_OK;
    if (!c->started) guess_delimiter(t, line);
    const char *why = split_fields(line, t->delim, &c->fields, &c->nf, &c->fcap);
    if (why) {
        log_error("%s:%zu: %s%s", t->path, lineno, why,
                  strchr(line, '\t') && t->delim != '\t'
                      ? " (the line has tabs: a TSV file? --delimiter tab)" : "");
        return XT_ERR_USAGE;
    }
    if (c->started) return data_line(c, lineno);
    c->started = true;
    return first_line(c, lineno);
}

Status table_read(CsvTable *t, const TableOptions *o)
{
    memset(t, 0, sizeof *t);
    t->opt = o;
    t->path = o->path;
    t->delim = o->delim;
    ReadCtx c = {.t = t};
    Status st = convert_each_line("csv", o->path, on_line, &c);
    free(c.fields);
    if (st == XT_OK && !c.started) {
        log_error("%s: no data rows", o->path);
        st = XT_ERR_USAGE;
    }
    return st;
}

void table_free(CsvTable *t)
{
    for (size_t j = 0; t->first && j < t->ncol; j++) free(t->first[j]);
    for (size_t j = 0; t->dict && j < t->ncol; j++) dict_free(&t->dict[j]);
    free(t->first);
    free(t->dict);
    free(t->as_words);
    free(t->cells);
    free(t->line);
    memset(t, 0, sizeof *t);
}

/* ---- names ---------------------------------------------------------------------------------- */

const char *table_col_name(const CsvTable *t, size_t j)
{
    return t->header ? t->first[j] : "";
}

const char *table_col_label(const CsvTable *t, size_t j, char *buf, size_t len)
{
    if (t->header && t->first[j][0]) snprintf(buf, len, "'%.60s'", t->first[j]);
    else snprintf(buf, len, "%zu", j + 1);
    return buf;
}

const char *table_col_ref(const CsvTable *t, size_t j, char *buf, size_t len)
{
    if (t->header && t->first[j][0] && !strchr(t->first[j], ',')) return t->first[j];
    snprintf(buf, len, "%zu", j);
    return buf;
}

static bool is_index(const char *s, long long *v)
{
    char *end = NULL;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return s[0] && !*end && !errno;
}

/* A close header name for a hint: the same but for case, else within 2 edits. */
static const char *near_name(const CsvTable *t, const char *spec)
{
    for (size_t j = 0; j < t->ncol; j++)
        if (strutil_ieq(t->first[j], spec)) return t->first[j];
    size_t best = 3;
    const char *hit = NULL;
    for (size_t j = 0; j < t->ncol; j++) {
        size_t d = strutil_edit_distance(t->first[j], spec);
        if (d < best) {
            best = d;
            hit = t->first[j];
        }
    }
    return hit;
}

/* Resolves against the first line's fields (names are only valid with a header). */
static size_t resolve(const CsvTable *t, const char *spec, const char *what, bool names_ok)
{
    long long v = 0;
    if (is_index(spec, &v)) {
        long long idx = v < 0 ? (long long)t->ncol + v : v;
        if (idx >= 0 && idx < (long long)t->ncol) return (size_t)idx;
        log_error("%s: %s %s is outside the %zu columns of line %zu (columns count from 0)",
                  t->path, what, spec, t->ncol, t->first_line);
        return SIZE_MAX;
    }
    for (size_t j = 0; names_ok && j < t->ncol; j++)
        if (!strcmp(t->first[j], spec)) return j;
    if (!names_ok) {
        log_error("%s: %s %s names a column but the file has no header (--no-header): give "
                  "the column's index from 0", t->path, what, spec);
        return SIZE_MAX;
    }
    const char *near = near_name(t, spec);
    char hint[160] = "";
    if (near) snprintf(hint, sizeof hint, "; did you mean '%.100s'?", near);
    log_error("%s:%zu: no column named '%s' in the header (%s)%s", t->path, t->first_line, spec,
              what, hint);
    return SIZE_MAX;
}

size_t table_resolve_column(const CsvTable *t, const char *spec, const char *what)
{
    return resolve(t, spec, what, t->header);
}

/* --categorical and the label column are read as words: resolved on the first line (a
 * name there means the first line is the header). */
static Status resolve_word_cols(CsvTable *t)
{
    for (size_t i = 0; i < t->opt->n_word_cols; i++) {
        const char *spec = t->opt->word_cols[i];
        if (t->opt->lenient_names) { /* names of another file's columns: those found */
            for (size_t j = 0; j < t->ncol; j++) t->as_words[j] |= !strcmp(t->first[j], spec);
            continue;
        }
        size_t j = resolve(t, spec, i == 0 ? "--label-column" : "--categorical", true);
        if (j == SIZE_MAX) return XT_ERR_USAGE;
        t->as_words[j] = true;
    }
    return XT_OK;
}

long table_find_word(const CsvTable *t, size_t j, const char *text)
{
    return dict_find(&t->dict[j], text);
}

/* The shortest "%.*g" that reads back as the float v. */
static void float_text(float v, char *buf, size_t len)
{
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, len, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

const char *table_cell_text(const CsvTable *t, size_t i, size_t j, char *buf, size_t len)
{
    uint32_t c = t->cells[i * t->ncol + j];
    if (cell_is_missing(c)) return "";
    if (cell_is_word(c)) return t->dict[j].words[cell_word_id(c)];
    float_text(cell_number(c), buf, len);
    return buf;
}

/* ---- header ----------------------------------------------------------------------------------- */

typedef enum { LOOKS_EMPTY, LOOKS_NAME, LOOKS_VALUE } Looks;

/* Whether column j (rows read so far) holds any number, or any word that is one. */
static bool column_has_numbers(const CsvTable *t, size_t j)
{
    for (size_t i = 0; i < t->n; i++)
        if (cell_is_number(t->cells[i * t->ncol + j])) return true;
    double v;
    for (size_t w = 0; w < t->dict[j].n; w++)
        if (convert_parse_number(t->dict[j].words[w], &v)) return true;
    return false;
}

/* How field j of the first line looks against its column: a name (a word where the column
 * holds numbers, or a text that never occurs in it), a value, or empty. *num gets a
 * number when the field is one. */
static Looks first_field_looks(const CsvTable *t, size_t j, double *num, bool *is_num)
{
    const char *f = t->first[j];
    *is_num = convert_parse_number(f, num);
    if (table_is_missing_text(t->opt, f)) return LOOKS_EMPTY;
    if (*is_num) return LOOKS_VALUE;
    if (!t->as_words[j] && t->dict[j].n == 0) return LOOKS_NAME; /* numbers (or nothing) */
    if (dict_find(&t->dict[j], f) >= 0) return LOOKS_VALUE;
    return LOOKS_NAME;
}

/* pandas writes unnamed columns as 0, 1, 2, ...: three or more numeric fields that count
 * up by one are column numbers, and so are two from 0 beside a name. */
static bool column_numbers(const double *v, size_t m, bool beside_name)
{
    if (m < 3 && !(m == 2 && beside_name && v[0] == 0.0)) return false;
    for (size_t i = 0; i < m; i++)
        if (v[i] != floor(v[i]) || (i > 0 && v[i] != v[i - 1] + 1.0)) return false;
    return true;
}

/* The first line as data: its fields become row 0. */
static Status insert_first_row(CsvTable *t)
{
    size_t nc = t->ncol;
    if (!convert_grow((void **)&t->cells, &t->cap, (t->n + 1) * nc, sizeof *t->cells) ||
        !convert_grow((void **)&t->line, &t->lcap, t->n + 1, sizeof *t->line)) {
        log_error("%s: out of memory", t->path);
        return XT_ERR_RUNTIME;
    }
    memmove(t->cells + nc, t->cells, t->n * nc * sizeof *t->cells);
    memmove(t->line + 1, t->line, t->n * sizeof *t->line);
    for (size_t j = 0; j < nc; j++) {
        char *copy = strdup(t->first[j]);
        const char *why = copy ? field_cell(t, j, copy, &t->cells[j]) : "out of memory";
        free(copy);
        if (why) {
            log_error("%s:%zu: field %zu '%.40s': %s", t->path, t->first_line, j + 1,
                      t->first[j], why);
            return XT_ERR_USAGE;
        }
    }
    t->line[0] = t->first_line;
    t->n++;
    return XT_OK;
}

/* Classifies the first line's fields; *name_j and *value_j get one of each (SIZE_MAX). */
static void classify_first(const CsvTable *t, size_t *names, size_t *values, size_t *name_j,
                           size_t *value_j, bool *numbered)
{
    double *nums = malloc(t->ncol * sizeof *nums);
    size_t *num_j = malloc(t->ncol * sizeof *num_j), m = 0;
    *names = *values = 0;
    *name_j = *value_j = SIZE_MAX;
    Looks *looks = malloc(t->ncol * sizeof *looks);
    bool any_name = false;
    for (size_t j = 0; nums && num_j && looks && j < t->ncol; j++) {
        double v;
        bool is_num;
        looks[j] = first_field_looks(t, j, &v, &is_num);
        any_name |= looks[j] == LOOKS_NAME;
        if (is_num) {
            nums[m] = v;
            num_j[m++] = j;
        }
    }
    *numbered = nums && num_j && looks && column_numbers(nums, m, any_name);
    for (size_t j = 0; nums && num_j && looks && j < t->ncol; j++) {
        Looks l = looks[j];
        if (*numbered && l == LOOKS_VALUE && convert_parse_number(t->first[j], &nums[0]))
            l = LOOKS_NAME;
        if (l == LOOKS_NAME && (*names)++ == 0) *name_j = j;
        if (l == LOOKS_VALUE && (*values)++ == 0) *value_j = j;
    }
    free(nums);
    free(num_j);
    free(looks);
}

Status table_decide_header(CsvTable *t, int header)
{
    if (header >= 0) {
        t->header = header == 1;
        return t->header ? XT_OK : insert_first_row(t);
    }
    size_t names, values, nj, vj;
    bool numbered;
    classify_first(t, &names, &values, &nj, &vj, &numbered);
    char a[128], b[128];
    if (names > 0 && values > 0) {
        log_error("%s:%zu: the first line is neither a header (names only) nor data: field %zu '%.40s' "
                  "looks like a column name (%s) but field %zu '%.40s' like a value. A preamble "
                  "(scikit-learn's CSVs start with a line of counts and class names): "
                  "--skip-rows 1; a header: --header; data: --no-header", t->path,
                  t->first_line, nj + 1, t->first[nj],
                  column_has_numbers(t, nj) ? "a word where the column holds numbers"
                                            : "it never occurs in its column",
                  vj + 1, t->first[vj]);
        return XT_ERR_USAGE;
    }
    t->header = names > 0;
    if (t->header)
        log_info("convert csv: %s: line %zu is the header (%s; --no-header if it is data)",
                 t->path, t->first_line,
                 numbered ? "its fields count the columns 0, 1, 2, ... as pandas writes "
                            "unnamed columns"
                 : nj != SIZE_MAX && column_has_numbers(t, nj)
                     ? (snprintf(a, sizeof a, "field %zu '%.40s' is a word above numbers", nj + 1,
                                 t->first[nj]), a)
                     : "its fields never occur as values below it");
    else
        log_info("convert csv: %s: no header: line %zu is data (%s; --header if it names the "
                 "columns)", t->path, t->first_line,
                 values ? (snprintf(b, sizeof b, "field %zu '%.40s' is a value of its column",
                                    vj + 1, t->first[vj]), b)
                        : "every field is empty");
    return t->header ? XT_OK : insert_first_row(t);
}

/* ---- statistics ---------------------------------------------------------------------------------- */

void table_column_stats(const CsvTable *t, size_t j, ColumnStats *s)
{
    *s = (ColumnStats){.first_num = SIZE_MAX, .first_word = SIZE_MAX, .first_miss = SIZE_MAX,
                       .first_frac = SIZE_MAX, .all_int = true, .increasing = true,
                       .consecutive = true, .min = INFINITY, .max = -INFINITY};
    double prev = 0.0;
    for (size_t i = 0; i < t->n; i++) {
        uint32_t c = t->cells[i * t->ncol + j];
        if (!cell_is_number(c)) {
            s->increasing = s->consecutive = false;
            if (cell_is_missing(c) && s->n_miss++ == 0) s->first_miss = i;
            if (cell_is_word(c) && s->n_word++ == 0) s->first_word = i;
            continue;
        }
        double v = (double)cell_number(c);
        if (s->n_num++ == 0) s->first_num = i;
        if (v != floor(v) && s->all_int) {
            s->all_int = false;
            s->first_frac = i;
        }
        if (fabs(v) >= 16777216.0) s->big_int = true;
        if (i > 0 && !(v > prev)) s->increasing = false;
        if (i > 0 && v != prev + 1.0) s->consecutive = false;
        prev = v;
        if (v < s->min) s->min = v;
        if (v > s->max) s->max = v;
    }
    if (!s->all_int) s->increasing = s->consecutive = false;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

bool table_column_distinct(const CsvTable *t, size_t j)
{
    uint32_t *v = malloc((t->n ? t->n : 1) * sizeof *v);
    if (!v) return false;
    bool ok = true;
    for (size_t i = 0; i < t->n && ok; i++) {
        uint32_t c = t->cells[i * t->ncol + j];
        float f = cell_number(c);
        if (cell_is_missing(c)) ok = false;
        if (cell_is_number(c) && f == 0.0f) c = 0; /* -0 and 0 are one value */
        v[i] = c;
    }
    if (ok) qsort(v, t->n, sizeof *v, cmp_u32);
    for (size_t i = 1; i < t->n && ok; i++) ok = v[i] != v[i - 1];
    free(v);
    return ok;
}
