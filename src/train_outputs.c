/* train_outputs: what a run leaves behind besides checkpoints (see trainer.h): the
 * model files, the stream's totals and the closing line. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "log.h"
#include "trainer.h"

ModelFile trainer_model_file(const Trainer *tr, const float *params, int64_t epoch, double vl,
                             double va)
{
    ModelFile mf = {.shape = tr->model.shape,
                    .params = (float *)params,
                    .normalize = tr->plan.norm,
                    .shift = tr->shift,
                    .mul = tr->mul,
                    .class_names = tr->train.class_names,
                    .n_class_names = tr->train.n_class_names,
                    .label_values = tr->train.label_values,
                    .n_label_values = tr->train.n_label_values,
                    .feature_names = tr->train.feature_names,
                    .n_feature_names = tr->train.n_feature_names,
                    .epoch = epoch,
                    .val_loss = vl,
                    .val_accuracy = va};
    snprintf(mf.train_split, sizeof mf.train_split, "%s:%s", tr->tinfo.file, tr->tinfo.group);
    mf.has_ignore = tr->cfg.loss.ignore_index >= 0;
    mf.ignore_index = tr->cfg.loss.ignore_index;
    return mf;
}

void trainer_report_stream(Trainer *tr)
{
    if (!tr->plan.stream) return;
    StreamStats ss;
    rowsource_stream_stats(&tr->train_rows, &ss);
    double v[4] = {ss.bytes_read, ss.bytes_needed, ss.io_s, ss.wait_s};
    comm_allreduce_sum_double(tr->comm, v, 4);
    if (tr->r != 0) return;
    double hidden = v[2] > 0 ? 1.0 - v[3] / v[2] : 1.0;
    if (hidden < 0) hidden = 0;
    log_info("stream totals: bytes_read=%.0f bytes_needed=%.0f io_s=%.3f wait_s=%.3f hidden=%.3f "
             "amplification=%.3f", v[0], v[1], v[2], v[3], hidden, v[1] > 0 ? v[0] / v[1] : 0.0);
    if (ss.on_trainer) /* the same kind of source on every rank */
        log_info("stream: read %.1f MiB for %.1f MiB of rows; reading took %.2f s on the "
                 "trainer's own thread (CSR rows are not read ahead)", v[0] / 1048576.0,
                 v[1] / 1048576.0, v[2]);
    else
        log_info("stream: read %.1f MiB for %.1f MiB of rows; the reader thread spent %.2f s "
                 "reading, training waited %.2f s for it (%.0f%% of the reading hidden behind "
                 "compute)", v[0] / 1048576.0, v[1] / 1048576.0, v[2], v[3], 100.0 * hidden);
}

/* The loss of a model that knows nothing (the uniform prediction): ln K for a softmax, ln 2
 * per sigmoid output. */
static double chance_loss(const Trainer *tr)
{
    return tr->loss_kind == LOSS_SOFTMAX || tr->loss_kind == LOSS_SOFTMAX_PROBS
               ? log((double)tr->K) : log(2.0);
}

/* Rank 0, once at the end of a run that finished: what the figures suggest, with why. */
static void print_hints(const Trainer *tr, const EsDecision *dec)
{
    const RunTrace *t = &tr->trace;
    const Config *c = &tr->cfg;
    if (dec->action == ES_STOP_MAX_EPOCHS && t->last_improved && t->epochs > 1)
        log_info("hint: %s was still improving at the last epoch (%d): more epochs may help "
                 "(train.epochs = %lld)", config_monitor_name(tr->es.monitor), dec->epoch,
                 (long long)c->train.epochs);
    if (tr->sampler.T < 10)
        log_info("hint: only %zu step(s) per epoch (%zu rows, a global batch of %zu): a smaller "
                 "batch (train.batch_size) gives more updates per pass over the data",
                 tr->sampler.T, tr->tinfo.n, tr->plan.global_batch);
    double chance = chance_loss(tr);
    if (t->epochs >= 3 && t->first_loss - t->last_loss < 0.01 * t->first_loss &&
        t->last_loss > 0.5 * chance)
        log_info("hint: the training loss barely moved (%.4g after epoch 1, %.4g at the end; a "
                 "model that knows nothing has %.4g): a larger optim.lr (now %g) may help",
                 t->first_loss, t->last_loss, chance, tr->oset.lr);
}

