/* plan: the run's decisions (see plan.h). */
#include "plan.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"
#include "linalg.h"
#include "optim.h"
#include "rowsource.h"
#include "shard.h"
#include "strutil.h"

/* optim.lr = auto and optim.momentum = auto: the optimiser's own (docs/semantics.md has the
 * measurements that chose them). */
#define AUTO_LR_SGD 0.01
#define AUTO_LR_ADAPTIVE 0.001
#define AUTO_MOMENTUM 0.9
/* SGD on a linear model over rows as they are or max-abs scaled: lr ||x||^2 / B, the step a
 * row's own logit takes (its gradient's (p - y) scaled), for the rows' mean ||x||^2
 * (docs/sparse.md has the measurements on five generated sparse sets and a real text one:
 * 0.5 was at the edge of stability on rows of norm 1, momentum 0.9 at 0.01 under-trained
 * every set; MLPs diverged and keep the defaults). */
#define PLAN_LR_ROWS_STEP 0.25
/* train.batch_size = auto: this many rows, unless the split gives fewer than AUTO_MIN_STEPS
 * steps per epoch with it (small tables: 150 rows made one update per epoch). */
#define AUTO_BATCH 128
#define AUTO_MIN_STEPS 10
/* Rows per block of train.shuffle = block when X is contiguous and no size is given. */
#define DEFAULT_SHUFFLE_BLOCK 1024
/* train.micro_batches = auto: one group per this many rows of the batch, at least the floor
 * (a full batch too: the partial gradients' memory). */
#define AUTO_GROUP_ROWS 128
#define AUTO_GROUPS_MIN 8
/* comm.overlap = auto wants each ring message (a bucket / P) at least this large: the ring
 * pays 2 (P - 1) latencies per bucket. */
#define RING_MIN_MESSAGE (64u << 10)
/* A full-batch solver reads its rows in micro-batches of about this many bytes of features
 * (the micro-batch stays in cache between forward and backward), within these row counts. */
#define SOLVER_PIECE_BYTES ((size_t)4 << 20)
#define SOLVER_PIECE_MIN 256
#define SOLVER_PIECE_MAX 65536
/* A solver's iteration cap when train.epochs is not given (the key's largest value). */
#define SOLVER_EPOCHS 1000000

size_t plan_max_rank_rows(size_t n, size_t S, size_t G, int P, size_t *lo, size_t *hi)
{
    size_t most = 0;
    *lo = *hi = 0;
    for (int r = 0; r < P; r++) {
        size_t s_lo, s_hi;
        shard_rank_shards_grouped(S, G, P, r, &s_lo, &s_hi);
        size_t a = shard_row_begin(n, S, s_lo), b = shard_row_begin(n, S, s_hi);
        if (b - a > most || r == 0) {
            most = b - a;
            *lo = a;
            *hi = b;
        }
    }
    return most;
}

/* train.micro_batches resolved (reproducible mode only). */
static void plan_groups(Plan *p, const Config *c)
{
    p->G = 0;
    if (!c->train.reproducible) {
        snprintf(p->groups_why, sizeof p->groups_why, "train.reproducible = false");
        return;
    }
    if (c->train.micro_batches > 0) {
        p->G = (size_t)c->train.micro_batches;
        snprintf(p->groups_why, sizeof p->groups_why, "train.micro_batches = %zu", p->G);
        return;
    }
    size_t g = p->global_batch / AUTO_GROUP_ROWS; /* before train.accumulate */
    if (g < AUTO_GROUPS_MIN) g = AUTO_GROUPS_MIN;
    p->G = g < p->S ? g : p->S;
    snprintf(p->groups_why, sizeof p->groups_why,
             "train.micro_batches = auto: batch / %d, at least %d, at most the shards",
             AUTO_GROUP_ROWS, AUTO_GROUPS_MIN);
}

