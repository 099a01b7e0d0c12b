/* checkpoint: named module state saved and restored by name; the run position and the
 * models; a version-1 file (before named state) still loads; state of another kind, a
 * missing or an extra item is refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "h5io.h"
#include "log.h"
#include "model.h"
#include "xt_test.h"

enum { NP = 7 };

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", xt_test_dir, name);
}

/* A tiny softmax model 2 -> 2: W (2, 2) and b (2), 6 parameters. */
static ModelShape shape(void)
{
    ModelShape s;
    char err[128];
    assert_int_equal(model_shape_init(&s, MODEL_SOFTMAX, ACT_RELU, HEAD_SOFTMAX, 2, NULL, 0, 2,
                                      err, sizeof err), XT_OK);
    return s;
}

/* Module state as an optimiser and early stopping would list it. */
typedef struct {
    float m[6], v[6];
    int64_t t;
    double best;
    int64_t best_epoch, bad;
    StateList opt, es;
} Modules;

static void modules(Modules *x, const char *kind, bool with_v)
{
    state_init(&x->opt, kind);
    state_add_array(&x->opt, "m", x->m, 6);
    if (with_v) state_add_array(&x->opt, "v", x->v, 6);
    state_add_i64(&x->opt, "step", &x->t);
    state_init(&x->es, "early_stopping");
    state_add_f64(&x->es, "best", &x->best);
    state_add_i64(&x->es, "best_epoch", &x->best_epoch);
    state_add_i64(&x->es, "bad_epochs", &x->bad);
}

static void save(const char *name, Modules *x, float *params)
{
    char path[600];
    path_in(path, sizeof path, name);
    Checkpoint ck = {.state = {.epoch = 3, .step_in_epoch = 5, .step = 77, .loss_sum = 1.5,
                               .weight_sum = 10, .rows_seen = 10, .ranks = 2, .seed = 9},
                     .config_text = "[train]\nseed = 9\n",
                     .optimizer = &x->opt,
                     .early_stop = &x->es};
    ck.model = (ModelFile){.shape = shape(), .params = params, .epoch = 2};
    assert_int_equal(checkpoint_save(path, &ck), XT_OK);
}

static void test_checkpoint_named_state_roundtrip(void **state)
{
    (void)state;
    Modules a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    modules(&a, "adam", true);
    modules(&b, "adam", true);
    for (int i = 0; i < 6; i++) {
        a.m[i] = 0.5f * (float)i;
        a.v[i] = 1.0f / (float)(i + 1);
    }
    a.t = 12;
    a.best = 0.25;
    a.best_epoch = 4;
    a.bad = 1;
    float params[6] = {1, 2, 3, 4, 5, 6};
    save("rt.h5", &a, params);
    char path[600];
    path_in(path, sizeof path, "rt.h5");
    Checkpoint ck;
    assert_int_equal(checkpoint_load(path, &ck), XT_OK);
    assert_int_equal(ck.format_version, CHECKPOINT_FORMAT_VERSION);
    assert_int_equal(ck.state.epoch, 3);
    assert_int_equal(ck.state.step_in_epoch, 5);
    assert_int_equal(ck.state.step, 77);
    assert_true(ck.state.loss_sum == 1.5);
    assert_string_equal(ck.config_text, "[train]\nseed = 9\n");
    assert_memory_equal(ck.model.params, params, sizeof params);
    assert_null(ck.best.params);
    checkpoint_free(&ck);
    assert_int_equal(checkpoint_restore(path, &b.opt, &b.es), XT_OK);
    assert_memory_equal(b.m, a.m, sizeof a.m);
    assert_memory_equal(b.v, a.v, sizeof a.v);
    assert_int_equal(b.t, 12);
    assert_true(b.best == 0.25);
    assert_int_equal(b.best_epoch, 4);
    assert_int_equal(b.bad, 1);
}

/* /best is a copy of the model file that keeps the best epoch (its values and attributes,
 * loaded back as they were written); a model file holding another epoch than the one named
 * (replaced during the run) fails the save, naming both epochs, and the previous checkpoint
 * stays as it was. */
