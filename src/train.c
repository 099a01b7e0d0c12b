#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "dataset.h"
#include "early_stop.h"
#include "evaluate.h"
#include "fsutil.h"
#include "linalg.h"
#include "log.h"
#include "loss.h"
#include "metrics.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "rng.h"
#include "shard.h"

#define MAX_OVERRIDES 256

/* Trailing slots of the gradient buffer that ride in the same allreduce. The flags are
 * counts of ranks (exact small integers in float), so every rank reads the same value. */
enum { SLOT_LOSS = 0, SLOT_WEIGHT = 1, SLOT_NONFINITE = 2, SLOT_SIGNAL = 3, N_SLOTS = 4 };

/* Set by the signal handler only; read at step boundaries (it rides in the allreduce). */
static volatile sig_atomic_t g_signal;

static void on_signal(int signo) { g_signal = signo; }

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Per-epoch wall-clock split, seconds. compute = forward + loss + backward + optim. */
typedef struct {
    double forward, loss, backward, optim, allreduce, io, val;
} Timers;

typedef struct {
    const Comm *comm;
    int P, r;
    Config cfg;
    char model_path[XT_PATH_MAX + 16], metrics_path[XT_PATH_MAX + 16];
    char ckpt_path[XT_PATH_MAX + 16];
    char *cfg_text;    /* the resolved INI text, stored in checkpoints */
    DatasetInfo tinfo, vinfo;
    Dataset train, val;
    bool has_val;
    bool dense;        /* targets are (N, K) floats */
    size_t K;          /* classes (or labels) */
    Sampler sampler;
    size_t global_batch;
    float *shift, *mul; /* (D) normalisation, or NULL */
    Model model;
    Optim optim;
    OptimSettings oset;
    LossOptions lopt;
    float *class_w;
    float *Xb, *tb, *dz;
    int32_t *yb;
    uint32_t *rows, *next_rows; /* this step's and the next step's local rows */
    size_t next_t, next_m;        /* next_rows holds step next_t (SIZE_MAX: none) */
    float *best;       /* rank 0: parameters of the best epoch */
    EarlyStop es;
    Metrics metrics;
    EvalStats vstats;
    uint64_t step;     /* optimiser steps taken */
    bool has_best;     /* rank 0: best holds an epoch's parameters */
    /* where the loop starts (a fresh run: epoch 1, step 0; a resumed one: the checkpoint's) */
    int64_t start_epoch;
    size_t start_step;
    double start_loss_sum, start_weight_sum, start_rows;
    bool nothing_to_do; /* resumed a run that had already finished */
} Trainer;

static void train_usage(void)
{
    log_info("usage: mpirun -np P xentrain train CONFIG.ini [--set section.key=value]...\n"
             "\n"
             "Trains the model described by CONFIG.ini (see `xentrain --help-config` for every\n"
             "key and its default) with synchronous data-parallel SGD. Writes config.ini,\n"
             "metrics.csv and model.h5 (the best epoch) to run.dir.");
}

/* ---- set-up steps: each ends in one agreement so no rank is left behind ---- */

static Status setup_config(Trainer *tr, int argc, char **argv, bool *help)
{
    const char *path = NULL;
    const char *over[MAX_OVERRIDES];
    size_t n_over = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return XT_OK;
        }
        if (!strcmp(a, "--set") || !strncmp(a, "--set=", 6)) {
            const char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                log_error0("--set needs section.key=value");
                return XT_ERR_USAGE;
            }
            if (n_over == MAX_OVERRIDES) {
                log_error0("more than %d --set options", MAX_OVERRIDES);
                return XT_ERR_USAGE;
            }
            over[n_over++] = v;
        } else if (a[0] == '-') {
            log_error0("train: unknown option '%s' (options: --set section.key=value, --help)", a);
            return XT_ERR_USAGE;
        } else if (!path) {
            path = a;
        } else {
            log_error0("train: unexpected argument '%s' (one CONFIG.ini; overrides go in --set)", a);
            return XT_ERR_USAGE;
        }
    }
    if (!path) {
        log_error0("train: missing CONFIG.ini (usage: xentrain train CONFIG.ini [--set k=v]...)");
        return XT_ERR_USAGE;
    }
    char err[1024];
    Status st = config_load(&tr->cfg, path, over, n_over, err, sizeof err);
    if (st != XT_OK) log_error0("%s", err);
    return comm_agree(tr->comm, st);
}

/* Rank 0 creates the run directory (nothing in it is written before every check passed). */
static Status setup_run_dir(Trainer *tr)
{
    const char *dir = tr->cfg.run.dir;
    Status st = XT_OK;
    if (fsutil_join(tr->model_path, sizeof tr->model_path, dir, "model.h5") != XT_OK ||
        fsutil_join(tr->metrics_path, sizeof tr->metrics_path, dir, "metrics.csv") != XT_OK ||
        fsutil_join(tr->ckpt_path, sizeof tr->ckpt_path, dir, "checkpoint.h5") != XT_OK)
        st = XT_ERR_USAGE;
    if (tr->r == 0 && st == XT_OK) {
        st = fsutil_mkdirs(dir);
        if (st == XT_OK) st = fsutil_check_writable_dir(dir);
    }
    return comm_agree(tr->comm, st);
}

/* Rank 0 writes the resolved config.ini, once every check has passed (a refused resume
 * must not replace the earlier run's file). Collective. */
static Status write_resolved_config(Trainer *tr)
{
    Status st = XT_OK;
    if (tr->r == 0) {
        char path[XT_PATH_MAX + 16], tmp[XT_PATH_MAX + 48];
        fsutil_join(path, sizeof path, tr->cfg.run.dir, "config.ini");
        fsutil_temp_name(tmp, sizeof tmp, path);
        FILE *f = fopen(tmp, "w");
        bool ok = f && fputs(tr->cfg_text, f) >= 0;
        if (f) ok = (fclose(f) == 0) && ok;
        st = ok ? fsutil_commit(tmp, path) : XT_ERR_RUNTIME;
        if (!ok) {
            log_error("cannot write %s", tmp);
            remove(tmp);
        }
    }
    return comm_agree(tr->comm, st);
}

