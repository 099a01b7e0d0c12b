/* Cross-entropy: worked examples, limits, finite differences, extreme logits, options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#include "loss.h"
#include "rng.h"
#include "xt_test.h"

#define B_FD 5
#define K_FD 4
#define FD_H 1e-4
#define FD_TOL 1e-6

/* ---- worked examples from the cross-entropy notes ---- */

static void test_loss_worked_examples_prob(void **state)
{
    (void)state;
    const double y1[3] = {0.4, 0.4, 0.2}, t1[3] = {0, 1, 0};
    const double y2[3] = {0.1, 0.2, 0.7}, t2[3] = {0, 0, 1};
    double l1 = loss_xent_prob(y1, t1, 3, 1e-7), l2 = loss_xent_prob(y2, t2, 3, 1e-7);
    assert_true(fabs(l1 - 0.916290731874155) < 1e-12); /* -ln 0.4 */
    assert_true(fabs(l2 - 0.356674943938732) < 1e-12); /* -ln 0.7 */
    assert_true(fabs(l1 - 0.916) < 5e-4 && fabs(l2 - 0.357) < 5e-4);
    /* dL/da for y = 1: (a - y) / (a (1 - a)) = -1/a */
    double g97 = loss_bce_prob_grad(0.97, 1.0, 1e-7), g81 = loss_bce_prob_grad(0.81, 1.0, 1e-7);
    assert_true(fabs(g97 - (-1.0309278350515465)) < 1e-9);
    assert_true(fabs(g81 - (-1.2345679012345678)) < 1e-9);
    assert_true(fabs(g97 - (-1.0309)) < 1e-4 && fabs(g81 - (-1.2346)) < 1e-4);
    /* the farther from the target, the larger the push */
    assert_true(fabs(g81) > fabs(g97));
}

/* The same examples through the logit path: logits = log(probabilities). */
static void test_loss_worked_examples_logits(void **state)
{
    (void)state;
    float z[6] = {logf(0.4f), logf(0.4f), logf(0.2f), logf(0.1f), logf(0.2f), logf(0.7f)};
    int32_t y[2] = {1, 2};
    float rl[2], g[6];
    LossOptions o = loss_options_default();
    LossTotals t = {0};
    loss_softmax_xent(g, rl, &t, z, y, 2, 3, &o);
    assert_true(fabs(rl[0] - 0.9162907) < 1e-6);
    assert_true(fabs(rl[1] - 0.3566749) < 1e-6);
    assert_true(fabs(t.sum - (0.916290731874155 + 0.356674943938732)) < 1e-6);
    assert_true(t.weight == 2.0);
    /* gradient p - onehot */
    const double want[6] = {0.4, -0.6, 0.2, 0.1, 0.2, -0.3};
    for (int i = 0; i < 6; i++) assert_true(fabs(g[i] - want[i]) < 1e-6);
    assert_true(fabs(loss_reduce(&t, LOSS_REDUCE_MEAN) - 0.636482837906444) < 1e-6);
}

/* Binary cross-entropy from probabilities and the derivative against a difference. */
static void test_loss_bce_prob_derivative(void **state)
{
    (void)state;
    const double as[] = {0.03, 0.3, 0.5, 0.81, 0.97};
    const double ys[] = {0.0, 1.0, 0.25};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof as / sizeof *as; i++)
        for (size_t j = 0; j < 3; j++) {
            double h = 1e-6;
            double fd = (loss_bce_prob(as[i] + h, ys[j], 1e-12) -
                         loss_bce_prob(as[i] - h, ys[j], 1e-12)) / (2 * h);
            double an = loss_bce_prob_grad(as[i], ys[j], 1e-12);
            double e = fabs(fd - an) / fmax(fabs(an), 1.0);
            if (e > worst) worst = e;
        }
    printf("bce_prob derivative: max rel err %.3g\n", worst);
    assert_true(worst < 1e-7);
    /* clamping keeps everything finite at 0 and 1 */
    assert_true(isfinite(loss_bce_prob(0.0, 1.0, 1e-7)) && isfinite(loss_bce_prob(1.0, 0.0, 1e-7)));
    assert_true(isfinite(loss_bce_prob_grad(0.0, 1.0, 1e-7)));
    assert_true(fabs(loss_bce_prob(0.0, 1.0, 1e-7) - (-log(1e-7))) < 1e-9);
}