static void test_checkpoint_best_copied_from_model_file(void **state)
{
    (void)state;
    Modules a;
    memset(&a, 0, sizeof a);
    modules(&a, "sgd", false);
    float now[6] = {1, 2, 3, 4, 5, 6}, kept[6] = {-1.5f, 0.25f, 7, 8, 9, 10};
    char model[600], path[600], err[2048];
    path_in(model, sizeof model, "kept-model.h5");
    path_in(path, sizeof path, "best.h5");
    ModelFile mf = {.shape = shape(), .params = kept, .epoch = 4, .val_loss = 0.5,
                    .val_accuracy = 0.75};
    assert_int_equal(model_io_save(model, &mf), XT_OK);
    Checkpoint ck = {.state = {.epoch = 6, .ranks = 1, .seed = 9}, .config_text = "",
                     .optimizer = &a.opt, .early_stop = &a.es, .best_from = model,
                     .best_epoch = 4};
    ck.model = (ModelFile){.shape = shape(), .params = now, .epoch = 5};
    assert_int_equal(checkpoint_save(path, &ck), XT_OK);
    Checkpoint back;
    assert_int_equal(checkpoint_load(path, &back), XT_OK);
    assert_non_null(back.best.params);
    assert_memory_equal(back.best.params, kept, sizeof kept);
    assert_memory_equal(back.model.params, now, sizeof now);
    assert_int_equal(back.best.epoch, 4);
    assert_true(back.best.val_loss == 0.5 && back.best.val_accuracy == 0.75);
    checkpoint_free(&back);
    ck.best_epoch = 5; /* the model file says 4 */
    xt_test_capture_begin();
    Status st = checkpoint_save(path, &ck);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_RUNTIME);
    if (!strstr(err, "kept-model.h5 holds epoch 4, not the kept epoch 5"))
        fail_msg("expected the two epochs in:\n%s", err);
    assert_int_equal(checkpoint_load(path, &back), XT_OK);
    assert_memory_equal(back.best.params, kept, sizeof kept);
    checkpoint_free(&back);
}

static void expect_refused(const char *name, StateList *opt, StateList *es, const char *want)
{
    char path[600], err[2048];
    path_in(path, sizeof path, name);
    xt_test_capture_begin();
    Status st = checkpoint_restore(path, opt, es);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    if (!strstr(err, want)) fail_msg("expected '%s' in:\n%s", want, err);
}

static void test_checkpoint_refuses_other_state(void **state)
{
    (void)state;
    Modules a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    float params[6] = {0};
    modules(&a, "adam", true);
    save("other.h5", &a, params);
    modules(&b, "sgd", true);
    expect_refused("other.h5", &b.opt, &b.es, "holds optimiser state 'adam', this run uses 'sgd'");
    modules(&b, "adam", false); /* the file has "v", this run does not */
    expect_refused("other.h5", &b.opt, &b.es, "/optimizer/v is not part of this run's adam state");
    modules(&a, "adam", false);
    save("fewer.h5", &a, params);
    modules(&b, "adam", true); /* this run needs "v", the file lacks it */
    expect_refused("fewer.h5", &b.opt, &b.es, "no /optimizer/v");
}

/* A version-1 checkpoint as the first release wrote it: /optimizer/velocity, early
 * stopping as /state attributes es_*. */
