/* linalg: the dense kernels the models need. The only file that includes cblas.h.
 *
 * All matrices are row-major. Each fast path (any CBLAS) has a naive reference beside
 * it (linalg_ref_*) that the tests compare against. Local; nothing allocates but
 * linalg_alloc and linalg_alloc_zeros.
 */
#ifndef XT_LINALG_H
#define XT_LINALG_H

#include <stdbool.h>
#include <stddef.h>

/* C (M,N) = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
 * A is (M,K) or, when ta, (K,M); B is (K,N) or, when tb, (N,K). */
void linalg_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                 bool ta, bool tb, float alpha, float beta);
/* Rows [m0, m1) of that product only (C's other rows untouched): a product in pieces. */
void linalg_gemm_rows(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                      bool ta, bool tb, float alpha, float beta, size_t m0, size_t m1);
void linalg_ref_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                     bool ta, bool tb, float alpha, float beta);

/* Memory for GEMM operands, 64-byte aligned (free with free()): a BLAS may take another
 * code path for another alignment, and the reproducible mode needs the same arithmetic
 * for the same rows in every process, wherever malloc happens to put them. */
void *linalg_alloc(size_t bytes);
/* The same alignment, zero-filled, for a buffer mostly left zero: fresh pages of the
 * system's (an anonymous mapping), each resident only once written, so that only what is
 * written counts in the process's memory (the touched step's gradient, reduce_sparse.c).
 * NULL when out of memory; free with linalg_free_zeros and the same size. */
void *linalg_alloc_zeros(size_t bytes);
void linalg_free_zeros(void *p, size_t bytes);

/* Threads the BLAS uses in this process (OpenBLAS, BLIS or MKL; 1 for a BLAS without
 * threads). */
int linalg_blas_threads(void);
/* Sets them, whichever of those libraries is linked. */
void linalg_set_blas_threads(int n);
/* Whether the user set a thread count for the BLAS in the environment
 * (OPENBLAS_NUM_THREADS, BLIS_NUM_THREADS, MKL_NUM_THREADS or OMP_NUM_THREADS). */
bool linalg_threads_from_env(void);
/* "OpenBLAS (libopenblas.so): OpenBLAS 0.3.21 DYNAMIC_ARCH ..." : the vendor the build
 * chose, the library, and what the library says of itself when it can. */
void linalg_describe(char *buf, size_t len);

#endif
