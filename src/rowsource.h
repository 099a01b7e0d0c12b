/* rowsource: where training and evaluation rows come from.
 *
 * Batch gathering, evaluation and the normalisation statistics ask a RowSource for rows
 * by local index (0 .. n-1: the rows this rank holds) and receive float32 features,
 * normalised when a normalisation is set, with their targets. How the rows are stored
 * stays behind this interface: today a Dataset loaded in memory (uint8 or float32
 * features); a source that reads the file as it goes can implement the same calls.
 *
 * Normalisation is x' = (x - shift) * mul, per feature, in float32: the same
 * expression whichever way the rows are stored, so results do not depend on it.
 * Local everywhere; nothing allocates after rowsource_init but the statistics.
 */
#ifndef XT_ROWSOURCE_H
#define XT_ROWSOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "error.h"

/* Buffers a caller owns for m rows: X (m, D); y (m) for class ids or t (m, K) for dense
 * targets (the other may be NULL). */
typedef struct {
    float *X;
    int32_t *y;
    float *t;
} RowBatch;

typedef struct {
    size_t n, d;           /* rows held, features */
    TargetKind target;
    size_t k_dense;        /* target width when target == TARGET_DENSE */
    Dataset *ds;           /* the memory source: borrowed */
    const float *shift, *mul; /* normalisation applied on the way out, or NULL */
} RowSource;

/* A source over the rows of a loaded Dataset (borrowed; it must outlive the source). */
void rowsource_init(RowSource *s, Dataset *ds);
/* From now on rows come out normalised (shift and mul: D values, borrowed). A float32
 * Dataset is normalised once, in place; uint8 rows are normalised as they are gathered
 * (4x less memory than float). */
void rowsource_set_normalization(RowSource *s, const float *shift, const float *mul);

/* out <- rows[i] (local indices), i < m. */
void rowsource_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out);
/* out <- rows [lo, lo + m), in order. */
void rowsource_read(const RowSource *s, size_t lo, size_t m, RowBatch *out);
/* A hint that these rows come next (the next batch's, while this one computes). */
void rowsource_prefetch(const RowSource *s, const uint32_t *rows, size_t m);

/* Per-feature sum and sum of squares (double) of the rows as they come out.
 * XT_ERR_RUNTIME when out of memory for the block buffer. */
Status rowsource_feature_sums(const RowSource *s, double *sum, double *sumsq);
/* Per-feature max |x| of the rows as they come out. */
Status rowsource_feature_absmax(const RowSource *s, double *mx);
/* Per-feature exact fixed-point sums (exact.h): out[j] = sum of exact_fixed(v, e[j]) with
 * v = x_j, or v = (x_j - center[j])^2 when center is given. Integer sums: the same
 * however the rows are spread over ranks. */
Status rowsource_feature_fixed_sums(const RowSource *s, const double *center, const int *e,
                                    int64_t *out);

#endif
