/* train: `xentrain train`, the loop. Set-up is train_setup.c (and train_data.c), checkpoints
 * and resume train_resume.c; this file reads like the algorithm:
 *
 *   for each epoch:
 *     for each step:  for each micro-batch of the step plan: gather, forward, loss, backward
 *                     -> the step's ONE reduction -> update
 *                     (or, with a full-batch solver, one solver iteration: train_solver.c)
 *     at the end:     validate -> decide (rank 0) -> broadcast -> model, metrics, checkpoint
 *
 * Every mode (streamed rows, micro-batches, the sharded update, shared memory, overlap, the
 * reproducible mode) is an implementation chosen at set-up behind the row source, the step
 * plan and the reduction: nothing here asks which one runs.
 */
#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "linalg.h"
#include "log.h"
#include "sighold.h"
#include "trainer.h"

/* Seconds between progress lines within an epoch (only when stdout is a terminal). */
#define PROGRESS_EVERY_S 5.0

/* Set by the signal handler only; read where it rides in the step's reduction. */
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

typedef enum { STEP_OK, STEP_DIVERGED, STEP_SIGNALLED } StepOutcome;

/* ---- one step ----------------------------------------------------------------------- */

/* Step t's plan: prepared by the previous step, or made now; then the next step's, whose
 * first rows are read ahead while this step computes. */
static const StepPlan *plan_step_rows(Trainer *tr, size_t t)
{
    if (tr->steps[1].t == t) {
        StepPlan tmp = tr->steps[0];
        tr->steps[0] = tr->steps[1];
        tr->steps[1] = tmp;
    } else {
        step_plan_make(&tr->steps[0], &tr->sampler, t);
    }
    tr->steps[1].t = SIZE_MAX;
    if (t + 1 < tr->sampler.T) step_plan_make(&tr->steps[1], &tr->sampler, t + 1);
    return &tr->steps[0];
}

/* The rows that come after micro-batch i: the next one's, or the next step's first. */
static void prefetch_after(const Trainer *tr, const StepPlan *p, size_t i)
{
    const StepPlan *next = &tr->steps[1];
    const MicroBatch *mb = i + 1 < p->n ? &p->mb[i + 1] : next->n > 0 ? &next->mb[0] : NULL;
    if (mb) rowsource_prefetch(&tr->train_rows, mb->rows, mb->m);
}

/* One micro-batch: gather, forward, loss (its totals to the reduction), backward into the
 * reduction's partial buffer for it. */
static void micro_batch(Trainer *tr, const StepPlan *p, size_t i, EpochRun *er)
{
    const MicroBatch *mb = &p->mb[i];
    Model *md = &tr->model;
    const size_t KO = model_outputs(&md->shape);
    double t0 = comm_wtime();
    rowsource_gather(&tr->train_rows, mb->rows, mb->m, &tr->batch);
    prefetch_after(tr, p, i);
    double t1 = comm_wtime();
    const float *z = model_forward_input(md, tr->batch.in, mb->m);
    double t2 = comm_wtime();
    LossTargets tg = {.y = tr->batch.y, .t = tr->batch.t};
    LossTotals lt = {0};
    StepSums s = {0};
    loss_compute(tr->loss_kind, tr->dz, NULL, &lt, z, tg, mb->m, KO, &tr->lopt);
    loss_count_correct(tr->loss_kind, z, tg, mb->m, KO, tr->lopt.ignore_index, &s.correct,
                       &s.decisions);
    s.loss = lt.sum;
    s.weight = lt.weight;
    reduce_add(tr->red, mb->part, &s);
    double t3 = comm_wtime();
    bool acc;
    float *grads = reduce_partial(tr->red, mb->part, &acc);
    model_backward_input(md, tr->batch.in, tr->dz, mb->m, acc, grads,
                         reduce_hooks(tr->red, i + 1 == p->n));
    double t4 = comm_wtime();
    reduce_partial_done(tr->red, mb->part);
    er->io += t1 - t0;
    er->forward += t2 - t1;
    er->loss += t3 - t2;
    er->backward += t4 - t3;
    er->reduce += comm_wtime() - t4;
}

