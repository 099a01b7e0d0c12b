/* train_solver: a full-batch solver (optim.optimizer = lbfgs or newton) as the trainer's
 * method of an epoch (trainer.h: TrainMethod). One epoch is one iteration of solver.h; each
 * of its evaluations is one pass over every training row through the step plan (the full
 * batch, in file order, in micro-batches; the reproducible mode's groups) and ONE reduction
 * (reduce.h: wide, or exact in the reproducible mode):
 *
 *   F and g   read -> forward -> loss (dL/dz) -> backward into the reduction's partial; the
 *             reduction's totals carry the loss sum, its denominator W, the right and all
 *             decisions and the non-finite and signal flags;
 *             F = loss / W + (lambda / 2) ||weights||^2,  g = sums / W + lambda weights;
 *   H v       (newton, linear models) the model over V gives the logits' change u = X v ->
 *             loss_curvature_times with x_k's curvature -> backward into the partial;
 *             H v = sums / W + lambda v;
 *   diag      (newton, once per new iterate) x_k's curvature -> loss_curvature_diag hd
 *             -> backward over the squared rows: sum_i hd_i x_ij^2 -> solver_preconditioner.
 * x_k's curvature (loss_curvature of the logits z = X w: the softmax probabilities, or the
 * sigmoids' s (1 - s)) is computed by the first of these passes at each new x_k and kept per
 * row for the others (as LIBLINEAR keeps its D): their forward is then X v alone, without
 * X w and the exponentials again.
 * lambda = 1 / (C W) (optim.C: then C W F is scikit-learn's and LIBLINEAR's objective
 * 1/2 ||w||^2 + C sum_i loss_i), or optim.weight_decay when that is given. Intercepts are
 * not penalised.
 *
 * Every rank takes the solver's decisions from the reduction's results, which are the same
 * bits on every rank (the exact sums by construction; the double allreduce because MPI
 * delivers one result to all): solver.h relies on it and each iteration ends with the
 * replica check (train.check_every > 0). A signal rides in every pass's reduction: the
 * iteration is abandoned on every rank at the same pass and the checkpoint holds the state
 * it started from, so a resumed run repeats it with the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "linalg.h"
#include "log.h"
#include "solver.h"
#include "trainer.h"

typedef struct TrainSolver {
    Trainer *tr;
    Solver s;
    SolverPenalty pen;   /* lambda: optim.weight_decay, or 1 / (C W) after the first pass */
    bool lambda_given;   /* optim.weight_decay */
    double weight;       /* W, the loss's denominator (the same every pass; checkpointed: a
                            resumed newton iteration's products need it before any F) */
    StateList state;     /* the solver's, checkpointed in the optimiser's place */
    EpochRun *er;        /* the epoch being run (its timers) */
    double pass_s;       /* seconds spent in passes during the current iteration */
    /* newton: the model over the vector V of H v (its parameters are the product's vector) */
    Model vmodel;
    float *curv, *rw;    /* (rows, K), (rows): x_k's curvature per local row, loss_curvature */
    uint64_t curv_at;    /* the solver's xk_version it was made at, when curv_ok */
    bool curv_ok;
    bool curv_fill;      /* the current pass makes it */
} TrainSolver;

/* The rows of a micro-batch: a solver's sampler keeps file order, so they are the local
 * rows [rows[0], rows[0] + m), read in one piece (memory, stream or CSR alike) in the
 * batch's form. */
static void read_rows(Trainer *tr, const MicroBatch *mb, EpochRun *er)
{
    XT_ASSERT(mb->m > 0 && mb->rows[mb->m - 1] == mb->rows[0] + mb->m - 1);
    double t0 = comm_wtime();
    rowsource_read_batch(&tr->train_rows, mb->rows[0], mb->m, &tr->batch);
    er->io += comm_wtime() - t0;
}

