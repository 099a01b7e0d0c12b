/* exact: the reproducible mode's sums are the same bits however the terms are split
 * among ranks and in whatever order the integers are added; their rounding stays within
 * what exact.h documents; every conversion kernel gives the same integers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"
#include "rng.h"

#define N 2600 /* three blocks, the last one partial */
#define G 12   /* micro-batches per update */

/* Partials with a wide dynamic range: per block a different magnitude, inside a block
 * values from 1 down to 2^-30 of it, some exact zeros, one all-zero block region. */
static void make_partials(float part[G][N])
{
    Rng rng;
    rng_seed_tuple(&rng, 11, 0, 0);
    for (int g = 0; g < G; g++)
        for (int i = 0; i < N; i++) {
            double mag = i < 1024 ? 1e-3 : i < 2048 ? 50.0 : 1e-12;
            double v = (2.0 * rng_uniform(&rng) - 1.0) * mag * ldexp(1.0, -(int)(rng_uniform(&rng) * 30));
            part[g][i] = (i % 97 == 0) ? 0.0f : (float)v;
        }
}

/* The update at P ranks: rank r owns micro-batches [r G / P, (r+1) G / P); ranks' integer
 * sums are added in the order `order` (a permutation of ranks). */
static void reduce_at(float part[G][N], int P, const int *order, float *out)
{
    ExactGrad x[G];
    static int32_t acc[G][N + 2];
    int32_t mx[(N + EXACT_BLOCK - 1) / EXACT_BLOCK];
    size_t nb = (N + EXACT_BLOCK - 1) / EXACT_BLOCK;
    for (size_t b = 0; b < nb; b++) mx[b] = INT32_MIN;
    for (int r = 0; r < P; r++) {
        int lo = r * G / P, hi = (r + 1) * G / P;
        assert_int_equal(exact_grad_init(&x[r], N, G, (size_t)(hi - lo), acc[r], 2), XT_OK);
        exact_grad_begin(&x[r]);
        for (int g = lo; g < hi; g++) {
            memcpy(exact_grad_next(&x[r]), part[g], sizeof part[g]);
            assert_true(exact_grad_measure(&x[r]));
        }
        for (size_t b = 0; b < nb; b++) mx[b] = x[r].mx[b] > mx[b] ? x[r].mx[b] : mx[b];
    }
    int32_t *sum = calloc(N + 2, sizeof *sum);
    for (int k = 0; k < P; k++) { /* the MAX "allreduce", then each rank converts */
        int r = order[k];
        memcpy(x[r].mx, mx, sizeof mx);
        exact_grad_convert(&x[r]);
        for (size_t i = 0; i < N + 2; i++) sum[i] += x[r].acc[i];
    }
    memcpy(x[0].acc, sum, (N + 2) * sizeof *sum); /* the SUM "allreduce" */
    memcpy(out, exact_grad_finish(&x[0], 0, N), N * sizeof *out);
    for (int r = 0; r < P; r++) exact_grad_free(&x[r]);
    free(sum);
}

