/* test_early_stop: the early-stopping state machine on hand-made metric sequences. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "early_stop.h"

/* A config with early stopping on: patience, min_delta, start_epoch, max epochs. */
static void make_cfg(Config *cfg, Monitor monitor, MonitorMode mode, int64_t patience,
                     double min_delta, int64_t start_epoch, int64_t epochs, bool enabled)
{
    config_defaults(cfg);
    snprintf(cfg->data.val, sizeof cfg->data.val, "data.h5:/val");
    cfg->early_stopping.enabled = enabled;
    cfg->early_stopping.monitor = monitor;
    cfg->early_stopping.mode = mode;
    cfg->early_stopping.patience = patience;
    cfg->early_stopping.min_delta = min_delta;
    cfg->early_stopping.start_epoch = start_epoch;
    cfg->train.epochs = epochs;
}

/* Feeds val losses (train loss 1.0, accuracy 0.5) for epochs 1..n; returns the
 * decision of the last one fed, and how many epochs were fed before a stop. */
static EsDecision feed_losses(EarlyStop *es, const double *val, size_t n, size_t *fed)
{
    EsDecision d = {0};
    size_t i = 0;
    for (; i < n; i++) {
        d = early_stop_update(es, (int64_t)i + 1, 1.0, val[i], 0.5);
        assert_int_equal(d.epoch, (int32_t)i + 1);
        if (d.action != ES_CONTINUE) {
            i++;
            break;
        }
    }
    if (fed) *fed = i;
    return d;
}

static void test_early_stop_init(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 7, 0.01, 3, 50, true);
    early_stop_init(&es, &cfg);
    assert_true(es.enabled);
    assert_int_equal(es.monitor, MONITOR_VAL_LOSS);
    assert_int_equal(es.mode, MODE_MIN);
    assert_int_equal(es.patience, 7);
    assert_int_equal(es.start_epoch, 3);
    assert_int_equal(es.max_epochs, 50);
    assert_true(es.min_delta == 0.01);
    assert_int_equal(es.best_epoch, 0);
    assert_int_equal(es.bad_epochs, 0);

    make_cfg(&cfg, MONITOR_VAL_ACCURACY, MODE_AUTO, 1, 0, 1, 5, false);
    early_stop_init(&es, &cfg);
    assert_int_equal(es.mode, MODE_MAX);
    assert_false(es.enabled);
    make_cfg(&cfg, MONITOR_VAL_ACCURACY, MODE_MIN, 1, 0, 1, 5, true);
    early_stop_init(&es, &cfg);
    assert_int_equal(es.mode, MODE_MIN); /* explicit modes are kept */
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_MAX, 1, 0, 1, 5, true);
    early_stop_init(&es, &cfg);
    assert_int_equal(es.mode, MODE_MAX);

    assert_string_equal(early_stop_action_name(ES_CONTINUE), "continue");
    assert_string_equal(early_stop_action_name(ES_STOP_EARLY), "early_stop");
    assert_string_equal(early_stop_action_name(ES_STOP_MAX_EPOCHS), "max_epochs");
    assert_string_equal(early_stop_action_name(ES_STOP_DIVERGED), "diverged");
    assert_string_equal(early_stop_action_name(ES_STOP_ERROR), "error");
    assert_string_equal(early_stop_action_name(ES_STOP_SIGNAL), "signal");
}

static void test_early_stop_patience(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    /* best at epoch 3; 4, 5 are worse, 6 ties (not better): patience 3 stops at 6 */
    const double val[] = {1.0, 0.8, 0.5, 0.6, 0.55, 0.5, 0.1, 0.1};
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 3, 0.0, 1, 100, true);
    early_stop_init(&es, &cfg);

    EsDecision d = early_stop_update(&es, 1, 1.0, val[0], 0.5);
    assert_int_equal(d.action, ES_CONTINUE);
    assert_int_equal(d.improved, 1); /* the first monitored epoch always improves */
    assert_int_equal(d.best_epoch, 1);
    assert_true(d.best_value == 1.0);

    d = early_stop_update(&es, 2, 1.0, val[1], 0.5);
    assert_int_equal(d.improved, 1);
    d = early_stop_update(&es, 3, 1.0, val[2], 0.5);
    assert_int_equal(d.improved, 1);
    assert_int_equal(es.bad_epochs, 0);
    d = early_stop_update(&es, 4, 1.0, val[3], 0.5);
    assert_int_equal(d.improved, 0);
    assert_int_equal(d.action, ES_CONTINUE);
    assert_int_equal(es.bad_epochs, 1);
    d = early_stop_update(&es, 5, 1.0, val[4], 0.5);
    assert_int_equal(d.action, ES_CONTINUE);
    assert_int_equal(es.bad_epochs, 2);
    d = early_stop_update(&es, 6, 1.0, val[5], 0.5);
    assert_int_equal(d.action, ES_STOP_EARLY);
    assert_int_equal(d.epoch, 6);
    assert_int_equal(d.best_epoch, 3);
    assert_true(d.best_value == 0.5);
    assert_int_equal(d.improved, 0);

    /* an improvement resets the count */
    const double val2[] = {1.0, 1.1, 1.2, 0.9, 1.0, 1.0, 1.0};
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_MIN, 3, 0.0, 1, 100, true);
    early_stop_init(&es, &cfg);
    size_t fed = 0;
    d = feed_losses(&es, val2, 7, &fed);
    assert_int_equal(fed, 7);
    assert_int_equal(d.action, ES_STOP_EARLY);
    assert_int_equal(d.best_epoch, 4);

    /* patience 1: the first non-improving epoch stops */
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_MIN, 1, 0.0, 1, 100, true);
    early_stop_init(&es, &cfg);
    d = feed_losses(&es, val2, 7, &fed);
    assert_int_equal(fed, 2);
    assert_int_equal(d.action, ES_STOP_EARLY);
    assert_int_equal(d.best_epoch, 1);
}

