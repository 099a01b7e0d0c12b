/* linalg: the OpenBLAS path against the naive reference for every transpose pair, whole and
 * in pieces of rows (linalg_gemm_rows, as a hooked backward computes it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "linalg.h"
#include "rng.h"

static void fill(float *x, size_t n, Rng *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(2.0 * rng_uniform(r) - 1.0);
}

static void check_gemm(size_t M, size_t N, size_t K, bool ta, bool tb, float alpha, float beta)
{
    Rng r;
    rng_seed(&r, M * 131 + N * 17 + K);
    float *A = malloc(M * K * sizeof *A), *B = malloc(K * N * sizeof *B);
    float *C1 = malloc(M * N * sizeof *C1), *C2 = malloc(M * N * sizeof *C2);
    float *C3 = malloc(M * N * sizeof *C3);
    fill(A, M * K, &r);
    fill(B, K * N, &r);
    fill(C1, M * N, &r);
    for (size_t i = 0; i < M * N; i++) C2[i] = C3[i] = C1[i];
    linalg_gemm(C1, A, B, M, N, K, ta, tb, alpha, beta);
    linalg_ref_gemm(C2, A, B, M, N, K, ta, tb, alpha, beta);
    for (size_t m0 = 0; m0 < M; m0 += 4) /* the last piece may be short */
        linalg_gemm_rows(C3, A, B, M, N, K, ta, tb, alpha, beta, m0, m0 + 4);
    double worst = 0, worst3 = 0;
    for (size_t i = 0; i < M * N; i++) {
        worst = fmax(worst, fabs((double)C1[i] - C2[i]));
        worst3 = fmax(worst3, fabs((double)C3[i] - C2[i]));
    }
    /* float accumulation over K terms of magnitude <= 1 */
    assert_true(worst < 1e-5 * (double)K + 1e-6);
    assert_true(worst3 < 1e-5 * (double)K + 1e-6);
    free(A);
    free(B);
    free(C1);
    free(C2);
    free(C3);
}

static void test_linalg_gemm_all_transposes(void **state)
{
    (void)state;
    const size_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 10, 33}, {64, 31, 128}, {5, 1, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, 1.0f, 0.0f);
                check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, 0.5f, 1.0f);
                check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, -2.0f, 0.25f);
            }
}

/* A transposed operand really is read transposed: a non-square hand case. */
static void test_linalg_gemm_by_hand(void **state)
{
    (void)state;
    const float A[6] = {1, 2, 3, 4, 5, 6}; /* (2,3) */
    const float B[6] = {1, 0, 0, 1, 1, 1}; /* (3,2) */
    float C[4] = {0};
    linalg_gemm(C, A, B, 2, 2, 3, false, false, 1.0f, 0.0f);
    assert_true(C[0] == 4 && C[1] == 5 && C[2] == 10 && C[3] == 11);
    /* A^T (3,2) B^T... : (A^T)(3x2) * (B^T)(2x3) = (3,3) */
    float D[9];
    linalg_gemm(D, A, B, 3, 3, 2, true, true, 1.0f, 0.0f);
    /* A^T = [[1,4],[2,5],[3,6]], B^T = [[1,0,1],[0,1,1]] */
    const float want[9] = {1, 4, 5, 2, 5, 7, 3, 6, 9};
    for (int i = 0; i < 9; i++) assert_true(D[i] == want[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linalg_gemm_all_transposes),
        cmocka_unit_test(test_linalg_gemm_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
