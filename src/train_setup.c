/* train_setup: everything before the first step of `xentrain train` (see trainer.h):
 * command line and config, run directory, the data (train_data.c), the plan of the step,
 * the reduction with the parameters and the optimiser, the model over them, the loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "linalg.h"
#include "log.h"
#include "memplan.h"
#include "opts.h"
#include "rng.h"
#include "trainer.h"

#define MAX_OVERRIDES 256
/* Seed-stream tag of parameter initialisation (its own stream of train.seed). */
#define INIT_STREAM 0x1217

/* ---- command line, config, run directory ------------------------------------------ */

static Status setup_config(Trainer *tr, int argc, char **argv, bool *help)
{
    const char *path = NULL, *over[MAX_OVERRIDES];
    size_t n_pos = 0, n_over = 0;
    const OptSpec opts[] = {
        {.name = "set", OPT_LIST, over, "section.key=value",
         "override a config key (repeatable; after the file,\nin order)",
         .cap = MAX_OVERRIDES, .count = &n_over},
    };
    OptTable t = {.cmd = "train", .synopsis = "CONFIG.ini [--set section.key=value]...",
                  .about = "Trains the model described by CONFIG.ini (see `xentrain --help-config` "
                           "for every\nkey and its default) with synchronous data-parallel SGD. "
                           "Writes config.ini,\nmetrics.csv and model.h5 to run.dir. Run it under "
                           "mpirun or srun:\n  mpirun -np P xentrain train CONFIG.ini",
                  .opts = opts, .n_opts = 1, .positional = "CONFIG.ini", .pos = &path,
                  .pos_cap = 1, .n_pos = &n_pos};
    Status st = opts_parse(&t, argc, argv, help);
    if (*help) {
        if (tr->r == 0) opts_print_help(&t, stdout);
        return XT_OK;
    }
    if (st == XT_OK && !path) {
        log_error0("train: missing CONFIG.ini (usage: xentrain train CONFIG.ini [--set k=v]...)");
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        char err[1024];
        st = config_load(&tr->cfg, path, over, n_over, err, sizeof err);
        if (st != XT_OK) log_error0("%s", err);
    }
    return comm_agree(tr->comm, st);
}

/* Rank 0 creates the run directory (nothing in it is written before every check passed). */
static Status setup_run_dir(Trainer *tr)
{
    const char *dir = tr->cfg.run.dir;
    Status st = XT_OK;
    RunFiles *f = &tr->files;
    if (fsutil_join(f->model, sizeof f->model, dir, "model.h5") != XT_OK ||
        fsutil_join(f->metrics, sizeof f->metrics, dir, "metrics.csv") != XT_OK ||
        fsutil_join(f->ckpt, sizeof f->ckpt, dir, "checkpoint.h5") != XT_OK ||
        fsutil_join(f->last, sizeof f->last, dir, "model-last.h5") != XT_OK)
        st = XT_ERR_USAGE;
    if (tr->r == 0 && st == XT_OK) st = runlock_acquire(dir, "run.dir", &tr->lock);
    return comm_agree(tr->comm, st);
}

/* ---- model, loss, optimiser, reduction ------------------------------------------------- */

/* Rows per micro-batch: a rank's rows of one update (reproducible mode: one group's), in
 * train.accumulate pieces. */
static size_t micro_cap(const Trainer *tr)
{
    size_t k = tr->plan.pieces;
    size_t m = tr->plan.G > 0 ? sampler_max_group_rows(&tr->sampler) : tr->sampler.max_local;
    if (m > tr->sampler.max_local) m = tr->sampler.max_local;
    if (m == 0) m = 1;
    return (m + k - 1) / k;
}

