/* linalg: the dense kernels the models need. The only file that includes cblas.h.
 *
 * All matrices are row-major. Each fast path (OpenBLAS) has a naive reference beside
 * it (linalg_ref_*) that the tests compare against. Local; no allocation.
 */
#ifndef XT_LINALG_H
#define XT_LINALG_H

#include <stdbool.h>
#include <stddef.h>

/* C (M,N) = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
 * A is (M,K) or, when ta, (K,M); B is (K,N) or, when tb, (N,K). */
void linalg_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                 bool ta, bool tb, float alpha, float beta);
void linalg_ref_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                     bool ta, bool tb, float alpha, float beta);

/* Threads OpenBLAS uses in this process (openblas_get_num_threads). */
int linalg_blas_threads(void);
/* Sets them (openblas_set_num_threads). */
void linalg_set_blas_threads(int n);

#endif
