#include "csr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"

Status csr_init(CsrRows *c, size_t cap_rows, size_t cap_nnz, size_t d)
{
    *c = (CsrRows){.d = d, .cap_rows = cap_rows, .cap_nnz = cap_nnz};
    c->indptr = calloc(cap_rows + 1, sizeof *c->indptr);
    c->indices = malloc((cap_nnz ? cap_nnz : 1) * sizeof *c->indices);
    c->values = malloc((cap_nnz ? cap_nnz : 1) * sizeof *c->values);
    if (c->indptr && c->indices && c->values) return XT_OK;
    csr_free(c);
    return XT_ERR_RUNTIME;
}

Status csr_init_batch(CsrRows *c, size_t cap_rows, size_t cap_nnz, size_t d)
{
    Status st = csr_init(c, cap_rows, cap_nnz, d);
    if (st != XT_OK) return st;
    c->t_slot = malloc((d ? d : 1) * sizeof *c->t_slot);
    c->t_col = malloc((cap_nnz ? cap_nnz : 1) * sizeof *c->t_col);
    c->t_ptr = malloc((cap_nnz + 1) * sizeof *c->t_ptr);
    c->t_row = malloc((cap_nnz ? cap_nnz : 1) * sizeof *c->t_row);
    c->t_val = malloc((cap_nnz ? cap_nnz : 1) * sizeof *c->t_val);
    if (c->t_slot && c->t_col && c->t_ptr && c->t_row && c->t_val) {
        for (size_t j = 0; j < d; j++) c->t_slot[j] = CSR_NO_SLOT;
        return XT_OK;
    }
    csr_free(c);
    return XT_ERR_RUNTIME;
}

void csr_free(CsrRows *c)
{
    if (!c) return;
    free(c->t_slot);
    free(c->t_col);
    free(c->t_ptr);
    free(c->t_row);
    free(c->t_val);
    free(c->wt);
    free(c->acc);
    free(c->indptr);
    free(c->indices);
    free(c->values);
    *c = (CsrRows){0};
}

size_t csr_nnz(const CsrRows *c) { return c->indptr ? c->indptr[c->m] : 0; }

typedef struct {
    int32_t col;
    float v;
} CsrEntry;

static int cmp_entry(const void *a, const void *b)
{
    int32_t x = ((const CsrEntry *)a)->col, y = ((const CsrEntry *)b)->col;
    return (x > y) - (x < y);
}

/* Sorts the n entries of one row by column (values follow). */
static Status sort_row(int32_t *col, float *v, size_t n)
{
    CsrEntry *e = malloc(n * sizeof *e);
    if (!e) return XT_ERR_RUNTIME;
    for (size_t k = 0; k < n; k++) e[k] = (CsrEntry){col[k], v[k]};
    qsort(e, n, sizeof *e, cmp_entry);
    for (size_t k = 0; k < n; k++) {
        col[k] = e[k].col;
        v[k] = e[k].v;
    }
    free(e);
    return XT_OK;
}

