/* The optimisers and schedules against hand-computed steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

static OptimSettings plain(void)
{
    OptimSettings s = {.lr = 0.1, .schedule = SCHED_CONSTANT, .step_size = 1, .gamma = 1,
                       .epochs = 10, .steps_per_epoch = 1};
    return s;
}

static void test_optim_plain_sgd(void **state)
{
    (void)state;
    OptimSettings s = plain();
    Optim o;
    assert_int_equal(optim_init(&o, &s, 2), XT_OK);
    assert_null(o.velocity);
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 4.0f};
    double n = optim_step(&o, p, g, 1.0f, 0.1);
    assert_true(isnan(n)); /* the norm is only computed for clipping */
    assert_true(fabsf(p[0] - 0.95f) < 1e-7f && fabsf(p[1] - (-2.4f)) < 1e-7f);
    optim_free(&o);
}

static void test_optim_momentum_and_nesterov(void **state)
{
    (void)state;
    OptimSettings s = plain();
    s.momentum = 0.9;
    Optim o;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    float p = 1.0f, g;
    /* v1 = 1, p = 1 - 0.1 = 0.9; v2 = 0.9 + 1 = 1.9, p = 0.9 - 0.19 = 0.71 */
    g = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.9f) < 1e-7f);
    g = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.71f) < 1e-6f && fabsf(o.velocity[0] - 1.9f) < 1e-6f);
    optim_free(&o);

    s.nesterov = true;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    p = 1.0f;
    /* v1 = 1, d = g + mu v = 1.9, p = 1 - 0.19 = 0.81; v2 = 1.9, d = 1 + 1.71 = 2.71 */
    g = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.81f) < 1e-6f);
    g = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - (0.81f - 0.271f)) < 1e-6f);
    optim_free(&o);
}

static void test_optim_weight_decay_and_clipping(void **state)
{
    (void)state;
    OptimSettings s = plain();
    s.weight_decay = 0.5;
    Optim o;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    float p = 2.0f, g = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1); /* g' = 1 + 0.5*2 = 2, p = 2 - 0.2 */
    assert_true(fabsf(p - 1.8f) < 1e-6f);
    optim_free(&o);

    s = plain();
    s.clip_norm = 1.0;
    assert_int_equal(optim_init(&o, &s, 2), XT_OK);
    float pp[2] = {0, 0}, gg[2] = {3, 4}; /* norm 5 -> scaled to (0.6, 0.8) */
    double n = optim_step(&o, pp, gg, 1.0f, 1.0);
    assert_true(fabs(n - 5.0) < 1e-9);
    assert_true(fabsf(pp[0] + 0.6f) < 1e-6f && fabsf(pp[1] + 0.8f) < 1e-6f);
    float g2[2] = {0.3f, 0.4f}; /* under the limit: untouched */
    optim_step(&o, pp, g2, 1.0f, 1.0);
    assert_true(fabsf(pp[0] + 0.9f) < 1e-6f && fabsf(pp[1] + 1.2f) < 1e-6f);
    optim_free(&o);
}

/* The gradient SUM is scaled once, before decay and momentum. */
static void test_optim_grad_scale(void **state)
{
    (void)state;
    OptimSettings s = plain();
    s.weight_decay = 0.5;
    s.momentum = 0.5;
    Optim o;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    float p = 2.0f, g = 8.0f; /* a sum over 4 rows: mean 2; g' = 2 + 0.5 * 2 = 3 */
    optim_step(&o, &p, &g, 0.25f, 0.1);
    assert_true(fabsf(o.velocity[0] - 3.0f) < 1e-6f && fabsf(p - 1.7f) < 1e-6f);
    assert_true(g == 8.0f); /* the gradient buffer is left alone */
    optim_free(&o);
    /* clipping applies to the scaled, decayed gradient: sum 40 over 4 rows + 0.5 * 2 = 11,
     * clipped to norm 1 */
    s.momentum = 0.0;
    s.clip_norm = 1.0;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    p = 2.0f;
    g = 40.0f;
    double n = optim_step(&o, &p, &g, 0.25f, 0.1);
    assert_true(fabs(n - 11.0) < 1e-6 && fabsf(p - 1.9f) < 1e-6f);
    optim_free(&o);
}

