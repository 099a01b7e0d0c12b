/* test_config: the key table, INI parsing, --set, validation, resolved INI and the
 * key reference. Every fixture is written into a temp dir made by the group setup. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "xt_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"


/* The keys DESIGN.md and issue 4 name: the table must hold every one. */
static const char *const ALL_KEYS[] = {
    "data.train", "data.val", "data.test", "data.normalize", "data.virtual_shards",
    "data.allow_same_split", "data.compact",
    "model.type", "model.hidden", "model.activation", "model.head", "model.init",
    "model.classes", "loss.label_smoothing", "loss.class_weights", "loss.pos_weight",
    "loss.ignore_index", "optim.lr", "optim.momentum", "optim.nesterov", "optim.weight_decay",
    "optim.clip_norm", "optim.schedule", "optim.step_size", "optim.gamma",
    "optim.warmup_epochs", "optim.lr_scaling", "optim.optimizer", "optim.betas", "optim.eps",
    "optim.trust_coefficient", "optim.exclude_bias", "optim.shard", "optim.C", "optim.history",
    "optim.precondition",
    "optim.tol", "optim.ftol", "optim.max_passes", "train.epochs", "train.batch_size",
    "train.batch_per_rank", "train.accumulate", "train.seed", "train.shuffle",
    "train.shuffle_block", "data.stream", "data.memory_budget",
    "train.reproducible", "train.micro_batches", "train.check_every",
    "train.resume", "train.progress", "eval.distributed", "eval.batch_size",
    "early_stopping.enabled", "early_stopping.monitor", "early_stopping.mode",
    "early_stopping.patience", "early_stopping.min_delta", "early_stopping.start_epoch",
    "early_stopping.restore_best", "checkpoint.every", "comm.timeout_s", "comm.allreduce", "comm.overlap", "run.dir"};
#define N_ALL_KEYS (sizeof ALL_KEYS / sizeof ALL_KEYS[0])

#define assert_has(text, sub)                                                               \
    do {                                                                                    \
        if (!strstr((text), (sub))) fail_msg("expected '%s' in: %s", (sub), (text));        \
    } while (0)

