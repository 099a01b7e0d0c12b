/* dataset: one split of an HDF5 data file, as the rows this rank holds.
 *
 * A split is named "file.h5:/group" ("file.h5" alone means "/train"); datasets with other
 * names than X and y are named after a '?': "file.h5:/group?X=data&y=labels" (a name may be
 * a path: "f.h5ad:/?X=X&y=obs/cell_type"). The group holds
 *   X  (N, D)  any integer or float type, converted to float32 on read;
 *   y  (N,)    integer class ids (converted to int32), or
 *      (N, K)  floats in [0, 1]: multi-label or soft targets.
 * X may instead be a CSR group (AnnData/h5ad or scipy/h5sparse: data, indices, indptr;
 * docs/sparse.md), read as the rows' CSR (Dataset.csr), checked row by row.
 * Optional attributes: on X, "scale" (double: multiply to get the intended feature
 * scale, e.g. 1/255 for uint8 pixels); on the group or file root, "class_names".
 *
 * Reading is two-phase so the caller can decide row ranges from N first:
 *   dataset_probe  - open, check layout and types, report N, D, K-ish facts;
 *   dataset_load   - read rows [lo, hi) of X and y with one hyperslab per dataset,
 *                    in bounded blocks (never two full-size copies), check values.
 * This module never decides who reads what: the caller passes the row range (see
 * shard.h). It does not normalise on its own either: it offers per-shard sums for the
 * caller to allreduce, and applies the resulting statistics.
 */
#ifndef XT_DATASET_H
#define XT_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "csr.h"
#include "error.h"
#include "h5io.h"
#include "loss.h"

/* How class ids are stored: integers (bools, whole floats); strings (variable- or fixed-
 * length: the class names; ids in the order of the class_names attribute when there is
 * one, else the sorted distinct strings of y in this group and its sibling groups, so that
 * /train, /val and /test of a file agree); or a group with integer `codes` and string
 * `categories` (AnnData's categorical columns, e.g. /obs/cell_type; code -1 = missing). */
typedef enum { LABELS_IDS, LABELS_STRINGS, LABELS_CODES } DatasetLabels;

typedef struct {
    char file[XT_PATH_MAX];   /* path of the HDF5 file */
    char group[256];          /* "/train" */
    bool group_given;         /* the spec named the group (else "/train" was assumed) */
    char x_name[128], y_name[128]; /* the datasets' names in the group ("X", "y"), or paths
                                        (relative to the group, or from the root with '/') */
    uint64_t x_object;        /* X's address in the file (h5io), to spot links; 0 unknown */
    bool has_y;               /* the split holds targets (predict reads splits without) */
    char y_type[160];         /* y's shape and type, and how it is read, for banners */
    size_t n;                 /* N rows */
    size_t d;                 /* D features */
    TargetKind target;        /* y is (N,) class ids or (N, K) dense */
    DatasetLabels y_labels;   /* how class ids are stored (TARGET_CLASS) */
    size_t k_declared;        /* classes the file names for y: its categories, its distinct
                                 strings, or the label_values or class_names attribute; 0 */
    size_t k_dense;           /* K when target == TARGET_DENSE, else 0 */
    double x_scale;           /* X's "scale" attribute, or 0 when absent */
    bool x_u8;                /* X is stored as uint8 (dataset_load_compact keeps it so) */
    char x_type[32];          /* on-disk type of X, for banners ("uint8") */
    size_t x_chunk_rows;      /* X's rows per chunk when chunked, else 0 */
    bool x_csr;               /* X is a CSR group (docs/sparse.md): held as Dataset.csr */
    size_t x_nnz;             /* its non-zeros (x_csr) */
} DatasetInfo;

/* A cheap fingerprint of a split's contents, kept in checkpoints so that a resume on other
 * data (the file regenerated, another file at the same path) is refused. The shape and a
 * CRC-32 of 16 evenly spaced runs of 4 rows of X and y as stored (the first and the last
 * rows among them; string labels as their texts, categories by their codes): a copy of the file (another mtime, another layout of the same data)
 * matches; regenerated data almost surely does not; a change of a few values between the
 * sampled rows is not seen (cheap by design: 64 rows read). The file's size and mtime are
 * recorded for messages only. */
typedef struct {
    int64_t rows, cols;
    int64_t crc;              /* CRC-32 of the sampled rows */
    int64_t file_bytes, mtime;
} DataPrint;