static void test_early_stop_min_delta_boundary(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    /* 0.25 and 0.75 are exact in binary: best - min_delta is exactly 0.75 */
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_MIN, 10, 0.25, 1, 100, true);
    early_stop_init(&es, &cfg);
    EsDecision d = early_stop_update(&es, 1, 1.0, 1.0, 0.0);
    assert_int_equal(d.improved, 1);
    d = early_stop_update(&es, 2, 1.0, 0.75, 0.0); /* equal to best - min_delta: no */
    assert_int_equal(d.improved, 0);
    assert_int_equal(d.best_epoch, 1);
    assert_true(d.best_value == 1.0);
    d = early_stop_update(&es, 3, 1.0, nextafter(0.75, 0.0), 0.0); /* just below: yes */
    assert_int_equal(d.improved, 1);
    assert_int_equal(d.best_epoch, 3);
    assert_int_equal(es.bad_epochs, 0);

    /* mode max: equal to best + min_delta is not an improvement either */
    make_cfg(&cfg, MONITOR_VAL_ACCURACY, MODE_MAX, 10, 0.25, 1, 100, true);
    early_stop_init(&es, &cfg);
    d = early_stop_update(&es, 1, 1.0, 9.0, 0.25);
    d = early_stop_update(&es, 2, 1.0, 9.0, 0.5);
    assert_int_equal(d.improved, 0);
    d = early_stop_update(&es, 3, 1.0, 9.0, nextafter(0.5, 1.0));
    assert_int_equal(d.improved, 1);
    assert_int_equal(d.best_epoch, 3);
}

static void test_early_stop_start_epoch(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    /* epochs 1-3 are not monitored even though epoch 1 is the lowest loss */
    const double val[] = {0.1, 0.2, 0.3, 0.9, 0.95, 0.96, 0.97};
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 2, 0.0, 4, 100, true);
    early_stop_init(&es, &cfg);
    for (int64_t e = 1; e <= 3; e++) {
        EsDecision d = early_stop_update(&es, e, 1.0, val[e - 1], 0.5);
        assert_int_equal(d.action, ES_CONTINUE);
        assert_int_equal(d.best_epoch, 0);
        assert_int_equal(d.improved, 0);
        assert_true(isnan(d.best_value));
        assert_int_equal(es.bad_epochs, 0);
    }
    EsDecision d = early_stop_update(&es, 4, 1.0, val[3], 0.5);
    assert_int_equal(d.improved, 1);
    assert_int_equal(d.best_epoch, 4);
    assert_true(d.best_value == 0.9);
    d = early_stop_update(&es, 5, 1.0, val[4], 0.5);
    assert_int_equal(d.action, ES_CONTINUE);
    d = early_stop_update(&es, 6, 1.0, val[5], 0.5);
    assert_int_equal(d.action, ES_STOP_EARLY);
    assert_int_equal(d.best_epoch, 4);
}

