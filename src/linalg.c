#include "linalg.h"

#include <limits.h>

#include <cblas.h>

#include "error.h"

static blasint to_blasint(size_t v)
{
    XT_ASSERT(v <= (size_t)INT_MAX);
    return (blasint)v;
}

void linalg_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                 bool ta, bool tb, float alpha, float beta)
{
    if (M == 0 || N == 0) return;
    size_t lda = ta ? M : K;
    size_t ldb = tb ? K : N;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                to_blasint(M), to_blasint(N), to_blasint(K), alpha, A,
                to_blasint(lda > 0 ? lda : 1), B, to_blasint(ldb > 0 ? ldb : 1), beta, C,
                to_blasint(N));
}

void linalg_ref_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                     bool ta, bool tb, float alpha, float beta)
{
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < K; k++) {
                float a = ta ? A[k * M + i] : A[i * K + k];
                float b = tb ? B[j * K + k] : B[k * N + j];
                acc += (double)a * (double)b;
            }
            float prev = beta == 0.0f ? 0.0f : beta * C[i * N + j];
            C[i * N + j] = (float)(alpha * acc) + prev;
        }
    }
}

int linalg_blas_threads(void) { return openblas_get_num_threads(); }
void linalg_set_blas_threads(int n) { openblas_set_num_threads(n); }