static void test_exact_grad_any_split_same_bits(void **state)
{
    (void)state;
    static float part[G][N], ref[N], out[N];
    make_partials(part);
    const int fwd[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const int rev[] = {11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    reduce_at(part, 1, fwd, ref);
    for (int P = 2; P <= G; P++) {
        reduce_at(part, P, fwd, out);
        assert_memory_equal(out, ref, sizeof ref);
        reduce_at(part, P, rev + (G - P), out); /* ranks P-1 .. 0 */
        assert_memory_equal(out, ref, sizeof ref);
    }
    /* the rounding exact.h documents: each partial to a multiple of 2^-e_b, with the
     * largest partial of the block below 2^(30 - c) units (c = 4 for 12 terms) */
    for (int i = 0; i < N; i++) {
        double exact = 0.0, big = 0.0;
        for (int g = 0; g < G; g++) exact += part[g][i];
        int b0 = i / EXACT_BLOCK * EXACT_BLOCK, b1 = b0 + EXACT_BLOCK < N ? b0 + EXACT_BLOCK : N;
        for (int g = 0; g < G; g++)
            for (int j = b0; j < b1; j++) big = fmax(big, fabs(part[g][j]));
        double unit = big * ldexp(1.0, -(30 - 4 - 1)); /* >= 2^-e_b */
        double tol = G * unit / 2 + fabs(exact) * FLT_EPSILON;
        assert_true(fabs((double)ref[i] - exact) <= tol);
    }
}

/* avx2, sse2 and scalar kernels: the same bits. */
static void test_exact_kernels_agree(void **state)
{
    (void)state;
    static float part[G][N], ref[N], out[N];
    make_partials(part);
    const int fwd[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    assert_true(exact_use_kernel("scalar"));
    reduce_at(part, 3, fwd, ref);
    const char *names[] = {"sse2", "avx2"};
    int tried = 0;
    for (int k = 0; k < 2; k++) {
        if (!exact_use_kernel(names[k])) continue;
        tried++;
        reduce_at(part, 3, fwd, out);
        assert_memory_equal(out, ref, sizeof ref);
    }
#if defined(__x86_64__)
    assert_true(tried >= 1);
#endif
    assert_false(exact_use_kernel("no-such-kernel"));
    exact_use_kernel(NULL);
}

/* A NaN or an infinity in a partial is reported, not converted silently. */
static void test_exact_nonfinite(void **state)
{
    (void)state;
    ExactGrad x;
    int32_t acc[40];
    assert_int_equal(exact_grad_init(&x, 40, 2, 2, acc, 0), XT_OK);
    exact_grad_begin(&x);
    float *p = exact_grad_next(&x);
    for (int i = 0; i < 40; i++) p[i] = 1.0f;
    assert_true(exact_grad_measure(&x));
    p = exact_grad_next(&x);
    for (int i = 0; i < 40; i++) p[i] = i == 37 ? INFINITY : 1.0f;
    assert_false(exact_grad_measure(&x));
    exact_grad_free(&x);
}

/* Limbs: round to 2^-32, sums exact in any order, the limits refused. */
static void test_exact_limbs(void **state)
{
    (void)state;
    Rng rng;
    rng_seed_tuple(&rng, 3, 0, 0);
    double v[500];
    int32_t l[EXACT_LIMBS], fwd[EXACT_LIMBS] = {0}, rev[EXACT_LIMBS] = {0};
    long double exact = 0.0L;
    for (int i = 0; i < 500; i++) {
        v[i] = (rng_uniform(&rng) - 0.3) * ldexp(1.0, (int)(rng_uniform(&rng) * 80) - 32);
        assert_true(exact_limbs_encode(v[i], l));
        double back = exact_limbs_decode(l);
        assert_true(fabs(back - v[i]) <= 0x1p-33 + fabs(v[i]) * DBL_EPSILON);
        exact += v[i];
        exact_limbs_add(fwd, l);
    }
    for (int i = 499; i >= 0; i--) {
        exact_limbs_encode(v[i], l);
        exact_limbs_add(rev, l);
    }
    assert_memory_equal(fwd, rev, sizeof fwd);
    assert_true(fabsl((long double)exact_limbs_decode(fwd) - exact) <= 500 * 0x1p-33 + fabsl(exact) * 1e-15L);
    assert_true(exact_limbs_encode(-0x1p47, l));
    assert_true(exact_limbs_decode(l) == -0x1p47);
    assert_false(exact_limbs_encode(0x1p48, l));
    assert_false(exact_limbs_encode(NAN, l));
    assert_false(exact_limbs_encode(-INFINITY, l));
}

/* Pairs and fixed point: order-independent, within their rounding. */
static void test_exact_pairs_and_fixed(void **state)
{
    (void)state;
    double hi = 0, lo = 0, hi2 = 0, lo2 = 0, plain = 0;
    for (int i = 0; i < 1000; i++) {
        double v = 0.1 * i + 1.0 / (i + 3);
        exact_pair_add(&hi, &lo, v);
        exact_pair_add(&hi2, &lo2, 0.1 * (999 - i) + 1.0 / (999 - i + 3));
        plain += v;
    }
    assert_true(hi == hi2 && lo == lo2);
    assert_true(fabs(exact_pair_value(hi, lo) - plain) < 1e-6);
    /* n terms of max |x| never overflow int64 */
    size_t n = 1000003;
    int e = exact_fixed_exponent(3.5, n);
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += exact_fixed(-3.5, e);
    assert_true(s < 0 && ldexp((double)s, -e) == -3.5 * (double)n);
    assert_int_equal(exact_fixed_exponent(0.0, 10), 0);
}

/* Units: the same integers in any grouping (two "ranks" added element-wise against one pass in
 * reverse order), fractions carried (3 million terms of 0.7, past where pairs lose exactness),
 * the value within 2^-21 per term, refusals at the bound. */
static void test_exact_units(void **state)
{
    (void)state;
    int64_t one[2] = {0, 0}, a[2] = {0, 0}, b[2] = {0, 0};
    const size_t n = 3000000;
    for (size_t i = 0; i < n; i++) {
        double v = 0.7 + (double)(i % 7) * 1e-3;
        assert_true(exact_units_add(i < n / 3 ? a : b, v));
        assert_true(exact_units_add(one, 0.7 + (double)((n - 1 - i) % 7) * 1e-3));
    }
    int64_t two[2] = {a[0] + b[0], a[1] + b[1]};
    assert_true(exact_units_value(two) == exact_units_value(one));
    assert_true(one[1] >= 0 && one[1] < ((int64_t)1 << EXACT_UNIT_BITS));
    double want = 0.0;
    for (size_t i = 0; i < n; i++) want += 0.7 + (double)(i % 7) * 1e-3;
    assert_true(fabs(exact_units_value(one) - want) <= (double)n * 0x1p-21);
    int64_t big[2] = {0, 0};
    assert_false(exact_units_add(big, 0x1p62));
    assert_false(exact_units_add(big, -1.0));
    assert_false(exact_units_add(big, NAN));
    assert_true(exact_units_add(big, 0x1p61) && !exact_units_add(big, 0x1p61));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_grad_any_split_same_bits),
        cmocka_unit_test(test_exact_kernels_agree),
        cmocka_unit_test(test_exact_nonfinite),
        cmocka_unit_test(test_exact_limbs),
        cmocka_unit_test(test_exact_pairs_and_fixed),
        cmocka_unit_test(test_exact_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