static void progress(const Trainer *tr, EpochRun *er, size_t t)
{
    if (tr->r != 0 || !tr->cfg.train.progress || !isatty(STDOUT_FILENO)) return;
    /* Under mpirun stdout is a pseudo-terminal even when the job's output goes to a
     * file, so keep the number of progress lines small. */
    double now = comm_wtime();
    if (er->last_progress == 0.0) er->last_progress = now;
    if (now - er->last_progress < PROGRESS_EVERY_S) return;
    er->last_progress = now;
    er->progress_shown = true;
    printf("\r  epoch %lld  step %zu/%zu  loss %.5f   ", (long long)er->epoch, t + 1,
           tr->sampler.T, er->sums.weight_sum > 0 ? er->sums.loss_sum / er->sums.weight_sum : 0.0);
    fflush(stdout);
}

/* The update with the reduced gradient and the step's bookkeeping. Collective. */
static void update(Trainer *tr, size_t t, const float *grads, const StepTotals *tot,
                   EpochRun *er)
{
    double t0 = comm_wtime(), gather_s = 0.0;
    er->lr = optim_lr(&tr->oset, tr->step);
    if (tot->sums.weight > 0.0) {
        gather_s = reduce_update(tr->red, grads, 1.0f / (float)tot->sums.weight, er->lr);
        tr->step++;
    }
    er->sums.loss_sum += tot->sums.loss;
    er->sums.weight_sum += tot->sums.weight;
    er->sums.correct += tot->sums.correct;
    er->sums.decisions += tot->sums.decisions;
    double g = (double)sampler_global_count(&tr->sampler, t);
    er->sums.rows += g;
    er->rows_now += g;
    er->optim += comm_wtime() - t0 - gather_s;
    er->allreduce += gather_s;
}

/* One step: the plan's micro-batches -> the step's one reduction -> update. */
static StepOutcome train_step(Trainer *tr, size_t t, EpochRun *er)
{
    comm_watch_position(tr->comm, er->epoch, tr->step);
    double t0 = comm_wtime();
    rowsource_begin_step(&tr->train_rows, (uint64_t)(er->epoch - 1), t); /* streamed rows */
    const StepPlan *p = plan_step_rows(tr, t);
    er->io += comm_wtime() - t0;
    reduce_begin(tr->red);
    for (size_t i = 0; i < p->n; i++) micro_batch(tr, p, i, er);
    fault_before_reduce(tr->r, tr->step);
    StepTotals tot;
    ReduceTimes rt;
    const float *grads = reduce_finish(tr->red, &tot, &rt);
    er->allreduce += rt.comm_s;
    er->reduce += rt.work_s;
    if (tot.nonfinite) return STEP_DIVERGED;
    update(tr, t, grads, &tot, er);
    if (tot.signal) return STEP_SIGNALLED; /* every rank sees the same sum */
    fault_after_update(tr->r, tr->step, tr->model.params);
    if (tr->cfg.train.check_every > 0 && tr->step % (uint64_t)tr->cfg.train.check_every == 0)
        reduce_check_replicas(tr->red, tr->step);
    progress(tr, er, t);
    return STEP_OK;
}

/* Some rank was asked to stop: rank 0 checkpoints where the epoch resumes
 * (er->resume_step), every rank leaves. */
static EsDecision stop_on_signal(Trainer *tr, const EpochRun *er)
{
    Status st = XT_OK;
    comm_watch_phase(tr->comm, "rank 0 was writing checkpoint.h5 after a signal");
    reduce_gather_state(tr->red); /* a sharded state comes together on rank 0 */
    if (tr->r == 0) {
        log_info("signal received: writing a checkpoint at epoch %lld step %zu",
                 (long long)er->epoch, er->resume_step);
        st = trainer_write_checkpoint(tr, er->epoch, er->resume_step, &er->sums, false,
                                      ES_CONTINUE);
    }
    reduce_drop_state(tr->red);
    EsDecision dec = {.action = st == XT_OK ? ES_STOP_SIGNAL : ES_STOP_ERROR,
                      .epoch = (int32_t)er->epoch};
    comm_bcast(tr->comm, &dec, sizeof dec, 0);
    comm_watch_phase(tr->comm, NULL);
    return dec;
}