/* One row's columns and values: in range, finite; sorted when not; no column twice. */
static Status check_row(CsrRows *c, size_t i, size_t row, char *err, size_t errlen)
{
    size_t a = c->indptr[i], b = c->indptr[i + 1];
    bool sorted = true;
    for (size_t k = a; k < b; k++) {
        int32_t j = c->indices[k];
        if (j < 0 || (size_t)j >= c->d) {
            snprintf(err, errlen, "row %zu: column index %ld is outside [0, %zu) (D = %zu)", row,
                     (long)j, c->d, c->d);
            return XT_ERR_USAGE;
        }
        if (!isfinite(c->values[k])) {
            snprintf(err, errlen, "row %zu, column %ld: non-finite value %s (values beyond "
                     "+-3.4e38 overflow float32)", row, (long)j,
                     isnan(c->values[k]) ? "NaN" : c->values[k] > 0 ? "+Inf" : "-Inf");
            return XT_ERR_USAGE;
        }
        if (k > a && c->indices[k - 1] >= j) sorted = false;
    }
    if (!sorted && sort_row(c->indices + a, c->values + a, b - a) != XT_OK) {
        snprintf(err, errlen, "row %zu: out of memory sorting its %zu columns", row, b - a);
        return XT_ERR_RUNTIME;
    }
    for (size_t k = a + 1; k < b; k++) {
        if (c->indices[k - 1] != c->indices[k]) continue;
        snprintf(err, errlen, "row %zu: column %ld appears twice (duplicate entries have no "
                 "single meaning: scipy adds them, others keep one); merge them first, e.g. "
                 "X.sum_duplicates() in scipy", row, (long)c->indices[k]);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

Status csr_check_rows(CsrRows *c, size_t row0, char *err, size_t errlen)
{
    if (c->indptr[0] != 0) {
        snprintf(err, errlen, "indptr of row %zu is %zu, expected 0", row0, c->indptr[0]);
        return XT_ERR_USAGE;
    }
    for (size_t i = 0; i < c->m; i++) {
        if (c->indptr[i + 1] < c->indptr[i]) {
            snprintf(err, errlen, "indptr decreases at row %zu (indptr[%zu] < indptr[%zu]): "
                     "indptr must be non-decreasing", row0 + i, row0 + i + 1, row0 + i);
            return XT_ERR_USAGE;
        }
    }
    for (size_t i = 0; i < c->m; i++) {
        Status st = check_row(c, i, row0 + i, err, errlen);
        if (st != XT_OK) return st;
    }
    return XT_OK;
}

/* Appends row r of src to out (its m-th row), values scaled by mul when given. */
static void append_row(CsrRows *out, const CsrRows *src, size_t r, const float *mul)
{
    size_t a = src->indptr[r], b = src->indptr[r + 1], at = out->indptr[out->m];
    XT_ASSERT(out->m < out->cap_rows && at + (b - a) <= out->cap_nnz);
    memcpy(out->indices + at, src->indices + a, (b - a) * sizeof *out->indices);
    if (mul) {
        for (size_t k = a; k < b; k++)
            out->values[at + k - a] = src->values[k] * mul[src->indices[k]];
    } else {
        memcpy(out->values + at, src->values + a, (b - a) * sizeof *out->values);
    }
    out->m++;
    out->indptr[out->m] = at + (b - a);
}

void csr_gather(CsrRows *out, const CsrRows *src, const uint32_t *rows, size_t m,
                const float *mul)
{
    out->m = 0;
    out->d = src->d;
    out->indptr[0] = 0;
    for (size_t i = 0; i < m; i++) append_row(out, src, rows[i], mul);
}

void csr_slice(CsrRows *out, const CsrRows *src, size_t lo, size_t m, const float *mul)
{
    out->m = 0;
    out->d = src->d;
    out->indptr[0] = 0;
    for (size_t i = 0; i < m; i++) append_row(out, src, lo + i, mul);
}

void csr_densify(float *X, const CsrRows *src, const uint32_t *rows, size_t lo, size_t m,
                 const float *mul)
{
    csr_densify_affine(X, src, rows, lo, m, NULL, mul);
}

void csr_densify_affine(float *X, const CsrRows *src, const uint32_t *rows, size_t lo, size_t m,
                        const float *shift, const float *mul)
{
    const size_t d = src->d;
    if (!shift) memset(X, 0, m * d * sizeof *X);
    for (size_t i = 0; i < m; i++) {
        size_t r = rows ? rows[i] : lo + i;
        float *x = X + i * d;
        for (size_t j = 0; shift && j < d; j++) x[j] = (0.0f - shift[j]) * mul[j];
        for (size_t k = src->indptr[r]; k < src->indptr[r + 1]; k++) {
            int32_t j = src->indices[k];
            float v = src->values[k];
            x[j] = shift ? (v - shift[j]) * mul[j] : mul ? v * mul[j] : v;
        }
    }
}

static int cmp_size_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x < y) - (x > y);
}

