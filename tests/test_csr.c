/* Unit tests of csr (one process, no files): the row checks (sorting, duplicates, ranges,
 * non-finite values, indptr), gathering and densifying rows, and the first layer's two
 * products against the dense sgemm path on the same data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"
#include "linalg.h"
#include "rng.h"
#include "xt_test.h"

/* A random m x d matrix with about density * d non-zeros per row (some rows empty), as
 * CSR in c and dense in X (m, d). */
static void random_csr(CsrRows *c, float *X, size_t m, size_t d, double density, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    assert_int_equal(csr_init_batch(c, m, m * d, d), XT_OK);
    memset(X, 0, m * d * sizeof *X);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < d; j++) {
            if (rng_uniform(&r) >= density) continue;
            float v = (float)(4.0 * rng_uniform(&r) - 2.0);
            c->indices[k] = (int32_t)j;
            c->values[k++] = v;
            X[i * d + j] = v;
        }
        c->indptr[i + 1] = k;
    }
    c->m = m;
}

static void random_floats(float *v, size_t n, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) v[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
}

/* max |a - b| / scale over n values: scale[i] = the sum of the absolute values of the terms
 * that make b[i] (cancellation makes a plain relative difference of float sums meaningless
 * for results near 0; this is the bound a float sum obeys). */
static double max_rel(const float *a, const float *b, const double *scale, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (scale[i] > 0.0 ? scale[i] : 1.0);
        if (e > worst) worst = e;
    }
    return worst;
}

/* scale of Z0 + X W^T (m, out) and of dZ^T X (out, d): sums of |terms|. */
static void term_scales(const float *X, const float *W, const float *Z0, const float *dZ,
                        size_t m, size_t d, size_t out, double *sz, double *sg)
{
    for (size_t i = 0; i < m; i++)
        for (size_t o = 0; o < out; o++) {
            double s = fabs((double)Z0[i * out + o]);
            for (size_t j = 0; j < d; j++) s += fabs((double)X[i * d + j] * W[o * d + j]);
            sz[i * out + o] = s;
        }
    for (size_t o = 0; o < out; o++)
        for (size_t j = 0; j < d; j++) {
            double s = 0.0;
            for (size_t i = 0; i < m; i++) s += fabs((double)dZ[i * out + o] * X[i * d + j]);
            sg[o * d + j] = 2.0 * s; /* twice: the accumulated case */
        }
}

/* Z += X W^T and dW (+)= dZ^T X, CSR against sgemm on the same values. */
static void test_csr_products_match_dense(void **state)
{
    (void)state;
    const size_t m = 37, d = 300, out = 7;
    CsrRows c;
    float *X = malloc(m * d * sizeof *X), *W = malloc(out * d * sizeof *W);
    float *Zs = malloc(m * out * sizeof *Zs), *Zd = malloc(m * out * sizeof *Zd);
    float *dZ = malloc(m * out * sizeof *dZ);
    float *gs = malloc(out * d * sizeof *gs), *gd = malloc(out * d * sizeof *gd);
    assert_true(X && W && Zs && Zd && dZ && gs && gd);
    random_csr(&c, X, m, d, 0.05, 1);
    assert_true(csr_nnz(&c) > m); /* not trivially empty */
    random_floats(W, out * d, 2);
    random_floats(Zs, m * out, 3); /* the bias already in Z: the kernel adds */
    random_floats(dZ, m * out, 4);
    double *sz = malloc(m * out * sizeof *sz), *sg = malloc(out * d * sizeof *sg);
    assert_true(sz && sg);
    term_scales(X, W, Zs, dZ, m, d, out, sz, sg);
    memcpy(Zd, Zs, m * out * sizeof *Zd);
    csr_mul_wt(Zs, &c, W, out);
    linalg_gemm(Zd, X, W, m, out, d, false, true, 1.0f, 1.0f);
    double e = max_rel(Zs, Zd, sz, m * out);
    printf("forward: max rel diff %.3g\n", e);
    assert_true(e <= 1e-6);
    random_floats(gs, out * d, 5); /* garbage that must be overwritten */
    csr_grad_w(gs, dZ, &c, out, false);
    linalg_gemm(gd, dZ, X, out, d, m, true, false, 1.0f, 0.0f);
    e = max_rel(gs, gd, sg, out * d);
    printf("backward: max rel diff %.3g\n", e);
    assert_true(e <= 1e-6);
    csr_grad_w(gs, dZ, &c, out, true); /* accumulate: twice the gradient */
    linalg_gemm(gd, dZ, X, out, d, m, true, false, 1.0f, 1.0f);
    e = max_rel(gs, gd, sg, out * d);
    assert_true(e <= 1e-6);
    csr_free(&c);
    free(sz), free(sg);
    free(X), free(W), free(Zs), free(Zd), free(dZ), free(gs), free(gd);
}