static void plan_shuffle(Plan *p, const Config *c, const PlanFacts *f)
{
    p->shuffle_block = 0;
    p->shuffle_why[0] = '\0';
    if (c->train.shuffle != SHUFFLE_BLOCK || p->solver) return;
    if (c->train.shuffle_block > 0) {
        p->shuffle_block = (size_t)c->train.shuffle_block;
        snprintf(p->shuffle_why, sizeof p->shuffle_why, "train.shuffle_block");
    } else if (f->x_chunk_rows > 0) {
        p->shuffle_block = f->x_chunk_rows;
        snprintf(p->shuffle_why, sizeof p->shuffle_why, "X's rows per chunk");
    } else {
        p->shuffle_block = DEFAULT_SHUFFLE_BLOCK;
        snprintf(p->shuffle_why, sizeof p->shuffle_why, "default: X is not chunked");
    }
}

/* data.normalize = auto: the scale attribute when X has one, else standardisation; scale
 * without the attribute is refused (one global max |x| would squash every feature by the
 * largest one). */
static Status plan_norm(Plan *p, const Config *c, const PlanFacts *f, char *err, size_t len)
{
    p->norm = c->data.normalize;
    p->norm_auto_sparse = false;
    if (f->x_csr && p->norm == NORM_AUTO && !f->x_has_scale) { /* docs/sparse.md */
        p->norm = NORM_MAXABS; /* or none: plan_norm_measured */
        p->norm_auto_sparse = true;
        snprintf(p->norm_why, sizeof p->norm_why, "auto: X is sparse (CSR), never centred, "
                 "has no scale attribute, and some |x| > 1");
        return XT_OK;
    }
    if (f->x_csr && p->norm == NORM_STANDARDIZE) {
        snprintf(err, len, "data.normalize = standardize: %s/X is sparse (CSR), and centring "
                 "would make every zero a non-zero; use data.normalize = none or auto",
                 c->data.train);
        return XT_ERR_USAGE;
    }
    if (p->norm == NORM_AUTO) {
        p->norm = f->x_has_scale ? NORM_SCALE : NORM_STANDARDIZE;
        snprintf(p->norm_why, sizeof p->norm_why, "auto: X has %s scale attribute",
                 f->x_has_scale ? "a" : "no");
    } else {
        snprintf(p->norm_why, sizeof p->norm_why, "%s",
                 p->norm == NORM_NONE ? "data.normalize = none" : "as configured");
    }
    if (p->norm == NORM_SCALE && !f->x_has_scale) {
        snprintf(err, len, "data.normalize = scale: %s/X has no scale attribute to multiply by; "
                 "use data.normalize = standardize (or auto), or add the attribute (e.g. scale = "
                 "1/255 for 8-bit pixels)", c->data.train);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

void plan_norm_measured(Plan *p, double max_abs)
{
    if (!p->norm_auto_sparse || !(max_abs <= 1.0)) return;
    p->norm = NORM_NONE;
    snprintf(p->norm_why, sizeof p->norm_why, "auto: X is sparse (CSR), never centred, has no "
             "scale attribute, and every |x| <= 1 already (max %g)", max_abs);
}

/* Whether the training rows are streamed; refuses what cannot run in the budget. */
static Status plan_stream(Plan *p, const Config *c, const PlanFacts *f, char *err, size_t len)
{
    size_t lo, hi;
    size_t rows = plan_max_rank_rows(f->n, p->S, p->G, f->at.P, &lo, &hi);
    bool never = c->data.stream == DATA_STREAM_FALSE;
    double index = (double)rows * sizeof(uint32_t) * (never ? 1.0 : 2.0);
    char hb[32], hn[32];
    strutil_human_bytes(p->budget, hb, sizeof hb);
    if (p->budget > 0 && index > p->budget) {
        strutil_human_bytes(index, hn, sizeof hn);
        snprintf(err, len, "%s: rows [%zu, %zu) need about %s for their shuffle order alone (4 "
                 "bytes per row%s), more than a rank's budget of %s (%s): use more ranks (or "
                 "nodes), or raise data.memory_budget", c->data.train, lo, hi, hn,
                 never ? "" : ", twice when streamed", hb, p->budget_why);
        return XT_ERR_USAGE;
    }
    double need = (double)rows * f->row_bytes;
    RowHolding h = rowsource_holding((StreamMode)c->data.stream, need, p->budget);
    if (h == HOLD_REFUSED) {
        strutil_human_bytes(need, hn, sizeof hn);
        snprintf(err, len, "data.train: %s rows [%zu, %zu) need about %s in memory, more than "
                 "a rank's data.memory_budget of %s, and data.stream = false: set data.stream = "
                 "auto (or true) to stream them from the file, raise data.memory_budget, or use "
                 "more ranks (or nodes)", c->data.train, lo, hi, hn, hb);
        return XT_ERR_USAGE;
    }
    p->stream = h == HOLD_STREAM;
    /* a streamed CSR rank holds its indptr slice (8 bytes a row) besides the two orders */
    double held = index + (double)rows * sizeof(int64_t);
    if (p->stream && f->x_csr && p->budget > 0 && held > p->budget) {
        strutil_human_bytes(held, hn, sizeof hn);
        snprintf(err, len, "%s: rows [%zu, %zu) streamed as CSR need about %s for their indptr "
                 "slice and shuffle orders alone (16 bytes per row), more than a rank's budget "
                 "of %s (%s): use more ranks (or nodes), or raise data.memory_budget",
                 c->data.train, lo, hi, hn, hb, p->budget_why);
        return XT_ERR_USAGE;
    }
    char rows_why[120] = "";
    if (f->x_csr) /* CSR rows are counted by their non-zeros (dataset_row_bytes) */
        snprintf(rows_why, sizeof rows_why, " (CSR: %.1f non-zeros a row on average, about "
                 "%.0f bytes a row in memory)", (double)f->x_nnz / (double)f->n, f->row_bytes);
    snprintf(p->stream_why, sizeof p->stream_why, "%s%s",
             c->data.stream == DATA_STREAM_TRUE    ? "data.stream = true"
             : c->data.stream == DATA_STREAM_FALSE ? "data.stream = false"
             : p->stream ? "data.stream = auto: the rows do not fit the budget"
                         : "data.stream = auto: they fit the budget", rows_why);
    return XT_OK;
}

/* The most rows a micro-batch of a full-batch pass would hold in one piece: a group's rows
 * (P-independent) in the reproducible mode, else the largest rank's. */
static size_t pass_rows(const Plan *p, const PlanFacts *f)
{
    size_t lo, hi, most = 0;
    if (p->G == 0) return plan_max_rank_rows(f->n, p->S, 0, f->at.P, &lo, &hi);
    for (size_t g = 0; g < p->G; g++) {
        size_t a = shard_row_begin(f->n, p->S, shard_row_begin(p->S, p->G, g));
        size_t b = shard_row_begin(f->n, p->S, shard_row_begin(p->S, p->G, g + 1));
        if (b - a > most) most = b - a;
    }
    return most;
}

/* optim.optimizer = lbfgs or newton: the full batch each pass, in file order, read in
 * pieces of about SOLVER_PIECE_BYTES (train.accumulate = 1) or train.accumulate pieces; the
 * iteration cap. */
/* newton's preconditioner: optim.precondition, auto = on for CSR rows. Measured
 * (docs/solvers.md): on long-tailed sparse features, whose Hessian diagonal spans decades,
 * it cut the passes to the optimum 3.5-fold; on dense Fashion-MNIST pixels it cost up to a
 * third more (softmax: the classes' coupling is off the diagonal). */
static void plan_precond(Plan *p, const Config *c, const PlanFacts *f)
{
    OptimPrecond m = c->optim.precondition;
    p->precond = c->optim.optimizer == OPT_NEWTON &&
                 (m == PRECOND_TRUE || (m == PRECOND_AUTO && f->x_csr));
    if (m != PRECOND_AUTO)
        snprintf(p->precond_why, sizeof p->precond_why, "optim.precondition = %s",
                 m == PRECOND_TRUE ? "true" : "false");
    else
        snprintf(p->precond_why, sizeof p->precond_why, "optim.precondition = auto: %s",
                 f->x_csr ? "sparse (CSR) rows, whose features' frequencies span decades"
                          : "dense rows (the diagonal pays on sparse data)");
}

static void plan_solver(Plan *p, const Config *c, const PlanFacts *f)
{
    p->global_batch = 0;
    snprintf(p->batch_why, sizeof p->batch_why, "the full batch: a full-batch solver");
    size_t rows = pass_rows(p, f);
    /* a row's bytes as the pass holds it: D floats, or a CSR row's values and indices (the
     * reproducible mode densifies) */
    double row_bytes = f->x_csr && p->G == 0
                           ? 8.0 * (double)f->x_nnz / (double)(f->n ? f->n : 1) + 8.0
                           : 4.0 * (double)(f->d > 0 ? f->d : 1);
    size_t target = (size_t)((double)SOLVER_PIECE_BYTES / row_bytes);
    target = target < SOLVER_PIECE_MIN ? SOLVER_PIECE_MIN
             : target > SOLVER_PIECE_MAX ? SOLVER_PIECE_MAX : target;
    if (c->train.accumulate == 1) p->pieces = rows > target ? (rows + target - 1) / target : 1;
    size_t most = (p->G > 0 ? p->G : 1) * p->pieces;
    if (p->G > 0 && most > EXACT_MAX_TERMS) p->pieces = EXACT_MAX_TERMS / p->G;
    p->solver_rows = (rows + p->pieces - 1) / p->pieces;
    snprintf(p->solver_why, sizeof p->solver_why, "%s: micro-batches of at most %zu rows (%s)",
             p->G > 0 ? "each group's rows" : "this rank's rows", p->solver_rows,
             c->train.accumulate > 1 ? "train.accumulate pieces"
                                     : f->x_csr && p->G == 0
                                         ? "about 4 MiB of CSR rows, kept in cache from "
                                           "forward to backward"
                                         : "about 4 MiB of features, kept in cache from forward "
                                           "to backward");
    plan_precond(p, c, f);
    if (config_changed(c, "train", "epochs")) {
        p->epochs = c->train.epochs;
        snprintf(p->epochs_why, sizeof p->epochs_why, "train.epochs = %lld iterations at most",
                 (long long)c->train.epochs);
    } else {
        p->epochs = SOLVER_EPOCHS;
        snprintf(p->epochs_why, sizeof p->epochs_why, "train.epochs not set: no iteration cap; "
                 "optim.tol, optim.ftol or optim.max_passes = %lld ends the run",
                 (long long)c->optim.max_passes);
    }
    /* enabled's default is true, so only a monitor named by the user asks for it */
    if (!c->early_stopping.enabled || config_changed(c, "early_stopping", "monitor")) return;
    p->early_stop = false; /* patience on a monitored value would stop short of the optimum */
    snprintf(p->early_stop_why, sizeof p->early_stop_why, "off: a full-batch solver stops at "
             "its tolerances; naming early_stopping.monitor (e.g. val_loss) stops it on that "
             "value instead (model.h5 then keeps the best iteration, else the last)");
}

/* The learning rate and momentum the optimiser runs with. */
static void plan_optim(Plan *p, const Config *c)
{
    Optimizer o = c->optim.optimizer;
    if (config_is_solver(o)) { /* config.c refuses optim.lr and optim.momentum for them */
        p->lr = AUTO_LR_ADAPTIVE; /* unused: no optimiser step */
        p->momentum = 0.0;
        snprintf(p->lr_why, sizeof p->lr_why, "none: the %s chooses every step",
                 o == OPT_LBFGS ? "line search" : "trust region");
        return;
    }
    bool sgd_like = o == OPT_SGD || o == OPT_LARS; /* the optimisers with a momentum */
    bool lr_auto = config_is_auto_f64(c->optim.lr);
    bool mom_auto = sgd_like && config_is_auto_f64(c->optim.momentum);
    p->lr = lr_auto ? (sgd_like ? AUTO_LR_SGD : AUTO_LR_ADAPTIVE) : c->optim.lr;
    p->momentum = mom_auto ? AUTO_MOMENTUM
                  : config_is_auto_f64(c->optim.momentum) ? 0.0 : c->optim.momentum;
    const char *name = o == OPT_SGD ? "sgd" : o == OPT_LARS ? "lars" : o == OPT_ADAM ? "adam"
                       : o == OPT_ADAMW ? "adamw" : "lamb";
    if (!lr_auto && !mom_auto)
        snprintf(p->lr_why, sizeof p->lr_why, "as configured");
    else
        snprintf(p->lr_why, sizeof p->lr_why, "%s%s%s = auto: %s's own", lr_auto ? "optim.lr" : "",
                 lr_auto && mom_auto ? " and " : "", mom_auto ? "optim.momentum" : "", name);
}

/* optim.lr = auto for SGD on a linear model whose features keep their zeros and their
 * column's scale (data.normalize = none or maxabs: CSR data's auto, which never centres or
 * scales by an attribute): from the rows' norms, plan_lr_measured, with momentum 0 when it
 * is auto. A condition on the normalisation alone: the same rows stored dense or CSR get
 * the same value. After plan_norm. */
static void plan_lr_rows(Plan *p, const Config *c)
{
    p->lr_from_rows = false;
    bool own_scale = p->norm == NORM_NONE || p->norm == NORM_MAXABS;
    if (c->optim.optimizer != OPT_SGD || !config_is_auto_f64(c->optim.lr) ||
        c->model.type == MODEL_MLP || !own_scale)
        return;
    p->lr_from_rows = true;
    if (config_is_auto_f64(c->optim.momentum)) p->momentum = 0.0;
    snprintf(p->lr_why, sizeof p->lr_why, "optim.lr = auto: from the rows' norms");
}

void plan_lr_measured(Plan *p, double mean_sq_norm, size_t n, size_t row_weight, bool ok)
{
    if (!p->lr_from_rows) return;
    p->lr_from_rows = false;
    size_t B = p->global_batch ? p->global_batch : n;
    double lr = PLAN_LR_ROWS_STEP * (double)(B * row_weight) / mean_sq_norm;
    lr *= 1.0 - p->momentum;
    if (!ok || !(mean_sq_norm > 0.0) || !isfinite(lr) || !(lr > 0.0)) {
        p->lr = AUTO_LR_SGD;
        snprintf(p->lr_why, sizeof p->lr_why, "optim.lr = auto: sgd's own (the rows' mean "
                 "squared norm is %s)", ok ? "zero" : "beyond what can be summed exactly");
        return;
    }
    char two[32]; /* two significant digits: a value to write in a config */
    snprintf(two, sizeof two, "%.2g", lr);
    p->lr = strtod(two, NULL);
    char outs[64] = "";
    if (row_weight > 1)
        snprintf(outs, sizeof outs, " x %zu outputs (the loss's mean counts each)", row_weight);
    snprintf(p->lr_why, sizeof p->lr_why, "optim.lr = auto for sgd on rows not centred "
             "(data.normalize = %s)%s: %g x %zu rows per update%s / %.4g, the rows' mean "
             "squared norm%s (docs/sparse.md)", config_normalize_name(p->norm),
             p->momentum == 0.0 ? ", no momentum" : "", PLAN_LR_ROWS_STEP, B, outs, mean_sq_norm,
             p->momentum == 0.0 ? "" : ", x (1 - momentum)");
}

/* The global batch of one micro-step (train.accumulate multiplies it later). */
static void plan_batch(Plan *p, const Config *c, const PlanFacts *f)
{
    size_t P = (size_t)f->at.P;
    if (c->train.batch_per_rank > 0) {
        p->global_batch = (size_t)c->train.batch_per_rank * P;
        snprintf(p->batch_why, sizeof p->batch_why, "train.batch_per_rank x P");
    } else if (c->train.batch_size != CONFIG_AUTO_I64) {
        p->global_batch = (size_t)c->train.batch_size;
        snprintf(p->batch_why, sizeof p->batch_why, "train.batch_size");
    } else if (f->n >= (size_t)AUTO_BATCH * AUTO_MIN_STEPS) {
        p->global_batch = AUTO_BATCH;
        snprintf(p->batch_why, sizeof p->batch_why, "train.batch_size = auto: %d", AUTO_BATCH);
    } else {
        size_t b = f->n / AUTO_MIN_STEPS;
        p->global_batch = b > P ? b : P;
        snprintf(p->batch_why, sizeof p->batch_why,
                 "train.batch_size = auto: a tenth of the %zu training rows (at least 1 per "
                 "rank), for %d steps per epoch; %d would give fewer", f->n, AUTO_MIN_STEPS,
                 AUTO_BATCH);
    }
}

/* CSR X: batches CSR (sparse kernels), or densified in reproducible mode (docs/sparse.md). */
static void plan_csr(Plan *p, const PlanFacts *f)
{
    p->csr_batches = f->x_csr && p->G == 0;
    snprintf(p->csr_why, sizeof p->csr_why, "%s",
             !f->x_csr ? "X is dense"
             : p->G ? "train.reproducible: each micro-batch densified, the same bits as dense X"
                    : "sparse kernels for the first layer, memory O(non-zeros)");
}

Status plan_data(Plan *p, const Config *c, const PlanFacts *f, char *err, size_t len)
{
    plan_optim(p, c);
    plan_batch(p, c, f);
    p->S = shard_count(f->n, (size_t)c->data.virtual_shards);
    plan_groups(p, c);
    p->global_batch *= (size_t)c->train.accumulate; /* 0 stays the full batch */
    p->pieces = (size_t)c->train.accumulate;
    p->solver = config_is_solver(c->optim.optimizer);
    p->epochs = c->train.epochs;
    snprintf(p->epochs_why, sizeof p->epochs_why, "train.epochs");
    p->solver_rows = 0;
    p->solver_why[0] = '\0';
    p->early_stop = c->early_stopping.enabled;
    snprintf(p->early_stop_why, sizeof p->early_stop_why, "early_stopping.enabled");
    if (p->solver) plan_solver(p, c, f);
    if (p->G * p->pieces > EXACT_MAX_TERMS) {
        snprintf(err, len, "train.accumulate = %zu: train.micro_batches x train.accumulate = %zu "
                 "exceeds %d micro-batches per update", p->pieces, p->G * p->pieces,
                 EXACT_MAX_TERMS);
        return XT_ERR_USAGE;
    }
    plan_shuffle(p, c, f);
    p->budget = f->budget;
    snprintf(p->budget_why, sizeof p->budget_why, "%s", f->budget_why ? f->budget_why : "");
    Status st = plan_norm(p, c, f, err, len);
    plan_lr_rows(p, c);
    size_t P = (size_t)f->at.P;
    plan_csr(p, f);
    if (st == XT_OK && f->n > 0 && P <= p->S && p->G <= p->S && (p->G == 0 || P <= p->G))
        st = plan_stream(p, c, f, err, len); /* else sampler_init says what is wrong */
    return st;
}

/* comm.overlap resolved. */
static void plan_overlap(Plan *p, const Config *c, const CommPlacement *at, const PlanModelFacts *m)
{
    const char *conflict = config_overlap_conflict(c);
    p->overlap = false;
    if (p->solver) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "a full-batch solver reduces once per "
                 "pass, after it");
    } else if (c->comm.overlap == OVERLAP_FALSE) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = false");
    } else if (at->P == 1) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "one rank: nothing to reduce");
    } else if (c->comm.overlap == OVERLAP_TRUE) {
        p->overlap = true;
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = true");
    } else if (p->sparse) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = auto: off for sparse "
                 "data, whose step exchanges the touched columns of W_1 after backward");
    } else if (conflict) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = auto: off with %s",
                 conflict);
    } else if (m->buckets < 2) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = auto: off, one bucket "
                 "of layers merged to 256 KiB, whose reduction could only start when backward "
                 "ends");
    } else if (at->nodes < 2) {
        snprintf(p->overlap_why, sizeof p->overlap_why,
                 "comm.overlap = auto: off, one node: the reduction is fast");
    } else if (at->local_max > 1) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = auto: off, several ranks "
                 "per node: the node's shared memory and the sharded update serve them");
    } else if (m->smallest / (size_t)at->P < RING_MIN_MESSAGE) {
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = auto: off, ring "
                 "messages under 64 KiB at this P: latency-bound");
    } else {
        p->overlap = true;
        snprintf(p->overlap_why, sizeof p->overlap_why, "comm.overlap = auto: %d buckets of "
                 "layers on %d nodes, one rank each, ring messages of %zu KiB or more",
                 m->buckets, at->nodes, m->smallest / (size_t)at->P / 1024);
    }
}