/* ---- the end of an epoch --------------------------------------------------------------- */

/* Validation: rank 0 (or every rank on its share, then summed). Collective only when
 * eval.distributed. */
static void validate(Trainer *tr, double *loss, double *acc, double *f1)
{
    *loss = *acc = *f1 = NAN;
    if (!tr->has_val) return;
    bool dist = tr->cfg.eval.distributed;
    if (!dist && tr->r != 0) return;
    eval_stats_reset(&tr->vstats);
    eval_accumulate(&tr->vstats, &tr->model, &tr->val_rows, tr->lopt.ignore_index);
    if (dist) eval_stats_allreduce(&tr->vstats, tr->comm);
    *loss = eval_loss(&tr->vstats);
    *acc = eval_accuracy(&tr->vstats);
    *f1 = eval_macro_f1(&tr->vstats);
}

/* Rank 0: the decision for the epoch. */
static EsDecision decide(Trainer *tr, const EpochRun *er, double train_loss, double vl,
                         double va)
{
    if (!er->diverged) {
        EsDecision d = early_stop_update(&tr->es, er->epoch, train_loss, vl, va);
        bool ending = d.action == ES_CONTINUE || d.action == ES_STOP_MAX_EPOCHS;
        if (ending && er->converged) d.action = ES_STOP_CONVERGED; /* a solver's, on every rank */
        else if (ending && er->capped) d.action = ES_STOP_MAX_EPOCHS;
        return d;
    }
    char fix[96];
    if (tr->plan.solver)
        snprintf(fix, sizeof fix, "the solver's starting point has no finite loss: check the "
                 "data and model.init");
    else
        snprintf(fix, sizeof fix, "lower optim.lr (now %g) or set optim.clip_norm", tr->oset.lr);
    log_error("training diverged: the loss became NaN or Inf in epoch %lld (step %llu); %s. %s",
              (long long)er->epoch, (unsigned long long)tr->step + 1, fix,
              tr->best.has ? "model.h5 keeps the best epoch, checkpoint.h5 the last good state"
                           : "no model was saved");
    return (EsDecision){.action = ES_STOP_DIVERGED, .epoch = (int32_t)er->epoch,
                        .best_epoch = (int32_t)tr->es.best_epoch, .best_value = tr->es.best};
}

/* The epoch's metrics row. */
static MetricsRow epoch_row(const Trainer *tr, const EpochRun *er, double train_loss, double vl,
                            double va, double vf, bool improved)
{
    double now = comm_wtime(), train_time = now - er->t_start - er->val;
    return (MetricsRow){.epoch = er->epoch, .step = (int64_t)tr->step, .lr = er->lr,
                        .train_loss = train_loss, .has_val = tr->has_val, .val_loss = vl,
                        .train_accuracy = er->sums.decisions > 0
                                              ? er->sums.correct / er->sums.decisions : NAN,
                        .val_accuracy = va, .val_f1 = vf,
                        .samples_per_s = train_time > 0 ? er->rows_now / train_time : 0.0,
                        .compute_s = er->forward + er->loss + er->backward + er->optim +
                                     er->reduce,
                        .allreduce_s = er->allreduce, .io_s = er->io, .val_s = er->val,
                        .epoch_s = now - er->t_start, .forward_s = er->forward,
                        .loss_s = er->loss, .backward_s = er->backward, .optim_s = er->optim,
                        .best = improved, .reduce_s = er->reduce,
                        .objective = er->objective, .grad_norm = er->grad_norm};
}

/* Rank 0: keeps an improved epoch in model.h5, writes the metrics row and, when due, the
 * checkpoint. A failure turns the decision into STOP_ERROR. */
