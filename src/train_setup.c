/* train_setup: everything before the first step of `xentrain train` (see trainer.h):
 * command line and config, run directory, data (probe, shard, load, classes,
 * normalisation, validation rows), model, loss options, optimiser, the banner. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "memplan.h"
#include "linalg.h"
#include "log.h"
#include "opts.h"
#include "rng.h"
#include "strutil.h"
#include "trainer.h"

#define MAX_OVERRIDES 256
/* Seed-stream tag of parameter initialisation (its own stream of train.seed). */
#define INIT_STREAM 0x1217
/* A feature whose standard deviation is below this (relative to its mean) is constant:
 * it is centred but not scaled. */
#define CONSTANT_FEATURE_SD 1e-12

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
    if (fsutil_join(tr->model_path, sizeof tr->model_path, dir, "model.h5") != XT_OK ||
        fsutil_join(tr->metrics_path, sizeof tr->metrics_path, dir, "metrics.csv") != XT_OK ||
        fsutil_join(tr->ckpt_path, sizeof tr->ckpt_path, dir, "checkpoint.h5") != XT_OK ||
        fsutil_join(tr->last_path, sizeof tr->last_path, dir, "model-last.h5") != XT_OK)
        st = XT_ERR_USAGE;
    if (tr->r == 0 && st == XT_OK) st = runlock_acquire(dir, "run.dir", &tr->lock);
    return comm_agree(tr->comm, st);
}

/* ---- data --------------------------------------------------------------------------- */

/* data.val and data.test must not be the training rows: a spec without a group names
 * /train, which in the training file is the training split itself. Local (every rank
 * reaches the same verdict). */
static Status check_split_roles(const Trainer *tr)
{
    const Config *c = &tr->cfg;
    const DatasetInfo *roles[2] = {&tr->vinfo, &tr->test_info};
    const char *keys[2] = {"data.val", "data.test"}, *specs[2] = {c->data.val, c->data.test};
    const char *groups[2] = {"/val", "/test"};
    for (int i = 0; i < 2; i++) {
        const DatasetInfo *in = roles[i];
        if (!specs[i][0] || !dataset_same_file(in->file, tr->tinfo.file)) continue;
        if (!in->group_given) {
            log_error0("%s = %s names the training file without a group, so it would mean %s:%s, "
                       "the training split; name the split, e.g. %s = %s:%s", keys[i], specs[i],
                       in->file, in->group, keys[i], in->file, groups[i]);
            return XT_ERR_USAGE;
        }
        /* the same group, or another name (hard or soft link) for the training X */
        bool linked = in->x_object != 0 && in->x_object == tr->tinfo.x_object;
        if (strcmp(in->group, tr->tinfo.group) != 0 && !linked) continue;
        if (!c->data.allow_same_split) {
            log_error0("%s = %s is the training split itself%s: its figures would say nothing "
                       "about unseen data; name another split, or set data.allow_same_split = "
                       "true", keys[i], specs[i],
                       strcmp(in->group, tr->tinfo.group) ? " (its X is the training X under "
                                                            "another name: an HDF5 link)" : "");
            return XT_ERR_USAGE;
        }
        log_warn("%s = %s is the training split itself (data.allow_same_split = true): its "
                 "figures measure fit, not generalisation", keys[i], specs[i]);
    }
    return XT_OK;
}