/* Probes the splits, decides K, shards and loads the training rows, normalises. */
static Status setup_data(Trainer *tr)
{
    const Config *c = &tr->cfg;
    if (!c->data.train[0]) {
        log_error0("data.train is not set: name the training split (file.h5:/train)");
        return XT_ERR_USAGE;
    }
    Status st = dataset_probe(c->data.train, tr->comm, &tr->tinfo);
    if (st != XT_OK) return st;
    tr->has_val = c->data.val[0] != '\0';
    if (tr->has_val && (st = dataset_probe(c->data.val, tr->comm, &tr->vinfo)) != XT_OK) return st;
    const DatasetInfo *ti = &tr->tinfo;
    tr->dense = ti->target == TARGET_DENSE;
    Status local = XT_OK;
    bool sigmoid_model = c->model.type == MODEL_MULTILABEL ||
                         (c->model.type == MODEL_MLP && c->model.head == HEAD_SIGMOID);
    if (sigmoid_model && !tr->dense) {
        log_error0("%s: model.type = %s%s needs (N,K) float targets, but y holds class ids",
                   c->data.train, config_model_type_name(c->model.type),
                   c->model.type == MODEL_MLP ? " with model.head = sigmoid" : "");
        local = XT_ERR_USAGE;
    } else if (tr->dense && c->model.type == MODEL_LOGISTIC) {
        log_error0("%s: model.type = logistic needs (N,) class ids 0/1, but y is (N, %zu) floats",
                   c->data.train, ti->k_dense);
        local = XT_ERR_USAGE;
    } else if (tr->dense && c->model.classes > 0 && (size_t)c->model.classes != ti->k_dense) {
        log_error0("model.classes = %lld but %s has y with K = %zu columns",
                   (long long)c->model.classes, c->data.train, ti->k_dense);
        local = XT_ERR_USAGE;
    }
    if (tr->has_val && local == XT_OK) {
        const DatasetInfo *vi = &tr->vinfo;
        if (vi->d != ti->d || vi->target != ti->target || vi->k_dense != ti->k_dense) {
            log_error0("%s and %s differ: X has %zu vs %zu features, y is %s vs %s", c->data.train,
                       c->data.val, ti->d, vi->d, ti->target == TARGET_DENSE ? "(N,K)" : "(N,)",
                       vi->target == TARGET_DENSE ? "(N,K)" : "(N,)");
            local = XT_ERR_USAGE;
        }
    }
    if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;

    tr->global_batch = c->train.batch_per_rank > 0 ? (size_t)c->train.batch_per_rank * (size_t)tr->P
                                                   : (size_t)c->train.batch_size;
    /* The memory guard comes before the sampler's per-row permutation is allocated. */
    size_t S = shard_count(ti->n, (size_t)c->data.virtual_shards);
    if ((size_t)tr->P <= S) {
        size_t s_lo, s_hi;
        shard_rank_shards(S, tr->P, tr->r, &s_lo, &s_hi);
        local = dataset_check_memory(ti, shard_row_begin(ti->n, S, s_lo),
                                     shard_row_begin(ti->n, S, s_hi), c->data.compact,
                                     sizeof(uint32_t), tr->comm);
        if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;
    }
    char err[512];
    st = sampler_init(&tr->sampler, ti->n, (size_t)c->data.virtual_shards, tr->global_batch, tr->P,
                      tr->r, c->train.seed, c->train.shuffle, err, sizeof err);
    if (st != XT_OK) log_error0("%s: %s", c->data.train, err);
    if ((st = comm_agree(tr->comm, st)) != XT_OK) return st;

    size_t kcheck = tr->dense ? 0 : (size_t)c->model.classes;
    /* uint8 pixels stay uint8 in memory (4x smaller; converted as batches are gathered) */
    st = (c->data.compact ? dataset_load_compact : dataset_load)(
        &tr->train, ti, tr->sampler.row_lo, tr->sampler.row_hi, kcheck, tr->comm);
    if ((st = comm_agree(tr->comm, st)) != XT_OK) return st;

    /* K: configured, the target width, or 1 + the largest label over all ranks. */
    if (tr->dense) {
        tr->K = ti->k_dense;
    } else {
        int64_t mm[2] = {tr->train.hi > tr->train.lo ? tr->train.label_max : -1,
                         tr->train.hi > tr->train.lo ? -(int64_t)tr->train.label_min : INT32_MIN};
        comm_allreduce_max_i64(tr->comm, mm, 2);
        if (-mm[1] < 0) {
            log_error0("%s/y: class ids must be >= 0, the smallest is %lld", c->data.train,
                       (long long)-mm[1]);
            return XT_ERR_USAGE;
        }
        tr->K = c->model.classes > 0 ? (size_t)c->model.classes : (size_t)mm[0] + 1;
        if (tr->K < 2) tr->K = 2;
        if (tr->K > XT_MAX_CLASSES) {
            log_error0("%s/y: largest class id %lld gives %zu classes (limit %d)", c->data.train,
                       (long long)mm[0], tr->K, XT_MAX_CLASSES);
            return XT_ERR_USAGE;
        }
    }

    /* Normalisation statistics over the WHOLE training set (allreduced), then applied. */
    const size_t D = ti->d;
    if (c->data.normalize != NORM_NONE) {
        tr->shift = calloc(D, sizeof *tr->shift);
        tr->mul = malloc(D * sizeof *tr->mul);
        local = tr->shift && tr->mul ? XT_OK : XT_ERR_RUNTIME;
        if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;
        if (c->data.normalize == NORM_SCALE) {
            double s = ti->x_scale;
            if (!(s > 0.0)) {
                double mx = dataset_max_abs(&tr->train);
                comm_allreduce_max_double(tr->comm, &mx, 1);
                s = mx > 0.0 ? 1.0 / mx : 1.0;
            }
            for (size_t j = 0; j < D; j++) tr->mul[j] = (float)s;
        } else {
            double *sums = calloc(2 * D, sizeof *sums);
            local = sums ? XT_OK : XT_ERR_RUNTIME;
            if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;
            dataset_feature_sums(&tr->train, sums, sums + D);
            comm_allreduce_sum_double(tr->comm, sums, 2 * D);
            double n = (double)ti->n;
            for (size_t j = 0; j < D; j++) {
                double mean = sums[j] / n;
                double var = fmax(sums[D + j] / n - mean * mean, 0.0);
                double sd = sqrt(var);
                tr->shift[j] = (float)mean;
                tr->mul[j] = sd > 1e-12 * fmax(1.0, fabs(mean)) ? (float)(1.0 / sd) : 1.0f;
            }
            free(sums);
        }
        if (!tr->train.X8) dataset_apply_affine(&tr->train, tr->shift, tr->mul);
    }

    /* Validation rows: rank 0 holds them all, or each rank its share (distributed). */
    if (tr->has_val) {
        size_t n = tr->vinfo.n, lo = 0, hi = tr->r == 0 ? n : 0;
        if (c->eval.distributed) {
            lo = (size_t)tr->r * n / (size_t)tr->P;
            hi = (size_t)(tr->r + 1) * n / (size_t)tr->P;
        }
        local = dataset_load(&tr->val, &tr->vinfo, lo, hi, tr->dense ? 0 : tr->K, tr->comm);
        if (local == XT_OK && tr->shift) dataset_apply_affine(&tr->val, tr->shift, tr->mul);
        if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;
    }
    return XT_OK;
}