typedef struct {
    DatasetInfo info;
    size_t lo, hi;            /* global rows [lo, hi) held here */
    float *X;                 /* (hi - lo, D) row-major; owned (NULL when X8 is used) */
    uint8_t *X8;              /* (hi - lo, D) the stored bytes, from dataset_load_compact
                                 of a uint8 X; owned; rows become float when gathered */
    int32_t *y;               /* (hi - lo) class ids, TARGET_CLASS; owned */
    float *t;                 /* (hi - lo, K) dense targets, TARGET_DENSE; owned */
    CsrRows csr;              /* the rows of a CSR X (info.x_csr; X and X8 are NULL); owned */
    int32_t label_min, label_max; /* over the rows held (TARGET_CLASS; 0,-1 if none) */
    char **class_names;       /* the class_names attribute, or the string labels' or the
                                 categories' names; NULL when none */
    size_t n_class_names;
    char **label_values;      /* the label_values attribute (the labels before convert
                                 mapped them to 0..K-1), or NULL */
    size_t n_label_values;
    char **feature_names;     /* the file's feature_names attribute when it names D
                                 features (convert writes it), or NULL */
    size_t n_feature_names;
} Dataset;

/* Splits "file.h5:/group[?X=NAME&y=NAME]" into file and group (default group "/train";
 * the dataset names are dataset_probe's). Returns
 * XT_ERR_USAGE with a message in err for an empty or overlong spec. Local. */
Status dataset_parse_spec(const char *spec, char *file, size_t file_len, char *group,
                          size_t group_len, char *err, size_t errlen);

/* The path in the file of a split's dataset `name` (x_name, y_name): relative to the group,
 * or from the root when it starts with '/'. Local. */
void dataset_object_path(const DatasetInfo *info, const char *name, char *out, size_t len);

/* The path of the dataset that holds the class ids (y, or y/codes). Local. */
void dataset_y_path(const DatasetInfo *info, char *out, size_t len);

/* Whether two paths name the same file (same device and inode; the same string when
 * either cannot be stat'ed). Local. */
bool dataset_same_file(const char *a, const char *b);

/* Opens the split and checks its layout (X 2-D, y (N,) integer or (N,K) float with the
 * same N, supported types, N > 0, D > 0). Collective over comm when comm != NULL (all
 * ranks open the file; the result is agreed so every rank returns the same status);
 * Local when comm == NULL. Errors name the file, group, dataset and expected vs actual. */
Status dataset_probe(const char *spec, const Comm *comm, bool need_y, DatasetInfo *info);

/* Reads rows [lo, hi) (hi <= N; lo == hi gives an empty, valid Dataset) into ds.
 * Checks that the memory needed fits (fails up front with the estimate and the hint to
 * use more ranks), that every X value is finite (names the first bad global row) and,
 * when k > 0 and the targets are class ids, that labels lie in [0, k) (names the row).
 * Collective over comm when comm != NULL: every rank must call it (an empty range is
 * fine), because parallel HDF5 opens and closes files collectively; the memory check is
 * agreed before the open, the reads are independent MPI-IO (ranks read different
 * amounts), and the checks are local, so the caller agrees on the returned status
 * afterwards (comm_agree). Local with comm == NULL (e.g. rank 0 reading /val alone).
 * Memory: X (and the targets) at their final size; no full-size conversion copy. */
Status dataset_load(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi, size_t k,
                    const Comm *comm);

/* ds <- an empty Dataset of rows [lo, hi) of the split: no row arrays, no labels seen yet
 * (label_min > label_max), as a load or a stream's scan starts it. Local. */
void dataset_begin(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi);

/* The checks of dataset_load on rows already in ds (X when float, y, t): finite X, labels
 * in [0, k) when k > 0 (and ds->label_min/max set from them), targets in [0, 1]. Names the
 * file, dataset and global row. Local. */
Status dataset_check_rows(Dataset *ds, size_t k);
/* Bytes one row takes in memory: X as float32 (uint8 when compact and X is uint8) and its
 * targets when the split has them. Local. */
double dataset_row_bytes(const DatasetInfo *info, bool compact);
/* Reads the class_names attribute (group, then file root) into ds, or the names the labels
 * themselves carry (strings, categories), and label_values. Local (serial open). */
Status dataset_read_class_names(Dataset *ds);

/* Checks every class id of a split against K = k before any work (the test split is
 * otherwise read only after training): names the first row outside [0, k). Rank 0 reads
 * the ids from the file in blocks; Collective over comm (agreed) when comm != NULL, Local
 * otherwise. A no-op for dense targets, k == 0 or a split without y. */
Status dataset_check_labels(const DatasetInfo *info, size_t k, const Comm *comm);

/* counts[c] = rows of class c (c < k) among the rows this Dataset holds, read from memory
 * or, for streamed rows, from the file. The caller sums them over ranks (balanced class
 * weights: loss_balanced_weights). Local. */
Status dataset_count_classes(const Dataset *ds, size_t k, double *counts);

