/* train_outputs: what a run leaves behind besides checkpoints (see trainer.h): the
 * model files and the closing line. */
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
                    .normalize = tr->norm,
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

/* The closing line for the decision; returns the exit code. */
int trainer_report_end(const Trainer *tr, const EsDecision *dec)
{
    const Config *c = &tr->cfg;
    const char *mon = config_monitor_name(c->early_stopping.monitor);
    switch ((EsAction)dec->action) {
    case ES_STOP_EARLY:
        log_info("early stop after epoch %d: %s has not improved for %lld epochs; best epoch %d "
                 "(%s = %.6f)%s", dec->epoch, mon, (long long)c->early_stopping.patience,
                 dec->best_epoch, mon, dec->best_value,
                 c->early_stopping.restore_best ? ", restored" : "");
        return 0;
    case ES_STOP_MAX_EPOCHS: log_info("finished %d epochs", dec->epoch); return 0;
    case ES_STOP_DIVERGED: return XT_ERR_DIVERGED;
    case ES_STOP_ERROR:
        log_error0("stopping: rank 0 could not write its outputs (see above)");
        return XT_ERR_RUNTIME;
    case ES_STOP_SIGNAL:
        log_info("checkpointed %s after a signal; exit code %d asks the scheduler to requeue "
                 "(train.resume = auto continues from it)", tr->ckpt_path, XT_ERR_REQUEUE);
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
        /* A run resumed into a new run.dir may not have improved since: model.h5 still
         * gets the best epoch (from the checkpoint's /best). */
        int64_t held = 0;
        bool stale = !fsutil_exists(tr->model_path) ||
                     model_io_read_epoch(tr->model_path, &held) != XT_OK ||
                     held != tr->es.best_epoch;
        if (tr->model_keeps_best && tr->has_best && stale) {
            ModelFile mf = trainer_model_file(tr, tr->best, tr->es.best_epoch, tr->best_vl,
                                              tr->best_va);
            st = model_io_save(tr->model_path, &mf);
        }
        bool differs = tr->model_keeps_best && tr->es.best_epoch != dec->epoch;
        if (differs && st == XT_OK) {
            ModelFile mf = trainer_model_file(tr, tr->model.params, dec->epoch, tr->last_vl,
                                              tr->last_va);
            st = model_io_save(tr->last_path, &mf);
        } else if (st == XT_OK && fsutil_exists(tr->last_path) && remove(tr->last_path) != 0) {
            log_error("cannot remove the stale %s", tr->last_path);
            st = XT_ERR_RUNTIME;
        }
        if (st == XT_OK) st = model_io_read_epoch(tr->model_path, &held);
        if (st == XT_OK)
            log_info("wrote %s (epoch %lld, %s), %s%s", tr->model_path, (long long)held,
                     !tr->has_val ? "the last epoch: no validation split"
                     : tr->model_keeps_best ? "the best validation epoch"
                                            : "the last epoch: restore_best = false",
                     tr->metrics_path, differs ? ", model-last.h5 (the last epoch)" : "");
    }
    return comm_agree(tr->comm, st) != XT_OK ? XT_ERR_RUNTIME : 0;
}