static void test_checkpoint_loads_version_1(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "v1.h5");
    float params[6] = {6, 5, 4, 3, 2, 1}, vel[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    ModelFile mf = {.shape = shape(), .params = params, .epoch = 1};
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    assert_int_equal(model_io_write_group(f, "/model", &mf), XT_OK);
    size_t d[1] = {6};
    assert_int_equal(h5io_write(f, "/optimizer/velocity", H5IO_F32, 1, d, vel, 0), XT_OK);
    assert_int_equal(h5io_create_group(f, "/state"), XT_OK);
    assert_int_equal(h5io_attr_write_str(f, "/state", "format", "xentrain-checkpoint"), XT_OK);
    const char *ints[] = {"format_version", "epoch", "step_in_epoch", "step", "finished",
                          "final_action", "ranks", "seed", "es_best_epoch", "es_bad_epochs"};
    const int64_t vals[] = {1, 2, 0, 40, 0, 0, 1, 42, 1, 0};
    for (int i = 0; i < 10; i++)
        assert_int_equal(h5io_attr_write_i64(f, "/state", ints[i], vals[i]), XT_OK);
    const char *dbls[] = {"loss_sum", "weight_sum", "rows_seen", "es_best"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(h5io_attr_write_f64(f, "/state", dbls[i], i == 3 ? 0.75 : 0.0), XT_OK);
    assert_int_equal(h5io_attr_write_str(f, "/state", "config", ""), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);

    Checkpoint ck;
    assert_int_equal(checkpoint_load(path, &ck), XT_OK);
    assert_int_equal(ck.format_version, 1);
    assert_int_equal(ck.state.step, 40);
    checkpoint_free(&ck);
    float v[6] = {0};
    double best = 0;
    int64_t best_epoch = 0, bad = 9;
    StateList opt, es;
    state_init(&opt, "sgd");
    state_add_array(&opt, "velocity", v, 6);
    state_init(&es, "early_stopping");
    state_add_f64(&es, "best", &best);
    state_add_i64(&es, "best_epoch", &best_epoch);
    state_add_i64(&es, "bad_epochs", &bad);
    assert_int_equal(checkpoint_restore(path, &opt, &es), XT_OK);
    assert_memory_equal(v, vel, sizeof vel);
    assert_true(best == 0.75);
    assert_int_equal(best_epoch, 1);
    assert_int_equal(bad, 0);
}

/* Flips one bit of dset's stored values in path (a contiguous dataset: the layout gives
 * where its bytes lie). */
static void flip_bit(const char *path, const char *dset, size_t byte)
{
    H5File *f = NULL;
    H5ioLayout lay;
    char why[256];
    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    assert_int_equal(h5io_layout(f, dset, &lay, why, sizeof why), XT_OK);
    assert_false(lay.chunked);
    uint64_t off = lay.offset + byte;
    h5io_layout_free(&lay);
    h5io_close(&f);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

static void expect_message(const char *err, const char *want)
{
    if (!strstr(err, want)) fail_msg("missing \"%s\" in: %s", want, err);
}

/* A flipped bit inside any stored array (parameters, optimiser state) is refused on load,
 * naming the dataset; so is a non-finite value stored with a valid checksum. */
static void test_checkpoint_detects_corrupt_arrays(void **state)
{
    (void)state;
    Modules a;
    memset(&a, 0, sizeof a);
    modules(&a, "adam", true);
    for (int i = 0; i < 6; i++) a.m[i] = a.v[i] = 0.25f * (float)(i + 1);
    float params[6] = {1, -2, 3, -4, 5, -6};
    const char *dsets[] = {"/model/layer1/W", "/model/layer1/b", "/optimizer/m", "/optimizer/v"};
    char path[600], err[2048];
    for (int d = 0; d < 4; d++) {
        save("flip.h5", &a, params);
        path_in(path, sizeof path, "flip.h5");
        flip_bit(path, dsets[d], 5); /* a mantissa bit of the second value */
        Checkpoint ck;
        xt_test_capture_begin();
        Status st = checkpoint_load(path, &ck);
        if (st == XT_OK) {
            checkpoint_free(&ck);
            Modules b;
            memset(&b, 0, sizeof b);
            modules(&b, "adam", true);
            st = checkpoint_restore(path, &b.opt, &b.es);
        }
        xt_test_capture_end(err, sizeof err);
        assert_int_equal(st, XT_ERR_USAGE);
        char want[128];
        snprintf(want, sizeof want, "%s: checksum mismatch", dsets[d]);
        expect_message(err, want);
    }
    params[4] = NAN;
    save("nan.h5", &a, params);
    path_in(path, sizeof path, "nan.h5");
    Checkpoint ck;
    xt_test_capture_begin();
    Status st = checkpoint_load(path, &ck);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_message(err, "/model/layer1/b: value 0 is NaN");
}

/* A model written before checksums (no crc32 attributes) still loads. */
static void test_checkpoint_reads_arrays_without_checksums(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "nocrc.h5");
    float params[6] = {6, 5, 4, 3, 2, 1};
    ModelFile mf = {.shape = shape(), .params = params, .epoch = 1};
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    assert_int_equal(model_io_write_group(f, "/model", &mf), XT_OK);
    size_t dw[2] = {2, 2}, db[1] = {2};
    /* rewrite the arrays as an older xentrain did: no attribute */
    assert_int_equal(h5io_write(f, "/old/layer1/W", H5IO_F32, 2, dw, params, 0), XT_OK);
    assert_int_equal(h5io_write(f, "/old/layer1/b", H5IO_F32, 1, db, params + 4, 0), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    assert_false(h5io_attr_exists(f, "/old/layer1/W", "crc32"));
    assert_true(h5io_attr_exists(f, "/model/layer1/W", "crc32"));
    float w[4];
    assert_int_equal(model_io_read_floats(f, "/old/layer1/W", 2, dw, w), XT_OK);
    assert_memory_equal(w, params, sizeof w);
    h5io_close(&f);
}

int main(void)
{
    log_set_quiet(true);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_named_state_roundtrip),
        cmocka_unit_test(test_checkpoint_refuses_other_state),
        cmocka_unit_test(test_checkpoint_best_copied_from_model_file),
        cmocka_unit_test(test_checkpoint_loads_version_1),
        cmocka_unit_test(test_checkpoint_detects_corrupt_arrays),
        cmocka_unit_test(test_checkpoint_reads_arrays_without_checksums),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