/* A block large enough for the transposed copy of W (>= d / 4 non-zeros, >= 8 outputs)
 * gives the same bits as its rows one at a time (each too small for it: the strided loop),
 * and both match sgemm. */
static void test_csr_transposed_forward_same_bits(void **state)
{
    (void)state;
    const size_t m = 200, d = 2000, out = 12;
    CsrRows c, one;
    float *X = malloc(m * d * sizeof *X), *W = malloc(out * d * sizeof *W);
    float *Zb = malloc(m * out * sizeof *Zb), *Zr = malloc(m * out * sizeof *Zr);
    float *Zd = malloc(m * out * sizeof *Zd);
    assert_true(X && W && Zb && Zr && Zd);
    random_csr(&c, X, m, d, 0.01, 11);
    assert_true(csr_nnz(&c) * 4 >= d);
    assert_int_equal(csr_init_batch(&one, 1, d, d), XT_OK);
    random_floats(W, out * d, 12);
    random_floats(Zb, m * out, 13);
    memcpy(Zr, Zb, m * out * sizeof *Zr);
    memcpy(Zd, Zb, m * out * sizeof *Zd);
    csr_mul_wt(Zb, &c, W, out);
    assert_non_null(c.wt); /* the transposed path was taken */
    size_t direct = 0;
    for (size_t i = 0; i < m; i++) {
        csr_slice(&one, &c, i, 1, NULL);
        direct += csr_nnz(&one) * 4 < d;
        csr_mul_wt(Zr + i * out, &one, W, out);
    }
    assert_int_equal(direct, m); /* every row alone took the strided loop */
    assert_null(one.wt);
    assert_memory_equal(Zb, Zr, m * out * sizeof *Zb);
    linalg_gemm(Zd, X, W, m, out, d, false, true, 1.0f, 1.0f);
    double worst = 0.0;
    for (size_t i = 0; i < m * out; i++) worst = fmax(worst, fabs((double)Zb[i] - (double)Zd[i]));
    printf("transposed forward: max |diff| to sgemm %.3g\n", worst);
    assert_true(worst <= 1e-5);
    csr_free(&c);
    csr_free(&one);
    free(X), free(W), free(Zb), free(Zr), free(Zd);
}

/* Few outputs (the rows scattered into double sums) give the same bits as the regrouping
 * by column (more outputs): the first 3 of 6 outputs computed both ways, plain and
 * accumulated. */
static void test_csr_scattered_backward_same_bits(void **state)
{
    (void)state;
    const size_t m = 50, d = 400, few = 3, many = 6;
    assert_true(few <= CSR_SCATTER_MAX_OUT && many > CSR_SCATTER_MAX_OUT);
    CsrRows c;
    float *X = malloc(m * d * sizeof *X), *dZ6 = malloc(m * many * sizeof *dZ6);
    float *dZ3 = malloc(m * few * sizeof *dZ3);
    float *g6 = malloc(many * d * sizeof *g6), *g3 = malloc(few * d * sizeof *g3);
    assert_true(X && dZ6 && dZ3 && g6 && g3);
    random_csr(&c, X, m, d, 0.05, 21);
    random_floats(dZ6, m * many, 22);
    for (size_t i = 0; i < m; i++) memcpy(dZ3 + i * few, dZ6 + i * many, few * sizeof *dZ3);
    random_floats(g6, many * d, 23);
    memcpy(g3, g6, few * d * sizeof *g3); /* the same starting values for the accumulation */
    for (int accumulate = 1; accumulate >= 0; accumulate--) {
        csr_grad_w(g6, dZ6, &c, many, accumulate);
        csr_grad_w(g3, dZ3, &c, few, accumulate);
        assert_memory_equal(g3, g6, few * d * sizeof *g3);
    }
    csr_free(&c);
    free(X), free(dZ6), free(dZ3), free(g6), free(g3);
}