static void plan_shard(Plan *p, const Config *c, const CommPlacement *at)
{
    const char *v = c->optim.shard == SHARD_TRUE ? "true" : "auto";
    p->shard = c->optim.shard != SHARD_FALSE && at->P > 1 && !p->overlap && !p->solver &&
               !p->sparse;
    if (p->sparse)
        snprintf(p->shard_why, sizeof p->shard_why, "optim.shard = auto: off for sparse data: "
                 "every rank updates the whole model, the step exchanges only the touched "
                 "columns of W_1");
    else if (p->solver && c->optim.shard != SHARD_FALSE)
        snprintf(p->shard_why, sizeof p->shard_why, "optim.shard = %s: off for a full-batch "
                 "solver, which updates once per pass, the same way on every rank", v);
    else if (p->overlap && c->optim.shard == SHARD_AUTO && at->P > 1)
        snprintf(p->shard_why, sizeof p->shard_why, "optim.shard = auto: off with overlap");
    else if (c->optim.shard == SHARD_FALSE)
        snprintf(p->shard_why, sizeof p->shard_why, "optim.shard = false");
    else if (at->P == 1)
        snprintf(p->shard_why, sizeof p->shard_why, "optim.shard = %s: one rank, nothing to "
                 "share", v);
    else
        snprintf(p->shard_why, sizeof p->shard_why, "optim.shard = %s",
                 c->optim.shard == SHARD_TRUE ? "true" : "auto: P > 1");
}