/* Writes content to xt_test_dir/name; returns the path in a static buffer per call site. */
static void write_file(const char *name, const char *content, size_t n, char *path,
                       size_t len)
{
    snprintf(path, len, "%s/%s", xt_test_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Loads `text` as xt_test_dir/name with overrides; returns the status, err filled. */
static Status load_text(Config *cfg, const char *name, const char *text,
                        const char *const *ov, size_t n_ov, char *err, size_t errlen,
                        char *path, size_t pathlen)
{
    write_file(name, text, strlen(text), path, pathlen);
    return config_load(cfg, path, ov, n_ov, err, errlen);
}

/* Expects `assignment` to fail with a message containing each of up to 2 parts and
 * to leave the Config unchanged. */
static void expect_set_fails(const char *assignment, const char *part1, const char *part2)
{
    Config *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    config_defaults(a);
    memcpy(b, a, sizeof *a);
    char err[512] = "";
    Status st = config_set(a, assignment, err, sizeof err);
    if (st != XT_ERR_USAGE) fail_msg("'%s' was accepted", assignment);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "--set %.60s", assignment);
    assert_has(err, prefix);
    if (part1) assert_has(err, part1);
    if (part2) assert_has(err, part2);
    assert_memory_equal(a, b, sizeof *a);
    free(a);
    free(b);
}

static void expect_set_ok(Config *cfg, const char *assignment)
{
    char err[512] = "";
    Status st = config_set(cfg, assignment, err, sizeof err);
    if (st != XT_OK) fail_msg("'%s' refused: %s", assignment, err);
}

/* ------------------------------------------------------------------------- */

static void test_config_defaults(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    memset(c, 0xAB, sizeof *c);
    config_defaults(c);
    assert_string_equal(c->data.train, "");
    assert_string_equal(c->data.val, "");
    assert_string_equal(c->data.test, "");
    assert_int_equal(c->data.normalize, NORM_AUTO);
    assert_int_equal(c->data.virtual_shards, 64);
    assert_int_equal(c->model.type, MODEL_SOFTMAX);
    assert_int_equal(c->model.n_hidden, 0);
    assert_int_equal(c->model.activation, ACT_RELU);
    assert_int_equal(c->model.head, HEAD_SOFTMAX);
    assert_int_equal(c->model.init, INIT_XAVIER);
    assert_int_equal(c->model.classes, 0);
    assert_true(c->loss.label_smoothing == 0.0);
    assert_int_equal(c->loss.n_class_weights, 0);
    assert_true(c->loss.pos_weight == 1.0);
    assert_int_equal(c->loss.ignore_index, -1);
    assert_true(config_is_auto_f64(c->optim.lr)); /* the optimiser's own: plan.c */
    assert_true(config_is_auto_f64(c->optim.momentum));
    assert_false(c->optim.nesterov);
    assert_true(c->optim.weight_decay == 0.0);
    assert_true(c->optim.clip_norm == 0.0);
    assert_int_equal(c->optim.schedule, SCHED_CONSTANT);
    assert_int_equal(c->optim.step_size, 10);
    assert_true(c->optim.gamma == 0.1);
    assert_true(c->optim.warmup_epochs == 0.0);
    assert_int_equal(c->optim.lr_scaling, LR_SCALE_NONE);
    assert_int_equal(c->train.epochs, 200);
    assert_true(c->train.batch_size == CONFIG_AUTO_I64);
    assert_int_equal(c->train.batch_per_rank, 0);
    assert_true(c->train.seed == 42u);
    assert_true(c->train.shuffle);
    assert_int_equal(c->train.check_every, 100);
    assert_string_equal(c->train.resume, "auto");
    assert_true(c->train.progress);
    assert_false(c->eval.distributed);
    assert_int_equal(c->eval.batch_size, 1024);
    assert_true(c->early_stopping.enabled);
    assert_int_equal(c->early_stopping.monitor, MONITOR_AUTO);
    assert_int_equal(c->early_stopping.mode, MODE_AUTO);
    assert_int_equal(c->early_stopping.patience, 10);
    assert_true(c->early_stopping.min_delta == 1e-4);
    assert_int_equal(c->early_stopping.start_epoch, 1);
    assert_true(c->early_stopping.restore_best);
    assert_int_equal(c->checkpoint.every, 1);
    assert_true(c->comm.timeout_s == 600.0);
    assert_string_equal(c->run.dir, "");
    assert_string_equal(c->source, "");

    char err[256] = "";
    assert_int_equal(config_validate(c, err, sizeof err), XT_OK);

    /* enum names follow the enum order */
    assert_string_equal(config_model_type_name(MODEL_LOGISTIC), "logistic");
    assert_string_equal(config_model_type_name(MODEL_MULTILABEL), "multilabel");
    assert_string_equal(config_model_type_name(MODEL_MLP), "mlp");
    assert_string_equal(config_activation_name(ACT_TANH), "tanh");
    assert_string_equal(config_activation_name(ACT_SIGMOID), "sigmoid");
    assert_string_equal(config_normalize_name(NORM_STANDARDIZE), "standardize");
    assert_string_equal(config_head_name(HEAD_SIGMOID), "sigmoid");
    assert_string_equal(config_monitor_name(MONITOR_VAL_ACCURACY), "val_accuracy");
    assert_string_equal(config_model_type_name((ModelType)17), "?");
    free(c);
}

static const char FULL_INI[] =
    "; a full configuration, every section\n"
    "# hash comments too\n"
    "[data]\n"
    "train = d.h5:/train\n"
    "val = d.h5:/val   ; inline comment\n"
    "test = d.h5\n"
    "normalize = standardize\n"
    "virtual_shards = 16\n"
    "stream = true\n"
    "memory_budget = 1.5GiB\n"
    "\n"
    "[model]\n"
    "type = mlp\n"
    "hidden = 256, 128\n"
    "activation = tanh\n"
    "head = sigmoid\n"
    "init = he\n"
    "classes = 10\n"
    "[loss]\n"
    "label_smoothing = 0.1\n"
    "class_weights = 1,1,1,1,1,2,2,2,2,0.5\n"
    "pos_weight = 2.5\n"
    "ignore_index = -1\n"
    "[optim]\n"
    "lr = 0.05\n"
    "momentum = 0.9\n"
    "nesterov = YES\n"
    "weight_decay = 5e-4\n"
    "clip_norm = 1\n"
    "schedule = Step\n"
    "step_size = 3\n"
    "gamma = 0.5\n"
    "warmup_epochs = 0.5\n"
    "lr_scaling = linear\n"
    "[train]\n"
    "epochs = 30\n"
    "batch_size = 0\n"
    "batch_per_rank = 64\n"
    "seed = 18446744073709551615\n"
    "shuffle = off\n"
    "check_every = 0\n"
    "resume = never\n"
    "progress = 0\n"
    "[eval]\n"
    "distributed = on\n"
    "batch_size = 4096\n"
    "[early_stopping]\n"
    "enabled = true\n"
    "monitor = val_accuracy\n"
    "mode = max\n"
    "patience = 3\n"
    "min_delta = 0.001\n"
    "start_epoch = 2\n"
    "restore_best = false\n"
    "[checkpoint]\n"
    "every = 0\n"
    "[comm]\n"
    "timeout_s = 30.5\n"
    "[run]\n"
    "dir = out/full\n";

static void check_full(const Config *c)
{
    assert_string_equal(c->data.train, "d.h5:/train");
    assert_string_equal(c->data.val, "d.h5:/val");
    assert_string_equal(c->data.test, "d.h5");
    assert_int_equal(c->data.normalize, NORM_STANDARDIZE);
    assert_int_equal(c->data.virtual_shards, 16);
    assert_int_equal(c->model.type, MODEL_MLP);
    assert_int_equal(c->model.n_hidden, 2);
    assert_int_equal(c->model.hidden[0], 256);
    assert_int_equal(c->model.hidden[1], 128);
    assert_int_equal(c->model.activation, ACT_TANH);
    assert_int_equal(c->model.head, HEAD_SIGMOID);
    assert_int_equal(c->model.init, INIT_HE);
    assert_int_equal(c->model.classes, 10);
    assert_true(c->loss.label_smoothing == 0.1);
    assert_int_equal(c->loss.n_class_weights, 10);
    assert_true(c->loss.class_weights[5] == 2.0);
    assert_true(c->loss.class_weights[9] == 0.5);
    assert_true(c->loss.pos_weight == 2.5);
    assert_int_equal(c->loss.ignore_index, -1);
    assert_true(c->optim.lr == 0.05);
    assert_true(c->optim.momentum == 0.9);
    assert_true(c->optim.nesterov);
    assert_true(c->optim.weight_decay == 5e-4);
    assert_true(c->optim.clip_norm == 1.0);
    assert_int_equal(c->optim.schedule, SCHED_STEP);
    assert_int_equal(c->optim.step_size, 3);
    assert_true(c->optim.gamma == 0.5);
    assert_true(c->optim.warmup_epochs == 0.5);
    assert_int_equal(c->optim.lr_scaling, LR_SCALE_LINEAR);
    assert_int_equal(c->train.epochs, 30);
    assert_int_equal(c->train.batch_size, 0);
    assert_int_equal(c->train.batch_per_rank, 64);
    assert_true(c->train.seed == UINT64_MAX);
    assert_false(c->train.shuffle);
    assert_int_equal(c->train.check_every, 0);
    assert_string_equal(c->train.resume, "never");
    assert_false(c->train.progress);
    assert_true(c->eval.distributed);
    assert_int_equal(c->eval.batch_size, 4096);
    assert_true(c->early_stopping.enabled);
    assert_int_equal(c->early_stopping.monitor, MONITOR_VAL_ACCURACY);
    assert_int_equal(c->early_stopping.mode, MODE_MAX);
    assert_int_equal(c->early_stopping.patience, 3);
    assert_true(c->early_stopping.min_delta == 0.001);
    assert_int_equal(c->early_stopping.start_epoch, 2);
    assert_false(c->early_stopping.restore_best);
    assert_int_equal(c->checkpoint.every, 0);
    assert_true(c->comm.timeout_s == 30.5);
    assert_string_equal(c->run.dir, "out/full");
}

static void test_config_full_ini(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];
    Status st = load_text(c, "full.ini", FULL_INI, NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    check_full(c);
    assert_string_equal(c->source, path);
    free(c);
}

static void test_config_overrides_after_file(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];
    const char *ov[] = {"optim.lr=0.3", " optim.lr = 0.4 ", "model.hidden=32,16,8",
                        "train.shuffle=false", "data.val="};
    Status st = load_text(c, "my-run.v2.ini",
                          "[optim]\nlr = 0.2\n[model]\ntype = mlp\nhidden = 4\n"
                          "[data]\nval = x.h5:/val\n",
                          ov, 5, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_true(c->optim.lr == 0.4); /* the last --set wins over the file */
    assert_int_equal(c->model.n_hidden, 3);  /* a list is replaced, not appended */
    assert_int_equal(c->model.hidden[2], 8);
    assert_false(c->train.shuffle);
    assert_string_equal(c->data.val, "");
    assert_string_equal(c->run.dir, "runs/my-run.v2"); /* derived from the file name */

    /* an override that fails names itself, even after a good file */
    const char *bad[] = {"optim.momentum=1.5"};
    st = load_text(c, "ok.ini", "[optim]\nmomentum = 0.5\n", bad, 1, err, sizeof err, path,
                   sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_string_equal(err, "--set optim.momentum=1.5: out of range (allowed: 0 <= value < 1, or auto)");

    /* no file: defaults plus overrides, run.dir still filled */
    const char *ov2[] = {"train.epochs=3"};
    st = config_load(c, NULL, ov2, 1, err, sizeof err);
    if (st != XT_OK) fail_msg("%s", err);
    assert_int_equal(c->train.epochs, 3);
    assert_string_equal(c->run.dir, "runs/default");
    assert_string_equal(c->source, "");

    /* an explicit run.dir is kept */
    const char *ov3[] = {"run.dir=/scratch/r1"};
    st = load_text(c, "x.ini", "", ov3, 1, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_string_equal(c->run.dir, "/scratch/r1");
    free(c);
}

static void test_config_bools_and_enums(void **state)
{
    (void)state;
    Config c;
    config_defaults(&c);
    const char *yes[] = {"true", "TRUE", "Yes", "on", "1"};
    const char *no[] = {"false", "False", "NO", "Off", "0"};
    for (size_t i = 0; i < 5; i++) {
        char a[64];
        snprintf(a, sizeof a, "train.shuffle=%s", no[i]);
        expect_set_ok(&c, a);
        assert_false(c.train.shuffle);
        snprintf(a, sizeof a, "train.shuffle=%s", yes[i]);
        expect_set_ok(&c, a);
        assert_true(c.train.shuffle);
    }
    expect_set_fails("train.shuffle=maybe", "not a boolean",
                     "(allowed: false, true, block (or yes, no, on, off, 1, 0))");
    expect_set_ok(&c, "train.shuffle=block");
    assert_int_equal(c.train.shuffle, SHUFFLE_BLOCK);
    expect_set_ok(&c, "data.stream=yes");
    assert_int_equal(c.data.stream, DATA_STREAM_TRUE);
    expect_set_ok(&c, "data.stream=auto");
    assert_int_equal(c.data.stream, DATA_STREAM_AUTO);
    /* data.memory_budget: bytes with binary suffixes; checked by config_validate */
    const char *budgets[] = {"0", "4096", "512K", "2G", "1.5GiB", "3mb"};
    const double bytes[] = {0, 4096, 524288, 2147483648.0, 1610612736.0, 3145728};
    for (size_t i = 0; i < 6; i++) {
        char a[64], err[256];
        snprintf(a, sizeof a, "data.memory_budget=%s", budgets[i]);
        expect_set_ok(&c, a);
        assert_int_equal(config_validate(&c, err, sizeof err), XT_OK);
        assert_true(config_memory_budget(&c) == bytes[i]);
    }
    const char *bad_budgets[] = {"-1", "2X", "1GiBs", "lots", "nan"};
    for (size_t i = 0; i < 5; i++) {
        char a[64], err[256];
        snprintf(a, sizeof a, "data.memory_budget=%s", bad_budgets[i]);
        expect_set_ok(&c, a);
        assert_int_equal(config_validate(&c, err, sizeof err), XT_ERR_USAGE);
        assert_non_null(strstr(err, "data.memory_budget"));
    }
    expect_set_ok(&c, "data.memory_budget=0");
    expect_set_ok(&c, "train.shuffle=true");
    expect_set_ok(&c, "train.shuffle_block=64");
    {
        char err[256];
        assert_int_equal(config_validate(&c, err, sizeof err), XT_ERR_USAGE); /* row shuffle */
        assert_non_null(strstr(err, "train.shuffle = block only"));
    }
    expect_set_ok(&c, "train.shuffle_block=0");
    expect_set_fails("train.shuffle=", "empty value", NULL);
    expect_set_fails("train.shuffle=2", "not a boolean", NULL);

    expect_set_ok(&c, "model.type=LOGISTIC");
    assert_int_equal(c.model.type, MODEL_LOGISTIC);
    expect_set_ok(&c, "early_stopping.mode=min");
    assert_int_equal(c.early_stopping.mode, MODE_MIN);
    expect_set_fails("model.type=cnn", "not one of the choices",
                     "(allowed: logistic, softmax, multilabel, mlp)");
    expect_set_fails("data.normalize=minmax", "(allowed: none, scale, standardize, maxabs, auto)", NULL);
    expect_set_fails("early_stopping.monitor=loss", "(allowed: val_loss, val_accuracy, train_loss, auto)", NULL);
    expect_set_fails("model.init=", "empty value", NULL);
}

static void test_config_numbers(void **state)
{
    (void)state;
    char err[512] = "";
    Config c;
    config_defaults(&c);
    /* the message format of the brief, exactly */
    assert_int_equal(config_set(&c, "optim.lr=abc", err, sizeof err), XT_ERR_USAGE);
    assert_string_equal(err, "--set optim.lr=abc: not a number (allowed: 0 < value <= 1000, or auto)");

    expect_set_fails("optim.lr=0.1x", "not a number", NULL);
    expect_set_fails("optim.lr=", "empty value", NULL);
    expect_set_fails("optim.lr=   ", "empty value", NULL);
    expect_set_fails("optim.lr=nan", "not a finite number", NULL);
    expect_set_fails("optim.lr=NaN", "not a finite number", NULL);
    expect_set_fails("optim.lr=inf", "not a finite number", NULL);
    expect_set_fails("optim.weight_decay=Infinity", "not a finite number", NULL);
    expect_set_fails("optim.weight_decay=1e999", "overflow", NULL);
    expect_set_fails("optim.lr=0", "out of range", "0 < value <= 1000");
    expect_set_fails("optim.lr=-0.1", "out of range", NULL);
    expect_set_fails("optim.lr=1000.0001", "out of range", NULL);
    expect_set_ok(&c, "optim.lr=1000");
    expect_set_ok(&c, "optim.lr=1e-3");
    assert_true(c.optim.lr == 1e-3);
    expect_set_fails("optim.momentum=1", "out of range", "0 <= value < 1");
    expect_set_ok(&c, "optim.momentum=0");
    expect_set_ok(&c, "optim.momentum=0.999");
    expect_set_fails("optim.gamma=0", "out of range", "0 < value <= 1");
    expect_set_ok(&c, "optim.gamma=1");
    expect_set_fails("loss.label_smoothing=1", "0 <= value < 1", NULL);
    expect_set_fails("loss.pos_weight=0", "value > 0", NULL);
    expect_set_fails("comm.timeout_s=0", "value > 0", NULL);
    expect_set_fails("early_stopping.min_delta=-1e-9", "value >= 0", NULL);

    expect_set_fails("train.epochs=1.5", "not an integer", "1 <= value <= 1000000");
    expect_set_fails("train.epochs=1e3", "not an integer", NULL);
    expect_set_fails("train.epochs=10x", "not an integer", NULL);
    expect_set_fails("train.epochs=0", "out of range", NULL);
    expect_set_fails("train.epochs=1000001", "out of range", NULL);
    expect_set_fails("train.epochs=99999999999999999999", "out of range", NULL);
    expect_set_fails("train.check_every=9223372036854775808", "out of range", NULL);
    expect_set_ok(&c, "train.check_every=9223372036854775807");
    expect_set_ok(&c, "train.epochs=1000000");
    expect_set_ok(&c, "train.batch_size=0");
    expect_set_ok(&c, "train.batch_size=2147483647");
    expect_set_fails("train.batch_size=2147483648", "out of range", NULL);
    expect_set_fails("train.batch_size=-1", "out of range", NULL);
    expect_set_fails("data.virtual_shards=0", "1 <= value <= 1048576", NULL);
    expect_set_fails("data.virtual_shards=1048577", "out of range", NULL);
    expect_set_ok(&c, "loss.ignore_index=4095");
    expect_set_fails("loss.ignore_index=4096", "-1 <= value <= 4095", NULL);
    expect_set_fails("loss.ignore_index=-2", "out of range", NULL);
    expect_set_fails("model.classes=4097", "0 <= value <= 4096", NULL);
    expect_set_fails("early_stopping.patience=0", "out of range", NULL);
    expect_set_fails("train.check_every=-1", "value >= 0", NULL);

    expect_set_ok(&c, "train.seed=18446744073709551615");
    assert_true(c.train.seed == UINT64_MAX);
    expect_set_fails("train.seed=18446744073709551616", "out of range", NULL);
    expect_set_fails("train.seed=-1", "not an unsigned integer", NULL);
    expect_set_fails("train.seed=4.2", "not an unsigned integer", NULL);

    char longpath[XT_PATH_MAX + 32];
    memset(longpath, 'a', sizeof longpath);
    memcpy(longpath, "data.train=", 11);
    longpath[sizeof longpath - 1] = '\0';
    expect_set_fails(longpath, "too long", NULL);
}

static void test_config_lists(void **state)
{
    (void)state;
    Config c;
    config_defaults(&c);
    expect_set_ok(&c, "model.hidden= 512 ,256,  64 ");
    assert_int_equal(c.model.n_hidden, 3);
    assert_int_equal(c.model.hidden[0], 512);
    assert_int_equal(c.model.hidden[2], 64);
    expect_set_ok(&c, "model.hidden=8,");
    assert_int_equal(c.model.n_hidden, 1);
    expect_set_ok(&c, "model.hidden=1,2,3,4,5,6,7,8");
    assert_int_equal(c.model.n_hidden, XT_MAX_HIDDEN);
    expect_set_ok(&c, "model.hidden=");
    assert_int_equal(c.model.n_hidden, 0);
    expect_set_fails("model.hidden=1,2,3,4,5,6,7,8,9", "more than 8 values",
                     "up to 8 comma-separated integers, each 1 <= value <= 65536");
    expect_set_fails("model.hidden=256,0", "element 2 (0): out of range", NULL);
    expect_set_fails("model.hidden=65537", "out of range", NULL);
    expect_set_fails("model.hidden=256,,128", "element 2 is empty", NULL);
    expect_set_fails("model.hidden=,", "element 1 is empty", NULL);
    expect_set_fails("model.hidden=12.5", "not an integer", NULL);
    expect_set_fails("model.hidden=128 64", "not an integer", NULL);

    expect_set_ok(&c, "loss.class_weights=1, 2.5,0");
    assert_int_equal(c.loss.n_class_weights, 3);
    assert_true(c.loss.class_weights[1] == 2.5);
    assert_true(c.loss.class_weights[2] == 0.0);
    expect_set_fails("loss.class_weights=1,-1", "element 2 (-1): out of range", "value >= 0");
    expect_set_fails("loss.class_weights=1,nan", "not a finite number", NULL);
}

static void test_config_file_error_format(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600], want[800];
    Status st = load_text(c, "bad.ini", "[optim]\nlr = 0.1\nmomentum = 1.5\n", NULL, 0, err,
                          sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    snprintf(want, sizeof want, "%s:3: optim.momentum = 1.5: out of range (allowed: 0 <= value < 1, or auto)",
             path);
    assert_string_equal(err, want);

    /* the line number counts comments, blank lines and sections */
    st = load_text(c, "bad2.ini", "; c\n\n[train]\n\n# x\nepochs = ten\n", NULL, 0, err,
                   sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    snprintf(want, sizeof want, "%s:6: train.epochs = ten: not an integer", path);
    assert_has(err, want);

    /* a string with a NUL byte in the middle of the file */
    write_file("nul.ini", "[data]\ntrain = a\0b\n", 19, path, sizeof path);
    st = config_load(c, path, NULL, 0, err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":2: contains a NUL byte");
    free(c);
}

static void test_config_unknown_keys(void **state)
{
    (void)state;
    expect_set_fails("optim.learning_rate=0.1",
                     "unknown key 'optim.learning_rate' (did you mean 'optim.lr'?)", NULL);
    expect_set_fails("optim.lrr=0.1", "unknown key 'optim.lrr' (did you mean 'optim.lr'?)",
                     NULL);
    expect_set_fails("optim.momentun=0.1", "(did you mean 'optim.momentum'?)", NULL);
    expect_set_fails("train.lr=0.1", "(did you mean 'optim.lr'?)", NULL);
    expect_set_fails("train.batchsize=1", "(did you mean 'train.batch_size'?)", NULL);
    expect_set_fails("train.max_epochs=1", "(did you mean 'train.epochs'?)", NULL);
    expect_set_fails("model.hidden_sizes=1", "(did you mean 'model.hidden'?)", NULL);
    expect_set_fails("trian.epochs=3", "unknown section [trian]",
                     "(did you mean 'train.epochs'?)");
    expect_set_fails("optim.zzzzzzzz=1", "unknown key 'optim.zzzzzzzz' (keys of [optim]: lr,",
                     NULL);
    expect_set_fails("qqqqqq.zzzzzzzz=1", "unknown section [qqqqqq]", "(sections: data, model");
    expect_set_fails("lr=0.1", "expected section.key=value (did you mean 'optim.lr'?)", NULL);
    expect_set_fails("optim.lr", "expected section.key=value", NULL);
    expect_set_fails("Optim.LR=0.1", "(did you mean 'optim.lr'?)", NULL);

    /* the same from a file, with the line */
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600], want[800];
    Status st = load_text(c, "unk.ini", "[optim]\nlr = 0.1\nlearning_rate = 0.2\n", NULL, 0,
                          err, sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    snprintf(want, sizeof want, "%s:3: unknown key 'optim.learning_rate' (did you mean 'optim.lr'?)",
             path);
    assert_string_equal(err, want);
    st = load_text(c, "unk2.ini", "[trian]\nepochs = 3\n", NULL, 0, err, sizeof err, path,
                   sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":2: unknown section [trian]");
    assert_has(err, "train.epochs");
    st = load_text(c, "unk3.ini", "lr = 0.1\n[optim]\n", NULL, 0, err, sizeof err, path,
                   sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":1: key 'lr' is outside any [section] (did you mean 'optim.lr'?)");
    /* a UTF-8 byte order mark is skipped */
    st = load_text(c, "bom.ini", "\xEF\xBB\xBF[optim]\nlr = 0.25\n", NULL, 0, err, sizeof err,
                   path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_true(c->optim.lr == 0.25);
    /* blanks inside the brackets are tolerated */
    st = load_text(c, "sec.ini", "[ optim ]\nlr = 0.5\n", NULL, 0, err, sizeof err, path,
                   sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_true(c->optim.lr == 0.5);
    free(c);
}

static void test_config_file_errors(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];

    snprintf(path, sizeof path, "%s/missing.ini", xt_test_dir);
    assert_int_equal(config_load(c, path, NULL, 0, err, sizeof err), XT_ERR_USAGE);
    assert_has(err, "missing.ini");
    assert_has(err, "No such file or directory");

    assert_int_equal(config_load(c, xt_test_dir, NULL, 0, err, sizeof err), XT_ERR_USAGE);
    assert_has(err, "is a directory");

    assert_int_equal(config_load(c, "/dev/null", NULL, 0, err, sizeof err), XT_ERR_USAGE);
    assert_has(err, "not a regular file");

    write_file("locked.ini", "[optim]\n", 8, path, sizeof path);
    assert_int_equal(chmod(path, 0), 0);
    FILE *probe = fopen(path, "r");
    if (probe) {
        fclose(probe); /* root reads anything: this case cannot be provoked */
    } else {
        assert_int_equal(config_load(c, path, NULL, 0, err, sizeof err), XT_ERR_USAGE);
        assert_has(err, "cannot read config file");
        assert_has(err, "Permission denied");
    }

    /* syntax errors, with the line and its text */
    Status st = load_text(c, "syn.ini", "[optim]\nlr = 0.1\n\nthis line has no equals\n",
                          NULL, 0, err, sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":4: syntax error in 'this line has no equals'");
    st = load_text(c, "syn2.ini", "[optim\nlr = 0.1\n", NULL, 0, err, sizeof err, path,
                   sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":1: syntax error");

    /* lines longer than libinih's 200-byte buffer are read whole (libinih alone would
     * split them): a 250-character value, one of 198 with "\n", one of 197 with "\r\n" */
    char text[400];
    const size_t lens[3] = {250, 198 - 8, 197 - 8};
    const char *ends[3] = {".h5\n", "\n", "\r\n"};
    for (int i = 0; i < 3; i++) {
        int n = snprintf(text, sizeof text, "[data]\ntrain = ");
        memset(text + n, 'x', lens[i]);
        snprintf(text + n + lens[i], sizeof text - (size_t)n - lens[i], "%s", ends[i]);
        st = load_text(c, "long.ini", text, NULL, 0, err, sizeof err, path, sizeof path);
        if (st != XT_OK) fail_msg("%s", err);
        assert_int_equal(strlen(c->data.train), lens[i] + (i == 0 ? 3 : 0));
    }
    /* a long line that is not key = value is a syntax error naming its line */
    int n = snprintf(text, sizeof text, "[data]\n");
    memset(text + n, 'w', 300);
    snprintf(text + n + 300, sizeof text - (size_t)n - 300, "\n");
    st = load_text(c, "long3.ini", text, NULL, 0, err, sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":2: a line of 300 characters that is not 'key = value'");
    /* a key twice */
    st = load_text(c, "dup.ini", "[optim]\nlr = 0.1\nmomentum = 0.5\nlr = 0.2\n", NULL, 0, err,
                   sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":4: optim.lr = 0.2: duplicate key, already set on line 2");

    /* a list key twice, not indented: a duplicate, not a continuation */
    st = load_text(c, "dup2.ini", "[model]\nhidden = 4\nhidden = 8\n", NULL, 0, err,
                   sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":3: model.hidden = 8: duplicate key, already set on line 2");
    /* after a section line an indented key starts afresh (libinih forgets the
     * previous key), so this is a duplicate too */
    st = load_text(c, "dup3.ini", "[model]\nhidden = 4\n[model]\n  hidden = 8\n", NULL, 0,
                   err, sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":4: model.hidden = 8: duplicate key, already set on line 2");

    /* an empty file is all defaults */
    st = load_text(c, "empty.ini", "", NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_true(config_is_auto_f64(c->optim.lr));
    assert_string_equal(c->run.dir, "runs/empty");
    free(c);
}

static void test_config_continuation_lines(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];
    Status st = load_text(c, "cont.ini",
                          "[model]\nclasses = 6\n[loss]\nclass_weights = 1, 2,\n"
                          "    3,4\n\t5,6\nlabel_smoothing = 0.2\n",
                          NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_int_equal(c->loss.n_class_weights, 6);
    assert_true(c->loss.class_weights[3] == 4.0);
    assert_true(c->loss.class_weights[5] == 6.0);
    assert_true(c->loss.label_smoothing == 0.2);

    /* indenting a scalar key continues the previous one: an error that says so */
    st = load_text(c, "indent.ini", "[optim]\nlr = 0.1\n  momentum = 0.9\n", NULL, 0, err,
                   sizeof err, path, sizeof path);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_has(err, ":3: optim.lr: this indented line");
    assert_has(err, "only lists may span lines");

    /* the first key after a section may be indented */
    st = load_text(c, "indent2.ini", "[optim]\n  lr = 0.3\n[train]\n  epochs = 4\n", NULL, 0,
                   err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_true(c->optim.lr == 0.3);
    assert_int_equal(c->train.epochs, 4);
    free(c);
}

/* Loads text + overrides, expects a usage error whose message holds both parts. */
static void expect_rule(const char *text, const char *const *ov, size_t n_ov, const char *p1,
                        const char *p2)
{
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];
    Status st = load_text(c, "rule.ini", text, ov, n_ov, err, sizeof err, path, sizeof path);
    if (st != XT_ERR_USAGE) fail_msg("accepted: %s", text);
    assert_has(err, p1);
    if (p2) assert_has(err, p2);
    free(c);
}

static void test_config_cross_key_rules(void **state)
{
    (void)state;
    /* (train.micro_batches = auto is the plan's: tests/test_plan.c) */
    expect_rule("[model]\ntype = mlp\n", NULL, 0, "rule.ini:2: model.type = mlp",
                "needs model.hidden");
    expect_rule("[model]\nhidden = 64\n", NULL, 0, "rule.ini:2: model.hidden = 64",
                "only used by model.type = mlp");
    expect_rule("[model]\ntype = mlp\nhidden = 8\ninit = zeros\n", NULL, 0,
                "rule.ini:4: model.init = zeros", "never differ");
    expect_rule("[model]\nhead = sigmoid\n", NULL, 0, "model.head = sigmoid",
                "only applies to model.type = mlp");
    expect_rule("[optim]\nmomentum = 0\nnesterov = true\n", NULL, 0, "rule.ini:3: optim.nesterov = true",
                "needs optim.momentum > 0");
    expect_rule("[optim]\noptimizer = adam\nmomentum = 0.9\n", NULL, 0,
                "optim.momentum = 0.9", "keeps moments of its own: set optim.betas");
    expect_rule("[optim]\noptimizer = lars\nmomentum = 0.9\nnesterov = true\n", NULL, 0,
                "optim.nesterov = true", "optim.optimizer = sgd only");
    expect_rule("[optim]\noptimizer = adamw\nbetas = 0.9\n", NULL, 0, "optim.betas = 0.9",
                "two values");
    expect_rule("[optim]\nbetas = 0.8,0.99\n", NULL, 0, "optim.betas = 0.8,0.99",
                "not optim.optimizer = sgd");
    expect_rule("[optim]\noptimizer = adam\ntrust_coefficient = 0.01\n", NULL, 0,
                "optim.trust_coefficient = 0.01", "used by lars only");
    expect_rule("[model]\nclasses = 3\n[loss]\nclass_weights = 1,2\n", NULL, 0,
                "loss.class_weights = 1,2", "2 weights for model.classes = 3");
    expect_rule("[model]\nclasses = 3\n[loss]\nignore_index = 3\n", NULL, 0,
                "loss.ignore_index = 3", "not a class id");
    expect_rule("[model]\ntype = multilabel\n[loss]\nignore_index = 0\n", NULL, 0,
                "loss.ignore_index = 0", "class-id labels");
    expect_rule("[train]\nresume =\n", NULL, 0, "train.resume", "empty");
    expect_rule("[train]\nmicro_batches = 8\n", NULL, 0, "train.micro_batches = 8",
                "used by train.reproducible = true only");
    expect_rule("[train]\nreproducible = true\nbatch_per_rank = 64\n", NULL, 0,
                "train.batch_per_rank = 64", "depend on the rank count");
    expect_rule("[train]\nreproducible = true\nmicro_batches = 64\naccumulate = 65\n", NULL, 0,
                "train.accumulate = 65", "exceeds 4096 micro-batches per update");
    expect_rule("[early_stopping]\nmonitor = val_loss\n", NULL, 0, "early_stopping.monitor",
                "set data.val");
    /* the full-batch solvers (docs/solvers.md) */
    expect_rule("[optim]\noptimizer = lbfgs\n[train]\nbatch_size = 64\n", NULL, 0,
                "train.batch_size = 64", "remove train.batch_size (or set 0");
    expect_rule("[optim]\noptimizer = newton\nschedule = cosine\n", NULL, 0,
                "optim.schedule = cosine", "its trust region chooses every step");
    expect_rule("[optim]\noptimizer = lbfgs\nlr = 0.5\n", NULL, 0, "optim.lr = 0.5",
                "its line search chooses every step");
    expect_rule("[optim]\noptimizer = lbfgs\nmomentum = 0.5\n", NULL, 0,
                "optim.momentum = 0.5", "remove optim.momentum");
    expect_rule("[model]\ntype = mlp\nhidden = 8\n[optim]\noptimizer = newton\n", NULL, 0,
                "optim.optimizer = newton", "use optim.optimizer = lbfgs");
    expect_rule("[optim]\noptimizer = newton\nhistory = 4\n", NULL, 0, "optim.history = 4",
                "lbfgs only");
    expect_rule("[optim]\noptimizer = lbfgs\nC = 2\nweight_decay = 0.1\n", NULL, 0,
                "optim.weight_decay = 0.1", "not both");
    expect_rule("[optim]\noptimizer = lbfgs\nshard = true\n", NULL, 0, "optim.shard = true",
                "nothing to shard");
    expect_rule("[optim]\noptimizer = lbfgs\nprecondition = true\n", NULL, 0,
                "optim.precondition = true", "newton only");
    expect_rule("[optim]\nprecondition = false\n", NULL, 0, "optim.precondition = false",
                "full-batch solvers");
    expect_rule("[optim]\ntol = 1e-3\n", NULL, 0, "optim.tol",
                "full-batch solvers (optim.optimizer = lbfgs or newton) only");
    expect_rule("[data]\nval = v.h5:/val\n[train]\nepochs = 3\n[early_stopping]\n"
                "enabled = true\nstart_epoch = 4\n",
                NULL, 0, "early_stopping.start_epoch = 4", "after the last epoch");

    /* blamed on the --set that made it wrong, after a valid file */
    const char *ov[] = {"model.type=mlp", "model.init=zeros"};
    expect_rule("[model]\nhidden = 8\n", ov, 2, "--set model.init=zeros: refused for model.type = mlp",
                NULL);
    const char *ov2[] = {"model.type=mlp"};
    expect_rule("", ov2, 1, "--set model.type=mlp: needs model.hidden", NULL);

    /* fixed by an override, accepted; nesterov with momentum, classes match */
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];
    const char *fix[] = {"model.hidden=16", "optim.momentum=0.9", "optim.nesterov=on"};
    Status st = load_text(c, "fix.ini", "[model]\ntype = mlp\nclasses = 2\n[loss]\n"
                          "class_weights = 1,3\nignore_index = 1\n",
                          fix, 3, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);

    /* config_validate on a hand-built Config */
    config_defaults(c);
    expect_set_ok(c, "model.type=mlp");
    assert_int_equal(config_validate(c, err, sizeof err), XT_ERR_USAGE);
    assert_string_equal(err, "model.type = mlp: needs model.hidden, the hidden layer sizes "
                             "(e.g. hidden = 256,128)");
    expect_set_ok(c, "model.hidden=3");
    assert_int_equal(config_validate(c, err, sizeof err), XT_OK);
    free(c);
}

/* Writes cfg as INI, reads it back, expects the same Config. */
static void round_trip(const Config *in)
{
    size_t need = config_to_ini(in, NULL, 0);
    assert_true(need > 0);
    char *text = malloc(need + 1);
    assert_non_null(text);
    assert_int_equal(config_to_ini(in, text, need + 1), need);
    assert_int_equal(strlen(text), need);
    /* a short buffer is truncated, terminated, and the needed size still returned */
    char small[16];
    assert_int_equal(config_to_ini(in, small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);

    for (size_t i = 0; i < N_ALL_KEYS; i++) {
        const char *name = strchr(ALL_KEYS[i], '.') + 1;
        char line[80];
        snprintf(line, sizeof line, "\n%s = ", name);
        assert_has(text, line);
    }
    char path[600], err[512] = "";
    write_file("resolved.ini", text, need, path, sizeof path);
    free(text);
    Config *out = malloc(sizeof *out), *want = malloc(sizeof *want);
    assert_non_null(out);
    assert_non_null(want);
    Status st = config_load(out, path, NULL, 0, err, sizeof err);
    if (st != XT_OK) fail_msg("%s", err);
    memcpy(want, in, sizeof *want);
    memset(want->source, 0, sizeof want->source);
    memset(out->source, 0, sizeof out->source);
    assert_memory_equal(out, want, sizeof *want);
    free(out);
    free(want);
}

static void test_config_round_trip(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];

    /* defaults (run.dir filled as config_load would) */
    Status st = load_text(c, "defaults.ini", "", NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    round_trip(c);

    /* every key changed */
    st = load_text(c, "full.ini", FULL_INI, NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    round_trip(c);

    /* awkward doubles, and a long list that must be wrapped on continuation lines */
    expect_set_ok(c, "optim.lr=0.30000000000000004");
    expect_set_ok(c, "optim.weight_decay=1e-300");
    expect_set_ok(c, "early_stopping.min_delta=123456789.123456789");
    expect_set_ok(c, "model.classes=0");
    char *list = malloc(XT_MAX_CLASSES * 32 + 32);
    assert_non_null(list);
    size_t pos = (size_t)snprintf(list, 32, "loss.class_weights=");
    for (int k = 0; k < XT_MAX_CLASSES; k++)
        pos += (size_t)snprintf(list + pos, 32, "%s%.17g", k ? "," : "", 1.0 / (k + 3));
    expect_set_ok(c, list);
    free(list);
    assert_int_equal(c->loss.n_class_weights, XT_MAX_CLASSES);
    assert_int_equal(config_validate(c, err, sizeof err), XT_OK);
    round_trip(c);
    free(c);
}

/* Cluster paths of 1,000 characters (issue 32): config.ini and a checkpoint's stored text
 * (config_load_text) read back what config_to_ini wrote, and a user's file may hold them
 * too, on one line, with an inline comment, in quotes. */
static void test_config_long_paths(void **state)
{
    (void)state;
    Config *c = malloc(sizeof *c);
    assert_non_null(c);
    char err[512] = "", path[600];
    char dir[1001], spec[1100], set_dir[1100], set_train[1200];
    for (int i = 0; i < 1000; i++) dir[i] = (char)(i % 100 == 99 ? '/' : 'a' + i % 26);
    dir[1000] = '\0';
    snprintf(spec, sizeof spec, "%s/data.h5:/train", dir);
    snprintf(set_dir, sizeof set_dir, "run.dir=%s", dir);
    snprintf(set_train, sizeof set_train, "data.train=%s", spec);
    config_defaults(c);
    expect_set_ok(c, set_dir);
    expect_set_ok(c, set_train);
    round_trip(c);
    size_t need = config_to_ini(c, NULL, 0) + 1;
    char *text = malloc(need);
    assert_non_null(text);
    config_to_ini(c, text, need);
    Config *back = malloc(sizeof *back);
    assert_non_null(back);
    Status st = config_load_text(back, text, "checkpoint.h5", err, sizeof err);
    if (st != XT_OK) fail_msg("%s", err);
    assert_string_equal(back->run.dir, dir);
    assert_string_equal(back->data.train, spec);
    free(text);

    /* a user's file: one long line each, an inline comment after one */
    size_t len = 4096;
    char *ini = malloc(len);
    assert_non_null(ini);
    snprintf(ini, len, "[data]\ntrain = %s   ; on the cluster\n[run]\ndir = %s\n", spec, dir);
    st = load_text(back, "user.ini", ini, NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_string_equal(back->data.train, spec);
    assert_string_equal(back->run.dir, dir);
    /* quoted, as short values may be: what is inside the quotes */
    snprintf(ini, len, "[data]\ntrain = \"%s\"\n[run]\ndir = '%s'   ; quoted\n", spec, dir);
    st = load_text(back, "user.ini", ini, NULL, 0, err, sizeof err, path, sizeof path);
    if (st != XT_OK) fail_msg("%s", err);
    assert_string_equal(back->data.train, spec);
    assert_string_equal(back->run.dir, dir);
    free(ini);
    free(back);
    free(c);
}

static void test_config_reference(void **state)
{
    (void)state;
    for (int fmt = 0; fmt < 2; fmt++) {
        FILE *f = tmpfile();
        assert_non_null(f);
        assert_int_equal(config_write_reference(f, fmt ? "md" : "text"), XT_OK);
        long size = ftell(f);
        assert_true(size > 0);
        char *text = calloc((size_t)size + 1, 1);
        assert_non_null(text);
        rewind(f);
        assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        if (fmt) {
            assert_true(strncmp(text, "| key | default | allowed | meaning |\n| --- |", 44) == 0);
            for (size_t i = 0; i < N_ALL_KEYS; i++) {
                char cell[80];
                snprintf(cell, sizeof cell, "\n| `%s` | ", ALL_KEYS[i]);
                assert_has(text, cell);
            }
            assert_has(text, "| `optim.lr` | `auto` | 0 < value <= 1000, or auto | ");
            assert_has(text, "| `data.train` | (empty) | ");
            assert_has(text, "runs/&lt;config file name"); /* not an HTML tag */
            assert_has(text, "| `model.type` | `softmax` | logistic, softmax, multilabel, mlp |");
            /* one row per key plus the two header lines */
            size_t rows = 0;
            for (const char *p = text; *p; p++) rows += *p == '\n';
            assert_int_equal(rows, N_ALL_KEYS + 2);
        } else {
            assert_has(text, "[early_stopping]\n  enabled = true\n");
            assert_has(text, "  lr = auto\n");
            for (size_t i = 0; i < N_ALL_KEYS; i++) {
                char entry[80];
                snprintf(entry, sizeof entry, "\n  %s = ", strchr(ALL_KEYS[i], '.') + 1);
                assert_has(text, entry);
            }
        }
        free(text);
    }
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(config_write_reference(f, "html"), XT_ERR_USAGE);
    assert_int_equal(ftell(f), 0);
    fclose(f);
}

/* The resolved INI text reads back into the same Config; config_diff names the keys
 * that differ, trajectory keys apart from the others; unknown keys in saved text (from
 * another version) are skipped. */
/* loss.class_weights = balanced: a word for the list, written back as such; quoted INI
 * values */
static void test_config_class_weights_balanced(void **state)
{
    (void)state;
    Config a, b;
    char err[512] = "";
    const char *over[] = {"loss.class_weights=Balanced"};
    assert_int_equal(config_load(&a, NULL, over, 1, err, sizeof err), XT_OK);
    assert_true(a.loss.class_weights_balanced);
    assert_int_equal(a.loss.n_class_weights, 0);
    size_t need = config_to_ini(&a, NULL, 0) + 1;
    char *text = malloc(need);
    config_to_ini(&a, text, need);
    assert_non_null(strstr(text, "\nclass_weights = balanced"));
    assert_int_equal(config_load_text(&b, text, "saved", err, sizeof err), XT_OK);
    assert_true(b.loss.class_weights_balanced);
    free(text);
    const char *nums[] = {"loss.class_weights=balanced", "loss.class_weights=1,2"};
    assert_int_equal(config_load(&a, NULL, nums, 2, err, sizeof err), XT_OK);
    assert_false(a.loss.class_weights_balanced);
    assert_int_equal(a.loss.n_class_weights, 2);
    /* values in matching quotes mean what is inside them */
    assert_int_equal(config_load_text(&b, "[run]\ndir = \"runs/q d\"\n[data]\ntrain = 'f.h5:/train'\n"
                                          "[model]\nhidden = \"8,4\"\n", "quoted", err, sizeof err),
                     XT_OK);
    assert_string_equal(b.run.dir, "runs/q d");
    assert_string_equal(b.data.train, "f.h5:/train");
    assert_int_equal(b.model.n_hidden, 2);
    const char *bad[] = {"loss.class_weights=balance"};
    assert_int_equal(config_load(&a, NULL, bad, 1, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "or balanced"));
}

static void test_config_text_diff_and_settings(void **state)
{
    (void)state;
    Config a, b;
    char err[512] = "";
    const char *over[] = {"model.type=mlp", "model.hidden=8,4", "optim.lr=0.05",
                          "loss.class_weights=1,2,3", "run.dir=/tmp/r"};
    assert_int_equal(config_load(&a, NULL, over, 5, err, sizeof err), XT_OK);
    size_t need = config_to_ini(&a, NULL, 0) + 1;
    char *text = malloc(need);
    config_to_ini(&a, text, need);
    assert_int_equal(config_load_text(&b, text, "saved", err, sizeof err), XT_OK);
    char diff[1024];
    assert_int_equal(config_diff(&a, &b, CONFIG_KEYS_TRAJECTORY, diff, sizeof diff), 0);
    assert_int_equal(config_diff(&a, &b, CONFIG_KEYS_SETTINGS, diff, sizeof diff), 0);
    /* a later element of a list differs: found although messages cut values short */
    b.loss.class_weights[2] = 4.0;
    b.optim.lr = 0.2;
    b.train.epochs = 30;
    snprintf(b.run.dir, sizeof b.run.dir, "elsewhere");
    assert_int_equal(config_diff(&a, &b, CONFIG_KEYS_TRAJECTORY, diff, sizeof diff), 1);
    assert_string_equal(diff, "loss.class_weights: '1,2,3' -> '1,2,4'");
    assert_int_equal(config_diff(&a, &b, CONFIG_KEYS_SETTINGS, diff, sizeof diff), 2);
    assert_non_null(strstr(diff, "optim.lr: '0.05' -> '0.2'"));
    assert_non_null(strstr(diff, "train.epochs: '200' -> '30'"));
    assert_null(strstr(diff, "run.dir")); /* where the run lives is not a setting */
    /* text from another version: an unknown key is skipped, the rest read */
    assert_int_equal(config_load_text(&b, "[optim]\nlr = 0.3\nfuture_key = 1\n", "old", err,
                                      sizeof err), XT_OK);
    assert_true(b.optim.lr == 0.3);
    /* the banner's settings: one line per section, every key */
    need = config_settings_text(&a, NULL, 0) + 1;
    char *set = malloc(need);
    assert_int_equal(config_settings_text(&a, set, need), need - 1);
    assert_non_null(strstr(set, "[model] type=mlp hidden=8,4 activation=relu"));
    assert_non_null(strstr(set, "\n[optim] lr=0.05 momentum=auto"));
    free(set);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_full_ini),
        cmocka_unit_test(test_config_overrides_after_file),
        cmocka_unit_test(test_config_bools_and_enums),
        cmocka_unit_test(test_config_numbers),
        cmocka_unit_test(test_config_lists),
        cmocka_unit_test(test_config_file_error_format),
        cmocka_unit_test(test_config_unknown_keys),
        cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_config_continuation_lines),
        cmocka_unit_test(test_config_cross_key_rules),
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_long_paths),
        cmocka_unit_test(test_config_reference),
        cmocka_unit_test(test_config_text_diff_and_settings),
        cmocka_unit_test(test_config_class_weights_balanced),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
