#include "rowsource.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"

/* Rows per block when a statistic reads the whole source. */
#define ROWSOURCE_BLOCK_ROWS 1024

void rowsource_init(RowSource *s, Dataset *ds)
{
    *s = (RowSource){.n = ds->hi - ds->lo,
                     .d = ds->info.d,
                     .target = ds->info.target,
                     .k_dense = ds->info.k_dense,
                     .ds = ds};
}

void rowsource_set_normalization(RowSource *s, const float *shift, const float *mul)
{
    if (!shift) return;
    if (s->ds->X8) {
        s->shift = shift;
        s->mul = mul;
    } else {
        dataset_apply_affine(s->ds, shift, mul);
    }
}

static void copy_targets(const RowSource *s, size_t row, size_t i, RowBatch *out)
{
    const Dataset *ds = s->ds;
    if (s->target == TARGET_DENSE) {
        if (out->t)
            memcpy(out->t + i * s->k_dense, ds->t + row * s->k_dense, s->k_dense * sizeof(float));
    } else if (out->y) {
        out->y[i] = ds->y[row];
    }
}

void rowsource_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    dataset_gather_rows(out->X, s->ds, rows, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, rows[i], i, out);
}

void rowsource_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    XT_ASSERT(lo + m <= s->n);
    dataset_read_rows(out->X, s->ds, lo, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, lo + i, i, out);
}

void rowsource_prefetch(const RowSource *s, const uint32_t *rows, size_t m)
{
    dataset_prefetch_rows(s->ds, rows, m);
}

/* Calls fn on every block of rows as they come out. */
static Status for_blocks(const RowSource *s, void (*fn)(const float *X, size_t m, size_t d,
                                                       void *acc), void *acc)
{
    size_t rows = s->n < ROWSOURCE_BLOCK_ROWS ? s->n : ROWSOURCE_BLOCK_ROWS;
    float *X = malloc((rows ? rows : 1) * s->d * sizeof *X);
    if (!X) return XT_ERR_RUNTIME;
    RowBatch b = {.X = X};
    for (size_t lo = 0; lo < s->n; lo += rows) {
        size_t m = s->n - lo < rows ? s->n - lo : rows;
        rowsource_read(s, lo, m, &b);
        fn(X, m, s->d, acc);
    }
    free(X);
    return XT_OK;
}

typedef struct {
    double *sum, *sumsq;
} Sums;

static void add_sums(const float *X, size_t m, size_t d, void *acc)
{
    Sums *a = acc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double v = (double)X[i * d + j];
            a->sum[j] += v;
            a->sumsq[j] += v * v;
        }
}

Status rowsource_feature_sums(const RowSource *s, double *sum, double *sumsq)
{
    for (size_t j = 0; j < s->d; j++) sum[j] = sumsq[j] = 0.0;
    Sums a = {sum, sumsq};
    return for_blocks(s, add_sums, &a);
}

static void add_absmax(const float *X, size_t m, size_t d, void *acc)
{
    double *mx = acc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double a = fabs((double)X[i * d + j]);
            if (a > mx[j]) mx[j] = a;
        }
}

Status rowsource_feature_absmax(const RowSource *s, double *mx)
{
    for (size_t j = 0; j < s->d; j++) mx[j] = 0.0;
    return for_blocks(s, add_absmax, mx);
}

typedef struct {
    const double *center;
    const int *e;
    int64_t *out;
} FixedSums;

static void add_fixed(const float *X, size_t m, size_t d, void *acc)
{
    FixedSums *a = acc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double v = (double)X[i * d + j];
            if (a->center) {
                v -= a->center[j];
                v *= v;
            }
            a->out[j] += exact_fixed(v, a->e[j]);
        }
}

Status rowsource_feature_fixed_sums(const RowSource *s, const double *center, const int *e,
                                    int64_t *out)
{
    for (size_t j = 0; j < s->d; j++) out[j] = 0;
    FixedSums a = {center, e, out};
    return for_blocks(s, add_fixed, &a);
}