/* loss.class_weights = balanced: *weights (K floats, malloc'd) = n / (K * count of the
 * class) over the training rows of every rank (loss_balanced_weights; the class `ignore`,
 * loss.ignore_index or -1, left out). Refuses dense targets and a class without rows.
 * Collective over comm (agreed; rank 0 prints the weights). */
Status dataset_balanced_weights(const Dataset *ds, size_t K, long ignore, const Comm *comm,
                                float **weights);

/* For probability targets (LOSS_SOFTMAX_PROBS): every held row of y must sum to 1
 * (within DATASET_SUM_TOLERANCE). A multi-hot or all-zero row is refused, naming the
 * global row, its sum and the fix (a sigmoid head). Local (logs on this rank); a no-op
 * for class ids. */
#define DATASET_SUM_TOLERANCE 1e-3
Status dataset_check_distributions(const Dataset *ds);


/* As dataset_load, but a uint8 X stays uint8 in memory (X8, 4x smaller; X is NULL):
 * rows are converted and normalised as they are gathered (dataset_gather_rows). Other
 * types load as float, exactly as dataset_load. */
Status dataset_load_compact(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi, size_t k,
                            const Comm *comm);

/* out (m, D) = rows[i] of the rows held (local indices), as float, with
 * x' = (x - shift) * mul applied when shift != NULL. Works on X and X8 alike. Local. */
void dataset_gather_rows(float *out, const Dataset *ds, const uint32_t *rows, size_t m,
                         const float *shift, const float *mul);

/* out (m, D) = local rows [lo, lo + m), as dataset_gather_rows does. Local. */
void dataset_read_rows(float *out, const Dataset *ds, size_t lo, size_t m, const float *shift,
                       const float *mul);

/* Asks the CPU to start loading these rows into cache (the next batch's, while the
 * current one is being computed). Only a hint: no effect on results. Local. */
void dataset_prefetch_rows(const Dataset *ds, const uint32_t *rows, size_t m);

/* Frees the arrays; safe on a zeroed Dataset; idempotent. */
void dataset_free(Dataset *ds);

/* Whether row i (0-based among ds's rows) passes dataset_check_rows's checks (and, with
 * probs, dataset_check_distributions's); when not, why says what is wrong ("label 7 is
 * outside [0, 3)"). For re-checking rows read later (streaming). Local; does not log. */
bool dataset_row_valid(const Dataset *ds, size_t i, size_t k, bool probs, char *why, size_t len);

/* The fingerprint of the split info describes (probed). Local (a serial open: rank 0). */
Status dataset_fingerprint(const DatasetInfo *info, DataPrint *fp);
/* Whether now matches the fingerprint a checkpoint recorded; when not, rank 0 logs why,
 * naming the split (spec) and the checkpoint (where). Local. */
bool dataset_fingerprint_match(const DataPrint *saved, const DataPrint *now, const char *spec,
                               const char *where);

/* X[i][j] = (X[i][j] - shift[j]) * mul[j] over the rows held (not for X8). Local. */
void dataset_apply_affine(Dataset *ds, const float *shift, const float *mul);

/* ---- writing: the same layout, for convert and gen --------------------------------- */

/* Rows of in-memory arrays to write as one split. */
typedef struct {
    const void *X;       /* (rows, D): uint8 when x_u8, else float32 */
    bool x_u8;
    size_t d;
    const int32_t *y;    /* class ids, or NULL when t is given (both NULL: X only) */
    const float *t;      /* (rows, k) dense targets, or NULL */
    size_t k;
    const size_t *rows;  /* which rows, in order; NULL: the first n */
    size_t n;
    double scale;        /* X's scale attribute; 0 = none */
    const CsrRows *csr;  /* X as CSR rows (d of them wide), written as an AnnData csr_matrix
                            group; X is then unused */
} DatasetRows;

/* Writes GROUP/X and GROUP/y (and X's scale) into f, the layout dataset_probe reads;
 * writes nothing for n == 0. gzip_level as h5io_write. Local. */
Status dataset_write_split(H5File *f, const char *group, const DatasetRows *r, int gzip_level);
/* The same layout written in pieces, for data larger than memory: create GROUP/X (n, d)
 * (uint8 or float32) and GROUP/y ((n,) int32, or (n, k) float32 when dense), then write
 * consecutive rows with dataset_write_rows (r->rows must be NULL; r->n rows from row0). */
Status dataset_create_split(H5File *f, const char *group, size_t n, size_t d, bool x_u8,
                            bool dense, size_t k, int gzip_level);
Status dataset_write_rows(H5File *f, const char *group, size_t row0, const DatasetRows *r);

#endif