size_t csr_max_nnz(const CsrRows *c, size_t rows)
{
    if (rows >= c->m) return csr_nnz(c);
    size_t *len = malloc(c->m * sizeof *len);
    if (!len) return csr_nnz(c); /* the bound that needs no memory */
    for (size_t i = 0; i < c->m; i++) len[i] = c->indptr[i + 1] - c->indptr[i];
    qsort(len, c->m, sizeof *len, cmp_size_desc);
    size_t sum = 0;
    for (size_t i = 0; i < rows; i++) sum += len[i];
    free(len);
    return sum;
}

void csr_column_absmax(const CsrRows *c, double *mx)
{
    for (size_t k = 0; k < csr_nnz(c); k++) {
        double a = fabs((double)c->values[k]);
        if (a > mx[c->indices[k]]) mx[c->indices[k]] = a;
    }
}

bool csr_sq_norm_sum(const CsrRows *c, const float *mul, int64_t acc[2])
{
    for (size_t i = 0; i < c->m; i++) {
        double q = 0.0;
        for (size_t k = c->indptr[i]; k < c->indptr[i + 1]; k++) {
            float x = mul ? c->values[k] * mul[c->indices[k]] : c->values[k];
            q += (double)x * (double)x;
        }
        if (!exact_units_add(acc, q)) return false;
    }
    return true;
}

/* X's double scratch with room for n values, or NULL when out of memory. */
static double *reserve_acc(CsrRows *X, size_t n)
{
    if (X->acc_cap < n) {
        free(X->acc);
        X->acc = malloc(n * sizeof *X->acc);
        X->acc_cap = X->acc ? n : 0;
    }
    return X->acc;
}

/* Whether csr_mul_wt copies W transposed: out cache lines per non-zero cost more than one
 * pass over W (about d / 4 non-zeros break even: the copy moves out d floats in runs, the
 * strided loop misses out lines per non-zero), and the copy is allowed; its buffers made. */
static bool transposed_pays(CsrRows *X, size_t out)
{
    const size_t need = out * X->d;
    if (out < 8 || csr_nnz(X) * 4 < X->d || need * sizeof(float) > CSR_SCRATCH_MAX_BYTES)
        return false;
    if (X->wt_cap < need) {
        free(X->wt);
        X->wt = malloc(need * sizeof *X->wt);
        X->wt_cap = X->wt ? need : 0;
    }
    return X->wt && reserve_acc(X, out); /* out of memory: the strided loop, the same bits */
}

/* wt (d, out) <- W (out, d)^T, in tiles of columns. */
static void transpose_w(float *restrict wt, const float *restrict W, size_t out, size_t d)
{
    enum { TILE = 64 };
    for (size_t j0 = 0; j0 < d; j0 += TILE) {
        const size_t j1 = j0 + TILE < d ? j0 + TILE : d;
        for (size_t o = 0; o < out; o++)
            for (size_t j = j0; j < j1; j++) wt[j * out + o] = W[o * d + j];
    }
}

/* Z += X W for W (d, out) by column: each row's out sums in acc, its non-zeros in order. */
static void mul_by_column(float *Z, const CsrRows *X, const float *W, size_t out, double *acc)
{
    const int32_t *restrict col = X->indices;
    const float *restrict v = X->values;
    for (size_t i = 0; i < X->m; i++) {
        for (size_t o = 0; o < out; o++) acc[o] = 0.0;
        for (size_t k = X->indptr[i]; k < X->indptr[i + 1]; k++) {
            const float *restrict w = W + (size_t)col[k] * out;
            const double x = (double)v[k];
            for (size_t o = 0; o < out; o++) acc[o] += x * (double)w[o];
        }
        float *restrict z = Z + i * out;
        for (size_t o = 0; o < out; o++) z[o] += (float)acc[o];
    }
}

