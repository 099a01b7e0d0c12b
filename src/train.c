/* train: `xentrain train`, the loop. Set-up is train_setup.c (and train_data.c), checkpoints
 * and resume train_resume.c; this file reads like the algorithm:
 *
 *   for each epoch:
 *     the method's epoch (TrainMethod, chosen at set-up): SGD's steps (train_sgd.c: for each
 *                     micro-batch of the step plan: gather, forward, loss, backward -> the
 *                     step's ONE reduction -> update), or one full-batch solver iteration
 *                     (train_solver.c)
 *     at the end:     validate -> decide (rank 0) -> broadcast -> model, metrics, checkpoint
 *
 * Every mode (streamed rows, micro-batches, the sharded update, shared memory, overlap, the
 * reproducible mode) is an implementation chosen at set-up behind the row source, the step
 * plan and the reduction: nothing here asks which one runs.
 */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "fsutil.h"
#include "linalg.h"
#include "log.h"
#include "sighold.h"
#include "trainer.h"

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
              tr->best_kept ? "model.h5 keeps the best epoch, checkpoint.h5 the last good state"
              : !tr->model_keeps_best && fsutil_exists(tr->files.model)
                  ? "model.h5 keeps an earlier epoch, checkpoint.h5 the last good state"
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
    tr->last_vl = vl;
    tr->last_va = va;
    if (!er->diverged) {
        RunTrace *t = &tr->trace;
        if (t->epochs++ == 0) t->first_loss = train_loss;
        t->last_loss = train_loss;
        t->last_improved = dec->improved != 0;
    }
    /* A checkpoint every checkpoint.every epochs and when the run ends; never of a
     * diverged state (the last good checkpoint stays). */
    bool end = dec->action != ES_CONTINUE;
    bool due = c->checkpoint.every > 0 && (er->epoch % c->checkpoint.every == 0 || end);
    /* model.h5: the best epoch when it keeps it, else the latest (with a checkpoint and at
     * the end only, when model_when_due) */
    bool write = tr->model_keeps_best ? dec->improved != 0 : !tr->model_when_due || end || due;
    if (!er->diverged && write) {
        ModelFile mf = trainer_model_file(tr, tr->model.params, er->epoch, vl, va);
        if (model_io_save(tr->files.model, &mf) != XT_OK) dec->action = ES_STOP_ERROR;
        else if (tr->model_keeps_best) tr->best_kept = true;
    }
    if (!er->diverged) {
        MetricsRow row = epoch_row(tr, er, train_loss, vl, va, vf, dec->improved != 0);
        char line[384];
        metrics_format_line(&row, line, sizeof line);
        log_info("%s%s", line, dec->improved && tr->has_val ? "  *" : "");
        if (metrics_write(&tr->metrics, &row) != XT_OK) dec->action = ES_STOP_ERROR;
    }
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
    /* sighold's handlers (main installs them first for `train`: a signal caught since then
     * rides in the first step's reduction); the flag is read in every step's reduction */
    sighold_begin();
    double t_start = comm_wtime();
    bool help = false;
    comm_watch_phase(comm, "the ranks were starting up (loading the data and the checkpoint; "
                           "rank 0 alone reads data.val and checkpoint.h5)");
    Status st = trainer_setup(tr, argc, argv, sighold_flag(), &help);
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