/* Probes the splits and checks that their targets fit the model. Collective. */
static Status probe_splits(Trainer *tr)
{
    const Config *c = &tr->cfg;
    if (!c->data.train[0]) {
        log_error0("data.train is not set: name the training split (file.h5:/train)");
        return XT_ERR_USAGE;
    }
    Status st = dataset_probe(c->data.train, tr->comm, true, &tr->tinfo);
    if (st != XT_OK) return st;
    tr->has_val = c->data.val[0] != '\0';
    if (tr->has_val && (st = dataset_probe(c->data.val, tr->comm, true, &tr->vinfo)) != XT_OK) return st;
    if (c->data.test[0] && (st = dataset_probe(c->data.test, tr->comm, true, &tr->test_info)) != XT_OK)
        return st;
    const DatasetInfo *ti = &tr->tinfo;
    tr->dense = ti->target == TARGET_DENSE;
    Status local = XT_OK;
    char err[512];
    if (model_loss_kind(c->model.type, c->model.head, ti->target, &tr->loss_kind, err,
                        sizeof err) != XT_OK) {
        log_error0("%s: %s", c->data.train, err);
        local = XT_ERR_USAGE;
    } else if (tr->dense && c->model.classes > 0 && (size_t)c->model.classes != ti->k_dense) {
        log_error0("model.classes = %lld but %s has y with K = %zu columns",
                   (long long)c->model.classes, c->data.train, ti->k_dense);
        local = XT_ERR_USAGE;
    } else if (tr->test_info.n > 0 && tr->test_info.d != ti->d) {
        log_error0("%s has X with %zu features, %s %zu", c->data.test, tr->test_info.d,
                   c->data.train, ti->d);
        local = XT_ERR_USAGE;
    } else {
        local = check_split_roles(tr);
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
    return comm_agree(tr->comm, local);
}

/* train.shuffle = block: the configured block, else X's rows per chunk (reads then take
 * whole chunks), else 1024 rows. The same on every rank (file metadata). */
static size_t shuffle_block_rows(const Trainer *tr)
{
    const Config *c = &tr->cfg;
    if (c->train.shuffle != SHUFFLE_BLOCK) return 0;
    if (c->train.shuffle_block > 0) return (size_t)c->train.shuffle_block;
    return tr->tinfo.x_chunk_rows > 0 ? tr->tinfo.x_chunk_rows : 1024;
}

/* Streaming: two windows of consecutive steps in what the budget leaves after the
 * stream's fixed buffers and the sampler. Collective (agrees on a budget too small). */
static Status plan_stream(Trainer *tr)
{
    Stream *st = tr->train_rows.stream;
    const Sampler *sp = &tr->sampler;
    size_t local = sp->row_hi - sp->row_lo, row = stream_row_bytes(st);
    double fixed = (double)stream_fixed_bytes(st, local) + (double)local * sizeof(uint32_t);
    double wr = tr->budget > 0 ? (tr->budget - fixed) / (2.0 * (double)row) : (double)local;
    if (wr > (double)local) wr = (double)local;
    Status local_st = XT_OK;
    if (wr < (double)sp->max_local) {
        char hb[32], hn[32];
        strutil_human_bytes(tr->budget, hb, sizeof hb);
        strutil_human_bytes(fixed + 2.0 * (double)sp->max_local * (double)row, hn, sizeof hn);
        log_error("data.memory_budget: %s per rank (%s) is too small to stream %s: one step of "
                  "%zu rows in each of two windows plus the reader's buffers needs about %s; "
                  "raise data.memory_budget, lower train.batch_size, or use more ranks", hb,
                  tr->budget_why, tr->cfg.data.train, sp->max_local, hn);
        local_st = XT_ERR_USAGE;
    }
    Status s = comm_agree(tr->comm, local_st);
    if (s == XT_OK)
        s = comm_agree(tr->comm, stream_plan(st, sp, (size_t)wr, (uint64_t)tr->cfg.train.epochs));
    if (s == XT_OK) tr->data_bytes = fixed + 2.0 * wr * (double)row;
    return s;
}

/* Decides who holds which rows and loads this rank's training rows, or opens them for
 * streaming (data.stream, data.memory_budget). Collective. */
static Status load_shard(Trainer *tr)
{
    const Config *c = &tr->cfg;
    const DatasetInfo *ti = &tr->tinfo;
    tr->global_batch = c->train.batch_per_rank > 0 ? (size_t)c->train.batch_per_rank * (size_t)tr->P
                                                   : (size_t)c->train.batch_size;
    tr->global_batch *= (size_t)c->train.accumulate; /* rows per update; 0 stays full batch */
    size_t S = shard_count(ti->n, (size_t)c->data.virtual_shards);
    tr->repro = c->train.reproducible;
    if (tr->repro) { /* groups of shards; fewer rows than groups: one row per group */
        tr->G = (size_t)config_micro_batches(c);
        if (c->train.micro_batches == 0 && tr->G > S) tr->G = S;
    }
    tr->budget = rowsource_budget(config_memory_budget(c), comm_local_size(tr->comm),
                                  tr->budget_why, sizeof tr->budget_why);
    /* The sampler's order (4 bytes per row; a streamed run keeps a second copy) is
     * allocated first: it must fit whichever way the rows are held. */
    if ((size_t)tr->P <= S && tr->G <= S && (!tr->repro || (size_t)tr->P <= tr->G)) {
        size_t s_lo, s_hi;
        shard_rank_shards_grouped(S, tr->G, tr->P, tr->r, &s_lo, &s_hi);
        size_t lo = shard_row_begin(ti->n, S, s_lo), hi = shard_row_begin(ti->n, S, s_hi);
        double index = (double)(hi - lo) * sizeof(uint32_t) *
                       (c->data.stream == DATA_STREAM_FALSE ? 1.0 : 2.0);
        Status local = XT_OK;
        if (tr->budget > 0 && index > tr->budget) {
            char hi_[32], hb[32];
            strutil_human_bytes(index, hi_, sizeof hi_);
            strutil_human_bytes(tr->budget, hb, sizeof hb);
            log_error("%s: rows [%zu, %zu) need about %s for their shuffle order alone (4 "
                      "bytes per row%s), more than this rank's budget of %s (%s): use more "
                      "ranks (or nodes)", c->data.train, lo, hi, hi_,
                      c->data.stream == DATA_STREAM_FALSE ? "" : ", twice when streamed", hb,
                      tr->budget_why);
            local = XT_ERR_USAGE;
        }
        Status st = comm_agree(tr->comm, local);
        if (st != XT_OK) return st;
    }
    char err[512];
    Status st = sampler_init(&tr->sampler, ti->n, (size_t)c->data.virtual_shards,
                             tr->global_batch, tr->P, tr->r, c->train.seed,
                             c->train.shuffle != SHUFFLE_NONE, tr->G, err, sizeof err);
    tr->shuffle_block = shuffle_block_rows(tr);
    if (st == XT_OK && tr->shuffle_block > 0)
        st = sampler_set_block_shuffle(&tr->sampler, tr->shuffle_block, err, sizeof err);
    if (st != XT_OK) log_error0("%s: %s", c->data.train, err);
    if ((st = comm_agree(tr->comm, st)) != XT_OK) return st;
    SourceOptions o = {.mode = (StreamMode)c->data.stream, .budget = tr->budget,
                       .compact = c->data.compact, .probs = tr->loss_kind == LOSS_SOFTMAX_PROBS,
                       .extra_per_row = sizeof(uint32_t), .what = "data.train",
                       .local_ranks = comm_local_size(tr->comm)};
    size_t kcheck = tr->dense ? 0 : (size_t)c->model.classes;
    st = rowsource_open(&tr->train_rows, &tr->train, ti, tr->sampler.row_lo, tr->sampler.row_hi,
                        kcheck, &o, tr->comm, &tr->streamed);
    if (st != XT_OK) return st;
    if (tr->streamed) return plan_stream(tr);
    tr->data_bytes = (double)(tr->sampler.row_hi - tr->sampler.row_lo) *
                     dataset_row_bytes(ti, c->data.compact);
    return XT_OK;
}

/* K: configured, the target width, or 1 + the largest label over all ranks. Collective. */
static Status decide_classes(Trainer *tr)
{
    const Config *c = &tr->cfg;
    if (tr->dense) {
        tr->K = tr->tinfo.k_dense;
        return XT_OK;
    }
    bool any = tr->train.hi > tr->train.lo;
    int64_t mm[2] = {any ? tr->train.label_max : -1, any ? -(int64_t)tr->train.label_min : INT32_MIN};
    comm_allreduce_max_i64(tr->comm, mm, 2);
    char yname[XT_PATH_MAX + 400];
    snprintf(yname, sizeof yname, "%s:%s%s%s", tr->tinfo.file, tr->tinfo.group,
             strcmp(tr->tinfo.group, "/") ? "/" : "", tr->tinfo.y_name);
    if (-mm[1] < 0) {
        log_error0("%s: class ids must be >= 0, the smallest is %lld", yname,
                   (long long)-mm[1]);
        return XT_ERR_USAGE;
    }
    if (c->model.classes == 0 && -mm[1] > 0) {
        log_error0("%s: the class ids start at %lld, not 0, so class 0 would be a class no "
                   "row has (and K = %lld): relabel from 0 (e.g. y - %lld; xentrain convert "
                   "does that), or set model.classes if class 0 exists but is absent here",
                   yname, (long long)-mm[1], (long long)mm[0] + 1, (long long)-mm[1]);
        return XT_ERR_USAGE;
    }
    tr->K = c->model.classes > 0 ? (size_t)c->model.classes : (size_t)mm[0] + 1;
    if (tr->K < 2) tr->K = 2;
    if (tr->K > XT_MAX_CLASSES) {
        log_error0("%s: largest class id %lld gives %zu classes (limit %d)", yname,
                   (long long)mm[0], tr->K, XT_MAX_CLASSES);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* shift = mean, mul = 1 / sd over the WHOLE training set. The sums are exact integers
 * (exact.h: one power-of-two scale per feature from its global max |x| and N), so the
 * statistics are the same bits however the rows are spread over ranks. Two passes: the
 * mean, then the squared deviations from it (no cancellation). Collective. */
static Status fit_standardize(Trainer *tr)
{
    const size_t D = tr->tinfo.d, N = tr->tinfo.n;
    double *mx = malloc(D * sizeof *mx), *mean = malloc(D * sizeof *mean);
    int64_t *sum = malloc(D * sizeof *sum);
    int *e = malloc(D * sizeof *e);
    Status st = comm_agree(tr->comm, mx && mean && sum && e ? XT_OK : XT_ERR_RUNTIME);
    if (st == XT_OK) st = comm_agree(tr->comm, rowsource_feature_absmax(&tr->train_rows, mx));
    if (st == XT_OK) {
        comm_allreduce_max_double(tr->comm, mx, D);
        for (size_t j = 0; j < D; j++) e[j] = exact_fixed_exponent(mx[j], N);
        st = comm_agree(tr->comm, rowsource_feature_fixed_sums(&tr->train_rows, NULL, e, sum));
    }
    if (st == XT_OK) {
        comm_allreduce_sum_i64(tr->comm, sum, D);
        for (size_t j = 0; j < D; j++) {
            mean[j] = ldexp((double)sum[j], -e[j]) / (double)N;
            double dev = mx[j] + fabs(mean[j]); /* bounds |x - mean| */
            e[j] = exact_fixed_exponent(dev * dev, N);
        }
        st = comm_agree(tr->comm, rowsource_feature_fixed_sums(&tr->train_rows, mean, e, sum));
    }
    if (st == XT_OK) {
        comm_allreduce_sum_i64(tr->comm, sum, D);
        for (size_t j = 0; j < D; j++) {
            double sd = sqrt(ldexp((double)sum[j], -e[j]) / (double)N);
            tr->shift[j] = (float)mean[j];
            tr->mul[j] = sd > CONSTANT_FEATURE_SD * fmax(1.0, fabs(mean[j])) ? (float)(1.0 / sd)
                                                                              : 1.0f;
        }
    }
    free(mx);
    free(mean);
    free(sum);
    free(e);
    return st;
}

/* data.normalize = auto: the scale attribute when X has one, else standardisation;
 * scale without the attribute is refused (one global max |x| squashes every feature by
 * the largest one). Local (the same on every rank). */
static Status resolve_normalization(Trainer *tr)
{
    const Config *c = &tr->cfg;
    bool has_scale = tr->tinfo.x_scale > 0.0;
    tr->norm = c->data.normalize;
    if (tr->norm == NORM_AUTO) tr->norm = has_scale ? NORM_SCALE : NORM_STANDARDIZE;
    if (tr->norm == NORM_SCALE && !has_scale) {
        log_error0("data.normalize = scale: %s/X has no scale attribute to multiply by; use "
                   "data.normalize = standardize (or auto), or add the attribute (e.g. "
                   "scale = 1/255 for 8-bit pixels)", c->data.train);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* The normalisation statistics, then rows come out normalised. Collective. */
static Status fit_normalization(Trainer *tr)
{
    const size_t D = tr->tinfo.d;
    if (tr->norm == NORM_NONE) return XT_OK;
    tr->shift = calloc(D, sizeof *tr->shift);
    tr->mul = malloc(D * sizeof *tr->mul);
    Status st = comm_agree(tr->comm, tr->shift && tr->mul ? XT_OK : XT_ERR_RUNTIME);
    if (st != XT_OK) return st;
    if (tr->norm == NORM_SCALE) {
        for (size_t j = 0; j < D; j++) tr->mul[j] = (float)tr->tinfo.x_scale;
    } else if ((st = fit_standardize(tr)) != XT_OK) {
        return st;
    }
    rowsource_set_normalization(&tr->train_rows, tr->shift, tr->mul);
    return XT_OK;
}

/* Validation rows: rank 0 holds them all, or each rank its share (distributed), in memory
 * when they fit what the training rows left of the budget, else streamed in blocks. */
static Status load_val(Trainer *tr)
{
    if (!tr->has_val) return XT_OK;
    size_t n = tr->vinfo.n, lo = 0, hi = tr->r == 0 ? n : 0;
    if (tr->cfg.eval.distributed) /* whole blocks: the same forward passes at any P */
        shard_block_range(n, (size_t)tr->cfg.eval.batch_size, tr->P, tr->r, &lo, &hi);
    /* auto: what the training rows left; false: the whole budget (as training had) */
    bool never = tr->cfg.data.stream == DATA_STREAM_FALSE;
    double left = never ? tr->budget : tr->budget - tr->data_bytes;
    SourceOptions o = {.mode = never ? STREAM_FALSE : STREAM_AUTO,
                       .budget = tr->budget > 0 ? (left > 1.0 ? left : 1.0) : 0.0,
                       .compact = false, .probs = tr->loss_kind == LOSS_SOFTMAX_PROBS,
                       .what = "data.val", .local_ranks = comm_local_size(tr->comm)};
    Status st = rowsource_open(&tr->val_rows, &tr->val, &tr->vinfo, lo, hi,
                               tr->dense ? 0 : tr->K, &o, tr->comm, &tr->val_streamed);
    if (st == XT_OK) rowsource_set_normalization(&tr->val_rows, tr->shift, tr->mul);
    return st;
}

static Status setup_data(Trainer *tr)
{
    Status st = probe_splits(tr);
    if (st == XT_OK) st = resolve_normalization(tr);
    if (st == XT_OK) st = load_shard(tr);
    if (st == XT_OK) st = decide_classes(tr);
    if (st == XT_OK) st = fit_normalization(tr);
    if (st == XT_OK) st = load_val(tr);
    return st;
}

/* ---- model, loss, optimiser ----------------------------------------------------------- */

/* Rows per micro-step: a rank's rows of one update (reproducible mode: one group's), in
 * train.accumulate pieces. */
static size_t micro_cap(const Trainer *tr)
{
    size_t k = (size_t)tr->cfg.train.accumulate;
    size_t m = tr->repro ? sampler_max_group_rows(&tr->sampler) : tr->sampler.max_local;
    if (m > tr->sampler.max_local) m = tr->sampler.max_local;
    if (m == 0) m = 1;
    return (m + k - 1) / k;
}

/* The step's buffers: row lists for a whole update, the rest for one micro-step. Local. */
static Status alloc_step_buffers(Trainer *tr)
{
    const ModelShape *s = &tr->model.shape;
    size_t rows_cap = tr->sampler.max_local > 0 ? tr->sampler.max_local : 1;
    size_t cap = micro_cap(tr);
    const size_t D = s->sizes[0], KO = model_outputs(s);
    tr->batch.X = linalg_alloc(cap * D * sizeof *tr->batch.X);
    tr->dz = malloc(cap * KO * sizeof *tr->dz);
    tr->rows = malloc(rows_cap * sizeof *tr->rows);
    tr->next_rows = malloc(rows_cap * sizeof *tr->next_rows);
    tr->next_t = SIZE_MAX;
    if (tr->dense) tr->batch.t = malloc(cap * tr->K * sizeof *tr->batch.t);
    else tr->batch.y = malloc(cap * sizeof *tr->batch.y);
    if (tr->r == 0) tr->best = malloc(s->n_params * sizeof *tr->best);
    if (!tr->batch.X || !tr->dz || !tr->rows || !tr->next_rows ||
        !(tr->batch.t || tr->batch.y) || (tr->r == 0 && !tr->best)) {
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
    if (c->loss.n_class_weights == 0) return XT_OK;
    tr->class_w = malloc(tr->K * sizeof *tr->class_w);
    if (!tr->class_w) return XT_ERR_RUNTIME;
    for (size_t k = 0; k < tr->K; k++) tr->class_w[k] = (float)c->loss.class_weights[k];
    tr->lopt.class_weight = tr->class_w;
    return XT_OK;
}

_Static_assert(2 * MODEL_MAX_LAYERS <= OPTIM_MAX_SEGMENTS, "a W and a b segment per layer");

static Status setup_optim(Trainer *tr)
{
    const Config *c = &tr->cfg;
    tr->oset = (OptimSettings){.kind = c->optim.optimizer,
                               .lr = c->optim.lr,
                               .beta1 = c->optim.betas[0],
                               .beta2 = c->optim.betas[1],
                               .eps = c->optim.eps,
                               .trust_coefficient = c->optim.trust_coefficient,
                               .exclude_bias = c->optim.exclude_bias,
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
    /* the tensors, for the layer-wise trust ratios of lars and lamb */
    const ModelShape *s = &tr->model.shape;
    for (int l = 0; l < s->n_layers; l++) {
        size_t ni = s->sizes[l], no = s->sizes[l + 1];
        tr->oset.segs[tr->oset.n_segs++] = (ParamSegment){.off = s->w_off[l], .n = no * ni};
        tr->oset.segs[tr->oset.n_segs++] = (ParamSegment){.off = s->b_off[l], .n = no, .bias = true};
    }
    Status st = trainer_setup_shard(tr);
    if (st != XT_OK) return st;
    return optim_init_slice(&tr->optim, &tr->oset, tr->model.shape.n_params, tr->lo, tr->hi);
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
    size_t cap = micro_cap(tr);
    size_t eval_cap = (size_t)c->eval.batch_size;
    if (tr->has_val && eval_cap > tr->vinfo.n) eval_cap = tr->vinfo.n > 0 ? tr->vinfo.n : 1;
    size_t mb = cap > eval_cap ? cap : eval_cap;
    MemNeeds need;
    memplan_needs(&need, &shape, c, cap, tr->has_val ? tr->vinfo.n : 0, tr->dense ? tr->K : 0,
                  tr->P, tr->repro ? (tr->sampler.g_hi - tr->sampler.g_lo) * (size_t)c->train.accumulate : 0);
    st = comm_agree(tr->comm, memplan_refuse(&need, comm_local_size(tr->comm), tr->data_bytes));
    if (st != XT_OK) return st;
    Status local = model_init(&tr->model, &shape, mb, N_SLOTS);
    if (local != XT_OK)
        log_error("out of memory for the model's parameters, gradients and activations (%zu "
                  "parameters, passes of %zu rows)", shape.n_params, mb);
    if (local == XT_OK) local = alloc_step_buffers(tr);
    if (local == XT_OK) local = setup_loss(tr);
    /* validation in blocks of eval.batch_size rows: the same blocks at any P */
    if (local == XT_OK && tr->has_val)
        local = eval_stats_init(&tr->vstats, &shape, tr->loss_kind, eval_cap);
    if (local == XT_OK && tr->repro) { /* one partial gradient per local micro-batch */
        size_t parts = (tr->sampler.g_hi - tr->sampler.g_lo) * (size_t)c->train.accumulate;
        local = exact_grad_init(&tr->exact, shape.n_params, tr->G * (size_t)c->train.accumulate,
                                parts, N_XSLOTS);
        if (local != XT_OK)
            log_error("out of memory for the reproducible mode's %zu partial gradients (%.1f MiB: "
                      "one per local micro-batch); lower train.micro_batches or use more ranks",
                      parts, (double)parts * (double)shape.n_params * 4.0 / 1048576.0);
    }
    if (local == XT_OK) local = setup_optim(tr);
    if ((st = comm_agree(tr->comm, local)) != XT_OK) return st;
    /* Rank 0 initialises, everyone receives the same bits. */
    if (tr->r == 0) {
        Rng rng;
        rng_seed_tuple(&rng, c->train.seed, INIT_STREAM, 0);
        model_init_params(&tr->model, c->model.init, &rng);
    }
    comm_bcast(tr->comm, tr->model.params, shape.n_params * sizeof(float), 0);
    if ((st = trainer_setup_reduce(tr)) != XT_OK) return st;
    early_stop_init(&tr->es, c);
    /* With a validation split model.h5 is the monitored best (model-last.h5 the last
     * epoch when it differs), unless early_stopping.restore_best = false; without one,
     * the last epoch. */
    tr->model_keeps_best = tr->has_val && c->early_stopping.restore_best;
    return XT_OK;
}

/* ---- the banner ----------------------------------------------------------------------- */

static void print_settings(const Config *c)
{
    size_t need = config_settings_text(c, NULL, 0) + 1;
    char *text = malloc(need);
    if (!text) return;
    config_settings_text(c, text, need);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        log_info("         %s", l);
    free(text);
}

static void banner(const Trainer *tr)
{
    if (tr->r != 0) return;
    const Config *c = &tr->cfg;
    char mpi[256], desc[256], blas[512];
    comm_library_version(mpi, sizeof mpi);
    linalg_describe(blas, sizeof blas);
    model_shape_describe(&tr->model.shape, desc, sizeof desc);
    log_info("xentrain %s train %s", XT_VERSION, c->source);
    log_info("launch   P = %d ranks on %d node(s), %d per node; BLAS threads per rank: %d; %s",
             tr->P, comm_node_count(tr->comm), comm_local_size(tr->comm), linalg_blas_threads(),
             mpi);
    log_info("blas     %s", blas);
    const char *job = getenv("SLURM_JOB_ID");
    if (job)
        log_info("slurm    job %s, nodes %s, tasks per node %s", job,
                 getenv("SLURM_JOB_NODELIST") ? getenv("SLURM_JOB_NODELIST") : "?",
                 getenv("SLURM_TASKS_PER_NODE") ? getenv("SLURM_TASKS_PER_NODE") : "?");
    log_info("data     train %s: N = %zu, D = %zu (X %s), y %s; rank 0 holds rows [%zu, %zu)",
             c->data.train, tr->tinfo.n, tr->tinfo.d, tr->tinfo.x_type, tr->tinfo.y_type,
             tr->sampler.row_lo, tr->sampler.row_hi);
    char hb[32], hd[32], how[600];
    strutil_human_bytes(tr->budget, hb, sizeof hb);
    strutil_human_bytes(tr->data_bytes, hd, sizeof hd);
    if (tr->streamed) {
        StreamStats ss;
        stream_stats(tr->train_rows.stream, &ss);
        stream_describe(tr->train_rows.stream, how, sizeof how);
        log_info("memory   streaming the training rows from the file (%s): %s; two windows of "
                 "%zu rows (about %zu steps each) read ahead, %s in all; budget %s per rank "
                 "(%s)", how, c->data.stream == DATA_STREAM_TRUE ? "data.stream = true"
                 : "data.stream = auto: the rows do not fit the budget", ss.window_rows,
                 ss.window_steps, hd, hb, tr->budget_why);
    } else {
        log_info("memory   training rows in memory (%s): %s on rank 0; budget %s per rank (%s)",
                 c->data.stream == DATA_STREAM_FALSE ? "data.stream = false"
                                                     : "data.stream = auto: they fit the budget",
                 hd, tr->budget > 0 ? hb : "unlimited", tr->budget_why);
    }
    if (tr->shuffle_block > 0)
        log_info("shuffle  blocks of %zu consecutive rows (%s), in a new order each epoch "
                 "within each virtual shard", tr->shuffle_block,
                 c->train.shuffle_block > 0 ? "train.shuffle_block" : tr->tinfo.x_chunk_rows > 0
                                                                          ? "X's rows per chunk"
                                                                          : "default: X is not chunked");
    log_info("loss     %s", loss_kind_name(tr->loss_kind));
    const char *why = tr->norm == NORM_NONE ? "data.normalize = none"
                      : c->data.normalize != NORM_AUTO ? "as configured"
                      : tr->norm == NORM_SCALE ? "auto: X has a scale attribute"
                                               : "auto: X has no scale attribute";
    if (tr->norm == NORM_SCALE)
        log_info("features scaled by %g (%s)", tr->tinfo.x_scale, why);
    else
        log_info("features %s (%s)", tr->norm == NORM_NONE ? "used as stored"
                 : "standardised: mean 0, sd 1 over the training split", why);
    if (tr->has_val)
        log_info("         val   %s: N = %zu (%s, %s)", c->data.val, tr->vinfo.n,
                 c->eval.distributed ? "sharded over ranks" : "rank 0",
                 tr->val_streamed ? "streamed in blocks: it does not fit what the training "
                                    "rows leave of the budget" : "in memory");
    log_info("model    %s, K = %zu", desc, tr->K);
    char acc[96] = "", clamp[96] = "";
    if (c->train.accumulate > 1)
        snprintf(acc, sizeof acc, ", each in %lld micro-steps per rank",
                 (long long)c->train.accumulate);
    size_t rows = tr->global_batch && tr->global_batch < tr->tinfo.n ? tr->global_batch
                                                                      : tr->tinfo.n;
    if (tr->global_batch > tr->tinfo.n)
        snprintf(clamp, sizeof clamp, " (the batch asked for, %zu, exceeds the %zu rows)",
                 tr->global_batch, tr->tinfo.n);
    log_info("batch    global %zu rows per update%s (%zu steps/epoch, %zu virtual shards)%s",
             rows, clamp, tr->sampler.T, tr->sampler.S, acc);
    if (tr->repro) {
        size_t mb = tr->G * (size_t)c->train.accumulate;
        log_info("repro    reproducible: %zu micro-batches per update (%zu groups of virtual shards%s%s, "
                 "about %zu rows each), exact integer sums: the same model at any P <= %zu%s; "
                 "%.2f MiB of partial gradients on rank 0", mb, tr->G,
                 c->train.accumulate > 1 ? " x train.accumulate" : "",
                 c->train.micro_batches == 0
                     ? "; train.micro_batches = auto: batch / 128, at least 8, at most the shards"
                     : "",
                 (rows + mb / 2) / mb, tr->G,
                 linalg_blas_threads() > 1 ? " with this BLAS thread count" : "",
                 (double)tr->exact.local * (double)tr->model.shape.n_params * 4.0 / 1048576.0);
    }
    log_info("optim    %s, lr %g%s", optim_name(c->optim.optimizer), tr->oset.lr,
             c->optim.lr_scaling == LR_SCALE_LINEAR ? " (scaled by P)" : "");
    if (tr->shard)
        log_info("         sharded update (%s): each rank updates about %zu of the %zu parameters "
                 "and keeps their optimiser state; rank 0 has [%zu, %zu)", tr->shard_why,
                 (tr->model.shape.n_params + (size_t)tr->P - 1) / (size_t)tr->P,
                 tr->model.shape.n_params, tr->part[0], tr->part[1]);
    else
        log_info("         every rank updates all parameters (%s)", tr->shard_why);
    if (tr->P > 1) log_info("reduce   %s", tr->reduce_why);
    if (tr->P > 1 && !tr->overlap)
        log_info("         reduced after backward, not overlapped (%s)", tr->overlap_why);
    log_info("run      %s", c->run.dir);
    log_info("settings (every key: xentrain --help-config)");
    print_settings(c);
}

/* ---- all of it ------------------------------------------------------------------------ */

Status trainer_setup(Trainer *tr, int argc, char **argv, bool *help)
{
    Status st = setup_config(tr, argc, argv, help);
    if (*help) return XT_OK;
    if (st == XT_OK) comm_watchdog_start(tr->comm, tr->cfg.comm.timeout_s);
    if (st == XT_OK) st = setup_run_dir(tr);
    if (st == XT_OK) st = setup_data(tr);
    if (st == XT_OK) st = setup_model(tr);
    if (st == XT_OK && tr->cfg.early_stopping.enabled && !tr->has_val) {
        log_error0("early_stopping.enabled = true needs a validation split (data.val)");
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) banner(tr);
    return st;
}

void trainer_free(Trainer *tr)
{
    rowsource_free(&tr->train_rows);
    rowsource_free(&tr->val_rows);
    dataset_free(&tr->train);
    dataset_free(&tr->val);
    sampler_free(&tr->sampler);
    model_free(&tr->model);
    optim_free(&tr->optim);
    exact_grad_free(&tr->exact);
    trainer_drop_optim(tr);
    free(tr->part);
    free(tr->part_bytes);
    eval_stats_free(&tr->vstats);
    metrics_close(&tr->metrics);
    free(tr->shift);
    free(tr->mul);
    free(tr->class_w);
    free(tr->batch.X);
    free(tr->batch.t);
    free(tr->batch.y);
    free(tr->dz);
    free(tr->rows);
    free(tr->next_rows);
    free(tr->best);
    free(tr->cfg_text);
    runlock_release(&tr->lock); /* last: the run's files are closed */
}