static Status setup_model(Trainer *tr)
{
    const Config *c = &tr->cfg;
    ModelShape shape;
    char err[512];
    Status st = model_shape_init(&shape, c->model.type, c->model.activation, c->model.head,
                                 tr->tinfo.d, c->model.hidden, c->model.n_hidden, tr->K, err,
                                 sizeof err);
    if (st != XT_OK) {
        log_error0("model: %s", err);
        return st;
    }
    size_t cap = tr->sampler.max_local > 0 ? tr->sampler.max_local : 1;
    size_t eval_cap = (size_t)c->eval.batch_size;
    size_t mb = cap > eval_cap ? cap : eval_cap;
    Status local = model_init(&tr->model, &shape, mb, N_SLOTS);
    const size_t D = shape.sizes[0], KO = model_outputs(&shape);
    if (local == XT_OK) {
        tr->Xb = malloc(cap * D * sizeof *tr->Xb);
        tr->dz = malloc(cap * KO * sizeof *tr->dz);
        tr->rows = malloc(cap * sizeof *tr->rows);
        tr->next_rows = malloc(cap * sizeof *tr->next_rows);
        tr->next_t = SIZE_MAX;
        if (tr->dense) tr->tb = malloc(cap * tr->K * sizeof *tr->tb);
        else tr->yb = malloc(cap * sizeof *tr->yb);
        if (tr->r == 0) tr->best = malloc(shape.n_params * sizeof *tr->best);
        if (!tr->Xb || !tr->dz || !tr->rows || !tr->next_rows || !(tr->tb || tr->yb) ||
            (tr->r == 0 && !tr->best)) {
            log_error("out of memory for the batch buffers (%zu rows x %zu features)", cap, D);
            local = XT_ERR_RUNTIME;
        }
    }
    /* Loss options. */
    tr->lopt = loss_options_default();
    tr->lopt.label_smoothing = (float)c->loss.label_smoothing;
    tr->lopt.pos_weight = (float)c->loss.pos_weight;
    if (c->loss.ignore_index >= 0) tr->lopt.ignore_index = (int32_t)c->loss.ignore_index;
    if (local == XT_OK && c->loss.n_class_weights > 0) {
        size_t want = tr->K;
        if ((size_t)c->loss.n_class_weights != want) {
            log_error0("loss.class_weights has %d values but the data have %zu %s",
                       c->loss.n_class_weights, want, tr->dense ? "outputs" : "classes");
            local = XT_ERR_USAGE;
        } else {
            tr->class_w = malloc(want * sizeof *tr->class_w);
            if (!tr->class_w) local = XT_ERR_RUNTIME;
            for (size_t k = 0; tr->class_w && k < want; k++)
                tr->class_w[k] = (float)c->loss.class_weights[k];
            tr->lopt.class_weight = tr->class_w;
        }
    }
    if (local == XT_OK && tr->has_val) local = eval_stats_init(&tr->vstats, &shape);
    /* Optimiser. */
    tr->oset = (OptimSettings){.lr = c->optim.lr,
                               .momentum = c->optim.momentum,
                               .weight_decay = c->optim.weight_decay,
                               .clip_norm = c->optim.clip_norm,
                               .nesterov = c->optim.nesterov,
                               .schedule = c->optim.schedule,
                               .step_size = c->optim.step_size,
                               .gamma = c->optim.gamma,
                               .warmup_epochs = c->optim.warmup_epochs,
                               .epochs = c->train.epochs,
                               .steps_per_epoch = tr->sampler.T};
    if (c->optim.lr_scaling == LR_SCALE_LINEAR) tr->oset.lr *= (double)tr->P;
    if (local == XT_OK) local = optim_init(&tr->optim, &tr->oset, shape.n_params);
    if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;

    /* Rank 0 initialises, everyone receives the same bits. */
    if (tr->r == 0) {
        Rng rng;
        rng_seed_tuple(&rng, c->train.seed, 0x1217, 0);
        model_init_params(&tr->model, c->model.init, &rng);
    }
    comm_bcast(tr->comm, tr->model.params, shape.n_params * sizeof(float), 0);
    early_stop_init(&tr->es, c);
    return XT_OK;
}

static ModelFile model_file_view(const Trainer *tr, const float *params, int64_t epoch,
                                 double vl, double va)
{
    ModelFile mf = {.shape = tr->model.shape,
                    .params = (float *)params,
                    .normalize = tr->cfg.data.normalize,
                    .shift = tr->shift,
                    .mul = tr->mul,
                    .class_names = tr->train.class_names,
                    .n_class_names = tr->train.n_class_names,
                    .epoch = epoch,
                    .val_loss = vl,
                    .val_accuracy = va};
    return mf;
}

/* ---- checkpoints ---- */