/* The closing line for the decision; returns the exit code. */
int trainer_report_end(const Trainer *tr, const EsDecision *dec)
{
    const Config *c = &tr->cfg;
    const char *mon = config_monitor_name(tr->es.monitor);
    switch ((EsAction)dec->action) {
    case ES_STOP_EARLY:
        log_info("early stop after epoch %d: %s has not improved for %lld epochs; best epoch %d "
                 "(%s = %.6f)%s", dec->epoch, mon, (long long)c->early_stopping.patience,
                 dec->best_epoch, mon, dec->best_value,
                 tr->model_keeps_best ? ", restored" : "");
        if (tr->r == 0 && !tr->plan.solver) print_hints(tr, dec); /* SGD's: lr, batch */
        return 0;
    case ES_STOP_MAX_EPOCHS:
        if (tr->end_why[0]) { /* a solver's cap: its reason; SGD's hints do not apply */
            log_info("%s", tr->end_why);
            return 0;
        }
        log_info("finished %d epochs", dec->epoch);
        if (tr->r == 0) print_hints(tr, dec);
        return 0;
    case ES_STOP_CONVERGED: log_info("%s", tr->end_why); return 0; /* a solver's reason */
    case ES_STOP_DIVERGED: return XT_ERR_DIVERGED;
    case ES_STOP_ERROR:
        log_error0("stopping: rank 0 could not write its outputs (see above)");
        return XT_ERR_RUNTIME;
    case ES_STOP_SIGNAL:
        log_info("checkpointed %s after a signal; exit code %d asks the scheduler to requeue "
                 "(train.resume = auto continues from it)", tr->files.ckpt, XT_ERR_REQUEUE);
        return XT_ERR_REQUEUE;
    case ES_CONTINUE: break;
    }
    return 0;
}

/* Rank 0 at the end of a finished run: model-last.h5 holds the last epoch when model.h5
 * holds an earlier best one (and no stale one stays); the closing line reports the
 * epoch model.h5 itself says it holds. Collective (agreed). */
int trainer_finish_models(Trainer *tr, const EsDecision *dec)
{
    Status st = XT_OK;
    if (tr->r == 0) {
        /* model.h5 is the kept epoch's only copy (a resume wrote it from the checkpoint) */
        int64_t held = 0;
        bool stale = !fsutil_exists(tr->files.model) ||
                     model_io_read_epoch(tr->files.model, &held) != XT_OK ||
                     held != tr->es.best_epoch;
        if (tr->best_kept && stale) {
            log_error("%s no longer holds the best epoch %lld: it was replaced or removed during "
                      "the run (the last checkpoint's /best holds it)", tr->files.model,
                      (long long)tr->es.best_epoch);
            st = XT_ERR_RUNTIME;
        }
        bool differs = tr->model_keeps_best && tr->es.best_epoch != dec->epoch;
        if (differs && st == XT_OK) {
            ModelFile mf = trainer_model_file(tr, tr->model.params, dec->epoch, tr->last_vl,
                                              tr->last_va);
            st = model_io_save(tr->files.last, &mf);
        } else if (st == XT_OK && fsutil_exists(tr->files.last) && remove(tr->files.last) != 0) {
            log_error("cannot remove the stale %s", tr->files.last);
            st = XT_ERR_RUNTIME;
        }
        if (st == XT_OK) st = model_io_read_epoch(tr->files.model, &held);
        if (st == XT_OK)
            log_info("wrote %s (epoch %lld, %s), %s%s", tr->files.model, (long long)held,
                     !tr->has_val ? "the last epoch: no validation split"
                     : tr->model_keeps_best ? "the best validation epoch"
                     : tr->plan.solver ? "the last iteration: the solver's result"
                     : "the last epoch: restore_best = false",
                     tr->files.metrics, differs ? ", model-last.h5 (the last epoch)" : "");
    }
    return comm_agree(tr->comm, st) != XT_OK ? XT_ERR_RUNTIME : 0;
}