static void test_early_stop_accuracy_max(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    /* rising accuracy improves; the loss is ignored when accuracy is monitored */
    make_cfg(&cfg, MONITOR_VAL_ACCURACY, MODE_AUTO, 2, 0.0, 1, 100, true);
    early_stop_init(&es, &cfg);
    const double acc[] = {0.5, 0.7, 0.8, 0.79, 0.8, 0.9};
    const double loss[] = {9.0, 8.0, 0.1, 7.0, 6.0, 5.0};
    EsDecision d = {0};
    for (int64_t e = 1; e <= 3; e++) {
        d = early_stop_update(&es, e, 1.0, loss[e - 1], acc[e - 1]);
        assert_int_equal(d.improved, 1);
    }
    d = early_stop_update(&es, 4, 1.0, loss[3], acc[3]);
    assert_int_equal(d.improved, 0);
    assert_int_equal(d.action, ES_CONTINUE);
    d = early_stop_update(&es, 5, 1.0, loss[4], acc[4]); /* a tie is no improvement */
    assert_int_equal(d.action, ES_STOP_EARLY);
    assert_int_equal(d.best_epoch, 3);
    assert_true(d.best_value == 0.8);

    /* the same sequence in mode min would call the falling values improvements */
    make_cfg(&cfg, MONITOR_VAL_ACCURACY, MODE_MIN, 2, 0.0, 1, 100, true);
    early_stop_init(&es, &cfg);
    d = early_stop_update(&es, 1, 1.0, 1.0, 0.5);
    d = early_stop_update(&es, 2, 1.0, 1.0, 0.4);
    assert_int_equal(d.improved, 1);
    assert_int_equal(d.best_epoch, 2);
}

static void test_early_stop_auto_mode_loss(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 5, 0.0, 1, 100, true);
    early_stop_init(&es, &cfg);
    EsDecision d = early_stop_update(&es, 1, 1.0, 0.5, 0.9);
    d = early_stop_update(&es, 2, 1.0, 0.6, 0.95); /* higher loss, better accuracy */
    assert_int_equal(d.improved, 0);
    d = early_stop_update(&es, 3, 1.0, 0.4, 0.1); /* lower loss */
    assert_int_equal(d.improved, 1);
    assert_int_equal(d.best_epoch, 3);
}

static void test_early_stop_max_epochs(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    const double val[] = {1.0, 0.9, 0.8, 0.7};
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 5, 0.0, 1, 4, true);
    early_stop_init(&es, &cfg);
    size_t fed = 0;
    EsDecision d = feed_losses(&es, val, 4, &fed);
    assert_int_equal(fed, 4);
    assert_int_equal(d.action, ES_STOP_MAX_EPOCHS);
    assert_int_equal(d.epoch, 4);
    assert_int_equal(d.best_epoch, 4);
    assert_int_equal(d.improved, 1);

    /* also when the last epoch comes before start_epoch would have mattered */
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 5, 0.0, 3, 2, false);
    early_stop_init(&es, &cfg);
    d = early_stop_update(&es, 1, 1.0, 1.0, 0.5);
    assert_int_equal(d.action, ES_CONTINUE);
    d = early_stop_update(&es, 2, 1.0, 1.0, 0.5);
    assert_int_equal(d.action, ES_STOP_MAX_EPOCHS);
    assert_int_equal(d.best_epoch, 0);

    /* patience running out exactly at the last epoch is the end of the budget */
    const double flat[] = {1.0, 2.0, 2.0};
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 2, 0.0, 1, 3, true);
    early_stop_init(&es, &cfg);
    d = feed_losses(&es, flat, 3, &fed);
    assert_int_equal(fed, 3);
    assert_int_equal(d.action, ES_STOP_MAX_EPOCHS);
    assert_int_equal(d.best_epoch, 1);
}

static void test_early_stop_diverged(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        /* a non-finite train loss */
        make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 5, 0.0, 1, 100, true);
        early_stop_init(&es, &cfg);
        EsDecision d = early_stop_update(&es, 1, 1.0, 0.5, 0.5);
        d = early_stop_update(&es, 2, bad[i], 0.4, 0.5);
        assert_int_equal(d.action, ES_STOP_DIVERGED);
        assert_int_equal(d.epoch, 2);
        assert_int_equal(d.best_epoch, 1); /* the best model is kept */
        assert_true(d.best_value == 0.5);
        assert_int_equal(d.improved, 0);

        /* a non-finite val loss, monitored */
        early_stop_init(&es, &cfg);
        d = early_stop_update(&es, 1, 1.0, 0.5, 0.5);
        d = early_stop_update(&es, 2, 1.0, bad[i], 0.5);
        assert_int_equal(d.action, ES_STOP_DIVERGED);
        assert_int_equal(d.best_epoch, 1);
        assert_true(d.best_value == 0.5);

        /* at once: before start_epoch, disabled, and on the last epoch too */
        make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 5, 0.0, 10, 1, false);
        early_stop_init(&es, &cfg);
        d = early_stop_update(&es, 1, bad[i], 0.5, 0.5);
        assert_int_equal(d.action, ES_STOP_DIVERGED);
        assert_int_equal(d.best_epoch, 0);

        /* a non-finite monitored accuracy */
        make_cfg(&cfg, MONITOR_VAL_ACCURACY, MODE_AUTO, 5, 0.0, 1, 100, true);
        early_stop_init(&es, &cfg);
        d = early_stop_update(&es, 1, 1.0, 0.5, bad[i]);
        assert_int_equal(d.action, ES_STOP_DIVERGED);
    }
}