/* Rank 0: keeps the metrics rows of epochs before `epoch` (a killed run may have written
 * rows the checkpoint does not cover), then opens the file for appending. */
static Status metrics_reopen(Trainer *tr, int64_t epoch)
{
    FILE *in = fopen(tr->metrics_path, "r");
    if (in) {
        char tmp[XT_PATH_MAX + 48], line[4096];
        fsutil_temp_name(tmp, sizeof tmp, tr->metrics_path);
        FILE *out = fopen(tmp, "w");
        bool ok = out != NULL, first = true;
        while (ok && fgets(line, sizeof line, in)) {
            long long e = 0;
            if (first || (sscanf(line, "%lld,", &e) == 1 && e < epoch)) ok = fputs(line, out) >= 0;
            first = false;
        }
        fclose(in);
        if (out) ok = (fclose(out) == 0) && ok;
        if (!ok || fsutil_commit(tmp, tr->metrics_path) != XT_OK) {
            log_error("cannot rewrite %s for the resumed run", tr->metrics_path);
            remove(tmp);
            return XT_ERR_RUNTIME;
        }
    }
    return metrics_open(&tr->metrics, tr->metrics_path, true);
}

/* Decides whether to resume (train.resume), loads and checks the checkpoint on every
 * rank, and restores parameters, optimiser, schedule and sampler position, early
 * stopping and the epoch in progress. Opens metrics.csv. Collective. */
static Status setup_resume(Trainer *tr)
{
    const Config *c = &tr->cfg;
    size_t need = config_to_ini(c, NULL, 0) + 1;
    tr->cfg_text = malloc(need);
    if (comm_agree(tr->comm, tr->cfg_text ? XT_OK : XT_ERR_RUNTIME) != XT_OK) return XT_ERR_RUNTIME;
    config_to_ini(c, tr->cfg_text, need);
    tr->start_epoch = 1;

    /* Which checkpoint: rank 0 looks, everyone follows. */
    char path[XT_PATH_MAX + 16] = "";
    int32_t use = 0;
    if (tr->r == 0) {
        if (!strcmp(c->train.resume, "auto")) {
            use = fsutil_exists(tr->ckpt_path);
            snprintf(path, sizeof path, "%s", tr->ckpt_path);
        } else if (strcmp(c->train.resume, "never") != 0) {
            snprintf(path, sizeof path, "%s", c->train.resume);
            use = fsutil_exists(path) ? 1 : -1;
        }
    }
    comm_bcast(tr->comm, &use, sizeof use, 0);
    comm_bcast(tr->comm, path, sizeof path, 0);
    if (use < 0) {
        log_error0("train.resume = %s: no such checkpoint (use auto or never to start without one)",
                   c->train.resume);
        return XT_ERR_USAGE;
    }
    if (!use) {
        Status st = tr->r == 0 ? metrics_open(&tr->metrics, tr->metrics_path, false) : XT_OK;
        return comm_agree(tr->comm, st);
    }

    Checkpoint ck;
    Status st = checkpoint_load(path, &ck);
    if ((st = comm_agree(tr->comm, st)) != XT_OK) return st;
    char diff[2048];
    Status local = XT_OK;
    if (checkpoint_config_diff(ck.config_text, tr->cfg_text, diff, sizeof diff) > 0) {
        log_error0("%s was written by a run with other settings (%s); use another run.dir, or "
                   "train.resume = never to start over", path, diff);
        local = XT_ERR_USAGE;
    } else if (ck.model.shape.n_params != tr->model.shape.n_params ||
               ck.model.shape.sizes[0] != tr->model.shape.sizes[0]) {
        log_error0("%s holds a model with %zu parameters (D = %zu); this run builds %zu (D = %zu)",
                   path, ck.model.shape.n_params, ck.model.shape.sizes[0],
                   tr->model.shape.n_params, tr->model.shape.sizes[0]);
        local = XT_ERR_USAGE;
    } else if ((ck.velocity != NULL) != (tr->optim.velocity != NULL)) {
        log_error0("%s: optimiser state does not match optim.momentum", path);
        local = XT_ERR_USAGE;
    }
    if ((st = comm_agree(tr->comm, local)) != XT_OK) {
        checkpoint_free(&ck);
        return st;
    }
    const CheckpointState *cs = &ck.state;
    size_t n = tr->model.shape.n_params;
    memcpy(tr->model.params, ck.model.params, n * sizeof(float));
    if (ck.velocity) memcpy(tr->optim.velocity, ck.velocity, n * sizeof(float));
    if (tr->r == 0 && ck.best.params) {
        memcpy(tr->best, ck.best.params, n * sizeof(float));
        tr->has_best = true;
    }
    tr->step = cs->step;
    tr->es.best = cs->es_best;
    tr->es.best_epoch = cs->es_best_epoch;
    tr->es.bad_epochs = cs->es_bad_epochs;
    tr->start_epoch = cs->epoch;
    tr->start_step = (size_t)cs->step_in_epoch;
    tr->start_loss_sum = cs->loss_sum;
    tr->start_weight_sum = cs->weight_sum;
    tr->start_rows = cs->rows_seen;
    if (tr->start_step > tr->sampler.T) {
        log_error0("%s: step %zu of epoch %lld is past the %zu steps of an epoch", path,
                   tr->start_step, (long long)cs->epoch, tr->sampler.T);
        checkpoint_free(&ck);
        return XT_ERR_USAGE;
    }
    if ((cs->finished && cs->final_action == ES_STOP_EARLY) || tr->start_epoch > c->train.epochs) {
        tr->nothing_to_do = true;
        log_info("resume: %s records a finished run (%s at epoch %lld); nothing to do "
                 "(raise train.epochs to continue, or train.resume = never to start over)",
                 path, early_stop_action_name((EsAction)cs->final_action),
                 (long long)cs->epoch - 1);
    } else {
        log_info("resume: %s, epoch %lld step %zu (optimiser step %llu), written by %lld rank(s), "
                 "continuing on %d", path, (long long)cs->epoch, tr->start_step,
                 (unsigned long long)cs->step, (long long)cs->ranks, tr->P);
    }
    checkpoint_free(&ck);
    local = tr->r == 0 ? metrics_reopen(tr, tr->start_epoch) : XT_OK;
    return comm_agree(tr->comm, local);
}

