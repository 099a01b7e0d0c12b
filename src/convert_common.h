/* convert_common: what the three readers (convert_idx.c, convert_csv.c,
 * convert_libsvm.c) share, private to `xentrain convert`.
 *
 * Each reader parses its input into a ConvertTable (features and class ids in memory),
 * then convert_write() splits the rows into /train, /val and /test and writes them with
 * dataset_write_split (the layout dataset.h reads), atomically. Messages name the file
 * and line; exit codes are 2 for bad input or options and 1 for I/O while writing.
 * Inputs are read through zlib's gz* functions: gzip and plain files alike.
 */
#ifndef XT_CONVERT_COMMON_H
#define XT_CONVERT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csr.h"
#include "error.h"
#include "h5io.h"
#include "opts.h"

#define CONVERT_LINE_MAX ((size_t)8 << 20) /* longest text line accepted: 8 MiB */
#define CONVERT_MAX_CLASSES 65536          /* more distinct labels: wrong column? */
#define CONVERT_OUT_OPTS 5                  /* entries convert_out_opts adds */
/* The end of every reader's --help. */
#define CONVERT_WRITES                                                                     \
    "Inputs may be gzip or plain; lines are limited to 8 MiB. The output holds /train,\n"   \
    "/val and /test groups (each X (N, D) and y (N,) int32) and is written to OUT.tmp,\n"   \
    "then renamed: a failed convert leaves no partial file."

/* The options every reader shares: the output, and --input for the text readers. */
typedef struct {
    const char *input;    /* --input F, for the text readers (ConvertReader.text_input) */
    const char *out;
    double val_fraction;  /* random held-out fraction of the training rows */
    size_t val_tail;      /* or: the last val_tail rows (idx only) */
    bool val_tail_set, val_fraction_set;
    double test_fraction; /* random fraction for /test (csv, libsvm) */
    uint64_t seed;
    size_t gzip;
    bool stratify;        /* val and test fractions taken class by class */
    size_t fixed_test;    /* > 0: the table's last fixed_test rows are /test (a reader
                             read them from a separate file) */
} OutOptions;


/* Rows of one table: X (n, d) as uint8 or float32, y (n) class ids; the column names
 * when the input had a header (feature_names, d of them, or NULL). */
typedef struct {
    const void *X;
    CsrRows *csr;        /* X as CSR rows instead (owned: convert.c frees it), or NULL */
    bool x_u8;
    size_t n, d;
    const int32_t *y;
    char **feature_names;
    double scale;        /* X's scale attribute (0: none) */
    bool test_unlabelled; /* the fixed_test rows have no label: /test holds X only */
    char **class_names;  /* class names when the labels are not words themselves, or NULL
                            (borrowed; k of them, LabelMap.k) */
    /* More for the output file (csv: the /encoding group), or NULL; ctx is the reader's. */
    Status (*write_extra)(H5File *f, const void *ctx);
    const void *extra_ctx;
} ConvertTable;

/* The rows of one split, ascending. */
typedef struct {
    size_t *idx;
    size_t n;
} RowSet;

/* Splits rows [0, n) into train, val and test: val is the tail (val_tail) or a seeded
 * random fraction; test a seeded random fraction, or the last fixed_test rows. With
 * stratify (and y) the fractions are taken within each class. Each set keeps the file
 * order. */
Status convert_split_rows(size_t n, const int32_t *y, const OutOptions *o, RowSet *train,
                          RowSet *val, RowSet *test);
void convert_rowset_free(RowSet *s);

/* Label remapping: the distinct labels in class order, as text. */
typedef struct {
    char **values;  /* NULL when !remapped */
    size_t k;
    bool names;     /* the labels were words: they are the class names too */
    bool remapped;  /* false: the labels were class ids 0..K-1 already (kept) */
} LabelMap;

/* Numeric labels -> ids in sorted order of the distinct values. keep_ids: labels that
 * are all integers in [0, 2^31) are kept as they are. */
Status convert_labels_from_numbers(const char *path, const double *lab, size_t n,
                                   bool keep_ids, int32_t *y, LabelMap *m);
/* Text labels: numbers if every label is one, else words in sorted (strcmp) order. */
Status convert_labels_from_text(const char *path, char *const *lab, size_t n, int32_t *y,
                                LabelMap *m);
void convert_labelmap_free(LabelMap *m);

/* One reader: its help text, its own options and what it does. convert.c parses the
 * reader's options together with the output options (one table), then runs it. A
 * reader keeps its parsed options in its own file (convert runs once per process). */
typedef struct {
    const char *name;     /* "csv" */
    const char *synopsis; /* NULL: "--input F [options] --out F.h5" */
    const char *about;    /* --help, before the options */
    const char *notes;    /* --help, after them, or NULL */
    bool text_input;      /* reads one text file: --input F */
    /* Sets the defaults and writes the reader's option entries; returns how many (at
     * most CONVERT_READER_OPTS). */
    size_t (*options)(OptSpec *specs, OutOptions *out);
    /* Rules between the options, after parsing; NULL: none. */
    Status (*check)(OutOptions *out);
    /* Either read: the input into a table (X and y malloc'd, owned by the table) and its
     * label map, which convert.c writes (convert_write) and frees; or run: read and
     * write on its own (idx: uint8 pixels, a separate test set). */
    Status (*read)(OutOptions *out, ConvertTable *t, LabelMap *m);
    Status (*run)(const OutOptions *out);
    /* Frees what read kept for write_extra; NULL: nothing. */
    void (*release)(void);
} ConvertReader;

#define CONVERT_READER_OPTS 14

extern const ConvertReader convert_idx_reader, convert_csv_reader, convert_libsvm_reader,
    convert_h5_reader;


/* Writes train/val/test of a float table and the label attributes, atomically. */
Status convert_write(const char *cmd, const ConvertTable *t, const LabelMap *m,
                     const OutOptions *o);

/* Calls fn on every non-blank line of a text file (gzip or plain), without its line
 * end, with its 1-based number; stops at the first status fn returns other than XT_OK.
 * Read errors, over-long lines and NUL bytes are reported (file and line) as
 * XT_ERR_USAGE. */
typedef Status (*ConvertLineFn)(char *line, size_t lineno, void *ctx);
Status convert_each_line(const char *cmd, const char *path, ConvertLineFn fn, void *ctx);
/* XT_OK when a reader found rows (n > 0), else "no data rows" (XT_ERR_USAGE). */
Status convert_rows_read(const char *path, size_t n);

bool convert_blank(const char *s);
/* Whether s is well-formed UTF-8 (HDF5 string attributes are stored as UTF-8). */
bool convert_valid_utf8(const char *s);
char *convert_trim(char *s);
/* A whole field as a finite float32. Returns NULL or what is wrong. */
const char *convert_parse_float(const char *s, float *out);
/* A whole string as a finite double. */
bool convert_parse_number(const char *s, double *out);
/* Grows *p (cap elements of elem bytes) to hold need elements, doubling. */
bool convert_grow(void **p, size_t *cap, size_t need, size_t elem);
/* Physical memory of this machine in bytes, or 0 when unknown. */
double convert_physical_memory(void);


#endif