/* The pass's reduction is over: its bookkeeping. Returns what the solver is told. */
static SolverEval end_pass(TrainSolver *ts, const StepTotals *tot, const ReduceTimes *rt)
{
    Trainer *tr = ts->tr;
    EpochRun *er = ts->er;
    er->allreduce += rt->comm_s;
    er->reduce += rt->work_s;
    er->rows_now += (double)tr->tinfo.n;
    tr->step++;
    if (tot->signal) return SOLVER_EVAL_INTERRUPTED; /* every rank sees the same sum */
    return tot->nonfinite ? SOLVER_EVAL_NONFINITE : SOLVER_EVAL_OK;
}

/* W, and lambda = 1 / (C W) unless optim.weight_decay gave it. */
static void set_weight(TrainSolver *ts, double weight)
{
    ts->weight = weight;
    if (!ts->lambda_given) ts->pen.lambda = 1.0 / (ts->tr->cfg.optim.C * weight);
}

/* A softmax's output intercepts can all move by one amount without changing F (the softmax
 * and the penalty do not see it): their part of every gradient and of every H v sums to 0,
 * exactly in arithmetic, but in float32 not quite, and along that direction H has no
 * curvature, so Newton's CG multiplied the rounding into steps of the intercepts' common
 * level (seen: intercepts of 2.05 for 0.073 after 300 iterations, the same predictions).
 * Removing the mean from that part keeps the iterates where they start, at sum 0, which is
 * also where scikit-learn's are. */
static void center_intercepts(const TrainSolver *ts, float *v)
{
    const ModelShape *s = &ts->tr->model.shape;
    const size_t KO = model_outputs(s);
    if (s->head != HEAD_SOFTMAX || KO < 2) return;
    float *b = v + s->b_off[s->n_layers - 1];
    double mean = 0.0;
    for (size_t k = 0; k < KO; k++) mean += (double)b[k];
    mean /= (double)KO;
    for (size_t k = 0; k < KO; k++) b[k] = (float)((double)b[k] - mean);
}

/* One pass: every micro-batch of the step plan read and handed to `batch`, then the
 * reduction finished (its sums in *sums). */
typedef void (*PassBatch)(TrainSolver *ts, const MicroBatch *mb, bool last);

static SolverEval run_pass(TrainSolver *ts, PassBatch batch, StepTotals *tot,
                           const float **sums)
{
    Trainer *tr = ts->tr;
    const StepPlan *p = &tr->steps[0];
    comm_watch_position(tr->comm, ts->er->epoch, tr->step);
    reduce_begin(tr->red);
    for (size_t i = 0; i < p->n; i++) {
        read_rows(tr, &p->mb[i], ts->er);
        batch(ts, &p->mb[i], i + 1 == p->n);
    }
    fault_before_reduce(tr->r, tr->step);
    ReduceTimes rt;
    *sums = reduce_finish(tr->red, tot, &rt);
    return end_pass(ts, tot, &rt);
}

static void fg_batch(TrainSolver *ts, const MicroBatch *mb, bool last)
{
    trainer_batch_gradient(ts->tr, mb->m, mb->part, last, ts->er);
}

/* The second-order passes' end of a micro-batch, after the forward (t1 to t2): dz (the loss's
 * curvature, computed by the caller) back through the model into the reduction's partial. */
static void curvature_backward(TrainSolver *ts, const MicroBatch *mb, double t1, double t2)
{
    Trainer *tr = ts->tr;
    EpochRun *er = ts->er;
    reduce_add(tr->red, mb->part, &(StepSums){0});
    double t3 = comm_wtime();
    bool acc;
    float *grads = reduce_partial(tr->red, mb->part, &acc);
    model_backward_input(&tr->model, tr->batch.in, tr->dz, mb->m, acc, grads, NULL);
    double t4 = comm_wtime();
    reduce_partial_done(tr->red, mb->part);
    er->forward += t2 - t1;
    er->loss += t3 - t2;
    er->backward += t4 - t3;
    er->reduce += comm_wtime() - t4;
}

/* The same intercepts' preconditioner made one value (their mean): M^-1 then keeps the
 * part of every CG direction along them at sum 0, as center_intercepts keeps g and H v. */
