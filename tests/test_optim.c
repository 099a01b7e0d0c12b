/* SGD and schedules against hand-computed steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optim_plain_sgd),
        cmocka_unit_test(test_optim_momentum_and_nesterov),
        cmocka_unit_test(test_optim_weight_decay_and_clipping),
        cmocka_unit_test(test_optim_grad_scale),
        cmocka_unit_test(test_optim_schedules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