/* comm.allreduce resolved. auto decides by the ranks' placement, never by a timing: a timed
 * choice could differ between two runs of one configuration, and the two paths sum in
 * different orders, so the models would differ in their last bits. Spinning barriers need a
 * CPU per rank. */
static void plan_path(Plan *p, const Config *c, const CommPlacement *at)
{
    p->shm = false;
    p->shm_asked = c->comm.allreduce == ALLREDUCE_SHM;
    p->wide = p->solver && p->G == 0;
    if (p->touched) {
        snprintf(p->path_why, sizeof p->path_why, "plain SGD on sparse data: each step zeroes, "
                 "exchanges and updates only the columns of W_1 its rows touched, W_1 kept by column "
                 "in memory so that each is one run (the records allgathered when that moves "
                 "fewer bytes, else the allreduce; docs/sparse.md)");
    } else if (p->sparse) {
        snprintf(p->path_why, sizeof p->path_why, "sparse data: each step, the touched columns "
                 "of W_1 allgathered when a rank then receives fewer bytes than an allreduce "
                 "moves, else the allreduce (docs/sparse.md)");
    } else if (p->overlap) {
        snprintf(p->path_why, sizeof p->path_why, "%s", p->overlap_why);
    } else if (c->comm.allreduce == ALLREDUCE_MPI) {
        snprintf(p->path_why, sizeof p->path_why, "comm.allreduce = mpi");
    } else if (c->comm.allreduce == ALLREDUCE_SHM) {
        p->shm = true;
        snprintf(p->path_why, sizeof p->path_why, "comm.allreduce = shm");
    } else if (at->oversubscribed) {
        snprintf(p->path_why, sizeof p->path_why, "comm.allreduce = auto: %d ranks share %d "
                 "CPU(s) on a node; shared memory needs a CPU per rank", at->local, at->node_cpus);
    } else if (at->local_max < 2) {
        snprintf(p->path_why, sizeof p->path_why,
                 "comm.allreduce = auto: one rank per node: nothing to share");
    } else if (at->local_min != at->local_max) {
        snprintf(p->path_why, sizeof p->path_why, "comm.allreduce = auto: the nodes run "
                 "different numbers of ranks (%d to %d)", at->local_min, at->local_max);
    } else {
        p->shm = true;
        snprintf(p->path_why, sizeof p->path_why, "comm.allreduce = auto: a CPU per rank, %d "
                 "ranks on %d CPUs", at->local, at->node_cpus);
    }
    if (p->wide) { /* the path as above, for sums in double: the reason prefixed */
        static const char pre[] = "a full-batch solver: loss and gradient sums in double, "
                                  "whose line search and trust region compare objectives to "
                                  "about 1e-15; ";
        const size_t lp = sizeof pre - 1, cap = sizeof p->path_why - 1 - lp;
        size_t lw = strlen(p->path_why);
        if (lw > cap) lw = cap;
        memmove(p->path_why + lp, p->path_why, lw);
        memcpy(p->path_why, pre, lp);
        p->path_why[lp + lw] = '\0';
    }
}