static void even_intercepts(const TrainSolver *ts, float *m)
{
    const ModelShape *s = &ts->tr->model.shape;
    const size_t KO = model_outputs(s);
    if (s->head != HEAD_SOFTMAX || KO < 2) return;
    float *b = m + s->b_off[s->n_layers - 1];
    double mean = 0.0;
    for (size_t k = 0; k < KO; k++) mean += (double)b[k];
    for (size_t k = 0; k < KO; k++) b[k] = (float)(mean / (double)KO);
}

/* F, its gradient and (loss, accuracy) at the model's parameters: one pass. */
static SolverEval pass_fg(void *ctx, double *f, float *g, double aux[SOLVER_AUX])
{
    TrainSolver *ts = ctx;
    Trainer *tr = ts->tr;
    const size_t n = tr->model.shape.n_params;
    double start = comm_wtime();
    StepTotals tot;
    const float *sums;
    SolverEval e = run_pass(ts, fg_batch, &tot, &sums);
    if (e == SOLVER_EVAL_OK && !(tot.sums.weight > 0.0)) e = SOLVER_EVAL_NONFINITE;
    if (e == SOLVER_EVAL_OK) {
        double t0 = comm_wtime();
        set_weight(ts, tot.sums.weight);
        double pen = solver_objective_grad(&ts->pen, ts->weight, tr->model.params, sums, n, g);
        center_intercepts(ts, g);
        *f = tot.sums.loss / ts->weight + pen;
        aux[0] = tot.sums.loss / ts->weight;
        aux[1] = tot.sums.decisions > 0 ? tot.sums.correct / tot.sums.decisions : NAN;
        ts->er->optim += comm_wtime() - t0;
    }
    ts->pass_s += comm_wtime() - start;
    return e;
}

/* x_k's curvature for a micro-batch's rows into the cache, when this pass makes it: the
 * model at x_k gives z -> loss_curvature. */
static void curvature_rows(TrainSolver *ts, const MicroBatch *mb)
{
    Trainer *tr = ts->tr;
    if (!ts->curv_fill) return;
    const size_t KO = model_outputs(&tr->model.shape), r0 = mb->rows[0];
    const float *z = model_forward_input(&tr->model, tr->batch.in, mb->m);
    LossTargets tg = {.y = tr->batch.y, .t = tr->batch.t};
    loss_curvature(tr->loss_kind, ts->curv + r0 * KO, ts->rw + r0, z, tg, mb->m, KO, &tr->lopt);
}

/* A second-order pass at x_k: run_pass, making x_k's curvature on the way when it is not
 * held (the pass's rows are every local row, so a whole pass leaves all of it). */
static SolverEval curvature_pass(TrainSolver *ts, PassBatch batch, StepTotals *tot,
                                 const float **sums)
{
    uint64_t at = ts->s.xk_version;
    ts->curv_fill = !(ts->curv_ok && ts->curv_at == at);
    if (ts->curv_fill) ts->curv_ok = false;
    SolverEval e = run_pass(ts, batch, tot, sums);
    if (ts->curv_fill && e == SOLVER_EVAL_OK) {
        ts->curv_ok = true;
        ts->curv_at = at;
    }
    return e;
}

/* A micro-batch of H v: the model over V gives u = X v, x_k's curvature H_i u_i. */
static void hv_batch(TrainSolver *ts, const MicroBatch *mb, bool last)
{
    (void)last;
    Trainer *tr = ts->tr;
    const size_t KO = model_outputs(&tr->model.shape), r0 = mb->rows[0];
    double t1 = comm_wtime();
    curvature_rows(ts, mb);
    const float *u = model_forward_input(&ts->vmodel, tr->batch.in, mb->m);
    double t2 = comm_wtime();
    loss_curvature_times(tr->loss_kind, tr->dz, ts->curv + r0 * KO, ts->rw + r0, u, mb->m, KO);
    curvature_backward(ts, mb, t1, t2);
}