/* Non-negative, and tends to 0 as the prediction approaches the target. */
static void test_loss_nonneg_and_limit(void **state)
{
    (void)state;
    LossOptions o = loss_options_default();
    double prev = INFINITY;
    for (int s = 0; s <= 6; s++) {
        float m = (float)(s * 5); /* margin of the true class */
        float z[3] = {0.0f, m, 0.0f};
        int32_t y = 1;
        LossTotals t = {0};
        loss_softmax_xent(NULL, NULL, &t, z, &y, 1, 3, &o);
        assert_true(t.sum >= 0.0);
        assert_true(t.sum < prev);
        prev = t.sum;
        float zb = m;
        int32_t yb = 1;
        LossTotals tb = {0};
        loss_binary_xent(NULL, NULL, &tb, &zb, &yb, 1, &o);
        assert_true(tb.sum >= 0.0);
        float zm[2] = {m, -m}, ym[2] = {1.0f, 0.0f};
        LossTotals tm = {0};
        loss_sigmoid_xent(NULL, NULL, &tm, zm, ym, 1, 2, &o);
        assert_true(tm.sum >= 0.0);
    }
    assert_true(prev < 1e-12); /* margin 30: loss ~ 2 e^-30 */
    for (double a = 0.5; a < 1.0; a = (a + 1.0) / 2) assert_true(loss_bce_prob(a, 1.0, 1e-15) >= 0.0);
    assert_true(loss_bce_prob(1.0 - 1e-12, 1.0, 1e-15) < 1e-11);
}

/* ---- finite differences in double ---- */

typedef enum { KIND_SOFTMAX, KIND_SOFT, KIND_BINARY, KIND_SIGMOID } Kind;

typedef struct {
    Kind kind;
    size_t K;
    const LossOptions *opt;
    const int32_t *y;
    const float *t;
} Case;

static void eval_case(const Case *c, float *g, float *rl, LossTotals *tot, const float *z, size_t B)
{
    switch (c->kind) {
    case KIND_SOFTMAX: loss_softmax_xent(g, rl, tot, z, c->y, B, c->K, c->opt); break;
    case KIND_SOFT: loss_softmax_xent_soft(g, rl, tot, z, c->t, B, c->K, c->opt); break;
    case KIND_BINARY: loss_binary_xent(g, rl, tot, z, c->y, B, c->opt); break;
    case KIND_SIGMOID: loss_sigmoid_xent(g, rl, tot, z, c->t, B, c->K, c->opt); break;
    }
}

/* Reduced loss (double) of the whole batch under reduction r, or row `row` for NONE. */
static double reduced(const Case *c, const float *z, size_t B, LossReduction r, size_t row)
{
    LossTotals tot = {0};
    float rl[B_FD];
    eval_case(c, NULL, rl, &tot, z, B);
    if (r == LOSS_REDUCE_NONE) {
        /* row losses in double: recompute that row alone */
        LossTotals one = {0};
        size_t w = c->kind == KIND_BINARY ? 1 : c->K;
        Case c1 = *c;
        if (c->y) c1.y = c->y + row;
        if (c->t) c1.t = c->t + row * c->K;
        eval_case(&c1, NULL, NULL, &one, z + row * w, 1);
        return one.sum;
    }
    return loss_reduce(&tot, r);
}