/* Rank 0: writes checkpoint.h5 for the position (epoch, step_in_epoch). */
static Status write_checkpoint(Trainer *tr, int64_t epoch, size_t step_in_epoch, double loss_sum,
                               double weight_sum, double rows, bool finished, int32_t action)
{
    Checkpoint ck = {0};
    ck.state = (CheckpointState){.epoch = epoch,
                                 .step_in_epoch = (int64_t)step_in_epoch,
                                 .step = tr->step,
                                 .loss_sum = loss_sum,
                                 .weight_sum = weight_sum,
                                 .rows_seen = rows,
                                 .es_best = tr->es.best,
                                 .es_best_epoch = tr->es.best_epoch,
                                 .es_bad_epochs = tr->es.bad_epochs,
                                 .finished = finished,
                                 .final_action = action,
                                 .ranks = tr->P,
                                 .seed = tr->cfg.train.seed};
    ck.model = model_file_view(tr, tr->model.params, epoch - (step_in_epoch == 0), NAN, NAN);
    if (tr->has_best) ck.best = model_file_view(tr, tr->best, tr->es.best_epoch, NAN, NAN);
    ck.velocity = tr->optim.velocity;
    ck.config_text = tr->cfg_text;
    return checkpoint_save(tr->ckpt_path, &ck);
}

/* The effective settings, one line per section: "[optim] lr=0.05 momentum=0.9 ...". */
static void print_settings(const Config *c)
{
    size_t need = config_to_ini(c, NULL, 0) + 1;
    char *text = malloc(need), *line = malloc(need + 64);
    if (!text || !line) {
        free(text);
        free(line);
        return;
    }
    config_to_ini(c, text, need);
    size_t used = 0;
    line[0] = '\0';
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == ';' || l[0] == '#' || l[0] == '\0') continue;
        if (l[0] == '[') {
            if (used) log_info("         %s", line);
            used = (size_t)snprintf(line, need, "%s", l);
            continue;
        }
        char key[128], val[XT_PATH_MAX];
        if (sscanf(l, " %127[^= ] = %1023[^\n]", key, val) == 2)
            used += (size_t)snprintf(line + used, need + 64 - used, " %s=%s", key, val);
        else if (sscanf(l, " %127[^= ] =", key) == 1)
            used += (size_t)snprintf(line + used, need + 64 - used, " %s=", key);
    }
    if (used) log_info("         %s", line);
    free(text);
    free(line);
}

static void banner(const Trainer *tr)
{
    if (tr->r != 0) return;
    const Config *c = &tr->cfg;
    char mpi[256], desc[256];
    comm_library_version(mpi, sizeof mpi);
    model_shape_describe(&tr->model.shape, desc, sizeof desc);
    log_info("xentrain %s train %s", XT_VERSION, c->source);
    log_info("launch   P = %d ranks on %d node(s), %d per node; BLAS threads per rank: %d; %s",
             tr->P, comm_node_count(tr->comm), comm_local_size(tr->comm), linalg_blas_threads(),
             mpi);
    const char *job = getenv("SLURM_JOB_ID");
    if (job)
        log_info("slurm    job %s, nodes %s, tasks per node %s", job,
                 getenv("SLURM_JOB_NODELIST") ? getenv("SLURM_JOB_NODELIST") : "?",
                 getenv("SLURM_TASKS_PER_NODE") ? getenv("SLURM_TASKS_PER_NODE") : "?");
    log_info("data     train %s: N = %zu, D = %zu (%s), %s; rank 0 holds rows [%zu, %zu)",
             c->data.train, tr->tinfo.n, tr->tinfo.d, tr->tinfo.x_type,
             tr->dense ? "dense (N,K) targets" : "class ids", tr->sampler.row_lo,
             tr->sampler.row_hi);
    if (tr->has_val)
        log_info("         val   %s: N = %zu (%s)", c->data.val, tr->vinfo.n,
                 c->eval.distributed ? "sharded over ranks" : "rank 0");
    log_info("model    %s, K = %zu", desc, tr->K);
    log_info("batch    global %zu rows (%zu steps/epoch, %zu virtual shards), lr %g%s",
             tr->global_batch ? tr->global_batch : tr->tinfo.n, tr->sampler.T, tr->sampler.S,
             tr->oset.lr, c->optim.lr_scaling == LR_SCALE_LINEAR ? " (scaled by P)" : "");
    log_info("run      %s", c->run.dir);
    log_info("settings (every key: xentrain --help-config)");
    print_settings(c);
}

/* Gathers this rank's rows of step t into the batch buffers, then starts loading the
 * rows of step t + 1 into cache while step t computes (measured: the softmax model's
 * gather time fell by a third). Returns the row count. */
static size_t gather_batch(Trainer *tr, size_t t)
{
    size_t m;
    if (tr->next_t == t) { /* prepared by the previous step */
        uint32_t *tmp = tr->rows;
        tr->rows = tr->next_rows;
        tr->next_rows = tmp;
        m = tr->next_m;
    } else {
        m = sampler_step_rows(&tr->sampler, t, tr->rows);
    }
    tr->next_t = SIZE_MAX;
    /* compact (uint8) rows are normalised here; float rows were normalised at load */
    bool scale_now = tr->train.X8 && tr->shift;
    dataset_gather_rows(tr->Xb, &tr->train, tr->rows, m, scale_now ? tr->shift : NULL,
                        scale_now ? tr->mul : NULL);
    for (size_t i = 0; i < m; i++) {
        size_t row = tr->rows[i];
        if (tr->dense) memcpy(tr->tb + i * tr->K, tr->train.t + row * tr->K, tr->K * sizeof(float));
        else tr->yb[i] = tr->train.y[row];
    }
    if (t + 1 < tr->sampler.T) {
        tr->next_m = sampler_step_rows(&tr->sampler, t + 1, tr->next_rows);
        tr->next_t = t + 1;
        dataset_prefetch_rows(&tr->train, tr->next_rows, tr->next_m);
    }
    return m;
}