/* H v at the model's parameters: one pass. */
static SolverEval pass_hv(void *ctx, const float *v, float *hv)
{
    TrainSolver *ts = ctx;
    Trainer *tr = ts->tr;
    const size_t n = tr->model.shape.n_params;
    double start = comm_wtime();
    ts->vmodel.params = (float *)v; /* read only: a forward does not write its parameters */
    StepTotals tot;
    const float *sums;
    SolverEval e = curvature_pass(ts, hv_batch, &tot, &sums);
    if (e == SOLVER_EVAL_OK) {
        XT_ASSERT(ts->weight > 0.0); /* from x_k's evaluation, or the checkpoint */
        set_weight(ts, ts->weight);
        solver_objective_grad(&ts->pen, ts->weight, v, sums, n, hv);
        center_intercepts(ts, hv);
    }
    ts->pass_s += comm_wtime() - start;
    return e;
}

/* A micro-batch of H's diagonal: x_k's curvature's diagonal hd back through the model over
 * the squared rows gives sum_i hd_i x_ij^2 (the rows are this pass's copy). */
static void diag_batch(TrainSolver *ts, const MicroBatch *mb, bool last)
{
    (void)last;
    Trainer *tr = ts->tr;
    RowBatch *b = &tr->batch;
    const size_t KO = model_outputs(&tr->model.shape), r0 = mb->rows[0];
    double t1 = comm_wtime();
    curvature_rows(ts, mb);
    double t2 = comm_wtime();
    loss_curvature_diag(tr->loss_kind, tr->dz, ts->curv + r0 * KO, ts->rw + r0, mb->m, KO);
    if (b->in.csr) {
        for (size_t k = 0; k < csr_nnz(b->in.csr); k++)
            b->in.csr->values[k] *= b->in.csr->values[k];
    } else {
        for (size_t k = 0; k < mb->m * tr->model.shape.sizes[0]; k++) b->X[k] *= b->X[k];
    }
    curvature_backward(ts, mb, t1, t2);
}

/* newton's preconditioner at the model's parameters: one pass. */
static SolverEval pass_diag(void *ctx, float *m)
{
    TrainSolver *ts = ctx;
    Trainer *tr = ts->tr;
    double start = comm_wtime();
    StepTotals tot;
    const float *sums;
    SolverEval e = curvature_pass(ts, diag_batch, &tot, &sums);
    if (e == SOLVER_EVAL_OK) {
        XT_ASSERT(ts->weight > 0.0);
        set_weight(ts, ts->weight);
        solver_preconditioner(&ts->pen, ts->weight, sums, tr->model.shape.n_params, m);
        even_intercepts(ts, m);
    }
    ts->pass_s += comm_wtime() - start;
    return e;
}

/* tr->end_why: what the iteration's status means for the run, in the words of its keys. */
static void describe_end(TrainSolver *ts, SolverStatus st, bool capped)
{
    Trainer *tr = ts->tr;
    const Config *c = &tr->cfg;
    double gn = solver_grad_norm(&ts->s);
    unsigned long long passes = (unsigned long long)tr->step;
    long long it = (long long)ts->s.iter;
    char *out = tr->end_why;
    size_t len = sizeof tr->end_why;
    if (st == SOLVER_CONVERGED_G)
        snprintf(out, len, "converged: max |g| = %.3g <= optim.tol = %g after %llu passes (%lld "
                 "iterations)", gn, c->optim.tol, passes, it);
    else if (st == SOLVER_CONVERGED_F)
        snprintf(out, len, "converged: the objective's last decrease was at most optim.ftol = %g "
                 "(relative) after %llu passes (%lld iterations); max |g| = %.3g", c->optim.ftol,
                 passes, it, gn);
    else if (st == SOLVER_STALLED)
        snprintf(out, len, "converged to working precision: no lower objective along the search "
                 "direction after %llu passes (%lld iterations); max |g| = %.3g (optim.tol = %g)",
                 passes, it, gn, c->optim.tol);
    else if (capped)
        snprintf(out, len, "stopped: optim.max_passes = %lld reached after %lld iterations, not "
                 "converged: max |g| = %.3g > optim.tol = %g", (long long)c->optim.max_passes,
                 it, gn, c->optim.tol);
    else
        snprintf(out, len, "stopped after %lld iterations (train.epochs = %lld), not converged: "
                 "max |g| = %.3g > optim.tol = %g after %llu passes", it,
                 (long long)c->train.epochs, gn, c->optim.tol, passes);
}

