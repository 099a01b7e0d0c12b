/* train_data: the splits of `xentrain train` (see trainer.h): probe them, plan what the data
 * decide (plan_data), shard and load this rank's training rows or open them for streaming,
 * the classes, the normalisation, the validation rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"
#include "log.h"
#include "trainer.h"

/* A feature whose standard deviation is below this (relative to its mean) is constant:
 * it is centred but not scaled. */
#define CONSTANT_FEATURE_SD 1e-12

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
    bool dense = ti->target == TARGET_DENSE;
    Status local = XT_OK;
    char err[512];
    if (model_loss_kind(c->model.type, c->model.head, ti->target, &tr->loss_kind, err,
                        sizeof err) != XT_OK) {
        log_error0("%s: %s", c->data.train, err);
        local = XT_ERR_USAGE;
    } else if (dense && c->model.classes > 0 && (size_t)c->model.classes != ti->k_dense) {
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

/* The plan's data stage from the training split's facts. The budget is agreed first (the
 * smallest over the ranks: nodes may differ), so every rank plans the same. Collective. */
static Status plan_training_data(Trainer *tr)
{
    const Config *c = &tr->cfg;
    const DatasetInfo *ti = &tr->tinfo;
    char why[1400], err[1024];
    double budget = rowsource_budget(config_memory_budget(c), comm_local_size(tr->comm), why,
                                     sizeof why);
    double least[1] = {budget > 0 ? -budget : -INFINITY}; /* 0: no limit known */
    comm_allreduce_max_double(tr->comm, least, 1);
    PlanFacts f = {.n = ti->n, .d = ti->d, .x_chunk_rows = ti->x_chunk_rows,
                   .x_has_scale = ti->x_scale > 0.0, .x_csr = ti->x_csr, .x_nnz = ti->x_nnz,
                   .row_bytes = dataset_row_bytes(ti, c->data.compact) + sizeof(uint32_t),
                   .budget = isfinite(least[0]) ? -least[0] : 0.0, .budget_why = why};
    comm_placement(tr->comm, &f.at);
    Status st = plan_data(&tr->plan, c, &f, err, sizeof err);
    if (st != XT_OK) log_error0("%s", err);
    /* A solver's iteration cap is the loop's last epoch: the loop, the resume check and
     * config.ini read train.epochs */
    if (st == XT_OK) tr->cfg.train.epochs = tr->plan.epochs;
    if (st == XT_OK) tr->cfg.early_stopping.enabled = tr->plan.early_stop; /* likewise */
    return st;
}

/* Who holds which rows (the sampler), and this rank's training rows loaded, or opened for
 * streaming with their windows planned in the budget. Collective. */
static Status load_shard(Trainer *tr)
{
    const Config *c = &tr->cfg;
    const Plan *p = &tr->plan;
    const DatasetInfo *ti = &tr->tinfo;
    char err[1024];
    /* a full-batch solver reads every row each pass, in file order (plan.h) */
    bool shuffle = c->train.shuffle != SHUFFLE_NONE && !p->solver;
    Status st = sampler_init(&tr->sampler, ti->n, (size_t)c->data.virtual_shards, p->global_batch,
                             tr->P, tr->r, c->train.seed, shuffle, p->G, err, sizeof err);
    if (st == XT_OK && p->shuffle_block > 0)
        st = sampler_set_block_shuffle(&tr->sampler, p->shuffle_block, err, sizeof err);
    if (st != XT_OK) log_error0("%s: %s", c->data.train, err);
    if ((st = comm_agree(tr->comm, st)) != XT_OK) return st;
    SourceOptions o = {.mode = p->stream ? STREAM_TRUE : STREAM_FALSE, .budget = p->budget,
                       .compact = c->data.compact, .probs = tr->loss_kind == LOSS_SOFTMAX_PROBS,
                       .csr_batches = p->csr_batches,
                       .extra_per_row = sizeof(uint32_t), .what = "data.train",
                       .local_ranks = comm_local_size(tr->comm)};
    size_t kcheck = ti->target == TARGET_DENSE ? 0 : (size_t)c->model.classes;
    bool streamed;
    st = rowsource_open(&tr->train_rows, &tr->train, ti, tr->sampler.row_lo, tr->sampler.row_hi,
                        kcheck, &o, tr->comm, &streamed);
    if (st != XT_OK) return st;
    (void)streamed; /* the source knows how it holds the rows */
    if (p->solver) /* rows read in order, a micro-batch at a time: no windows to plan */
        st = rowsource_plan_passes(&tr->train_rows, p->budget, &tr->data_bytes, err, sizeof err);
    else
        st = rowsource_plan_training(&tr->train_rows, &tr->sampler, p->budget,
                                     (uint64_t)c->train.epochs, &tr->data_bytes, err, sizeof err);
    if (st != XT_OK) log_error("%s", err);
    return comm_agree(tr->comm, st);
}

/* K: configured, the target width, or 1 + the largest label over all ranks. Collective. */
static Status decide_classes(Trainer *tr)
{
    const Config *c = &tr->cfg;
    if (tr->tinfo.target == TARGET_DENSE) {
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
    if (c->model.classes == 0 && tr->tinfo.k_declared > tr->K) tr->K = tr->tinfo.k_declared;
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
 * statistics are the same bits however the rows are spread over ranks: a pass for the
 * maxima, then one for S1 = sum q and S2 = sum q^2 (q the value on the grid of its column's
 * largest float32 values, exact.h; S2 in 128 bits),
 * whose exact combination n S2 - S1^2 gives the variance without cancellation. Collective. */
static Status fit_standardize(Trainer *tr)
{
    const size_t D = tr->tinfo.d, N = tr->tinfo.n;
    double *mx = malloc(D * sizeof *mx);
    int64_t *s1 = malloc(D * sizeof *s1), *s2 = malloc(D * EXACT_Q2_LIMBS * sizeof *s2);
    int *e = malloc(D * sizeof *e);
    Status st = comm_agree(tr->comm, mx && s1 && s2 && e ? XT_OK : XT_ERR_RUNTIME);
    if (st == XT_OK) st = comm_agree(tr->comm, rowsource_feature_absmax(&tr->train_rows, mx));
    if (st == XT_OK) {
        comm_allreduce_max_double(tr->comm, mx, D);
        for (size_t j = 0; j < D; j++) e[j] = exact_grid_exponent(mx[j]);
        st = comm_agree(tr->comm, rowsource_feature_moments(&tr->train_rows, e, s1, s2));
    }
    if (st == XT_OK) {
        comm_allreduce_sum_i64(tr->comm, s1, D);
        comm_allreduce_sum_i64(tr->comm, s2, D * EXACT_Q2_LIMBS);
        for (size_t j = 0; j < D; j++) {
            double mean, var;
            exact_moments(s1[j], exact_q2_from_limbs(s2 + j * EXACT_Q2_LIMBS), N, e[j], &mean,
                          &var);
            double sd = sqrt(var);
            tr->shift[j] = (float)mean;
            tr->mul[j] = sd > CONSTANT_FEATURE_SD * fmax(1.0, fabs(mean)) ? (float)(1.0 / sd)
                                                                          : 1.0f;
        }
    }
    free(mx);
    free(s1);
    free(s2);
    free(e);
    return st;
}

/* shift = 0, mul = 1 / max |x_j| over the WHOLE training set (a MAX allreduce: the same
 * bits at any rank count; 1 for a column that is all zeros): zeros stay zeros, every value
 * lands in [-1, 1]. With auto on CSR X, plan_norm_measured may turn it into none. Collective. */
static Status fit_maxabs(Trainer *tr)
{
    const size_t D = tr->tinfo.d;
    double *mx = malloc(D * sizeof *mx);
    Status st = comm_agree(tr->comm, mx ? XT_OK : XT_ERR_RUNTIME);
    if (st == XT_OK) st = comm_agree(tr->comm, rowsource_feature_absmax(&tr->train_rows, mx));
    if (st == XT_OK) {
        comm_allreduce_max_double(tr->comm, mx, D);
        double top = 0.0;
        for (size_t j = 0; j < D; j++) {
            top = fmax(top, mx[j]);
            tr->mul[j] = mx[j] > 0.0 ? (float)(1.0 / mx[j]) : 1.0f;
        }
        plan_norm_measured(&tr->plan, top);
    }
    free(mx);
    return st;
}

/* The normalisation statistics, then rows come out normalised. Collective. */
static Status fit_normalization(Trainer *tr)
{
    const size_t D = tr->tinfo.d;
    if (tr->plan.norm == NORM_NONE) return XT_OK;
    tr->shift = calloc(D, sizeof *tr->shift);
    tr->mul = malloc(D * sizeof *tr->mul);
    Status st = comm_agree(tr->comm, tr->shift && tr->mul ? XT_OK : XT_ERR_RUNTIME);
    if (st != XT_OK) return st;
    if (tr->plan.norm == NORM_SCALE) {
        for (size_t j = 0; j < D; j++) tr->mul[j] = (float)tr->tinfo.x_scale;
    } else if (tr->plan.norm == NORM_MAXABS) {
        if ((st = fit_maxabs(tr)) != XT_OK) return st;
        if (tr->plan.norm == NORM_NONE) { /* auto: nothing above 1 to scale */
            free(tr->shift);
            free(tr->mul);
            tr->shift = tr->mul = NULL;
            return XT_OK;
        }
    } else if ((st = fit_standardize(tr)) != XT_OK) {
        return st;
    }
    rowsource_set_normalization(&tr->train_rows, tr->shift, tr->mul);
    return XT_OK;
}

/* optim.lr = auto for SGD on a linear model, data.normalize none or maxabs (plan.h): from the
 * training rows' mean squared norm as training sees them (normalised), summed in exact.h's
 * units: the same value at any P, dense or CSR. Collective. */
static Status measure_lr(Trainer *tr)
{
    if (!tr->plan.lr_from_rows) return XT_OK;
    int64_t acc[3] = {0, 0, 0}; /* whole, fraction, rows whose sums overflowed */
    bool ok = false;
    Status st = comm_agree(tr->comm, rowsource_sq_norm_sum(&tr->train_rows, acc, &ok));
    if (st != XT_OK) return st;
    if (!ok) acc[0] = acc[1] = 0, acc[2] = 1;
    comm_allreduce_sum_i64(tr->comm, acc, 3);
    double sum = exact_units_value(acc);
    size_t n = tr->tinfo.n;
    size_t w = tr->cfg.model.type == MODEL_MULTILABEL ? tr->K : 1; /* loss.h's d_i */
    plan_lr_measured(&tr->plan, sum / (double)(n ? n : 1), n, w, acc[2] == 0 && acc[0] >= 0);
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
    double budget = tr->plan.budget, left = never ? budget : budget - tr->data_bytes;
    SourceOptions o = {.mode = never ? STREAM_FALSE : STREAM_AUTO,
                       .budget = budget > 0 ? (left > 1.0 ? left : 1.0) : 0.0,
                       .compact = false, .csr_batches = tr->plan.csr_batches,
                       .probs = tr->loss_kind == LOSS_SOFTMAX_PROBS, .what = "data.val", .local_ranks = comm_local_size(tr->comm)};
    bool streamed;
    Status st = rowsource_open(&tr->val_rows, &tr->val, &tr->vinfo, lo, hi,
                               tr->vinfo.target == TARGET_DENSE ? 0 : tr->K, &o, tr->comm,
                               &streamed);
    if (st == XT_OK) rowsource_set_normalization(&tr->val_rows, tr->shift, tr->mul);
    return st;
}

Status trainer_setup_data(Trainer *tr)
{
    Status st = probe_splits(tr);
    if (st == XT_OK) st = plan_training_data(tr);
    if (st == XT_OK) st = load_shard(tr);
    if (st == XT_OK) st = decide_classes(tr);
    if (st == XT_OK && tr->tinfo.target != TARGET_DENSE && tr->test_info.n > 0)
        st = dataset_check_labels(&tr->test_info, tr->K, tr->comm);
    if (st == XT_OK && tr->cfg.loss.class_weights_balanced)
        st = dataset_balanced_weights(&tr->train, tr->K, (long)tr->cfg.loss.ignore_index, tr->comm,
                                      &tr->class_w);
    if (st == XT_OK) st = fit_normalization(tr);
    if (st == XT_OK) st = measure_lr(tr);
    if (st == XT_OK) st = load_val(tr);
    return st;
}

void trainer_free_data(Trainer *tr)
{
    rowsource_free(&tr->train_rows);
    rowsource_free(&tr->val_rows);
    dataset_free(&tr->train);
    dataset_free(&tr->val);
    sampler_free(&tr->sampler);
    free(tr->shift);
    free(tr->mul);
    tr->shift = tr->mul = NULL;
}