/* The step's buffers: two step plans, one micro-batch's rows and dL/dlogits. Local. */
static Status alloc_step_buffers(Trainer *tr)
{
    const ModelShape *s = &tr->model.shape;
    size_t cap = micro_cap(tr);
    const size_t D = s->sizes[0], KO = model_outputs(s);
    Status st = XT_OK;
    for (int i = 0; i < 2 && st == XT_OK; i++)
        st = step_plan_init(&tr->steps[i], &tr->sampler, tr->plan.pieces);
    if (st == XT_OK) st = rowsource_batch_alloc(&tr->train_rows, cap, &tr->batch);
    tr->dz = malloc(cap * KO * sizeof *tr->dz);
    if (tr->tinfo.target == TARGET_DENSE) tr->batch.t = malloc(cap * tr->K * sizeof *tr->batch.t);
    else tr->batch.y = malloc(cap * sizeof *tr->batch.y);
    if (st != XT_OK || !tr->dz || !(tr->batch.t || tr->batch.y)) {
        log_error("out of memory for the batch buffers (%zu rows x %zu features)", cap, D);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

/* Loss options from [loss]; class weights need K. Local. */
static Status setup_loss(Trainer *tr)
{
    const Config *c = &tr->cfg;
    tr->lopt = loss_options_default();
    tr->lopt.label_smoothing = c->loss.label_smoothing;
    tr->lopt.pos_weight = c->loss.pos_weight;
    if (c->loss.ignore_index >= 0) tr->lopt.ignore_index = (int32_t)c->loss.ignore_index;
    char err[512];
    if (loss_check_options(tr->loss_kind, &tr->lopt, (size_t)c->loss.n_class_weights, tr->K, err,
                           sizeof err) != XT_OK) {
        log_error0("%s: %s", c->data.train, err);
        return XT_ERR_USAGE;
    }
    if (c->loss.n_class_weights == 0) {
        tr->lopt.class_weight = tr->class_w; /* balanced (train_data.c), or NULL */
        return XT_OK;
    }
    tr->class_w = malloc(tr->K * sizeof *tr->class_w);
    if (!tr->class_w) return XT_ERR_RUNTIME;
    for (size_t k = 0; k < tr->K; k++) tr->class_w[k] = (float)c->loss.class_weights[k];
    tr->lopt.class_weight = tr->class_w;
    return XT_OK;
}

_Static_assert(2 * MODEL_MAX_LAYERS <= OPTIM_MAX_SEGMENTS, "a W and a b segment per layer");

/* The optimiser's settings from [optim], with the model's tensors (lars and lamb take a
 * trust ratio per tensor). Local. */
static void optim_settings(Trainer *tr, const ModelShape *s)
{
    const Config *c = &tr->cfg;
    tr->oset = (OptimSettings){.kind = c->optim.optimizer,
                               .lr = tr->plan.lr,
                               .beta1 = c->optim.betas[0],
                               .beta2 = c->optim.betas[1],
                               .eps = c->optim.eps,
                               .trust_coefficient = c->optim.trust_coefficient,
                               .exclude_bias = c->optim.exclude_bias,
                               .momentum = tr->plan.momentum,
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
    for (int l = 0; l < s->n_layers; l++) {
        size_t ni = s->sizes[l], no = s->sizes[l + 1];
        tr->oset.segs[tr->oset.n_segs++] = (ParamSegment){.off = s->w_off[l], .n = no * ni};
        tr->oset.segs[tr->oset.n_segs++] = (ParamSegment){.off = s->b_off[l], .n = no, .bias = true};
    }
}

/* The plan's step stage, then the reduction: it allocates the parameters, the partial
 * gradient buffers and the optimiser before the model exists. W_1 is kept by column when
 * the step touches only the rows' columns (plan.touched: each column's weights one run in
 * the kernels, the exchange and the update; model.h). Collective. */
static Status setup_reduce(Trainer *tr, ModelShape *shape, const volatile sig_atomic_t *signal)
{
    CommPlacement at;
    comm_placement(tr->comm, &at);
    PlanModelFacts mf;
    mf.buckets = reduce_ring_buckets(shape, &mf.smallest);
    plan_step(&tr->plan, &tr->cfg, &at, &mf);
    shape->w1_by_column = tr->plan.touched;
    optim_settings(tr, shape);
    size_t parts = step_plan_max_parts(&tr->sampler, tr->plan.pieces);
    MemNeeds need; /* refused before anything is allocated (memplan.h) */
    size_t k_targets = tr->tinfo.target == TARGET_DENSE ? tr->K : 0;
    memplan_needs(&need, shape, &tr->cfg, micro_cap(tr), tr->has_val ? tr->vinfo.n : 0,
                  k_targets, tr->P, tr->plan.G > 0 ? parts : 0);
    need.sharded = tr->plan.shard;
    if (tr->plan.sparse) need.param_copies++; /* the exchange's records (reduce_sparse.c) */
    if (tr->plan.csr_batches) /* a CSR row: its values and column indices, and indptr */
        need.d = (size_t)ceil(2.0 * (double)tr->tinfo.x_nnz / (double)(tr->tinfo.n ? tr->tinfo.n : 1)) + 1;
    Status st = memplan_refuse(&need, comm_local_size(tr->comm), tr->data_bytes);
    if ((st = comm_agree(tr->comm, st)) != XT_OK) return st;
    ReduceSpec spec = {.plan = &tr->plan, .shape = shape, .oset = &tr->oset, .parts = parts,
                       .terms = (tr->plan.G > 0 ? tr->plan.G : 1) * tr->plan.pieces,
                       .signal = signal};
    return reduce_open(tr->comm, &spec, &tr->red);
}

static Status setup_model(Trainer *tr, const volatile sig_atomic_t *signal)
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
    if ((st = setup_reduce(tr, &shape, signal)) != XT_OK) return st;
    size_t cap = micro_cap(tr), eval_cap = (size_t)c->eval.batch_size;
    if (tr->has_val && eval_cap > tr->vinfo.n) eval_cap = tr->vinfo.n > 0 ? tr->vinfo.n : 1;
    size_t mb = cap > eval_cap ? cap : eval_cap;
    Status local = model_init(&tr->model, &shape, mb, reduce_params(tr->red));
    if (local != XT_OK)
        log_error("out of memory for the model's activations (%zu parameters, passes of %zu "
                  "rows)", shape.n_params, mb);
    if (local == XT_OK) local = alloc_step_buffers(tr);
    if (local == XT_OK) local = setup_loss(tr);
    /* validation in blocks of eval.batch_size rows: the same blocks at any P */
    if (local == XT_OK && tr->has_val)
        local = eval_stats_init(&tr->vstats, &shape, tr->loss_kind, eval_cap, &tr->val_rows);
    if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;
    /* Rank 0 initialises, everyone receives the same bits. */
    if (tr->r == 0) {
        Rng rng;
        rng_seed_tuple(&rng, c->train.seed, INIT_STREAM, 0);
        model_init_params(&tr->model, c->model.init, &rng);
    }
    comm_bcast(tr->comm, tr->model.params, shape.n_params * sizeof(float), 0);
    early_stop_init(&tr->es, c);
    /* With a validation split model.h5 is the monitored best (model-last.h5 the last
     * epoch when it differs), unless early_stopping.restore_best = false; without one,
     * the last epoch. */
    tr->model_keeps_best = tr->has_val && c->early_stopping.restore_best;
    return trainer_setup_solver(tr); /* the method: SGD's steps, or a full-batch solver */
}

/* ---- all of it ------------------------------------------------------------------------ */

Status trainer_setup(Trainer *tr, int argc, char **argv, const volatile sig_atomic_t *signal,
                     bool *help)
{
    Status st = setup_config(tr, argc, argv, help);
    if (*help) return XT_OK;
    if (st == XT_OK) comm_watchdog_start(tr->comm, tr->cfg.comm.timeout_s);
    if (st == XT_OK) st = setup_run_dir(tr);
    if (st == XT_OK) st = trainer_setup_data(tr);
    if (st == XT_OK) st = setup_model(tr, signal);
    if (st == XT_OK) trainer_banner(tr);
    return st;
}

void trainer_free(Trainer *tr)
{
    trainer_free_solver(tr);
    trainer_free_data(tr);
    model_free(&tr->model);
    reduce_close(&tr->red);
    for (int i = 0; i < 2; i++) step_plan_free(&tr->steps[i]);
    eval_stats_free(&tr->vstats);
    metrics_close(&tr->metrics);
    free(tr->class_w);
    rowsource_batch_free(&tr->batch);
    free(tr->batch.t);
    free(tr->batch.y);
    free(tr->dz);
    free(tr->cfg_text);
    tr->class_w = tr->batch.t = tr->dz = NULL;
    tr->batch.y = NULL;
    tr->cfg_text = NULL;
    runlock_release(&tr->lock); /* last: the run's files are closed */
}