/* Max relative error of the analytic gradient against central differences. */
static double fd_check(const Case *c, LossReduction r)
{
    size_t w = c->kind == KIND_BINARY ? 1 : c->K;
    size_t n = B_FD * w;
    float z[B_FD * K_FD], g[B_FD * K_FD];
    Rng rng;
    rng_seed(&rng, 7 + (uint64_t)c->kind);
    for (size_t i = 0; i < n; i++) z[i] = (float)(3.0 * rng_normal(&rng));
    LossTotals tot = {0};
    eval_case(c, g, NULL, &tot, z, B_FD);
    double scale = loss_grad_scale(&tot, r);
    double an[B_FD * K_FD], fd[B_FD * K_FD];
    for (size_t i = 0; i < n; i++) {
        size_t row = i / w;
        float keep = z[i];
        float zp = (float)((double)keep + FD_H), zm = (float)((double)keep - FD_H);
        z[i] = zp;
        double lp = reduced(c, z, B_FD, r, row);
        z[i] = zm;
        double lm = reduced(c, z, B_FD, r, row);
        z[i] = keep;
        fd[i] = (lp - lm) / ((double)zp - (double)zm); /* the exact step taken */
        an[i] = (double)g[i] * scale;
    }
    size_t where;
    return xt_max_rel_err(an, fd, n, 1e-2, &where);
}

static void run_fd(const char *name, const Case *c, double *worst_all)
{
    const LossReduction rs[3] = {LOSS_REDUCE_SUM, LOSS_REDUCE_MEAN, LOSS_REDUCE_NONE};
    const char *rn[3] = {"sum", "mean", "none"};
    for (int k = 0; k < 3; k++) {
        double e = fd_check(c, rs[k]);
        printf("  fd %-34s %-4s max rel err %.2e\n", name, rn[k], e);
        if (e > *worst_all) *worst_all = e;
        assert_true(e < FD_TOL);
    }
}