/* Forward, loss and backward on m local rows; fills the gradient SUMS and the slots. */
static void local_step(Trainer *tr, size_t m, Timers *tm)
{
    Model *md = &tr->model;
    const ModelShape *s = &md->shape;
    const size_t n = s->n_params, KO = model_outputs(s);
    LossTotals tot = {0};
    if (m > 0) {
        double t0 = comm_wtime();
        const float *z = model_forward(md, tr->Xb, m);
        double t1 = comm_wtime();
        if (s->type == MODEL_LOGISTIC) loss_binary_xent(tr->dz, NULL, &tot, z, tr->yb, m, &tr->lopt);
        else if (s->head == HEAD_SOFTMAX && !tr->dense)
            loss_softmax_xent(tr->dz, NULL, &tot, z, tr->yb, m, KO, &tr->lopt);
        else if (s->head == HEAD_SOFTMAX)
            loss_softmax_xent_soft(tr->dz, NULL, &tot, z, tr->tb, m, KO, &tr->lopt);
        else loss_sigmoid_xent(tr->dz, NULL, &tot, z, tr->tb, m, KO, &tr->lopt);
        double t2 = comm_wtime();
        model_backward(md, tr->Xb, tr->dz, m);
        double t3 = comm_wtime();
        tm->forward += t1 - t0;
        tm->loss += t2 - t1;
        tm->backward += t3 - t2;
    } else {
        memset(md->grads, 0, n * sizeof *md->grads);
    }
    md->grads[n + SLOT_LOSS] = (float)tot.sum;
    md->grads[n + SLOT_WEIGHT] = (float)tot.weight;
    md->grads[n + SLOT_NONFINITE] = isfinite(tot.sum) ? 0.0f : 1.0f;
    md->grads[n + SLOT_SIGNAL] = g_signal ? 1.0f : 0.0f;
}

/* Test-only fault injection: XT_FAULT_CORRUPT_PARAMS="RANK:STEP" perturbs one parameter
 * on that rank after that optimiser step, so tests can prove the replica check fires. */
static void maybe_corrupt(Trainer *tr)
{
    const char *f = getenv("XT_FAULT_CORRUPT_PARAMS");
    int rank = -1;
    unsigned long long step = 0;
    if (f && sscanf(f, "%d:%llu", &rank, &step) == 2 && rank == tr->r && step == tr->step)
        tr->model.params[0] += 1e-3f;
}

/* Collective: aborts the job when the replicas' parameters are not bit-identical. */
static void check_replicas(Trainer *tr)
{
    uint64_t h = model_param_hash(tr->model.params, tr->model.shape.n_params);
    int64_t mx = (int64_t)h, mn = (int64_t)h;
    comm_allreduce_max_i64(tr->comm, &mx, 1);
    comm_allreduce_min_i64(tr->comm, &mn, 1);
    if (mx != mn) {
        log_error0("replica check failed at step %llu: ranks hold different parameters "
                   "(hash %016llx vs %016llx); this is a bug or a faulty node",
                   (unsigned long long)tr->step, (unsigned long long)mn, (unsigned long long)mx);
        comm_abort(tr->comm, XT_ERR_RUNTIME);
    }
}

/* Validation: rank 0 (or every rank on its share, then summed). Collective only when
 * eval.distributed. Fills loss, accuracy, f1. */
static void validate(Trainer *tr, double *loss, double *acc, double *f1)
{
    *loss = *acc = *f1 = NAN;
    if (!tr->has_val) return;
    bool dist = tr->cfg.eval.distributed;
    if (!dist && tr->r != 0) return;
    eval_stats_reset(&tr->vstats);
    eval_accumulate(&tr->vstats, &tr->model, tr->val.X, tr->val.y, tr->val.t,
                    tr->val.hi - tr->val.lo, tr->lopt.ignore_index);
    if (dist) eval_stats_allreduce(&tr->vstats, tr->comm);
    *loss = eval_loss(&tr->vstats);
    *acc = eval_accuracy(&tr->vstats);
    *f1 = eval_macro_f1(&tr->vstats);
}


static void progress(const Trainer *tr, int64_t epoch, size_t t, double loss, double *last,
                     bool *shown)
{
    if (tr->r != 0 || !tr->cfg.train.progress || !isatty(STDOUT_FILENO)) return;
    /* Every few seconds only: under mpirun stdout is a pseudo-terminal even when the
     * job's output goes to a file, so keep the number of progress lines small. */
    double now = comm_wtime();
    if (*last == 0.0) *last = now;
    if (now - *last < 5.0) return;
    *last = now;
    *shown = true;
    printf("\r  epoch %lld  step %zu/%zu  loss %.5f   ", (long long)epoch, t + 1, tr->sampler.T,
           loss);
    fflush(stdout);
}

/* Test-only fault injection: XT_FAULT_HANG="RANK:STEP" makes that rank stop taking part
 * before that step's allreduce (as a dead link would), so tests can prove the watchdog. */
static void maybe_hang(const Trainer *tr)
{
    const char *f = getenv("XT_FAULT_HANG");
    int rank = -1;
    unsigned long long step = 0;
    if (f && sscanf(f, "%d:%llu", &rank, &step) == 2 && rank == tr->r && step == tr->step)
        for (;;) sleep(1000);
}

/* Test-only: XT_TEST_STEP_DELAY_MS slows every step down, so that tests can deliver a
 * signal or kill a rank mid-epoch on any machine. Read once. */
static long step_delay_ms(void)
{
    const char *d = getenv("XT_TEST_STEP_DELAY_MS");
    long v = d ? strtol(d, NULL, 10) : 0;
    return v > 0 && v < 10000 ? v : 0;
}