/* Z += X W^T for W (out, d) with element (o, j) at W[o so + j sj]: output by output, the
 * sums without scratch (the same sums in the same order as mul_by_column). */
static void mul_strided(float *Z, const CsrRows *X, const float *W, size_t out, size_t so,
                        size_t sj)
{
    for (size_t i = 0; i < X->m; i++) {
        const size_t a = X->indptr[i], b = X->indptr[i + 1];
        const int32_t *restrict col = X->indices;
        const float *restrict v = X->values;
        float *restrict z = Z + i * out;
        for (size_t o = 0; o < out; o++) {
            const float *restrict w = W + o * so;
            double acc = 0.0;
            for (size_t k = a; k < b; k++) acc += (double)v[k] * (double)w[(size_t)col[k] * sj];
            z[o] += (float)acc;
        }
    }
}

void csr_mul_wt(float *Z, CsrRows *X, const float *W, size_t out)
{
    if (transposed_pays(X, out)) {
        transpose_w(X->wt, W, out, X->d);
        mul_by_column(Z, X, X->wt, out, X->acc);
        return;
    }
    mul_strided(Z, X, W, out, X->d, 1);
}

void csr_mul_w(float *Z, CsrRows *X, const float *W, size_t out)
{
    double *acc = reserve_acc(X, out);
    if (acc) mul_by_column(Z, X, W, out, acc);
    else mul_strided(Z, X, W, out, 1, out); /* out of memory for the sums: the same bits */
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* X's distinct columns into t_col (n of them) with their slots in t_slot: in order of
 * appearance, or ascending when `sorted` (a scan of the slots when they are many, else a
 * sort of the few). */
static size_t distinct_columns(CsrRows *X, bool sorted)
{
    const size_t nnz = csr_nnz(X), d = X->d;
    uint32_t *slot = X->t_slot;
    size_t n = 0;
    for (size_t k = 0; k < nnz; k++) {
        const int32_t j = X->indices[k];
        if (slot[j] == CSR_NO_SLOT) {
            slot[j] = (uint32_t)n;
            X->t_col[n++] = j;
        }
    }
    if (!sorted) return n;
    if (n * 8 >= d) {
        n = 0;
        for (size_t j = 0; j < d; j++)
            if (slot[j] != CSR_NO_SLOT) X->t_col[n++] = (int32_t)j;
    } else {
        qsort(X->t_col, n, sizeof *X->t_col, cmp_i32);
    }
    for (size_t s = 0; s < n; s++) slot[X->t_col[s]] = (uint32_t)s;
    return n;
}

/* X's non-zeros regrouped by column (a counting sort over the batch's distinct columns,
 * rows in order within a column) into its scratch: O(nnz) whatever d, plus the columns'
 * order when `sorted` (W stored (out, d): neighbouring columns share cache lines). */
static void by_column(CsrRows *X, bool sorted)
{
    const size_t n = distinct_columns(X, sorted);
    uint32_t *slot = X->t_slot;
    size_t *ptr = X->t_ptr;
    for (size_t s = 0; s <= n; s++) ptr[s] = 0;
    for (size_t k = 0; k < csr_nnz(X); k++) ptr[slot[X->indices[k]] + 1]++;
    for (size_t s = 0; s < n; s++) ptr[s + 1] += ptr[s];
    for (size_t i = 0; i < X->m; i++) /* ptr[s] walks to the end of column s, then back */
        for (size_t k = X->indptr[i]; k < X->indptr[i + 1]; k++) {
            size_t at = ptr[slot[X->indices[k]]]++;
            X->t_row[at] = (uint32_t)i;
            X->t_val[at] = X->values[k];
        }
    for (size_t s = n; s > 0; s--) ptr[s] = ptr[s - 1];
    ptr[0] = 0;
    for (size_t s = 0; s < n; s++) slot[X->t_col[s]] = CSR_NO_SLOT;
    X->t_n = n;
}

/* dW for few outputs: the rows' non-zeros scattered into double sums of every (column,
 * output) in row order, which is the order by_column gives each column: the same bits
 * without the regrouping. */
static void grad_w_scatter(float *dW, const float *dZ, const CsrRows *X, size_t out,
                           bool accumulate, double *acc)
{
    const size_t d = X->d;
    for (size_t o = 0; o < out; o++)
        for (size_t j = 0; j < d; j++) acc[j * out + o] = accumulate ? (double)dW[o * d + j] : 0.0;
    for (size_t i = 0; i < X->m; i++) {
        const float *restrict dz = dZ + i * out;
        for (size_t k = X->indptr[i]; k < X->indptr[i + 1]; k++) {
            double *restrict a = acc + (size_t)X->indices[k] * out;
            const double x = (double)X->values[k];
            for (size_t o = 0; o < out; o++) a[o] += (double)dz[o] * x;
        }
    }
    for (size_t o = 0; o < out; o++)
        for (size_t j = 0; j < d; j++) dW[o * d + j] = (float)acc[j * out + o];
}

/* dW's elements (o, j) at dW[o so + p sj] += the column's non-zeros times dZ, p = j (pos
 * NULL) or pos[j], column by column of by_column's regrouping (X->t_*), each summed in
 * double (acc: out doubles, or NULL: output by output, the same sums) and rounded once. */
static void grad_by_column(float *dW, const float *dZ, const CsrRows *X, size_t out, size_t so,
                           size_t sj, const uint32_t *pos, double *acc)
{
    for (size_t s = 0; s < X->t_n; s++) {
        const size_t a = X->t_ptr[s], b = X->t_ptr[s + 1];
        const size_t j = (size_t)X->t_col[s];
        float *restrict w = dW + (pos ? (size_t)pos[j] : j) * sj;
        if (!acc) {
            for (size_t o = 0; o < out; o++) {
                double t = (double)w[o * so];
                for (size_t k = a; k < b; k++)
                    t += (double)dZ[(size_t)X->t_row[k] * out + o] * (double)X->t_val[k];
                w[o * so] = (float)t;
            }
            continue;
        }
        for (size_t o = 0; o < out; o++) acc[o] = (double)w[o * so];
        for (size_t k = a; k < b; k++) { /* the row's outputs in one contiguous read */
            const float *restrict dz = dZ + (size_t)X->t_row[k] * out;
            const double x = (double)X->t_val[k];
            for (size_t o = 0; o < out; o++) acc[o] += (double)dz[o] * x;
        }
        for (size_t o = 0; o < out; o++) w[o * so] = (float)acc[o];
    }
}

void csr_grad_w(float *dW, const float *dZ, CsrRows *X, size_t out, bool accumulate)
{
    XT_ASSERT(X->t_slot != NULL);
    const size_t d = X->d;
    double *acc;
    if (out <= CSR_SCATTER_MAX_OUT && csr_nnz(X) * 4 >= d &&
        out * d * sizeof *acc <= CSR_SCRATCH_MAX_BYTES && (acc = reserve_acc(X, out * d)) != NULL) {
        grad_w_scatter(dW, dZ, X, out, accumulate, acc);
        return;
    }
    if (!accumulate) memset(dW, 0, out * d * sizeof *dW);
    by_column(X, true);
    grad_by_column(dW, dZ, X, out, d, 1, NULL, reserve_acc(X, out));
}

void csr_grad_wt(float *dW, const float *dZ, CsrRows *X, size_t out, bool accumulate,
                 const uint32_t *pos)
{
    XT_ASSERT(X->t_slot != NULL && (!pos || accumulate));
    if (!accumulate) memset(dW, 0, out * X->d * sizeof *dW);
    by_column(X, false);
    grad_by_column(dW, dZ, X, out, 1, out, pos, reserve_acc(X, out));
}
