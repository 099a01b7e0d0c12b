#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
/* linalg: see linalg.h. The only file that knows which BLAS the build uses: it speaks
 * standard CBLAS (LP64: int dimensions) and finds the library's thread controls at run
 * time through weak symbols, so OpenBLAS, BLIS and MKL all work unchanged. */
#include "linalg.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <sys/mman.h>

#include <cblas.h>

#include "error.h"

#ifndef XT_BLAS_BUILD
#define XT_BLAS_BUILD "unknown"
#endif

/* Thread controls of the libraries we know; NULL when the linked BLAS has none. */
extern void openblas_set_num_threads(int n) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));
extern void bli_thread_set_num_threads(int64_t n) __attribute__((weak));
extern int64_t bli_thread_get_num_threads(void) __attribute__((weak));
extern char *bli_info_get_version_str(void) __attribute__((weak));
extern void MKL_Set_Num_Threads(int n) __attribute__((weak));
extern void MKL_Get_Version_String(char *buf, int len) __attribute__((weak));
extern int MKL_Get_Max_Threads(void) __attribute__((weak));

static int to_blasint(size_t v)
{
    XT_ASSERT(v <= (size_t)INT_MAX);
    return (int)v;
}

void linalg_gemm(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                 bool ta, bool tb, float alpha, float beta)
{
    linalg_gemm_rows(C, A, B, M, N, K, ta, tb, alpha, beta, 0, M);
}

void linalg_gemm_rows(float *C, const float *A, const float *B, size_t M, size_t N, size_t K,
                      bool ta, bool tb, float alpha, float beta, size_t m0, size_t m1)
{
    if (m1 > M) m1 = M;
    if (m1 <= m0 || N == 0) return;
    size_t lda = ta ? M : K; /* op(A)'s rows m0.. start at column m0 of A^T, or row m0 of A */
    size_t ldb = tb ? K : N;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                to_blasint(m1 - m0), to_blasint(N), to_blasint(K), alpha, ta ? A + m0 : A + m0 * K,
                to_blasint(lda > 0 ? lda : 1), B, to_blasint(ldb > 0 ? ldb : 1), beta, C + m0 * N,
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

int linalg_blas_threads(void)
{
    if (openblas_get_num_threads) return openblas_get_num_threads();
    if (bli_thread_get_num_threads) return (int)bli_thread_get_num_threads();
    if (MKL_Get_Max_Threads) return MKL_Get_Max_Threads();
    return 1; /* a BLAS without threads (reference BLAS) */
}

void linalg_set_blas_threads(int n)
{
    if (openblas_set_num_threads) openblas_set_num_threads(n);
    if (bli_thread_set_num_threads) bli_thread_set_num_threads(n);
    if (MKL_Set_Num_Threads) MKL_Set_Num_Threads(n);
}

/* What the build chose (XT_BLAS_BUILD) and, where the library says it, what runs. */
void linalg_describe(char *buf, size_t len)
{
    char runs[160] = "";
    if (openblas_get_config) {
        snprintf(runs, sizeof runs, "%s", openblas_get_config());
    } else if (bli_info_get_version_str) {
        snprintf(runs, sizeof runs, "BLIS %s", bli_info_get_version_str());
    } else if (MKL_Get_Version_String) {
        MKL_Get_Version_String(runs, (int)sizeof runs);
    }
    snprintf(buf, len, "%s%s%s", XT_BLAS_BUILD, runs[0] ? ": " : "", runs);
}

bool linalg_threads_from_env(void)
{
    static const char *const vars[] = {"OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
                                       "MKL_NUM_THREADS", "OMP_NUM_THREADS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}


void *linalg_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, rounded > 0 ? rounded : 64);
}

void *linalg_alloc_zeros(size_t bytes)
{
    void *p = mmap(NULL, bytes > 0 ? bytes : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* page-aligned */
}

void linalg_free_zeros(void *p, size_t bytes)
{
    if (p) munmap(p, bytes > 0 ? bytes : 1);
}