/* The training loop. Returns the final decision (identical on every rank). */
static EsDecision train_loop(Trainer *tr)
{
    const Config *c = &tr->cfg;
    Model *md = &tr->model;
    const size_t n = md->shape.n_params;
    EsDecision dec = {.action = ES_CONTINUE};
    const long delay_ms = step_delay_ms();
    const struct timespec delay = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    if (tr->r == 0) log_info("%s", metrics_line_header());
    for (int64_t epoch = tr->start_epoch; epoch <= c->train.epochs; epoch++) {
        double t_epoch = comm_wtime(), last_progress = 0.0;
        bool shown = false;
        Timers tm = {0};
        bool first = epoch == tr->start_epoch;
        double loss_sum = first ? tr->start_loss_sum : 0.0;
        double weight_sum = first ? tr->start_weight_sum : 0.0;
        double rows_seen = first ? tr->start_rows : 0.0, rows_now = 0.0;
        double lr = optim_lr(&tr->oset, tr->step > 0 ? tr->step - 1 : 0); /* the last step's */
        int diverged = 0;
        sampler_begin_epoch(&tr->sampler, (uint64_t)(epoch - 1));
        tr->next_t = SIZE_MAX; /* a new epoch: new permutations */
        for (size_t t = first ? tr->start_step : 0; t < tr->sampler.T; t++) {
            comm_watch_position(tr->comm, epoch, tr->step);
            double t0 = comm_wtime();
            size_t m = gather_batch(tr, t);
            double t1 = comm_wtime();
            local_step(tr, m, &tm);
            maybe_hang(tr);
            if (delay_ms) nanosleep(&delay, NULL);
            double t2 = comm_wtime();
            comm_allreduce_sum_float(tr->comm, md->grads, n + N_SLOTS);
            double t3 = comm_wtime();
            const float *slot = md->grads + n;
            if (slot[SLOT_NONFINITE] != 0.0f || !isfinite(slot[SLOT_LOSS])) {
                diverged = 1; /* every rank sees the same reduced flag */
                break;
            }
            lr = optim_lr(&tr->oset, tr->step);
            bool signalled = slot[SLOT_SIGNAL] != 0.0f;
            if (slot[SLOT_WEIGHT] > 0.0f) {
                optim_step(&tr->optim, md->params, md->grads, 1.0f / slot[SLOT_WEIGHT], lr);
                tr->step++;
            }
            loss_sum += (double)slot[SLOT_LOSS];
            weight_sum += (double)slot[SLOT_WEIGHT];
            double g = (double)sampler_global_count(&tr->sampler, t);
            rows_seen += g;
            rows_now += g;
            double t4 = comm_wtime();
            tm.io += t1 - t0;
            tm.optim += t4 - t3;
            tm.allreduce += t3 - t2;
            if (signalled) {
                /* Some rank was asked to stop: all agree through the allreduce above. */
                Status st = XT_OK;
                if (tr->r == 0) {
                    log_info("signal received: writing a checkpoint at epoch %lld step %zu",
                             (long long)epoch, t + 1);
                    st = write_checkpoint(tr, epoch, t + 1, loss_sum, weight_sum, rows_seen, false,
                                          ES_CONTINUE);
                }
                dec = (EsDecision){.action = st == XT_OK ? ES_STOP_SIGNAL : ES_STOP_ERROR,
                                   .epoch = (int32_t)epoch};
                comm_bcast(tr->comm, &dec, sizeof dec, 0);
                return dec;
            }
            maybe_corrupt(tr);
            if (c->train.check_every > 0 && tr->step % (uint64_t)c->train.check_every == 0)
                check_replicas(tr);
            progress(tr, epoch, t, weight_sum > 0 ? loss_sum / weight_sum : 0.0, &last_progress,
                     &shown);
        }
        if (shown) {
            printf("\r%60s\r", "");
            fflush(stdout);
        }
        double train_time = comm_wtime() - t_epoch;
        double train_loss = diverged ? NAN : (weight_sum > 0 ? loss_sum / weight_sum : 0.0);
        double tv = comm_wtime(), vl = NAN, va = NAN, vf = NAN;
        if (!diverged) validate(tr, &vl, &va, &vf);
        tm.val = comm_wtime() - tv;

        if (tr->r == 0) {
            if (diverged) {
                dec = (EsDecision){.action = ES_STOP_DIVERGED, .epoch = (int32_t)epoch,
                                   .best_epoch = (int32_t)tr->es.best_epoch, .best_value = tr->es.best};
                log_error("training diverged: the loss became NaN or Inf in epoch %lld (step %llu); "
                          "lower optim.lr or set optim.clip_norm. %s",
                          (long long)epoch, (unsigned long long)tr->step + 1,
                          tr->has_best ? "model.h5 keeps the best epoch, checkpoint.h5 the last "
                                         "good state" : "no model was saved");
            } else if (tr->has_val) {
                dec = early_stop_update(&tr->es, epoch, train_loss, vl, va);
            } else {
                dec = (EsDecision){.action = epoch >= c->train.epochs ? ES_STOP_MAX_EPOCHS : ES_CONTINUE,
                                   .epoch = (int32_t)epoch, .best_epoch = (int32_t)epoch,
                                   .improved = isfinite(train_loss), .best_value = train_loss};
                tr->es.best_epoch = epoch;
                tr->es.best = train_loss;
            }
            if (dec.improved) {
                memcpy(tr->best, md->params, n * sizeof *md->params);
                tr->has_best = true;
                ModelFile mf = model_file_view(tr, md->params, epoch, vl, va);
                if (model_io_save(tr->model_path, &mf) != XT_OK) dec.action = ES_STOP_ERROR;
            }
            MetricsRow row = {.epoch = epoch, .step = (int64_t)tr->step, .lr = lr,
                              .train_loss = train_loss, .has_val = tr->has_val, .val_loss = vl,
                              .val_accuracy = va, .val_f1 = vf,
                              .samples_per_s = train_time > 0 ? rows_now / train_time : 0.0,
                              .compute_s = tm.forward + tm.loss + tm.backward + tm.optim,
                              .allreduce_s = tm.allreduce, .io_s = tm.io,
                              .val_s = tm.val, .epoch_s = comm_wtime() - t_epoch,
                              .forward_s = tm.forward, .loss_s = tm.loss,
                              .backward_s = tm.backward, .optim_s = tm.optim};
            if (!diverged) {
                char line[256];
                metrics_format_line(&row, line, sizeof line);
                log_info("%s%s", line, dec.improved && tr->has_val ? "  *" : "");
                if (metrics_write(&tr->metrics, &row) != XT_OK) dec.action = ES_STOP_ERROR;
            }
            /* A checkpoint every checkpoint.every epochs and when the run ends; never of a
             * diverged state (the last good checkpoint stays). */
            bool end = dec.action != ES_CONTINUE;
            bool due = c->checkpoint.every > 0 && (epoch % c->checkpoint.every == 0 || end);
            if (due && dec.action != ES_STOP_DIVERGED && dec.action != ES_STOP_ERROR &&
                write_checkpoint(tr, epoch + 1, 0, 0.0, 0.0, 0.0, end, dec.action) != XT_OK) {
                log_error("stopping: a run that cannot write its checkpoint would not survive a "
                          "restart");
                dec.action = ES_STOP_ERROR;
            }
        }
        comm_bcast(tr->comm, &dec, sizeof dec, 0);
        if (dec.action != ES_CONTINUE) break;
    }
    return dec;
}