/* One solver iteration as the epoch. Collective. */
static EpochEnd solver_epoch(Trainer *tr, EpochRun *er, size_t first)
{
    (void)first; /* checkpoints fall between iterations: an iteration always starts afresh */
    TrainSolver *ts = tr->solver;
    ts->er = er;
    ts->pass_s = 0.0;
    uint64_t passes0 = tr->step;
    double t0 = comm_wtime();
    const SolverOps ops = {.fg = pass_fg, .hv = pass_hv,
                           .diag = tr->plan.precond ? pass_diag : NULL, .ctx = ts};
    SolverStatus st = solver_iterate(&ts->s, &ops);
    er->optim += comm_wtime() - t0 - ts->pass_s;
    if (st == SOLVER_INTERRUPTED) { /* the state is the iteration's start: resume repeats it */
        tr->step = passes0;
        er->resume_step = 0;
        er->sums = (EpochSums){0};
        return EPOCH_SIGNALLED;
    }
    if (st == SOLVER_DIVERGED) return EPOCH_DIVERGED;
    const Solver *s = &ts->s;
    bool acc = !isnan(s->aux[1]);
    er->sums = (EpochSums){.loss_sum = s->aux[0], .weight_sum = 1.0, .rows = (double)tr->tinfo.n,
                           .correct = acc ? s->aux[1] : 0.0, .decisions = acc ? 1.0 : 0.0};
    er->objective = s->f;
    er->grad_norm = solver_grad_norm(s);
    er->lr = s->step;
    er->converged = st != SOLVER_CONTINUE;
    er->capped = !er->converged && tr->step >= (uint64_t)tr->cfg.optim.max_passes;
    describe_end(ts, st, er->capped);
    if (tr->cfg.train.check_every > 0) reduce_check_replicas(tr->red, tr->step);
    return EPOCH_DONE;
}

const TrainMethod TRAIN_SOLVER = {.name = "full-batch solver", .epoch = solver_epoch};

/* ---- set-up ------------------------------------------------------------------------------ */

/* newton: the model over V and x_k's curvature for the rank's `local` rows (micro-batches of
 * at most `rows`). */
static Status open_newton(TrainSolver *ts, size_t rows, size_t local)
{
    const ModelShape *s = &ts->tr->model.shape;
    const size_t KO = model_outputs(s);
    ts->curv = malloc(local * KO * sizeof *ts->curv);
    ts->rw = malloc(local * sizeof *ts->rw);
    if (!ts->curv || !ts->rw) return XT_ERR_RUNTIME;
    return model_init(&ts->vmodel, s, rows, ts->s.vf);
}

static Status open_solver(Trainer *tr, TrainSolver *ts)
{
    const Config *c = &tr->cfg;
    const ModelShape *s = &tr->model.shape;
    ts->tr = tr;
    SolverSettings set = {.kind = c->optim.optimizer == OPT_NEWTON ? SOLVER_NEWTON : SOLVER_LBFGS,
                          .history = (size_t)c->optim.history, .tol = c->optim.tol,
                          .ftol = c->optim.ftol};
    Status st = solver_init(&ts->s, &set, s->n_params, tr->model.params);
    if (st != XT_OK) return st;
    for (int l = 0; l < s->n_layers; l++) { /* the weights W_l; the intercepts b_l are free */
        ts->pen.off[ts->pen.nseg] = s->w_off[l];
        ts->pen.len[ts->pen.nseg++] = s->sizes[l + 1] * s->sizes[l];
    }
    ts->lambda_given = c->optim.weight_decay > 0.0;
    ts->pen.lambda = c->optim.weight_decay;
    /* The pass's plan: step 0 of a sampler that keeps file order, made once. */
    sampler_begin_epoch(&tr->sampler, 0);
    step_plan_make(&tr->steps[0], &tr->sampler, 0);
    size_t rows = 1, local = 1;
    for (size_t i = 0; i < tr->steps[0].n; i++) {
        const MicroBatch *mb = &tr->steps[0].mb[i];
        if (mb->m > rows) rows = mb->m;
        if (mb->m > 0 && mb->rows[0] + mb->m > local) local = mb->rows[0] + mb->m;
    }
    if (set.kind == SOLVER_NEWTON && (st = open_newton(ts, rows, local)) != XT_OK) return st;
    solver_state(&ts->s, &ts->state);
    state_add_f64(&ts->state, "weight", &ts->weight);
    reduce_set_solver_state(tr->red, &ts->state);
    return XT_OK;
}

