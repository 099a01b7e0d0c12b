/* train_resume: checkpoints of `xentrain train` (see trainer.h): whether to resume, the
 * checks that a checkpoint belongs to this run, restoring it, and writing it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "linalg.h"
#include "log.h"
#include "trainer.h"

#define DIFF_TEXT_MAX 2048

Status trainer_write_checkpoint(Trainer *tr, int64_t epoch, size_t step_in_epoch,
                                const EpochSums *sums, bool finished, int32_t action)
{
    StateList tmp, es;
    const StateList *opt = reduce_state(tr->red, &tmp);
    if (!opt) {
        log_error("no checkpoint: the sharded optimiser state could not be gathered");
        return XT_ERR_RUNTIME;
    }
    early_stop_state(&tr->es, &es);
    Checkpoint ck = {.state = {.epoch = epoch,
                               .step_in_epoch = (int64_t)step_in_epoch,
                               .step = tr->step,
                               .loss_sum = sums->loss_sum,
                               .weight_sum = sums->weight_sum,
                               .rows_seen = sums->rows,
                               .correct_seen = sums->correct,
                               .decisions_seen = sums->decisions,
                               .finished = finished,
                               .final_action = action,
                               .ranks = tr->P,
                               .blas_threads = linalg_blas_threads(),
                               .seed = tr->cfg.train.seed,
                               .has_data = true,
                               .data = tr->data_print},
                     .config_text = tr->cfg_text,
                     .optimizer = opt,
                     .early_stop = &es};
    ck.model = trainer_model_file(tr, tr->model.params, epoch - (step_in_epoch == 0), NAN, NAN);
    if (tr->best_kept) {
        ck.best_from = tr->files.model;
        ck.best_epoch = tr->es.best_epoch;
    }
    return checkpoint_save(tr->files.ckpt, &ck);
}

/* Rank 0 writes the resolved config.ini, once every check has passed (a refused resume
 * must not replace the earlier run's file). Collective. */