static void trainer_free(Trainer *tr)
{
    dataset_free(&tr->train);
    dataset_free(&tr->val);
    sampler_free(&tr->sampler);
    model_free(&tr->model);
    optim_free(&tr->optim);
    eval_stats_free(&tr->vstats);
    metrics_close(&tr->metrics);
    free(tr->shift);
    free(tr->mul);
    free(tr->class_w);
    free(tr->Xb);
    free(tr->tb);
    free(tr->dz);
    free(tr->yb);
    free(tr->rows);
    free(tr->next_rows);
    free(tr->best);
    free(tr->cfg_text);
}

int train_main(const Comm *comm, int argc, char **argv)
{
    Trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return XT_ERR_RUNTIME;
    tr->comm = comm;
    tr->P = comm_size(comm);
    tr->r = comm_rank(comm);
    /* The watchdog guards start-up collectives too: the default timeout until the
     * configuration (which may change it) is agreed. */
    Config defaults;
    config_defaults(&defaults);
    comm_watchdog_start(comm, defaults.comm.timeout_s);
    bool help = false;
    Status st = setup_config(tr, argc, argv, &help);
    if (help) {
        train_usage();
        free(tr);
        return 0;
    }
    if (!getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS")) linalg_set_blas_threads(1);
    g_signal = 0;
    install_signal_handlers();
    if (st == XT_OK) comm_watchdog_start(comm, tr->cfg.comm.timeout_s);
    double t_start = comm_wtime();
    if (st == XT_OK) st = setup_run_dir(tr);
    if (st == XT_OK) st = setup_data(tr);
    if (st == XT_OK) st = setup_model(tr);
    if (st == XT_OK && tr->cfg.early_stopping.enabled && !tr->has_val) {
        log_error0("early_stopping.enabled = true needs a validation split (data.val)");
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) banner(tr);
    if (st == XT_OK) st = setup_resume(tr);
    if (st == XT_OK && !tr->nothing_to_do) st = write_resolved_config(tr);
    if (st != XT_OK || tr->nothing_to_do) {
        trainer_free(tr);
        free(tr);
        return (int)st;
    }
    log_info("start-up took %.2f s: MPI init %.2f s, then %.2f s for data load, normalisation, "
             "parameter broadcast%s", comm_init_seconds(comm) + comm_wtime() - t_start,
             comm_init_seconds(comm), comm_wtime() - t_start,
             tr->start_epoch > 1 || tr->start_step > 0 ? ", resume" : "");
    EsDecision dec = train_loop(tr);
    const Config *c = &tr->cfg;
    int code = 0;
    switch ((EsAction)dec.action) {
    case ES_STOP_EARLY:
        log_info("early stop after epoch %d: %s has not improved for %lld epochs; best epoch %d "
                 "(%s = %.6f)%s", dec.epoch,
                 c->early_stopping.monitor == MONITOR_VAL_LOSS ? "val_loss" : "val_accuracy",
                 (long long)c->early_stopping.patience, dec.best_epoch,
                 c->early_stopping.monitor == MONITOR_VAL_LOSS ? "val_loss" : "val_accuracy",
                 dec.best_value, c->early_stopping.restore_best ? ", restored" : "");
        break;
    case ES_STOP_MAX_EPOCHS: log_info("finished %d epochs", dec.epoch); break;
    case ES_STOP_DIVERGED: code = XT_ERR_DIVERGED; break;
    case ES_STOP_ERROR:
        log_error0("stopping: rank 0 could not write its outputs (see above)");
        code = XT_ERR_RUNTIME;
        break;
    case ES_STOP_SIGNAL:
        log_info("checkpointed %s after a signal; exit code %d asks the scheduler to requeue "
                 "(train.resume = auto continues from it)", tr->ckpt_path, XT_ERR_REQUEUE);
        code = XT_ERR_REQUEUE;
        break;
    default: break;
    }
    /* model.h5 holds the best epoch; without restore_best it gets the final parameters. */
    if (code == 0 && !(c->early_stopping.enabled && c->early_stopping.restore_best) && tr->has_val) {
        Status s = XT_OK;
        if (tr->r == 0) {
            ModelFile mf = model_file_view(tr, tr->model.params, dec.epoch, NAN, NAN);
            s = model_io_save(tr->model_path, &mf);
        }
        if (comm_agree(comm, s) != XT_OK) code = XT_ERR_RUNTIME;
    }
    if (tr->r == 0 && code == 0) log_info("wrote %s, %s", tr->model_path, tr->metrics_path);
    char test_spec[XT_PATH_MAX];
    snprintf(test_spec, sizeof test_spec, "%s", c->data.test);
    char model_path[sizeof tr->model_path];
    snprintf(model_path, sizeof model_path, "%s", tr->model_path);
    trainer_free(tr);
    free(tr);
    if (code == 0 && test_spec[0]) {
        log_info("---- test split ----");
        char *eargv[] = {"eval", "--model", model_path, "--data", test_spec, NULL};
        code = evaluate_main(comm, 5, eargv);
    }
    return code;
}