static void test_loss_finite_differences(void **state)
{
    (void)state;
    int32_t y[B_FD] = {0, 3, 1, 2, 3}, yb[B_FD] = {1, 0, 0, 1, 1};
    int32_t yi[B_FD] = {0, 3, 1, 2, 3};
    float t[B_FD * K_FD], tm[B_FD * K_FD];
    Rng rng;
    rng_seed(&rng, 3);
    for (size_t i = 0; i < B_FD; i++) {
        double s = 0;
        for (size_t k = 0; k < K_FD; k++) {
            t[i * K_FD + k] = (float)(rng_uniform(&rng) + 0.05);
            s += t[i * K_FD + k];
            tm[i * K_FD + k] = (float)(rng_uniform(&rng) < 0.5 ? 0.0 : (k == 2 ? 0.7 : 1.0));
        }
        for (size_t k = 0; k < K_FD; k++) t[i * K_FD + k] = (float)(t[i * K_FD + k] / s);
    }
    const float cw[K_FD] = {0.5f, 2.0f, 1.0f, 3.0f};
    LossOptions plain = loss_options_default();
    LossOptions weighted = plain;
    weighted.class_weight = cw;
    LossOptions smooth = plain;
    smooth.label_smoothing = 0.1f;
    LossOptions ignore = plain;
    ignore.ignore_index = 3;
    LossOptions all = weighted;
    all.label_smoothing = 0.2;
    all.ignore_index = 1;
    all.pos_weight = 2.5f;
    LossOptions pos = plain;
    pos.pos_weight = 3.0f;
    double worst = 0.0;
    printf("finite differences (h = %.0e, |err| / max(|fd|, 1e-2)):\n", FD_H);
    const struct {
        const char *name;
        Case c;
    } cases[] = {
        {"softmax", {KIND_SOFTMAX, K_FD, &plain, y, NULL}},
        {"softmax class weights", {KIND_SOFTMAX, K_FD, &weighted, y, NULL}},
        {"softmax label smoothing", {KIND_SOFTMAX, K_FD, &smooth, y, NULL}},
        {"softmax ignore_index", {KIND_SOFTMAX, K_FD, &ignore, yi, NULL}},
        {"softmax weights+smoothing+ignore", {KIND_SOFTMAX, K_FD, &all, yi, NULL}},
        {"softmax soft targets", {KIND_SOFT, K_FD, &plain, NULL, t}},
        {"softmax soft targets weights", {KIND_SOFT, K_FD, &weighted, NULL, t}},
        {"softmax soft targets smoothing", {KIND_SOFT, K_FD, &smooth, NULL, t}},
        {"binary", {KIND_BINARY, 1, &plain, yb, NULL}},
        {"binary class weights", {KIND_BINARY, 1, &weighted, yb, NULL}},
        {"binary pos_weight", {KIND_BINARY, 1, &pos, yb, NULL}},
        {"binary smoothing", {KIND_BINARY, 1, &smooth, yb, NULL}},
        {"binary all options", {KIND_BINARY, 1, &all, yb, NULL}},
        {"multilabel", {KIND_SIGMOID, K_FD, &plain, NULL, tm}},
        {"multilabel output weights", {KIND_SIGMOID, K_FD, &weighted, NULL, tm}},
        {"multilabel pos_weight", {KIND_SIGMOID, K_FD, &pos, NULL, tm}},
        {"multilabel smoothing", {KIND_SIGMOID, K_FD, &smooth, NULL, tm}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_fd(cases[i].name, &cases[i].c, &worst);
    printf("finite differences: worst max rel err over all losses/options/reductions: %.2e\n", worst);
}

/* loss_curvature then loss_curvature_times against central differences of loss_compute's
 * gradient along u: (grad(z + h u) - grad(z - h u)) / 2h, for every loss and its options;
 * and loss_curvature_diag against the products along each unit vector (the same H_i). */
static double hv_fd_check(LossKind kind, size_t K, const LossOptions *o, LossTargets tg)
{
    const size_t n = B_FD * K;
    const double h = 1e-2;
    float z[B_FD * K_FD], u[B_FD * K_FD], zp[B_FD * K_FD], zm[B_FD * K_FD];
    float gp[B_FD * K_FD], gm[B_FD * K_FD], hv[B_FD * K_FD];
    Rng rng;
    rng_seed(&rng, 11 + (uint64_t)kind);
    for (size_t i = 0; i < n; i++) {
        z[i] = (float)(1.5 * rng_normal(&rng));
        u[i] = (float)rng_normal(&rng);
        zp[i] = (float)((double)z[i] + h * (double)u[i]);
        zm[i] = (float)((double)z[i] - h * (double)u[i]);
    }
    LossTotals t = {0};
    loss_compute(kind, gp, NULL, &t, zp, tg, B_FD, K, o);
    loss_compute(kind, gm, NULL, &t, zm, tg, B_FD, K, o);
    float curv[B_FD * K_FD], rw[B_FD], hd[B_FD * K_FD], e[B_FD * K_FD], he[B_FD * K_FD];
    loss_curvature(kind, curv, rw, z, tg, B_FD, K, o);
    loss_curvature_times(kind, hv, curv, rw, u, B_FD, K);
    loss_curvature_diag(kind, hd, curv, rw, B_FD, K);
    for (size_t k = 0; k < K; k++) { /* the diagonal: e_k in every row */
        for (size_t i = 0; i < n; i++) e[i] = i % K == k ? 1.0f : 0.0f;
        loss_curvature_times(kind, he, curv, rw, e, B_FD, K);
        for (size_t i = k; i < n; i += K)
            assert_float_equal(hd[i], he[i], (float)(1e-6 * fabs(he[i]) + 1e-12));
    }
    double an[B_FD * K_FD], fd[B_FD * K_FD];
    for (size_t i = 0; i < n; i++) {
        an[i] = (double)hv[i];
        fd[i] = ((double)gp[i] - (double)gm[i]) / (2.0 * h);
    }
    size_t where;
    return xt_max_rel_err(an, fd, n, 1e-1, &where);
}

static void test_loss_curvature_finite_differences(void **state)
{
    (void)state;
    int32_t y[B_FD] = {0, 3, 1, 2, 3}, yb[B_FD] = {1, 0, 0, 1, 1};
    float t[B_FD * K_FD], tm[B_FD * K_FD];
    for (size_t i = 0; i < B_FD * K_FD; i++) {
        t[i] = (float)(0.1 + 0.2 * (double)((i * 7) % 5)) / 2.0f;
        tm[i] = (i * 3) % 4 == 0 ? 1.0f : (i % 5 == 1 ? 0.3f : 0.0f);
    }
    for (size_t i = 0; i < B_FD; i++) { /* rows of t sum to 1 */
        float s = 0.0f;
        for (size_t k = 0; k < K_FD; k++) s += t[i * K_FD + k];
        for (size_t k = 0; k < K_FD; k++) t[i * K_FD + k] /= s;
    }
    const float cw[K_FD] = {0.5f, 2.0f, 1.0f, 3.0f};
    LossOptions plain = loss_options_default(), all = plain;
    all.class_weight = cw;
    all.label_smoothing = 0.2;
    all.ignore_index = 1;
    LossOptions sig = plain;
    sig.class_weight = cw;
    sig.label_smoothing = 0.1;
    sig.pos_weight = 2.5;
    const struct {
        const char *name;
        LossKind kind;
        size_t K;
        const LossOptions *o;
        LossTargets tg;
    } cases[] = {
        {"softmax", LOSS_SOFTMAX, K_FD, &plain, {.y = y}},
        {"softmax weights+smoothing+ignore", LOSS_SOFTMAX, K_FD, &all, {.y = y}},
        {"softmax soft targets", LOSS_SOFTMAX_PROBS, K_FD, &plain, {.t = t}},
        {"softmax soft targets weights+smoothing", LOSS_SOFTMAX_PROBS, K_FD, &sig, {.t = t}},
        {"binary", LOSS_BINARY, 1, &plain, {.y = yb}},
        {"binary weights+smoothing+pos_weight", LOSS_BINARY, 1, &sig, {.y = yb}},
        {"multilabel", LOSS_MULTILABEL, K_FD, &plain, {.t = tm}},
        {"multilabel weights+smoothing+pos_weight", LOSS_MULTILABEL, K_FD, &sig, {.t = tm}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double e = hv_fd_check(cases[i].kind, cases[i].K, cases[i].o, cases[i].tg);
        printf("  hv fd %-42s max rel err %.2e\n", cases[i].name, e);
        assert_true(e < 2e-3);
    }
}

/* Logits of magnitude 1e4 give finite losses and gradients, with the right values. */
static void test_loss_extreme_logits(void **state)
{
    (void)state;
    LossOptions o = loss_options_default();
    float z[6] = {1e4f, -1e4f, 0.0f, -1e4f, 1e4f, 1e4f};
    int32_t y[2] = {1, 0};
    float g[6], rl[2];
    LossTotals t = {0};
    loss_softmax_xent(g, rl, &t, z, y, 2, 3, &o);
    assert_true(isfinite(t.sum));
    for (int i = 0; i < 6; i++) assert_true(isfinite(g[i]));
    assert_true(fabs(rl[0] - 2e4) < 1.0); /* wrong by a margin of 2e4 */
    assert_true(fabs(rl[1] - 2e4 - log(2.0)) / 2e4 < 1e-6);
    float zb[4] = {1e4f, -1e4f, 1e4f, -1e4f};
    int32_t yb[4] = {1, 0, 0, 1};
    float gb[4];
    LossTotals tb = {0};
    loss_binary_xent(gb, NULL, &tb, zb, yb, 4, &o);
    assert_true(isfinite(tb.sum) && fabs(tb.sum - 2e4) < 1e-3);
    assert_true(gb[0] == 0.0f && gb[1] == 0.0f && gb[2] == 1.0f && gb[3] == -1.0f);
    float ym[4] = {1, 0, 0, 1};
    LossTotals tm = {0};
    loss_sigmoid_xent(gb, NULL, &tm, zb, ym, 2, 2, &o);
    assert_true(isfinite(tm.sum) && fabs(tm.sum - 2e4) < 1e-3);
    float ts[6] = {0.5f, 0.5f, 0.0f, 0.0f, 0.0f, 1.0f};
    LossTotals tsf = {0};
    loss_softmax_xent_soft(g, NULL, &tsf, z, ts, 2, 3, &o);
    assert_true(isfinite(tsf.sum));
    for (int i = 0; i < 6; i++) assert_true(isfinite(g[i]));
    assert_true(isfinite(loss_softplus(1e308)) && loss_softplus(-1e4) >= 0.0);
    assert_true(loss_sigmoid(-1e4) == 0.0 && loss_sigmoid(1e4) == 1.0);
}

/* Hand-computed: class weights, ignored rows and the weighted mean. */
static void test_loss_weights_ignore_by_hand(void **state)
{
    (void)state;
    /* two classes, logits 0: p = 1/2 each, loss ln 2 per row */
    float z[6] = {0, 0, 0, 0, 0, 0};
    int32_t y[3] = {0, 1, 1};
    const float cw[2] = {1.0f, 3.0f};
    LossOptions o = loss_options_default();
    o.class_weight = cw;
    o.ignore_index = 0;
    float g[6], rl[3];
    LossTotals t = {0};
    loss_softmax_xent(g, rl, &t, z, y, 3, 2, &o);
    /* row 0 ignored; rows 1,2 weight 3: sum = 6 ln2, weight 6, mean ln2 (not / B) */
    assert_true(rl[0] == 0.0f && g[0] == 0.0f && g[1] == 0.0f);
    assert_true(fabs(t.sum - 6.0 * log(2.0)) < 1e-9);
    assert_true(t.weight == 6.0);
    assert_true(fabs(loss_reduce(&t, LOSS_REDUCE_MEAN) - log(2.0)) < 1e-9);
    assert_true(fabs(loss_reduce(&t, LOSS_REDUCE_SUM) - 6.0 * log(2.0)) < 1e-9);
    /* grad of row 1 = 3 * (0.5 - 0, 0.5 - 1) */
    assert_true(fabs(g[2] - 1.5) < 1e-7 && fabs(g[3] + 1.5) < 1e-7);
    assert_true(fabs(loss_grad_scale(&t, LOSS_REDUCE_MEAN) - 1.0 / 6.0) < 1e-15);
    assert_true(loss_grad_scale(&t, LOSS_REDUCE_SUM) == 1.0);
    assert_true(isnan(loss_reduce(&t, LOSS_REDUCE_NONE)));
    /* all rows ignored: weight 0, mean 0, scale 0 */
    int32_t yall[3] = {0, 0, 0};
    LossTotals t0 = {0};
    loss_softmax_xent(g, rl, &t0, z, yall, 3, 2, &o);
    assert_true(t0.weight == 0.0 && loss_reduce(&t0, LOSS_REDUCE_MEAN) == 0.0);
    assert_true(loss_grad_scale(&t0, LOSS_REDUCE_MEAN) == 0.0);
}

/* Hand-computed label smoothing: t = (1-e) onehot + e/K. */
static void test_loss_label_smoothing_by_hand(void **state)
{
    (void)state;
    float z[4] = {1.0f, 2.0f, 0.5f, -1.0f};
    int32_t y = 2;
    LossOptions o = loss_options_default();
    o.label_smoothing = 0.2;
    float g[4], rl;
    LossTotals t = {0};
    loss_softmax_xent(g, &rl, &t, z, &y, 1, 4, &o);
    double e = 0.2;
    double lse = log(exp(1.0) + exp(2.0) + exp(0.5) + exp(-1.0));
    double tk[4] = {e / 4, e / 4, 1 - e + e / 4, e / 4};
    double want = 0.0;
    for (int k = 0; k < 4; k++) want -= tk[k] * ((double)z[k] - lse);
    assert_true(fabs(t.sum - want) < 1e-12);
    for (int k = 0; k < 4; k++) assert_true(fabs(g[k] - (exp((double)z[k] - lse) - tk[k])) < 1e-7);
    /* smoothing of e = 0 gives back plain cross-entropy; the soft-target path with a
     * one-hot target agrees with the class-id path */
    float onehot[4] = {0, 0, 1, 0}, g2[4];
    LossTotals t2 = {0};
    loss_softmax_xent_soft(g2, NULL, &t2, z, onehot, 1, 4, &o);
    assert_true(fabs(t2.sum - t.sum) < 1e-12);
    for (int k = 0; k < 4; k++) assert_true(fabs(g2[k] - g[k]) < 1e-7);
    /* binary smoothing: y' = (1-e) y + e/2 */
    float zb = 0.3f;
    int32_t yb = 1;
    LossTotals tb = {0};
    loss_binary_xent(NULL, NULL, &tb, &zb, &yb, 1, &o);
    double ys = 1 - e + e / 2, s = 1 / (1 + exp(-(double)zb));
    assert_true(fabs(tb.sum - (-(ys * log(s) + (1 - ys) * log(1 - s)))) < 1e-12);
}

/* Multi-label is the sum over outputs of binary cross-entropy (and its mean is over the
 * K outputs of each row, as PyTorch's); logistic agrees. */
static void test_loss_multilabel_is_sum_of_binary(void **state)
{
    (void)state;
    LossOptions o = loss_options_default();
    o.pos_weight = 2.0;
    float z[3] = {0.7f, -1.2f, 2.5f}, y[3] = {1.0f, 0.0f, 1.0f};
    LossTotals tm = {0};
    loss_sigmoid_xent(NULL, NULL, &tm, z, y, 1, 3, &o);
    double want = 0.0;
    for (int k = 0; k < 3; k++) {
        int32_t yk = (int32_t)y[k];
        LossTotals tk = {0};
        loss_binary_xent(NULL, NULL, &tk, &z[k], &yk, 1, &o);
        want += tk.sum;
        /* and the textbook formula from the probability, with pos_weight */
        double a = 1 / (1 + exp(-(double)z[k]));
        double tb = -(2.0 * y[k] * log(a) + (1 - y[k]) * log(1 - a));
        assert_true(fabs(tk.sum - tb) < 1e-12);
    }
    assert_true(fabs(tm.sum - want) < 1e-12 && tm.weight == 3.0);
}

/* ---- PyTorch: tests/ref/torch_losses.txt, made by tests/ref/torch_losses.py ---- */

#define REF_MAX 64

/* Reads "tag v v v ..." into v (at most cap values); returns how many. */
static size_t read_values(FILE *f, const char *tag, double *v, size_t cap)
{
    char word[32];
    assert_int_equal(fscanf(f, "%31s", word), 1);
    assert_string_equal(word, tag);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != '\n' && c != EOF) {
        ungetc(c, f);
        assert_true(n < cap);
        assert_int_equal(fscanf(f, "%lf", &v[n]), 1);
        n++;
    }
    return n;
}

static LossKind ref_kind(const char *name)
{
    if (!strcmp(name, "softmax")) return LOSS_SOFTMAX;
    if (!strcmp(name, "probs")) return LOSS_SOFTMAX_PROBS;
    if (!strcmp(name, "binary")) return LOSS_BINARY;
    assert_string_equal(name, "multilabel");
    return LOSS_MULTILABEL;
}

/* Every case: the sum, the mean (sum / weight) and the gradient of the sum equal
 * PyTorch's float64 values within 1e-6 relative. */
static void test_loss_matches_pytorch(void **state)
{
    (void)state;
    FILE *f = fopen(XT_TESTS_DIR "/ref/torch_losses.txt", "r");
    assert_non_null(f);
    char line[256], name[64], kind[32];
    assert_non_null(fgets(line, sizeof line, f)); /* the header comment */
    size_t cases = 0;
    double worst = 0.0;
    char worst_case[128] = "";
    while (fscanf(f, " case %63s %31s", name, kind) == 2) {
        size_t B, K, nw;
        double e, pw, w[REF_MAX], z[REF_MAX], tgt[REF_MAX], sum, mean, grad[REF_MAX];
        int ignore;
        assert_int_equal(fscanf(f, "%zu %zu %lf %d %lf %zu", &B, &K, &e, &ignore, &pw, &nw), 6);
        for (size_t i = 0; i < nw; i++) assert_int_equal(fscanf(f, "%lf", &w[i]), 1);
        assert_int_equal(read_values(f, "z", z, REF_MAX), B * K);
        LossKind lk = ref_kind(kind);
        bool ids = lk == LOSS_SOFTMAX || lk == LOSS_BINARY;
        assert_int_equal(read_values(f, ids ? "y" : "t", tgt, REF_MAX), ids ? B : B * K);
        read_values(f, "sum", &sum, 1);
        read_values(f, "mean", &mean, 1);
        assert_int_equal(read_values(f, "grad", grad, REF_MAX), B * K);
        float zf[REF_MAX], tf[REF_MAX], wf[REF_MAX], g[REF_MAX];
        int32_t y[REF_MAX];
        for (size_t i = 0; i < B * K; i++) zf[i] = (float)z[i];
        for (size_t i = 0; i < (ids ? B : B * K); i++) {
            tf[i] = (float)tgt[i];
            y[i] = (int32_t)tgt[i];
        }
        for (size_t i = 0; i < nw; i++) wf[i] = (float)w[i];
        LossOptions o = loss_options_default();
        o.label_smoothing = e;
        o.pos_weight = pw;
        if (ignore >= 0) o.ignore_index = ignore;
        if (nw) o.class_weight = wf;
        LossTotals t = {0};
        loss_compute(lk, g, NULL, &t, zf, (LossTargets){.y = y, .t = tf}, B, K, &o);
        double errs[3] = {fabs(t.sum - sum) / fmax(fabs(sum), 1e-12),
                          fabs(loss_reduce(&t, LOSS_REDUCE_MEAN) - mean) / fmax(fabs(mean), 1e-12),
                          0.0};
        for (size_t i = 0; i < B * K; i++)
            errs[2] = fmax(errs[2], fabs(g[i] - grad[i]) / fmax(fabs(grad[i]), 1e-3));
        for (int j = 0; j < 3; j++)
            if (errs[j] > worst) {
                worst = errs[j];
                snprintf(worst_case, sizeof worst_case, "%s (%s)", name,
                         j == 0 ? "sum" : j == 1 ? "mean" : "gradient");
            }
        if (errs[0] > 1e-6 || errs[1] > 1e-6 || errs[2] > 1e-6)
            fail_msg("%s: sum %.3g, mean %.3g, gradient %.3g relative off PyTorch", name, errs[0],
                     errs[1], errs[2]);
        cases++;
    }
    fclose(f);
    printf("PyTorch reference: %zu cases, worst relative difference %.3g in %s\n", cases, worst,
           worst_case);
    assert_int_equal(cases, 36);
}

/* scikit-learn's compute_class_weight("balanced"): n / (K * count), by hand. */
static void test_loss_balanced_weights(void **state)
{
    (void)state;
    double counts[3] = {240, 40, 20};
    float w[3];
    char err[256];
    assert_int_equal(loss_balanced_weights(counts, 3, -1, w, err, sizeof err), XT_OK);
    assert_true(w[0] == (float)(300.0 / 720.0) && w[1] == 2.5f && w[2] == 5.0f);
    /* the ignored class leaves n and K: 260 rows over 2 classes */
    assert_int_equal(loss_balanced_weights(counts, 3, 1, w, err, sizeof err), XT_OK);
    assert_true(w[0] == (float)(260.0 / 480.0) && w[1] == 1.0f && w[2] == 6.5f);
    counts[1] = 0;
    assert_int_equal(loss_balanced_weights(counts, 3, -1, w, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "class 1 has no training rows"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_worked_examples_prob),
        cmocka_unit_test(test_loss_worked_examples_logits),
        cmocka_unit_test(test_loss_bce_prob_derivative),
        cmocka_unit_test(test_loss_nonneg_and_limit),
        cmocka_unit_test(test_loss_finite_differences),
        cmocka_unit_test(test_loss_curvature_finite_differences),
        cmocka_unit_test(test_loss_extreme_logits),
        cmocka_unit_test(test_loss_weights_ignore_by_hand),
        cmocka_unit_test(test_loss_label_smoothing_by_hand),
        cmocka_unit_test(test_loss_multilabel_is_sum_of_binary),
        cmocka_unit_test(test_loss_matches_pytorch),
        cmocka_unit_test(test_loss_balanced_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
