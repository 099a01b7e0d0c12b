/* convert_columns: what each column of a CSV table is, and the table encoded as
 * features (private to `xentrain convert csv`; convert_table.h reads the cells).
 *
 * Decided once, on the training file, and said on stdout every time:
 *   - the label column and why (--label-column, or the last column by default; a default
 *     that looks wrong is refused with the fix: the header names another column as the
 *     likely label, the column holds fractions, one value, more values than half the
 *     rows, or the first column holds words while the last holds numbers);
 *   - columns dropped and why (--drop-columns; an unnamed header field or an id-like
 *     name over all-different values: row names and ids; a column with no value) and
 *     columns refused (integers increasing down the file: 0 or 1, 2, 3, ... over 20 rows or
 *     more, any step over 50 rows or more: row numbers or ids, which leak the file's order;
 *     --keep-columns keeps one);
 *   - numeric or categorical: a column of words is one-hot encoded (--categorical auto)
 *     or only the columns named (--categorical NAMES); numbers mixed with words are
 *     refused, naming the first word;
 *   - missing values: refused (the default), rows dropped, or filled with the training
 *     rows' mean or median (categorical: their most frequent category).
 * Categories and fill values come from the training rows only (columns_fit) and are
 * applied to every split and to the --test-input file (columns_match matches its columns
 * by header name). The decisions are stored in the output's /encoding group
 * (columns_write) so that `convert csv --schema F.h5` encodes new data the same way.
 * Local; serial.
 */
#ifndef XT_CONVERT_COLUMNS_H
#define XT_CONVERT_COLUMNS_H

#include <stdbool.h>
#include <stddef.h>

#include "convert_table.h"
#include "error.h"
#include "h5io.h"

typedef enum { COL_NUMERIC, COL_CATEGORICAL, COL_LABEL, COL_DROPPED } ColumnRole;
typedef enum { MISSING_REFUSE, MISSING_DROP, MISSING_MEAN, MISSING_MEDIAN } MissingPolicy;

#define COLUMNS_MAX_AUTO_CATEGORIES 1000 /* more distinct words: ids or free text */

typedef struct {
    const char *label;             /* --label-column, NULL: the last column */
    const char *const *drop;       /* --drop-columns */
    size_t n_drop;
    const char *const *keep;       /* --keep-columns */
    size_t n_keep;
    bool categorical_auto;         /* a column of words is categorical */
    bool categorical_given;        /* --categorical named the columns (not auto) */
    MissingPolicy missing;
} ColumnOptions;

typedef struct {
    size_t ncol, label;
    ColumnRole *role;    /* (ncol) */
    char **name;         /* (ncol) the header's names, or "column N" */
    char ***cats;        /* (ncol) categorical: sorted categories of the training rows */
    size_t *n_cats;
    double *fill;        /* (ncol) numeric fill, NaN: none */
    long *fill_cat;      /* (ncol) categorical fill (a category's index), -1: none */
    size_t d;            /* features out */
    char **feature_names; /* (d) names out ("color=red" for one-hot columns) */
    MissingPolicy missing;
    const char *label_why;
} ColumnPlan;

/* Decides the label, the dropped columns and each column's kind (see above). Prints the
 * decisions; refuses with a message naming the column and the fix. */
Status columns_plan(ColumnPlan *p, const CsvTable *t, const ColumnOptions *o);
void columns_free(ColumnPlan *p);

/* map[j] = the column of `test` that holds the plan's column j (SIZE_MAX: a dropped
 * column the test file lacks). With headers on both, by name, in any order (said when
 * reordered); refuses a missing or extra column with the lists. Without a header, by
 * position. Refuses words in a numeric column (file and line). A test file with a header
 * and without the label column is unlabelled: map[p->label] = SIZE_MAX (rows to predict). */
Status columns_match(const ColumnPlan *p, const CsvTable *train, const CsvTable *test,
                     size_t *map);

/* Missing values in the plan's columns of table t (columns through map; NULL: the same
 * positions): refused, or keep[i] = false for the rows to drop (--missing drop; rows
 * without a label under mean and median). Prints what was dropped. */
Status columns_check_missing(const ColumnPlan *p, const CsvTable *t, const size_t *map,
                             bool *keep);
/* The label text of row i (through map): a word, or a number in its shortest form. */
const char *columns_label_text(const ColumnPlan *p, const CsvTable *t, const size_t *map,
                               size_t i, char *buf, size_t len);

/* Categories and fill values from the training rows (rows of t), and the output names. */
Status columns_fit(ColumnPlan *p, const CsvTable *t, const size_t *rows, size_t n);

/* X (n, p->d) from rows of t (through map). Counts categories the training rows did not
 * have (all-zero one-hot columns) and says so, naming `what`. */
Status columns_encode(const ColumnPlan *p, const CsvTable *t, const size_t *map,
                      const size_t *rows, size_t n, float *X, const char *what);

/* The /encoding group: columns, roles, fill values, categories, the missing policy. */
Status columns_write(const ColumnPlan *p, H5File *f);

#endif
