/* convert_table: a delimited text file read into memory as typed cells, for
 * `xentrain convert csv` (private to convert; convert_columns.h decides what the
 * columns are, convert_csv.c drives both).
 *
 * Every field of every data row becomes one 32-bit cell: a finite float32 number, a
 * missing value (an empty field or one of the missing-value markers), or a word: an id
 * into the column's dictionary of distinct texts (NaN-boxed, so the table takes the
 * memory of a float matrix). Nothing is decided while reading except what a single
 * field shows; the first line is kept aside as text until table_decide_header has seen
 * every column (a header is a line whose fields are words where the columns hold
 * numbers, or names that never occur as values, or the column numbers 0, 1, 2, ...).
 *
 * Messages name the file and line. Local; serial.
 */
#ifndef XT_CONVERT_TABLE_H
#define XT_CONVERT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

/* The distinct texts of one column; ids in first-seen order. */
typedef struct {
    char **words;    /* id -> text, owned */
    size_t n, cap;
    uint32_t *slots; /* open addressing: id + 1, 0 = empty */
    size_t nslots;
} WordDict;

/* Cells: numbers are float32 bits; tags are quiet NaNs with a payload: a missing value
 * (with the index of its marker: 0 the empty field, i + 1 TableOptions.na[i]) or a word. */
#define CELL_MISSING 0x7fe00000u
#define CELL_MAX_WORDS 0x1ffffeu
static inline bool cell_is_number(uint32_t c) { return (c & 0x7f800000u) != 0x7f800000u; }
static inline bool cell_is_missing(uint32_t c) { return (c & 0xffe00000u) == CELL_MISSING; }
static inline bool cell_is_word(uint32_t c) { return !cell_is_number(c) && !cell_is_missing(c); }
static inline uint32_t cell_word_id(uint32_t c) { return (c & 0x1fffffu) - 1u; }
static inline uint32_t cell_from_word(uint32_t id) { return 0x7fc00000u | (id + 1u); }
static inline float cell_number(uint32_t c)
{
    float f;
    memcpy(&f, &c, sizeof f);
    return f;
}

/* How to read the file. */
typedef struct {
    const char *path;
    char delim;               /* field separator */
    bool delim_given;         /* else a first line with tabs (or ';') and no ',' switches */
    size_t skip_rows;         /* lines before the first line */
    const char *const *na;    /* missing-value markers besides the empty field */
    size_t n_na;
    const char *const *word_cols; /* columns (index or header name) whose every value is a
                                     word: the label first, then --categorical's; a name
                                     there means the first line is the header */
    size_t n_word_cols;
    bool lenient_names;       /* word_cols are names that may be absent (another file's) */
} TableOptions;

typedef struct {
    const char *path;
    char delim;
    size_t ncol;
    char **first;        /* the first line's fields (ncol texts, owned) */
    size_t first_line;   /* its line number */
    bool header;         /* the first line names the columns (table_decide_header) */
    uint32_t *cells;     /* (n, ncol) the data rows */
    size_t *line;        /* (n) their line numbers */
    size_t n, cap, lcap;
    WordDict *dict;      /* (ncol) */
    bool *as_words;      /* (ncol) every value of the column read as a word */
    const TableOptions *opt; /* borrowed for the table's life */
} CsvTable;

/* Reads the whole file. Fields that are neither numbers nor missing become words; a
 * number beyond float32's range is refused (file and line). Local. */
Status table_read(CsvTable *t, const TableOptions *o);
void table_free(CsvTable *t);

/* Decides whether the first line is a header: header = 1 yes, 0 no, -1 detect (and say
 * why on stdout). A first line that is data becomes row 0. Refuses a line that is
 * neither (some fields look like names, others like values), naming one of each. */
Status table_decide_header(CsvTable *t, int header);

/* Column j for messages, after the word "column": "'Species'", or "3" (1-based, as
 * field numbers) without a header name. */
const char *table_col_label(const CsvTable *t, size_t j, char *buf, size_t len);
/* Column j as an option value: its header name, or its index from 0. */
const char *table_col_ref(const CsvTable *t, size_t j, char *buf, size_t len);
/* Column j's header name, "" without a header. */
const char *table_col_name(const CsvTable *t, size_t j);
/* The text of cell (i, j): a word's text, a number in its shortest float32 form, or ""
 * for a missing value. buf (>= 32 bytes) holds numbers. */
const char *table_cell_text(const CsvTable *t, size_t i, size_t j, char *buf, size_t len);
/* The marker of a missing cell as the file had it ("" or "NA"). */
const char *table_missing_text(const CsvTable *t, uint32_t cell);
/* A word's id in column j's dictionary, or -1. */
long table_find_word(const CsvTable *t, size_t j, const char *text);
/* Whether text is a missing-value marker of o (the empty field always is). */
bool table_is_missing_text(const TableOptions *o, const char *text);
/* Resolves a column given as an index (negative counts from the end) or a header name.
 * Returns SIZE_MAX with a message (naming `what`, e.g. "--label-column") when there is
 * none, with a case-insensitive or close "did you mean". */
size_t table_resolve_column(const CsvTable *t, const char *spec, const char *what);

/* What a column holds, over the rows given (all rows when rows == NULL). */
typedef struct {
    size_t n_num, n_word, n_miss;
    size_t first_num, first_word, first_miss, first_frac; /* row indices; SIZE_MAX: none */
    bool all_int;        /* every number an integer */
    bool big_int;        /* an integer of magnitude >= 2^24: float32 merges neighbours */
    bool increasing;     /* every row a number, strictly increasing down the file */
    bool consecutive;    /* ... by exactly 1 */
    double min, max;
} ColumnStats;
void table_column_stats(const CsvTable *t, size_t j, ColumnStats *s);
/* Whether the column's values are all different (numbers or words; no missing). */
bool table_column_distinct(const CsvTable *t, size_t j);

#endif