/* The sparse exchange (reduce_sparse.c) for CSR batches across nodes, unless a key asks for
 * what it excludes (overlap, a sharded update, the shared window). On one node the dense
 * allreduce moves memory as fast as the exchange's scan of W_1 reads it (bench/exchange.c:
 * 6.0 against 8.4 ms per step at D = 100,000, H = 60, P = 2, 2026-12-07), so it stays. */
static void plan_sparse(Plan *p, const Config *c, const CommPlacement *at)
{
    bool open = p->csr_batches && !p->solver && c->comm.overlap != OVERLAP_TRUE &&
                c->optim.shard != SHARD_TRUE && c->comm.allreduce != ALLREDUCE_SHM;
    /* plain SGD: a zero gradient moves nothing, so a step needs only its touched columns,
     * on one node too (docs/sparse.md) */
    OptimSettings plain = {.kind = c->optim.optimizer, .momentum = p->momentum,
                           .weight_decay = c->optim.weight_decay,
                           .clip_norm = c->optim.clip_norm};
    p->touched = open && optim_is_plain(&plain);
    p->sparse = p->touched || (open && at->P > 1 && at->nodes > 1);
}

void plan_step(Plan *p, const Config *c, const CommPlacement *at, const PlanModelFacts *m)
{
    plan_sparse(p, c, at);
    plan_overlap(p, c, at, m);
    plan_shard(p, c, at);
    plan_path(p, c, at);
}

int plan_apply_blas(char *why, size_t len)
{
    linalg_set_blas_threads(plan_blas(linalg_threads_from_env(), linalg_blas_threads(), why, len));
    return linalg_blas_threads();
}

int plan_blas(bool env_sets, int env_threads, char *why, size_t len)
{
    if (env_sets) {
        snprintf(why, len, "as the environment sets it");
        return env_threads > 0 ? env_threads : 1;
    }
    snprintf(why, len, "default: one per rank, the ranks fill the cores");
    return 1;
}
