/* memplan: the model's bytes per rank from shapes and settings, by hand, and the refusal
 * naming the keys (issue 32 item 6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "memplan.h"

static void expect_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("missing \"%s\" in: %s", needle, hay);
}

/* Logistic regression, D = 10: 11 parameters, momentum, 128 training rows, validation in
 * passes of 400 rows. By hand: parameters 4 (3 x 11 + 6 slots) = 156; optimiser 4 x 11 =
 * 44; activations 4 x 400 x (1 + 2 x 10) = 33600 plus the step's rows 4 x 128 x (10 + 1 +
 * 1) = 6144; evaluation 4 x 400 x (10 + 1 + 1) = 19200; total 59144. */
static void test_memplan_by_hand(void **state)
{
    (void)state;
    MemNeeds n = {.n_params = 11, .slots = 6, .layer_sum = 1, .widest = 10, .d = 10,
                  .k_out = 1, .train_rows = 128, .eval_rows = 400, .param_copies = 3,
                  .optim_buffers = 1, .ranks = 1};
    MemEstimate e;
    memplan_estimate(&n, &e);
    assert_true(e.params == 156.0);
    assert_true(e.optim == 44.0);
    assert_true(e.activations == 33600.0 + 6144.0);
    assert_true(e.eval == 19200.0);
    assert_true(e.exact == 0.0);
    assert_true(e.total == 59144.0);
}

/* Adam sharded over 4 ranks: each holds a quarter of its two buffers; rank 0 also gathers
 * the whole state for checkpoints. The reproducible mode adds its partial gradients. */
static void test_memplan_sharding_and_exact(void **state)
{
    (void)state;
    MemNeeds n = {.n_params = 1000, .layer_sum = 10, .widest = 10, .d = 10, .k_out = 10,
                  .train_rows = 1, .param_copies = 2, .optim_buffers = 2, .ranks = 4,
                  .sharded = true, .rank0 = true, .exact_parts = 3};
    MemEstimate e0, e1;
    memplan_estimate(&n, &e0);
    n.rank0 = false;
    memplan_estimate(&n, &e1);
    assert_true(e0.optim == 4.0 * 1000 * 2 / 4 + 4.0 * 1000 * 2);
    assert_true(e1.optim == 4.0 * 1000 * 2 / 4);
    assert_true(e1.exact == 4.0 * 1000 * 3);
}

/* model.hidden = 65536,65536 on 784 features under a 3 GB limit: refused, naming
 * model.hidden; a huge eval.batch_size names the batch keys; no limit known: not refused. */
static void test_memplan_refusals(void **state)
{
    (void)state;
    size_t n_params = (size_t)784 * 65536 + 65536 + (size_t)65536 * 65536 + 65536 + 65536 * 10 + 10;
    MemNeeds big = {.n_params = n_params, .slots = 6, .layer_sum = 65536 + 65536 + 10,
                    .widest = 65536, .d = 784, .k_out = 10, .train_rows = 64, .eval_rows = 1024,
                    .param_copies = 3, .optim_buffers = 0, .ranks = 2};
    MemEstimate e;
    memplan_estimate(&big, &e);
    char msg[1024];
    assert_int_equal(memplan_check(&e, 3e9, "the memory cgroup limit of 2.8 GiB", msg, sizeof msg),
                     XT_ERR_USAGE);
    expect_has(msg, "lower model.hidden");
    expect_has(msg, "the memory cgroup limit of 2.8 GiB");
    expect_has(msg, "of parameters and gradients");

    MemNeeds wide = {.n_params = 10000, .layer_sum = 110, .widest = 784, .d = 784, .k_out = 10,
                     .train_rows = 128, .eval_rows = (size_t)2147483647, .param_copies = 3,
                     .ranks = 1};
    memplan_estimate(&wide, &e);
    assert_int_equal(memplan_check(&e, 24e9, "MemAvailable of 22 GiB", msg, sizeof msg),
                     XT_ERR_USAGE);
    expect_has(msg, "eval.batch_size");
    assert_int_equal(memplan_check(&e, 0.0, "", msg, sizeof msg), XT_OK);

    /* what fits is not refused, up to the headroom */
    memplan_estimate(&(MemNeeds){.n_params = 100, .param_copies = 3, .ranks = 1}, &e);
    assert_int_equal(memplan_check(&e, e.total / MEMPLAN_HEADROOM, "x", msg, sizeof msg), XT_OK);
    assert_int_equal(memplan_check(&e, 0.99 * e.total / MEMPLAN_HEADROOM, "x", msg, sizeof msg),
                     XT_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memplan_by_hand),
        cmocka_unit_test(test_memplan_sharding_and_exact),
        cmocka_unit_test(test_memplan_refusals),
    };
    return cmocka_run_group_tests_name("memplan", tests, NULL, NULL);
}
