/* train_sgd: SGD's epoch (trainer.h: TrainMethod TRAIN_SGD), the method of every optimiser
 * but the full-batch solvers. One step:
 *
 *   the step plan (sampler): which rows, in how many micro-batches, into which partial buffer
 *   for each micro-batch: gather (row source) -> forward -> loss -> backward (into the
 *                         reduction's buffer; overlap hooks start buckets as layers finish)
 *   the step's ONE reduction (reduce.h; a pending signal and the loss sums ride in it)
 *   -> the update (optim.h; on this rank's slice when the update is sharded)
 *
 * Every mode is an implementation chosen at set-up behind the row source, the step plan and
 * the reduction: nothing here asks which one runs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "linalg.h"
#include "log.h"
#include "trainer.h"

/* Seconds between progress lines within an epoch (only when stdout is a terminal). */
#define PROGRESS_EVERY_S 5.0

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

/* One micro-batch: gather its rows (reading the next ones ahead), then through the model
 * into the reduction (train_batch.c). */
static void micro_batch(Trainer *tr, const StepPlan *p, size_t i, EpochRun *er)
{
    const MicroBatch *mb = &p->mb[i];
    double t0 = comm_wtime();
    rowsource_gather(&tr->train_rows, mb->rows, mb->m, &tr->batch);
    prefetch_after(tr, p, i);
    er->io += comm_wtime() - t0;
    trainer_batch_gradient(tr, mb->m, mb->part, i + 1 == p->n, er);
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
