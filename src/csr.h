/* csr: rows of a sparse matrix in compressed sparse row form, and the products the first
 * layer of a model needs from them.
 *
 * A CsrRows holds m rows of d features: row i's non-zeros are values[k] at column
 * indices[k] for k in [indptr[i], indptr[i + 1]); indptr[0] = 0. After csr_check_rows the
 * columns of every row are strictly increasing (sorted, no duplicates) and in [0, d), and
 * every value is finite. This module reads no file (dataset_csr.c does) and knows nothing
 * of MPI: it is a math module, tested in one process.
 *
 * The products, for W row-major (out, d), as model.h stores a layer's weights, and for W
 * stored by column (d, out), as a trainer may keep the first layer's (model.h):
 *   csr_mul_wt   Z (m, out) += X W^T        O(nnz x out); a large block (at least d / 4
 *                non-zeros, 8 or more outputs) first copies W transposed into the batch's
 *                scratch (at most CSR_SCRATCH_MAX_BYTES, else the strided loop): each non-zero
 *                then reads its out weights from one contiguous run instead of out cache
 *                lines d apart. The same operations in the same order: the same bits.
 *   csr_grad_w   dW (out, d) (+)= dZ^T X    O(nnz x out) (+ out x d to zero dW); the
 *                non-zeros regrouped by column (the batch's distinct columns only), or, up
 *                to CSR_SCATTER_MAX_OUT outputs and a batch of d / 4 non-zeros or more,
 *                scattered row by row into double sums of every (column, output) (8 out d
 *                bytes of scratch, at most CSR_SCRATCH_MAX_BYTES); both sum each element in
 *                row order: the same bits.
 *   csr_mul_w    Z (m, out) += X W, W (d, out): csr_mul_wt's sums without its copy.
 *   csr_grad_wt  dW (d, out) (+)= X^T dZ: csr_grad_w's sums, each column's out elements one
 *                contiguous run.
 * Local everywhere.
 */
#ifndef XT_CSR_H
#define XT_CSR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct {
    size_t m, d;          /* rows, features */
    size_t *indptr;       /* (m + 1), indptr[0] = 0 */
    int32_t *indices;     /* (nnz) column of each non-zero */
    float *values;        /* (nnz) */
    size_t cap_rows, cap_nnz; /* what the arrays hold */
    /* a batch's scratch for csr_grad_w (csr_init_batch): the same non-zeros by column,
     * column t_col[s]'s at t_row/t_val[t_ptr[s] .. t_ptr[s + 1]) for s < t_n */
    uint32_t *t_slot;     /* (d) a column's s during the regrouping, else CSR_NO_SLOT */
    int32_t *t_col;       /* (cap_nnz) the batch's distinct columns, in order of appearance */
    size_t *t_ptr;        /* (cap_nnz + 1) */
    uint32_t *t_row;      /* (cap_nnz) */
    float *t_val;         /* (cap_nnz) */
    size_t t_n;
    /* csr_mul_wt's transposed weights and row sums, csr_grad_w's sums, allocated at their
     * first use */
    float *wt;            /* (wt_cap) */
    double *acc;          /* (acc_cap) */
    size_t wt_cap, acc_cap;
} CsrRows;

#define CSR_NO_SLOT UINT32_MAX
/* csr_grad_w scatters row by row up to this many outputs. */
#define CSR_SCATTER_MAX_OUT 4
/* The most bytes a batch's transposed copy of W (csr_mul_wt) or its scattered sums
 * (csr_grad_w) may take; beyond, the kernels take their paths without scratch. */
#define CSR_SCRATCH_MAX_BYTES ((size_t)64 << 20)

/* Arrays for up to cap_rows rows and cap_nnz non-zeros of d features; m = 0.
 * XT_ERR_RUNTIME when out of memory (c is then freed). */