static void record_epoch(Trainer *tr, const EpochRun *er, double train_loss, double vl,
                         double va, double vf, EsDecision *dec)
{
    const Config *c = &tr->cfg;
    if (dec->improved) {
        memcpy(tr->best.params, tr->model.params, tr->model.shape.n_params * sizeof(float));
        tr->best = (BestModel){.params = tr->best.params, .has = true, .vl = vl, .va = va};
    }
    tr->last_vl = vl;
    tr->last_va = va;
    if (!er->diverged) {
        RunTrace *t = &tr->trace;
        if (t->epochs++ == 0) t->first_loss = train_loss;
        t->last_loss = train_loss;
        t->last_improved = dec->improved != 0;
    }
    if (!er->diverged && (dec->improved || !tr->model_keeps_best)) {
        ModelFile mf = trainer_model_file(tr, tr->model.params, er->epoch, vl, va);
        if (model_io_save(tr->files.model, &mf) != XT_OK) dec->action = ES_STOP_ERROR;
    }
    if (!er->diverged) {
        MetricsRow row = epoch_row(tr, er, train_loss, vl, va, vf, dec->improved != 0);
        char line[384];
        metrics_format_line(&row, line, sizeof line);
        log_info("%s%s", line, dec->improved && tr->has_val ? "  *" : "");
        if (metrics_write(&tr->metrics, &row) != XT_OK) dec->action = ES_STOP_ERROR;
    }
    /* A checkpoint every checkpoint.every epochs and when the run ends; never of a
     * diverged state (the last good checkpoint stays). */
    bool end = dec->action != ES_CONTINUE;
    bool due = c->checkpoint.every > 0 && (er->epoch % c->checkpoint.every == 0 || end);
    if (due && dec->action != ES_STOP_DIVERGED && dec->action != ES_STOP_ERROR &&
        trainer_write_checkpoint(tr, er->epoch + 1, 0, &(EpochSums){0}, end, dec->action) != XT_OK) {
        log_error("stopping: a run that cannot write its checkpoint would not survive a restart");
        dec->action = ES_STOP_ERROR;
    }
}