Status trainer_setup_solver(Trainer *tr)
{
    tr->method = &TRAIN_SGD;
    if (!tr->plan.solver) return XT_OK;
    XT_ASSERT(tr->model.shape.type != MODEL_MLP || tr->cfg.optim.optimizer == OPT_LBFGS);
    tr->method = &TRAIN_SOLVER;
    /* model.h5 is the optimum, not the best validation iteration, unless the run stops on
     * validation (plan.h: early_stop) */
    if (!tr->cfg.early_stopping.enabled) tr->model_keeps_best = false;
    /* and is written with the checkpoints and at the end, not each iteration: at 6 million
     * parameters a write took about as long as an iteration's passes */
    tr->model_when_due = true;
    TrainSolver *ts = calloc(1, sizeof *ts);
    Status st = ts ? XT_OK : XT_ERR_RUNTIME;
    tr->solver = ts;
    if (ts) st = open_solver(tr, ts);
    if (st != XT_OK)
        log_error("out of memory for the %s solver's state (%zu parameters)",
                  optim_name(tr->cfg.optim.optimizer), tr->model.shape.n_params);
    return comm_agree(tr->comm, st);
}

void trainer_free_solver(Trainer *tr)
{
    TrainSolver *ts = tr->solver;
    if (!ts) return;
    if (tr->red) reduce_set_solver_state(tr->red, NULL);
    solver_free(&ts->s);
    model_free(&ts->vmodel);
    free(ts->curv);
    free(ts->rw);
    free(ts);
    tr->solver = NULL;
}

void trainer_banner_solver(const Trainer *tr)
{
    const Config *c = &tr->cfg;
    const Plan *p = &tr->plan;
    bool newton = c->optim.optimizer == OPT_NEWTON;
    if (newton)
        log_info("optim    newton: trust-region Newton with conjugate gradient (as LIBLINEAR's "
                 "TRON), one pass per Hessian-vector product and per trial point; %s (%s)",
                 p->precond ? "preconditioned by the Hessian's diagonal, one more pass per "
                              "iteration"
                            : "no preconditioner",
                 p->precond_why);
    else
        log_info("optim    lbfgs: L-BFGS with %lld pairs of history and a strong-Wolfe line "
                 "search, one pass per trial point", (long long)c->optim.history);
    if (c->optim.weight_decay > 0.0)
        log_info("         objective: mean loss + %g / 2 ||W||^2 (optim.weight_decay; "
                 "intercepts free)", c->optim.weight_decay);
    else
        log_info("         objective: mean loss + ||W||^2 / (2 C n), C = %g (optim.C%s), n = the "
                 "loss's denominator; intercepts free: scikit-learn's LogisticRegression(C) "
                 "divided by C n", c->optim.C,
                 config_changed(c, "optim", "C") ? "" : ": scikit-learn's default");
    log_info("         stops: max |g| <= optim.tol = %g, a relative decrease <= optim.ftol = %g, "
             "or optim.max_passes = %lld; iterations: %s", c->optim.tol, c->optim.ftol,
             (long long)c->optim.max_passes, p->epochs_why);
    log_info("         passes: every training row, in file order; %s", p->solver_why);
    log_info("         early stopping %s", p->early_stop ? "on (early_stopping.monitor given)"
                                                         : p->early_stop_why);
}