/* W kept by column, (d, out): csr_mul_w and csr_grad_wt give csr_mul_wt's and csr_grad_w's
 * bits, transposed, for one, few and many outputs, a batch sparse enough for every path
 * (few outputs: regrouped by column) and one dense enough for the others (scattered sums,
 * transposed copy), plain and accumulated, on two batches in turn (the regrouping's
 * scratch is left ready for the next); and accumulated into a packed gradient (column j's
 * run at pos[j], a permutation), the same bits in the permuted runs. */
static void test_csr_by_column_same_bits(void **state)
{
    (void)state;
    const size_t m = 40, d = 3000, outs[] = {1, 3, 12};
    const double dens[] = {0.002, 0.05};
    float *X = malloc(m * d * sizeof *X), *W = malloc(12 * d * sizeof *W);
    float *Wt = malloc(12 * d * sizeof *Wt), *dZ = malloc(m * 12 * sizeof *dZ);
    float *Z1 = malloc(m * 12 * sizeof *Z1), *Z2 = malloc(m * 12 * sizeof *Z2);
    float *g = malloc(12 * d * sizeof *g), *gt = malloc(12 * d * sizeof *gt);
    float *gp = malloc(12 * d * sizeof *gp);
    uint32_t *pos = malloc(d * sizeof *pos);
    assert_true(X && W && Wt && dZ && Z1 && Z2 && g && gt && gp && pos);
    for (size_t j = 0; j < d; j++) pos[j] = (uint32_t)(j * 7919 % d); /* 7919 is prime */
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++) {
            const size_t out = outs[a];
            CsrRows c;
            random_csr(&c, X, m, d, dens[b], 31 + a * 2 + b);
            random_floats(W, out * d, 41 + a);
            random_floats(dZ, m * out, 51 + a);
            random_floats(Z1, m * out, 61 + a);
            memcpy(Z2, Z1, m * out * sizeof *Z2);
            for (size_t o = 0; o < out; o++)
                for (size_t j = 0; j < d; j++) Wt[j * out + o] = W[o * d + j];
            csr_mul_wt(Z1, &c, W, out);
            csr_mul_w(Z2, &c, Wt, out);
            assert_memory_equal(Z1, Z2, m * out * sizeof *Z1);
            memcpy(g, W, out * d * sizeof *g); /* starting values for the accumulation */
            memcpy(gt, Wt, out * d * sizeof *gt);
            for (size_t j = 0; j < d; j++)
                memcpy(gp + pos[j] * out, Wt + j * out, out * sizeof *gp);
            csr_grad_wt(gp, dZ, &c, out, true, pos);
            for (int accumulate = 1; accumulate >= 0; accumulate--) {
                csr_grad_w(g, dZ, &c, out, accumulate);
                csr_grad_wt(gt, dZ, &c, out, accumulate, NULL);
                size_t differ = 0;
                for (size_t o = 0; o < out; o++)
                    for (size_t j = 0; j < d; j++) {
                        differ += g[o * d + j] != gt[j * out + o];
                        if (accumulate) differ += gp[pos[j] * out + o] != gt[j * out + o];
                    }
                assert_int_equal(differ, 0);
            }
            csr_free(&c);
        }
    free(X), free(W), free(Wt), free(dZ), free(Z1), free(Z2), free(g), free(gt), free(gp);
    free(pos);
}