/* validate -> decide (rank 0) -> record (rank 0) -> broadcast. Collective. */
static EsDecision end_epoch(Trainer *tr, EpochRun *er)
{
    if (er->progress_shown) {
        printf("\r%60s\r", "");
        fflush(stdout);
    }
    const EpochSums *es = &er->sums;
    double train_loss = er->diverged ? NAN : (es->weight_sum > 0 ? es->loss_sum / es->weight_sum : 0.0);
    double tv = comm_wtime(), vl = NAN, va = NAN, vf = NAN;
    comm_watch_phase(tr->comm, "the epoch was being validated (by rank 0 alone unless "
                               "eval.distributed)");
    if (!er->diverged) validate(tr, &vl, &va, &vf);
    er->val = comm_wtime() - tv;
    EsDecision dec = {.action = ES_CONTINUE};
    /* Any epoch may end the run, and a finished run writes a checkpoint: with a sharded
     * update the state is gathered whenever checkpoints are on (a few MiB per epoch). */
    if (tr->cfg.checkpoint.every > 0) reduce_gather_state(tr->red);
    comm_watch_phase(tr->comm, "rank 0 was writing model.h5, metrics.csv and checkpoint.h5");
    if (tr->r == 0) {
        dec = decide(tr, er, train_loss, vl, va);
        record_epoch(tr, er, train_loss, vl, va, vf, &dec);
    }
    reduce_drop_state(tr->red);
    comm_bcast(tr->comm, &dec, sizeof dec, 0);
    comm_watch_phase(tr->comm, NULL);
    return dec;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* SGD's epoch: its steps from `first`. */
static EpochEnd sgd_epoch(Trainer *tr, EpochRun *er, size_t first)
{
    sampler_begin_epoch(&tr->sampler, (uint64_t)(er->epoch - 1));
    tr->steps[1].t = SIZE_MAX; /* a new epoch: new permutations */
    for (size_t t = first; t < tr->sampler.T; t++) {
        StepOutcome o = train_step(tr, t, er);
        if (o == STEP_DIVERGED) return EPOCH_DIVERGED;
        if (o == STEP_SIGNALLED) {
            er->resume_step = t + 1;
            return EPOCH_SIGNALLED;
        }
    }
    return EPOCH_DONE;
}

const TrainMethod TRAIN_SGD = {.name = "sgd", .epoch = sgd_epoch};

/* Returns the final decision (identical on every rank). */
static EsDecision train_loop(Trainer *tr)
{
    EsDecision dec = {.action = ES_CONTINUE};
    if (tr->r == 0) log_info("%s", metrics_line_header());
    for (int64_t epoch = tr->start.epoch; epoch <= tr->cfg.train.epochs; epoch++) {
        bool first = epoch == tr->start.epoch;
        EpochRun er = {.epoch = epoch, .t_start = comm_wtime(),
                       .lr = optim_lr(&tr->oset, tr->step > 0 ? tr->step - 1 : 0),
                       .objective = NAN, .grad_norm = NAN};
        if (first) er.sums = tr->start.sums;
        EpochEnd o = tr->method->epoch(tr, &er, first ? tr->start.step : 0);
        if (o == EPOCH_SIGNALLED) return stop_on_signal(tr, &er);
        er.diverged = o == EPOCH_DIVERGED;
        dec = end_epoch(tr, &er);
        if (dec.action != ES_CONTINUE) break;
    }
    return dec;
}

/* ---- the run ------------------------------------------------------------------------------ */

/* After training: the closing line, the model files, the test split. */
static int finish_run(Trainer *tr, const EsDecision *dec)
{
    trainer_report_stream(tr);
    reduce_report(tr->red);
    int code = trainer_report_end(tr, dec);
    comm_watch_phase(tr->comm, "rank 0 was writing model-last.h5");
    if (code == 0) code = trainer_finish_models(tr, dec);
    comm_watch_phase(tr->comm, NULL);
    char test_spec[XT_PATH_MAX], model_path[TRAINER_PATH_MAX];
    snprintf(test_spec, sizeof test_spec, "%s", tr->cfg.data.test);
    snprintf(model_path, sizeof model_path, "%s", tr->files.model);
    size_t eval_batch = (size_t)tr->cfg.eval.batch_size;
    double budget = config_memory_budget(&tr->cfg);
    const Comm *comm = tr->comm;
    trainer_free(tr); /* the training data leave memory before the test split comes in */
    if (code == 0 && test_spec[0]) {
        log_info("---- test split ----");
        code = evaluate_run(comm, model_path, test_spec, NULL, eval_batch, budget);
    }
    return code;
}

int train_main(const Comm *comm, int argc, char **argv)
{
    Trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return XT_ERR_RUNTIME;
    *tr = (Trainer){.comm = comm, .P = comm_size(comm), .r = comm_rank(comm)};
    /* The watchdog guards start-up collectives too: the default timeout until the
     * configuration (which may change it) is agreed. */
    Config defaults;
    config_defaults(&defaults);
    comm_watchdog_start(comm, defaults.comm.timeout_s);
    tr->plan.blas_threads = plan_apply_blas(tr->plan.blas_why, sizeof tr->plan.blas_why);
    g_signal = 0;
    install_signal_handlers();
    if (sighold_caught()) g_signal = sighold_caught(); /* held since main's first instruction */
    double t_start = comm_wtime();
    bool help = false;
    comm_watch_phase(comm, "the ranks were starting up (loading the data and the checkpoint; "
                           "rank 0 alone reads data.val and checkpoint.h5)");
    Status st = trainer_setup(tr, argc, argv, &g_signal, &help);
    if (st == XT_OK && !help) st = trainer_resume(tr);
    comm_watch_phase(comm, NULL);
    if (st != XT_OK || help || tr->start.nothing_to_do) {
        trainer_free(tr);
        free(tr);
        return (int)st;
    }
    log_info("start-up took %.2f s: MPI init %.2f s, then %.2f s for data load, normalisation, "
             "parameter broadcast%s", comm_init_seconds(comm) + comm_wtime() - t_start,
             comm_init_seconds(comm), comm_wtime() - t_start,
             tr->start.epoch > 1 || tr->start.step > 0 ? ", resume" : "");
    EsDecision dec = train_loop(tr);
    int code = finish_run(tr, &dec);
    free(tr);
    return code;
}