static Status write_resolved_config(Trainer *tr)
{
    Status st = XT_OK;
    if (tr->r == 0) {
        char path[TRAINER_PATH_MAX], tmp[TRAINER_PATH_MAX + 32];
        fsutil_join(path, sizeof path, tr->cfg.run.dir, "config.ini");
        fsutil_temp_name(tmp, sizeof tmp, path); /* fits: 17 bytes over a joined path */
        FILE *f = fopen(tmp, "wx");
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

/* Which checkpoint, if any: rank 0 looks, everyone follows. *use: 1 resume from path,
 * 0 start fresh. Collective. */
static Status choose_checkpoint(Trainer *tr, char *path, size_t len, int32_t *use)
{
    const Config *c = &tr->cfg;
    *use = 0;
    if (tr->r == 0) {
        if (!strcmp(c->train.resume, "auto")) {
            *use = fsutil_exists(tr->files.ckpt);
            snprintf(path, len, "%s", tr->files.ckpt);
        } else if (strcmp(c->train.resume, "never") != 0) {
            snprintf(path, len, "%s", c->train.resume);
            *use = fsutil_exists(path) ? 1 : -1;
        }
    }
    comm_bcast(tr->comm, use, sizeof *use, 0);
    comm_bcast(tr->comm, path, len, 0);
    if (*use < 0) {
        log_error0("train.resume = %s: no such checkpoint (use auto or never to start without one)",
                   c->train.resume);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* The checkpoint must come from a run with the same trajectory keys and model. Local
 * (every rank reaches the same verdict from the same file). */
static Status check_compatible(const Trainer *tr, const char *path, const Checkpoint *ck)
{
    Config saved;
    char err[512], diff[DIFF_TEXT_MAX];
    if (config_load_text(&saved, ck->config_text, path, err, sizeof err) != XT_OK) {
        log_error0("%s: the stored configuration cannot be read: %s", path, err);
        return XT_ERR_USAGE;
    }
    if (config_diff(&saved, &tr->cfg, CONFIG_KEYS_TRAJECTORY, diff, sizeof diff) > 0) {
        log_error0("%s was written by a run with other settings (%s); use another run.dir, or "
                   "train.resume = never to start over", path, diff);
        return XT_ERR_USAGE;
    }
    if (ck->state.has_data && !dataset_fingerprint_match(&ck->state.data, &tr->data_print,
                                                         tr->cfg.data.train, path))
        return XT_ERR_USAGE;
    if (ck->model.shape.n_params != tr->model.shape.n_params ||
        ck->model.shape.sizes[0] != tr->model.shape.sizes[0]) {
        log_error0("%s holds a model with %zu parameters (D = %zu); this run builds %zu (D = %zu)",
                   path, ck->model.shape.n_params, ck->model.shape.sizes[0],
                   tr->model.shape.n_params, tr->model.shape.sizes[0]);
        return XT_ERR_USAGE;
    }
    if ((size_t)ck->state.step_in_epoch > tr->sampler.T) {
        log_error0("%s: step %lld of epoch %lld is past the %zu steps of an epoch", path,
                   (long long)ck->state.step_in_epoch, (long long)ck->state.epoch, tr->sampler.T);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Parameters, the kept epoch, optimiser and early-stopping state, and the position. */
static Status restore(Trainer *tr, const char *path, const Checkpoint *ck)
{
    StateList es;
    early_stop_state(&tr->es, &es);
    Status st = reduce_restore_state(tr->red, path, &es);
    if (st != XT_OK) return st;
    model_params_from_file(&tr->model.shape, tr->model.params, ck->model.params);
    const CheckpointState *cs = &ck->state;
    tr->step = cs->step;
    tr->start.epoch = cs->epoch;
    tr->start.step = (size_t)cs->step_in_epoch;
    tr->start.sums = (EpochSums){.loss_sum = cs->loss_sum, .weight_sum = cs->weight_sum,
                                 .rows = cs->rows_seen, .correct = cs->correct_seen,
                                 .decisions = cs->decisions_seen};
    return XT_OK;
}

/* Rank 0, resuming: model.h5 from the checkpoint's /best when it keeps the best epoch. A
 * run resumed into a new run.dir has none yet, and the one in the old run.dir may hold a
 * later epoch than the checkpoint knows: model.h5 is the kept epoch's only copy from here
 * on (checkpoints copy theirs from it). Local. */
static Status keep_best(Trainer *tr, const char *path, const Checkpoint *ck)
{
    if (!tr->model_keeps_best || !ck->best.params) return XT_OK;
    if (model_io_save(tr->files.model, &ck->best) != XT_OK) {
        log_error("resume: could not write %s from %s's /best (epoch %lld)", tr->files.model,
                  path, (long long)ck->best.epoch);
        return XT_ERR_RUNTIME;
    }
    tr->best_kept = true;
    return XT_OK;
}

/* What the log says about the resumed position. */
static void report_resume(Trainer *tr, const char *path, const Checkpoint *ck)
{
    const CheckpointState *cs = &ck->state;
    if ((cs->finished &&
         (cs->final_action == ES_STOP_EARLY || cs->final_action == ES_STOP_CONVERGED)) ||
        tr->start.epoch > tr->cfg.train.epochs) {
        tr->start.nothing_to_do = true;
        log_info("resume: %s records a finished run (%s at epoch %lld); nothing to do "
                 "(raise train.epochs to continue, or train.resume = never to start over)",
                 path, early_stop_action_name((EsAction)cs->final_action),
                 (long long)cs->epoch - 1);
        Config saved;
        char err[256], diff[DIFF_TEXT_MAX];
        if (config_load_text(&saved, ck->config_text, path, err, sizeof err) == XT_OK &&
            config_diff(&saved, &tr->cfg, CONFIG_KEYS_SETTINGS, diff, sizeof diff) > 0)
            log_warn("these settings differ from the finished run's and were NOT used: %s. "
                     "To train with them: raise train.epochs to continue this run (the new "
                     "values apply from there), or set train.resume = never (or another "
                     "run.dir) to start over", diff);
    } else {
        log_info("resume: %s, epoch %lld step %zu (optimiser step %llu), written by %lld rank(s), "
                 "continuing on %d", path, (long long)cs->epoch, tr->start.step,
                 (unsigned long long)cs->step, (long long)cs->ranks, tr->P);
        if (tr->plan.G > 0 && cs->blas_threads > 0 && cs->blas_threads != linalg_blas_threads())
            log_warn("resume: %s was written with %lld BLAS thread(s) per rank, this run has %d: "
                     "a GEMM's bits can depend on the thread count, so the run may leave the "
                     "reproducible trajectory (set OPENBLAS_NUM_THREADS=%lld to stay on it)", path,
                     (long long)cs->blas_threads, linalg_blas_threads(),
                     (long long)cs->blas_threads);
    }
}

static Status resume_from(Trainer *tr, const char *path)
{
    Checkpoint ck;
    Status st = comm_agree(tr->comm, checkpoint_load(path, &ck));
    if (st != XT_OK) return st;
    st = comm_agree(tr->comm, check_compatible(tr, path, &ck));
    if (st == XT_OK) st = comm_agree(tr->comm, restore(tr, path, &ck));
    if (st == XT_OK) report_resume(tr, path, &ck);
    if (st == XT_OK && !tr->start.nothing_to_do)
        st = comm_agree(tr->comm, tr->r == 0 ? keep_best(tr, path, &ck) : XT_OK);
    checkpoint_free(&ck);
    if (st != XT_OK) return st;
    Status local = tr->r == 0 ? metrics_open_resume(&tr->metrics, tr->files.metrics,
                                                    tr->start.epoch)
                              : XT_OK;
    return comm_agree(tr->comm, local);
}

Status trainer_resume(Trainer *tr)
{
    size_t need = config_to_ini(&tr->cfg, NULL, 0) + 1;
    tr->cfg_text = malloc(need);
    if (comm_agree(tr->comm, tr->cfg_text ? XT_OK : XT_ERR_RUNTIME) != XT_OK) return XT_ERR_RUNTIME;
    config_to_ini(&tr->cfg, tr->cfg_text, need);
    Status fp = tr->r == 0 ? dataset_fingerprint(&tr->tinfo, &tr->data_print) : XT_OK;
    if ((fp = comm_agree(tr->comm, fp)) != XT_OK) return fp;
    comm_bcast(tr->comm, &tr->data_print, sizeof tr->data_print, 0);
    tr->start.epoch = 1;
    char path[TRAINER_PATH_MAX] = "";
    int32_t use = 0;
    Status st = choose_checkpoint(tr, path, sizeof path, &use);
    if (st == XT_OK && use) st = resume_from(tr, path);
    else if (st == XT_OK)
        st = comm_agree(tr->comm,
                        tr->r == 0 ? metrics_open(&tr->metrics, tr->files.metrics, false) : XT_OK);
    if (st == XT_OK && !tr->start.nothing_to_do) st = write_resolved_config(tr);
    return st;
}