Status csr_init(CsrRows *c, size_t cap_rows, size_t cap_nnz, size_t d);
/* The same plus the scratch csr_grad_w needs (O(cap_nnz + d) more): a training batch. */
Status csr_init_batch(CsrRows *c, size_t cap_rows, size_t cap_nnz, size_t d);
/* Frees the arrays; safe on a zeroed CsrRows; idempotent. */
void csr_free(CsrRows *c);
/* Non-zeros held: indptr[m]. */
size_t csr_nnz(const CsrRows *c);

/* The checks of a block of rows as read from a file, row0 its first global row (messages):
 * indptr non-decreasing from 0; every column in [0, d); every value finite; columns of a
 * row sorted in place (with their values) when they are not; a column twice in one row
 * refused. XT_ERR_USAGE with the global row (and column) in err. */
Status csr_check_rows(CsrRows *c, size_t row0, char *err, size_t errlen);

/* out <- rows[i] of src (i < m), in that order; values multiplied by mul[column] when mul
 * != NULL. out must have room (cap_rows >= m, cap_nnz >= their non-zeros: asserted). */
void csr_gather(CsrRows *out, const CsrRows *src, const uint32_t *rows, size_t m,
                const float *mul);
/* out <- src rows [lo, lo + m), as csr_gather. */
void csr_slice(CsrRows *out, const CsrRows *src, size_t lo, size_t m, const float *mul);
/* X (m, d) dense <- rows[i] of src (rows == NULL: rows [lo, lo + m)), values multiplied by
 * mul[column] when mul != NULL; zeros elsewhere. */
void csr_densify(float *X, const CsrRows *src, const uint32_t *rows, size_t lo, size_t m,
                 const float *mul);
/* The same with x' = (x - shift) * mul per column (shift != NULL: zeros become -shift * mul,
 * as a dense row's would, the same float32 expression). */
void csr_densify_affine(float *X, const CsrRows *src, const uint32_t *rows, size_t lo, size_t m,
                        const float *shift, const float *mul);
/* The most non-zeros any `rows` rows of c hold (the sum of its `rows` longest rows). */
size_t csr_max_nnz(const CsrRows *c, size_t rows);
/* max |x| of every column (mx: d doubles, updated: max with what is there). */
void csr_column_absmax(const CsrRows *c, double *mx);
/* acc += the sum over c's rows of ||x||^2, x = v mul[column] in float32 as csr_gather makes
 * them (mul NULL: v), each row's sum in double, added in exact.h's units (integers: the same
 * total however the rows are grouped, e.g. by rank). false when exact_units_add is. */
bool csr_sq_norm_sum(const CsrRows *c, const float *mul, int64_t acc[2]);

/* Z (m, out) += X W^T, with W (out, d) row-major: for each row and output the products in
 * the row's column order summed in double, rounded once and added. X may keep its
 * transposed copy of W (see above; freed by csr_free). */
void csr_mul_wt(float *Z, CsrRows *X, const float *W, size_t out);
/* dW (out, d) = dZ^T X, or += when accumulate; dZ (m, out). X must come from
 * csr_init_batch: its non-zeros are regrouped by column in its scratch, and each element of
 * dW touched is summed in double (rows in order) and rounded once. */
void csr_grad_w(float *dW, const float *dZ, CsrRows *X, size_t out, bool accumulate);
/* The same two products with W stored by column, (d, out) row-major: Z (m, out) += X W, and
 * dW (d, out) = X^T dZ, or += when accumulate. The same sums in the same order as
 * csr_mul_wt and csr_grad_w: the same bits, transposed. pos (NULL, or with accumulate):
 * column j's run of dW is the pos[j]-th instead of the j-th, for every column of X (a
 * gradient kept packed: the touched step's, reduce_sparse.c). */
void csr_mul_w(float *Z, CsrRows *X, const float *W, size_t out);
void csr_grad_wt(float *dW, const float *dZ, CsrRows *X, size_t out, bool accumulate,
                 const uint32_t *pos);

#endif