/* Gathered, sliced and densified rows are the rows asked for, scaled by mul. */
static void test_csr_gather_slice_densify(void **state)
{
    (void)state;
    const size_t m = 9, d = 12;
    CsrRows c, g;
    float X[9 * 12], got[4 * 12], mul[12];
    random_csr(&c, X, m, d, 0.3, 7);
    for (size_t j = 0; j < d; j++) mul[j] = 0.5f + (float)j;
    const uint32_t rows[4] = {8, 0, 3, 3};
    assert_int_equal(csr_init(&g, 4, csr_max_nnz(&c, 4), d), XT_OK);
    csr_gather(&g, &c, rows, 4, mul);
    csr_densify(got, &g, NULL, 0, 4, NULL);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < d; j++)
            assert_true(got[i * d + j] == X[rows[i] * d + j] * mul[j]);
    csr_slice(&g, &c, 5, 3, NULL);
    csr_densify(got, &g, NULL, 0, 3, NULL);
    assert_memory_equal(got, X + 5 * d, 3 * d * sizeof *got);
    csr_densify(got, &c, rows, 0, 4, NULL); /* straight from the source's rows */
    for (size_t i = 0; i < 4; i++) assert_memory_equal(got + i * d, X + rows[i] * d, d * sizeof(float));
    /* the bound on a batch's non-zeros is the sum of the longest rows */
    size_t longest = 0;
    for (size_t i = 0; i < m; i++) {
        size_t len = c.indptr[i + 1] - c.indptr[i];
        if (len > longest) longest = len;
    }
    assert_int_equal(csr_max_nnz(&c, 1), longest);
    assert_int_equal(csr_max_nnz(&c, m + 3), csr_nnz(&c));
    double mx[12] = {0};
    csr_column_absmax(&c, mx);
    for (size_t j = 0; j < d; j++) {
        double want = 0.0;
        for (size_t i = 0; i < m; i++) want = fmax(want, fabs((double)X[i * d + j]));
        assert_true(mx[j] == want);
    }
    csr_free(&g);
    csr_free(&c);
}

/* The rows of a 3 x 5 block, written by hand, checked with row0 = 10. */
static Status check(const size_t *ip, const int32_t *ix, const float *v, size_t nnz, char *err,
                    size_t len)
{
    CsrRows c;
    assert_int_equal(csr_init(&c, 3, nnz, 5), XT_OK);
    memcpy(c.indptr, ip, 4 * sizeof *ip);
    memcpy(c.indices, ix, nnz * sizeof *ix);
    memcpy(c.values, v, nnz * sizeof *v);
    c.m = 3;
    err[0] = '\0';
    Status st = csr_check_rows(&c, 10, err, len);
    if (st == XT_OK) { /* sorted, values with their columns */
        for (size_t i = 0; i < 3; i++)
            for (size_t k = c.indptr[i] + 1; k < c.indptr[i + 1]; k++)
                assert_true(c.indices[k - 1] < c.indices[k]);
        for (size_t k = 0; k < nnz; k++) assert_true(c.values[k] == (float)(c.indices[k] + 1));
    }
    csr_free(&c);
    return st;
}

static void test_csr_check_rows(void **state)
{
    (void)state;
    char err[512];
    const size_t ip[4] = {0, 3, 3, 5};
    const int32_t sorted[5] = {0, 2, 4, 1, 3}, unsorted[5] = {4, 0, 2, 3, 1};
    const float vs[5] = {1, 3, 5, 2, 4}, vu[5] = {5, 1, 3, 4, 2};
    assert_int_equal(check(ip, sorted, vs, 5, err, sizeof err), XT_OK);
    assert_int_equal(check(ip, unsorted, vu, 5, err, sizeof err), XT_OK);
    const int32_t dup[5] = {4, 0, 4, 3, 1};
    assert_int_equal(check(ip, dup, vu, 5, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "row 10: column 4 appears twice"));
    const int32_t out[5] = {0, 2, 4, 1, 5};
    assert_int_equal(check(ip, out, vs, 5, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "row 12: column index 5 is outside [0, 5)"));
    const float inf[5] = {1, 3, 5, INFINITY, 4};
    assert_int_equal(check(ip, sorted, inf, 5, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "row 12, column 1: non-finite value +Inf"));
    const size_t dec[4] = {0, 3, 2, 5};
    assert_int_equal(check(dec, sorted, vs, 5, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "indptr decreases at row 11"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_transposed_forward_same_bits),
        cmocka_unit_test(test_csr_scattered_backward_same_bits),
        cmocka_unit_test(test_csr_by_column_same_bits),
        cmocka_unit_test(test_csr_products_match_dense),
        cmocka_unit_test(test_csr_gather_slice_densify),
        cmocka_unit_test(test_csr_check_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