static void test_optim_schedules(void **state)
{
    (void)state;
    OptimSettings s = plain();
    s.lr = 1.0;
    s.steps_per_epoch = 10;
    s.epochs = 4;
    assert_true(optim_lr(&s, 0) == 1.0 && optim_lr(&s, 39) == 1.0);
    s.schedule = SCHED_STEP;
    s.step_size = 2;
    s.gamma = 0.5;
    assert_true(optim_lr(&s, 19) == 1.0);  /* epoch 1 */
    assert_true(optim_lr(&s, 20) == 0.5);  /* epoch 2 */
    assert_true(optim_lr(&s, 39) == 0.5);
    assert_true(optim_lr(&s, 40) == 0.25); /* epoch 4 */
    s.schedule = SCHED_COSINE;
    assert_true(fabs(optim_lr(&s, 0) - 1.0) < 1e-15);
    assert_true(fabs(optim_lr(&s, 20) - 0.5) < 1e-12); /* half way */
    assert_true(fabs(optim_lr(&s, 10) - 0.5 * (1 + cos(3.14159265358979323846 / 4))) < 1e-12);
    assert_true(optim_lr(&s, 40) < 1e-15);
    /* warm-up over 1.5 epochs = 15 steps, composed with cosine */
    s.warmup_epochs = 1.5;
    assert_true(fabs(optim_lr(&s, 0) - 1.0 / 15.0) < 1e-12);
    assert_true(fabs(optim_lr(&s, 4) - (5.0 / 15.0) * 0.5 * (1 + cos(3.14159265358979323846 * 4 / 40))) < 1e-12);
    assert_true(fabs(optim_lr(&s, 20) - 0.5) < 1e-12); /* past warm-up */
}


static OptimSettings with_kind(Optimizer kind)
{
    OptimSettings s = plain();
    s.kind = kind;
    s.beta1 = 0.9;
    s.beta2 = 0.999;
    s.eps = 1e-8;
    s.trust_coefficient = 0.1;
    s.exclude_bias = true;
    /* two tensors: W (2 values) and its bias (1) */
    s.segs[0] = (ParamSegment){.off = 0, .n = 2};
    s.segs[1] = (ParamSegment){.off = 2, .n = 1, .bias = true};
    s.n_segs = 2;
    return s;
}

static void test_optim_adam_and_adamw(void **state)
{
    (void)state;
    /* a constant gradient moves Adam by lr per step (m_hat / sqrt(v_hat) = 1) */
    OptimSettings s = with_kind(OPT_ADAM);
    Optim o;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    assert_non_null(o.m);
    assert_null(o.velocity);
    float p = 1.0f, g = 0.5f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.9f) < 1e-6f);
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.8f) < 1e-6f);
    assert_int_equal(o.t, 2);
    optim_free(&o);

    /* L2 decay enters the gradient: g = 0.5 + 0.5 p; two steps, worked in double:
     * t=1: g=1, p=0.9; t=2: g=0.95, m=0.185, v=0.0019015, p=0.8001664876 */
    s.weight_decay = 0.5;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    p = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.9f) < 1e-6f);
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.8001665f) < 1e-6f);
    optim_free(&o);

    /* AdamW: p = p (1 - lr wd) first, then the step from g alone: 1 * 0.95 - 0.1 */
    s = with_kind(OPT_ADAMW);
    s.weight_decay = 0.5;
    assert_int_equal(optim_init(&o, &s, 1), XT_OK);
    p = 1.0f;
    optim_step(&o, &p, &g, 1.0f, 0.1);
    assert_true(fabsf(p - 0.85f) < 1e-6f);
    StateList l;
    optim_state(&o, &l);
    assert_string_equal(l.kind, "adamw");
    assert_int_equal(l.n_arrays, 2);
    assert_int_equal(l.n_scalars, 1);
    optim_free(&o);
}

static void test_optim_lars(void **state)
{
    (void)state;
    OptimSettings s = with_kind(OPT_LARS);
    s.eps = 0.0;
    Optim o;
    assert_int_equal(optim_init(&o, &s, 3), XT_OK);
    /* W = (3, 4): ||W|| = 5; G = (0.6, 0.8): ||G|| = 1; r = 0.1 * 5 / 1 = 0.5;
     * the bias (excluded) takes the plain step */
    float p[3] = {3.0f, 4.0f, 1.0f}, g[3] = {0.6f, 0.8f, 2.0f};
    optim_step(&o, p, g, 1.0f, 1.0);
    assert_true(fabsf(p[0] - 2.7f) < 1e-6f && fabsf(p[1] - 3.6f) < 1e-6f);
    assert_true(fabsf(p[2] - (-1.0f)) < 1e-6f);
    optim_free(&o);

    /* with decay 0.1: r = 0.5 / (1 + 0.1 * 5) = 1/3, d = r (G + 0.1 W) = (0.3, 0.4);
     * the bias decays not at all */
    s.weight_decay = 0.1;
    assert_int_equal(optim_init(&o, &s, 3), XT_OK);
    float q[3] = {3.0f, 4.0f, 1.0f};
    optim_step(&o, q, g, 1.0f, 1.0);
    assert_true(fabsf(q[0] - 2.7f) < 1e-6f && fabsf(q[1] - 3.6f) < 1e-6f);
    assert_true(fabsf(q[2] - (-1.0f)) < 1e-6f);
    optim_free(&o);

    /* the bias included: its own ratio 0.1 * 1 / 2 = 0.05 -> 1 - 0.05 * 2 = 0.9; and
     * momentum 0.9 keeps r-scaled steps: the second step is 1.9 times the first */
    s = with_kind(OPT_LARS);
    s.eps = 0.0;
    s.exclude_bias = false;
    s.momentum = 0.9;
    assert_int_equal(optim_init(&o, &s, 3), XT_OK);
    assert_non_null(o.velocity);
    float w[3] = {3.0f, 4.0f, 1.0f};
    optim_step(&o, w, g, 1.0f, 1.0);
    assert_true(fabsf(w[2] - 0.9f) < 1e-6f);
    assert_true(fabsf(o.velocity[0] - 0.3f) < 1e-6f);
    optim_free(&o);
}