static void test_early_stop_disabled_tracks_best(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    const double val[] = {1.0, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 0.6};
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 1, 0.0, 1, 8, false);
    early_stop_init(&es, &cfg);
    size_t fed = 0;
    EsDecision d = feed_losses(&es, val, 8, &fed);
    assert_int_equal(fed, 8); /* patience 1 would have stopped at epoch 3 */
    assert_int_equal(d.action, ES_STOP_MAX_EPOCHS);
    assert_int_equal(d.best_epoch, 2);
    assert_true(d.best_value == 0.5);
    assert_int_equal(es.bad_epochs, 6);
}

/* Without a validation split monitor auto watches the training loss (scikit-learn's
 * n_iter_no_change and tol): it stops after `patience` epochs without an improvement of more
 * than min_delta; disabled, it runs to the last epoch; a NaN train loss diverges. */
static void test_early_stop_without_val(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    make_cfg(&cfg, MONITOR_AUTO, MODE_AUTO, 2, 0.01, 1, 10, true);
    cfg.data.val[0] = '\0';
    early_stop_init(&es, &cfg);
    assert_int_equal(es.monitor, MONITOR_TRAIN_LOSS);
    assert_int_equal(es.mode, MODE_MIN);
    /* 0.5, then 0.495 (not better by 0.01), 0.48 (better), two more within 0.01: stop */
    const double train[5] = {0.5, 0.495, 0.48, 0.475, 0.472};
    const int improved[5] = {1, 0, 1, 0, 0};
    for (int e = 1; e <= 5; e++) {
        EsDecision d = early_stop_update(&es, e, train[e - 1], NAN, NAN);
        assert_int_equal(d.improved, improved[e - 1]);
        assert_int_equal(d.action, e == 5 ? ES_STOP_EARLY : ES_CONTINUE);
    }
    cfg.early_stopping.enabled = false; /* disabled: to the last epoch */
    cfg.train.epochs = 5;
    early_stop_init(&es, &cfg);
    for (int e = 1; e <= 5; e++) {
        EsDecision d = early_stop_update(&es, e, train[e - 1], NAN, NAN);
        assert_int_equal(d.action, e == 5 ? ES_STOP_MAX_EPOCHS : ES_CONTINUE);
    }
    early_stop_init(&es, &cfg);
    EsDecision d = early_stop_update(&es, 1, NAN, NAN, NAN);
    assert_int_equal(d.action, ES_STOP_DIVERGED);
    assert_int_equal(d.improved, 0);
    /* with a validation split, auto is val_loss */
    make_cfg(&cfg, MONITOR_AUTO, MODE_AUTO, 2, 0.0, 1, 10, true);
    early_stop_init(&es, &cfg);
    assert_int_equal(es.monitor, MONITOR_VAL_LOSS);
}

/* The named state a checkpoint carries points into the struct itself. */
static void test_early_stop_state_by_name(void **state)
{
    (void)state;
    Config cfg;
    EarlyStop es;
    StateList l;
    make_cfg(&cfg, MONITOR_VAL_LOSS, MODE_AUTO, 2, 0.0, 1, 10, true);
    early_stop_init(&es, &cfg);
    early_stop_state(&es, &l);
    assert_string_equal(l.kind, "early_stopping");
    assert_int_equal(l.n_arrays, 0);
    assert_int_equal(l.n_scalars, 3);
    assert_string_equal(l.scalars[0].name, "best");
    assert_ptr_equal(l.scalars[0].value, &es.best);
    assert_string_equal(l.scalars[1].name, "best_epoch");
    assert_ptr_equal(l.scalars[1].value, &es.best_epoch);
    assert_string_equal(l.scalars[2].name, "bad_epochs");
    assert_ptr_equal(l.scalars[2].value, &es.bad_epochs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_stop_init),
        cmocka_unit_test(test_early_stop_patience),
        cmocka_unit_test(test_early_stop_min_delta_boundary),
        cmocka_unit_test(test_early_stop_start_epoch),
        cmocka_unit_test(test_early_stop_accuracy_max),
        cmocka_unit_test(test_early_stop_auto_mode_loss),
        cmocka_unit_test(test_early_stop_max_epochs),
        cmocka_unit_test(test_early_stop_diverged),
        cmocka_unit_test(test_early_stop_disabled_tracks_best),
        cmocka_unit_test(test_early_stop_without_val),
        cmocka_unit_test(test_early_stop_state_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