static void test_optim_lamb(void **state)
{
    (void)state;
    OptimSettings s = with_kind(OPT_LAMB);
    Optim o;
    assert_int_equal(optim_init(&o, &s, 3), XT_OK);
    /* t = 1: m_hat = G, v_hat = G^2, so u = sign(G) = (1, -1): ||u|| = sqrt 2, ||W|| = 5,
     * r = 5 / sqrt 2, W -= 0.1 r u; the excluded bias moves by lr * sign = 0.1 */
    float p[3] = {3.0f, 4.0f, 1.0f}, g[3] = {0.6f, -0.8f, 2.0f};
    optim_step(&o, p, g, 1.0f, 0.1);
    const float d = 0.5f / sqrtf(2.0f);
    assert_true(fabsf(p[0] - (3.0f - d)) < 1e-5f && fabsf(p[1] - (4.0f + d)) < 1e-5f);
    assert_true(fabsf(p[2] - 0.9f) < 1e-6f);
    StateList l;
    optim_state(&o, &l);
    assert_string_equal(l.kind, "lamb");
    optim_free(&o);

    /* decay 0.5 on W only: u = (1 + 1.5, -1 + 2) = (2.5, 1), ||u|| = sqrt 7.25 */
    s.weight_decay = 0.5;
    assert_int_equal(optim_init(&o, &s, 3), XT_OK);
    float q[3] = {3.0f, 4.0f, 1.0f};
    optim_step(&o, q, g, 1.0f, 0.1);
    const float r = 5.0f / sqrtf(7.25f);
    assert_true(fabsf(q[0] - (3.0f - 0.1f * r * 2.5f)) < 1e-5f);
    assert_true(fabsf(q[1] - (4.0f - 0.1f * r * 1.0f)) < 1e-5f);
    assert_true(fabsf(q[2] - 0.9f) < 1e-6f);
    optim_free(&o);
}

static void test_optim_clipping_before_adam(void **state)
{
    (void)state;
    /* clip_norm clips G (no decay in it) for the adaptive optimisers: ||(3,4)|| = 5 */
    OptimSettings s = with_kind(OPT_ADAM);
    s.clip_norm = 1.0;
    s.weight_decay = 100.0;
    Optim o;
    assert_int_equal(optim_init(&o, &s, 3), XT_OK);
    float p[3] = {0.0f, 0.0f, 0.0f}, g[3] = {3.0f, 4.0f, 0.0f};
    double n = optim_step(&o, p, g, 1.0f, 0.1);
    assert_true(fabs(n - 5.0) < 1e-9);
    optim_free(&o);
}

/* ---- the sharded update: P slice Optims (one thread each, as ranks) give the unsharded
 * update's bits for every optimiser, norms included ---------------------------------- */

#define SH_N 2999    /* tensors of 1500, 1000 (not multiples of the block), 7, 492 */
#define SH_MAXP 5
#define SH_STEPS 4

typedef struct {
    pthread_barrier_t bar;
    double *blocks; /* the "allgather" area */
    int P;
} ShardWorld;

typedef struct {
    ShardWorld *w;
    Optim o;
    float *params;
    const float *grad;
    int r;
} ShardRank;

/* The gather hook as ranks would see it: write my part, wait, read every part, wait. */
static void sh_gather(void *ctx, void *buf, const size_t *off)
{
    ShardRank *me = ctx;
    ShardWorld *w = me->w;
    memcpy((char *)w->blocks + off[me->r], (char *)buf + off[me->r], off[me->r + 1] - off[me->r]);
    pthread_barrier_wait(&w->bar);
    memcpy(buf, w->blocks, off[w->P]);
    pthread_barrier_wait(&w->bar);
}

static void *sh_rank_main(void *arg)
{
    ShardRank *me = arg;
    for (int t = 0; t < SH_STEPS; t++) optim_step(&me->o, me->params, me->grad, 0.5f, 0.05);
    return NULL;
}

static OptimSettings sh_settings(Optimizer kind, double momentum, bool nesterov, double clip)
{
    OptimSettings s = plain();
    s.kind = kind;
    s.momentum = momentum;
    s.nesterov = nesterov;
    s.clip_norm = clip;
    s.weight_decay = 0.01;
    s.beta1 = 0.9;
    s.beta2 = 0.999;
    s.eps = 1e-8;
    s.trust_coefficient = 0.02;
    s.exclude_bias = true;
    const size_t sizes[] = {1500, 1000, 7, 492};
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        s.segs[s.n_segs++] = (ParamSegment){.off = off, .n = sizes[i], .bias = i % 2 == 1};
        off += sizes[i];
    }
    return s;
}

static void test_optim_sharded_matches_unsharded(void **state)
{
    (void)state;
    const struct { Optimizer k; double mom; bool nest; double clip; } cases[] = {
        {OPT_SGD, 0, false, 0},      {OPT_SGD, 0.9, false, 0}, {OPT_SGD, 0.9, true, 0.5},
        {OPT_SGD, 0, false, 0.5},    {OPT_ADAM, 0, false, 0},  {OPT_ADAMW, 0, false, 0.5},
        {OPT_LARS, 0.9, false, 0},   {OPT_LARS, 0.9, false, 0.5}, {OPT_LAMB, 0, false, 0},
        {OPT_LAMB, 0, false, 0.5}};
    float *grad = malloc(SH_N * sizeof *grad), *p0 = malloc(SH_N * sizeof *p0);
    float *ref = malloc(SH_N * sizeof *ref), *sh = malloc(SH_N * sizeof *sh);
    assert_non_null(grad && p0 && ref && sh);
    for (size_t i = 0; i < SH_N; i++) { /* values of mixed size: float sums depend on order */
        grad[i] = (float)sin(0.37 * (double)i) * (i % 7 == 0 ? 100.0f : 0.01f);
        p0[i] = (float)cos(0.11 * (double)i) * (i % 5 == 0 ? 3.0f : 0.2f);
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        OptimSettings set = sh_settings(cases[c].k, cases[c].mom, cases[c].nest, cases[c].clip);
        Optim o;
        memcpy(ref, p0, SH_N * sizeof *ref);
        assert_int_equal(optim_init(&o, &set, SH_N), XT_OK);
        for (int t = 0; t < SH_STEPS; t++) optim_step(&o, ref, grad, 0.5f, 0.05);
        optim_free(&o);
        for (int P = 1; P <= SH_MAXP; P++) {
            size_t off[SH_MAXP + 1];
            optim_partition(&set, SH_N, P, off);
            assert_int_equal(off[0], 0);
            assert_int_equal(off[P], SH_N);
            ShardWorld w = {.P = P};
            ShardRank rk[SH_MAXP];
            memcpy(sh, p0, SH_N * sizeof *sh);
            pthread_barrier_init(&w.bar, NULL, (unsigned)P);
            for (int r = 0; r < P; r++) {
                assert_true(off[r] <= off[r + 1]);
                rk[r] = (ShardRank){.w = &w, .params = sh, .grad = grad, .r = r};
                assert_int_equal(optim_init_slice(&rk[r].o, &set, SH_N, off[r], off[r + 1]), XT_OK);
                assert_int_equal(optim_set_gather(&rk[r].o, off, P, sh_gather, &rk[r]), XT_OK);
            }
            w.blocks = calloc(2 * rk[0].o.nblk + 1, sizeof(double));
            pthread_t th[SH_MAXP];
            for (int r = 0; r < P; r++) pthread_create(&th[r], NULL, sh_rank_main, &rk[r]);
            for (int r = 0; r < P; r++) pthread_join(th[r], NULL);
            /* each rank wrote only its slice of the shared params: together, every one */
            if (memcmp(sh, ref, SH_N * sizeof *sh) != 0) {
                size_t i = 0;
                while (sh[i] == ref[i]) i++;
                fail_msg("case %zu, P = %d: parameter %zu is %.9g sharded, %.9g not", c, P, i,
                         (double)sh[i], (double)ref[i]);
            }
            for (int r = 0; r < P; r++) optim_free(&rk[r].o);
            free(w.blocks);
            pthread_barrier_destroy(&w.bar);
        }
    }
    free(grad);
    free(p0);
    free(ref);
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optim_plain_sgd),
        cmocka_unit_test(test_optim_momentum_and_nesterov),
        cmocka_unit_test(test_optim_weight_decay_and_clipping),
        cmocka_unit_test(test_optim_grad_scale),
        cmocka_unit_test(test_optim_schedules),
        cmocka_unit_test(test_optim_adam_and_adamw),
        cmocka_unit_test(test_optim_lars),
        cmocka_unit_test(test_optim_lamb),
        cmocka_unit_test(test_optim_clipping_before_adam),
        cmocka_unit_test(test_optim_sharded_matches_unsharded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
