/* train: `xentrain train`, the loop. Set-up is train_setup.c, checkpoints and resume
 * train_resume.c; this file reads like the algorithm:
 *
 *   for each epoch:
 *     for each step:  gather -> forward, loss, backward -> ONE allreduce -> update
 *     at the end:     validate -> decide (rank 0) -> broadcast -> model, metrics, checkpoint
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

/* Set by the signal handler only; read at step boundaries (it rides in the allreduce). */
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

/* One epoch in progress: its sums, timers and where it stands. */
typedef struct {
    int64_t epoch;
    double t_start, last_progress;
    bool progress_shown;
    EpochSums sums;  /* loss, weight, rows, correct and all decisions of the epoch so far */
    double rows_now; /* rows trained in this process (for samples/s) */
    double lr;
    bool diverged;
    /* wall-clock split, seconds; compute = forward + loss + backward + optim (+ reduce:
     * the reproducible mode's conversions to and from integers) */
    double forward, loss, backward, optim, allreduce, io, val, reduce;
} EpochRun;

/* One step's totals over all ranks, from either reduction. */
typedef struct {
    double loss, weight, correct, decisions;
    bool nonfinite, signal;
} StepTotals;

typedef enum { STEP_OK, STEP_DIVERGED, STEP_SIGNALLED } StepOutcome;

/* ---- one step ----------------------------------------------------------------------- */

/* Gathers this rank's rows of step t into the batch, then starts loading the rows of
 * step t + 1 into cache while step t computes. Returns the row count. */
static size_t gather_batch(Trainer *tr, size_t t)
{
    size_t m;
    if (tr->next_t == t) { /* prepared by the previous step */
        uint32_t *tmp = tr->rows;
        tr->rows = tr->next_rows;
        tr->next_rows = tmp;
        m = tr->next_m;
    } else {
        m = sampler_step_rows(&tr->sampler, t, tr->rows);
    }
    tr->next_t = SIZE_MAX;
    if (tr->cfg.train.accumulate == 1) rowsource_gather(&tr->train_rows, tr->rows, m, &tr->batch);
    if (t + 1 < tr->sampler.T) {
        tr->next_m = sampler_step_rows(&tr->sampler, t + 1, tr->next_rows);
        tr->next_t = t + 1;
        /* with micro-steps, local_step prefetches one piece ahead instead */
        if (tr->cfg.train.accumulate == 1)
            rowsource_prefetch(&tr->train_rows, tr->next_rows, tr->next_m);
    }
    return m;
}

/* The step's totals into the slots after the n gradient sums. */
static void write_slots(float *g, size_t n, const LossTotals *tot, double correct,
                        double decisions)
{
    g[n + SLOT_LOSS] = (float)tot->sum;
    g[n + SLOT_WEIGHT] = (float)tot->weight;
    g[n + SLOT_NONFINITE] = isfinite(tot->sum) ? 0.0f : 1.0f;
    g[n + SLOT_SIGNAL] = g_signal ? 1.0f : 0.0f;
    g[n + SLOT_CORRECT] = (float)correct;
    g[n + SLOT_DECISIONS] = (float)decisions;
}

/* Forward, loss and backward on m local rows: the gradient SUMS and the slots. With
 * train.accumulate = k the rows go through in k micro-steps whose gradient sums add up
 * (the rows of micro-step c are gathered just before it; the first one was gathered with
 * the row list when k = 1). With comm.overlap the last backward queues each layer's
 * gradient for reduction as soon as it is final (the slots, known after the loss, ride in
 * the first bucket). */
static void local_step(Trainer *tr, size_t m, EpochRun *er)
{
    Model *md = &tr->model;
    const ModelShape *s = &md->shape;
    const size_t n = s->n_params, KO = model_outputs(s);
    const size_t k = (size_t)tr->cfg.train.accumulate;
    LossTotals tot = {0};
    double correct = 0.0, decisions = 0.0;
    size_t done = 0, last = k;
    bool slots = false;
    for (size_t c = 0; c < k; c++) /* the last micro-step with rows */
        if ((m * (c + 1)) / k > (m * c) / k) last = c;
    if (tr->overlap) trainer_overlap_begin(tr);
    for (size_t c = 0; c < k; c++) {
        size_t mc = (m * (c + 1)) / k - (m * c) / k; /* k near-equal pieces */
        if (mc == 0) continue;
        double t0 = comm_wtime();
        if (k > 1) {
            rowsource_gather(&tr->train_rows, tr->rows + (m * c) / k, mc, &tr->batch);
            if (c + 1 < k) /* the next piece, or the next update's first */
                rowsource_prefetch(&tr->train_rows, tr->rows + (m * (c + 1)) / k,
                                   (m * (c + 2)) / k - (m * (c + 1)) / k);
            else if (tr->next_t != SIZE_MAX)
                rowsource_prefetch(&tr->train_rows, tr->next_rows, tr->next_m / k);
        }
        double t1 = comm_wtime();
        const float *z = model_forward(md, tr->batch.X, mc);
        double t2 = comm_wtime();
        LossTargets tg = {.y = tr->batch.y, .t = tr->batch.t};
        LossTotals part = {0};
        loss_compute(tr->loss_kind, tr->dz, NULL, &part, z, tg, mc, KO, &tr->lopt);
        tot.sum += part.sum;
        tot.weight += part.weight;
        loss_count_correct(tr->loss_kind, z, tg, mc, KO, tr->lopt.ignore_index, &correct,
                           &decisions);
        double t3 = comm_wtime();
        if (tr->overlap && c == last) {
            write_slots(tr->gbuf, n, &tot, correct, decisions);
            slots = true;
            model_backward_hooked(md, tr->batch.X, tr->dz, mc, done > 0, tr->gbuf, &tr->hooks);
        } else {
            model_backward_into(md, tr->batch.X, tr->dz, mc, done > 0, tr->gbuf);
        }
        double t4 = comm_wtime();
        done += mc;
        er->io += t1 - t0;
        er->forward += t2 - t1;
        er->loss += t3 - t2;
        er->backward += t4 - t3;
    }
    if (done == 0) memset(tr->gbuf, 0, n * sizeof *tr->gbuf);
    if (!slots) write_slots(tr->gbuf, n, &tot, correct, decisions);
    if (tr->overlap) trainer_overlap_flush(tr); /* a rank without rows: the same buckets */
}

/* ---- reproducible mode: fixed micro-batches, exact sums ------------------------------- */

/* One micro-batch (rows of one group, or a piece of them): forward, loss, backward into
 * its own partial gradient, and its totals rounded into the exact slots. */
static void micro_batch_exact(Trainer *tr, const uint32_t *rows, size_t m, EpochRun *er)
{
    Model *md = &tr->model;
    const size_t KO = model_outputs(&md->shape);
    double t0 = comm_wtime();
    rowsource_gather(&tr->train_rows, rows, m, &tr->batch);
    double t1 = comm_wtime();
    const float *z = model_forward(md, tr->batch.X, m);
    double t2 = comm_wtime();
    LossTargets tg = {.y = tr->batch.y, .t = tr->batch.t};
    LossTotals part = {0};
    double correct = 0.0, decisions = 0.0;
    loss_compute(tr->loss_kind, tr->dz, NULL, &part, z, tg, m, KO, &tr->lopt);
    loss_count_correct(tr->loss_kind, z, tg, m, KO, tr->lopt.ignore_index, &correct, &decisions);
    double t3 = comm_wtime();
    model_backward_into(md, tr->batch.X, tr->dz, m, false, exact_grad_next(&tr->exact));
    double t4 = comm_wtime();
    int32_t *xs = exact_grad_slots(&tr->exact), limbs[EXACT_LIMBS];
    bool ok = exact_grad_measure(&tr->exact);
    const double vals[] = {part.sum, part.weight, correct, decisions};
    const int at[] = {XS_LOSS, XS_WEIGHT, XS_CORRECT, XS_DECISIONS};
    for (int i = 0; i < 4; i++) {
        ok = exact_limbs_encode(vals[i], limbs) && ok;
        exact_limbs_add(xs + at[i], limbs);
    }
    if (!ok) xs[XS_NONFINITE]++;
    er->io += t1 - t0;
    er->forward += t2 - t1;
    er->loss += t3 - t2;
    er->backward += t4 - t3;
    er->reduce += comm_wtime() - t4;
}

/* Step t in reproducible mode: this rank's groups, each cut into train.accumulate pieces
 * (micro-batches that are the same rows whatever P is), then the exact reduction: the
 * blocks' largest exponents (MAX), the integer sums (SUM), back to floats. Returns the
 * gradient sums (NULL when the step is non-finite). Collective. */
static const float *step_exact(Trainer *tr, size_t t, EpochRun *er, StepTotals *tot)
{
    ExactGrad *x = &tr->exact;
    const size_t k = (size_t)tr->cfg.train.accumulate;
    exact_grad_begin(x);
    for (size_t g = tr->sampler.g_lo; g < tr->sampler.g_hi; g++) {
        size_t m = sampler_group_rows(&tr->sampler, t, g, tr->rows);
        for (size_t c = 0; c < k; c++) {
            size_t lo = (m * c) / k, hi = (m * (c + 1)) / k;
            if (hi > lo) micro_batch_exact(tr, tr->rows + lo, hi - lo, er);
        }
    }
    int32_t *xs = exact_grad_slots(x);
    xs[XS_SIGNAL] = g_signal ? 1 : 0;
    fault_before_reduce(tr->r, tr->step);
    double t0 = comm_wtime();
    comm_allreduce_max_i32(tr->comm, x->mx, x->nblocks);
    double t1 = comm_wtime();
    exact_grad_convert(x);
    double t2 = comm_wtime();
    trainer_reduce_exact(tr); /* all of it, or this rank's slice */
    double t3 = comm_wtime();
    *tot = (StepTotals){.loss = exact_limbs_decode(xs + XS_LOSS),
                        .weight = exact_limbs_decode(xs + XS_WEIGHT),
                        .correct = exact_limbs_decode(xs + XS_CORRECT),
                        .decisions = exact_limbs_decode(xs + XS_DECISIONS),
                        .nonfinite = xs[XS_NONFINITE] != 0,
                        .signal = xs[XS_SIGNAL] != 0};
    const float *grads =
        tot->nonfinite ? NULL : exact_grad_finish(x, tr->lo, tr->hi);
    er->allreduce += (t1 - t0) + (t3 - t2);
    er->reduce += (t2 - t1) + (comm_wtime() - t3);
    return grads;
}

/* Collective: aborts the job when the replicas' parameters are not bit-identical. */
static void check_replicas(Trainer *tr)
{
    uint64_t h = model_param_hash(tr->model.params, tr->model.shape.n_params);
    int64_t mx = (int64_t)h, mn = (int64_t)h;
    comm_allreduce_max_i64(tr->comm, &mx, 1);
    comm_allreduce_min_i64(tr->comm, &mn, 1);
    if (mx != mn) {
        log_error0("replica check failed at step %llu: ranks hold different parameters "
                   "(hash %016llx vs %016llx); this is a bug or a faulty node",
                   (unsigned long long)tr->step, (unsigned long long)mn, (unsigned long long)mx);
        comm_abort(tr->comm, XT_ERR_RUNTIME);
    }
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

/* One step: gather -> forward, loss, backward -> one allreduce -> update. */
static StepOutcome train_step(Trainer *tr, size_t t, EpochRun *er)
{
    Model *md = &tr->model;
    const size_t n = md->shape.n_params;
    comm_watch_position(tr->comm, er->epoch, tr->step);
    double t_io = comm_wtime();
    rowsource_begin_step(&tr->train_rows, (uint64_t)(er->epoch - 1), t); /* streamed rows */
    er->io += comm_wtime() - t_io;
    StepTotals tot;
    const float *grads = tr->gbuf; /* the step's gradient sums (this rank's slice if sharded) */
    if (tr->repro) {
        grads = step_exact(tr, t, er, &tot);
    } else {
        double t0 = comm_wtime();
        size_t m = gather_batch(tr, t);
        double t1 = comm_wtime();
        local_step(tr, m, er);
        fault_before_reduce(tr->r, tr->step);
        double t2 = comm_wtime();
        if (tr->overlap) { /* the buckets were queued during backward */
            comm_async_wait(tr->comm);
            tr->overlap_wait += comm_wtime() - t2;
        } else {
            trainer_reduce(tr);
        }
        const float *slot = tr->gbuf + n;
        tot = (StepTotals){.loss = slot[SLOT_LOSS], .weight = slot[SLOT_WEIGHT],
                           .correct = slot[SLOT_CORRECT], .decisions = slot[SLOT_DECISIONS],
                           .nonfinite = slot[SLOT_NONFINITE] != 0.0f || !isfinite(slot[SLOT_LOSS]),
                           .signal = slot[SLOT_SIGNAL] != 0.0f};
        er->io += t1 - t0;
        er->allreduce += comm_wtime() - t2;
    }
    double t3 = comm_wtime();
    if (tot.nonfinite) return STEP_DIVERGED;
    er->lr = optim_lr(&tr->oset, tr->step);
    double gather_s = 0.0;
    if (tot.weight > 0.0) {
        gather_s = trainer_update(tr, grads, 1.0f / (float)tot.weight, er->lr);
        tr->step++;
    }
    er->sums.loss_sum += tot.loss;
    er->sums.weight_sum += tot.weight;
    er->sums.correct += tot.correct;
    er->sums.decisions += tot.decisions;
    double g = (double)sampler_global_count(&tr->sampler, t);
    er->sums.rows += g;
    er->rows_now += g;
    er->optim += comm_wtime() - t3 - gather_s;
    er->allreduce += gather_s;
    if (tot.signal) return STEP_SIGNALLED; /* every rank sees the same sum */
    fault_after_update(tr->r, tr->step, md->params);
    if (tr->cfg.train.check_every > 0 && tr->step % (uint64_t)tr->cfg.train.check_every == 0)
        check_replicas(tr);
    progress(tr, er, t);
    return STEP_OK;
}

/* Some rank was asked to stop: rank 0 checkpoints after step t, every rank leaves. */
static EsDecision stop_on_signal(Trainer *tr, const EpochRun *er, size_t t)
{
    Status st = XT_OK;
    comm_watch_phase(tr->comm, "rank 0 was writing checkpoint.h5 after a signal");
    trainer_gather_optim(tr); /* a sharded state comes together on rank 0 */
    if (tr->r == 0) {
        log_info("signal received: writing a checkpoint at epoch %lld step %zu",
                 (long long)er->epoch, t + 1);
        st = trainer_write_checkpoint(tr, er->epoch, t + 1, &er->sums, false, ES_CONTINUE);
    }
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
    if (!er->diverged) return early_stop_update(&tr->es, er->epoch, train_loss, vl, va);
    log_error("training diverged: the loss became NaN or Inf in epoch %lld (step %llu); lower "
              "optim.lr or set optim.clip_norm. %s", (long long)er->epoch,
              (unsigned long long)tr->step + 1,
              tr->has_best ? "model.h5 keeps the best epoch, checkpoint.h5 the last good state"
                           : "no model was saved");
    return (EsDecision){.action = ES_STOP_DIVERGED, .epoch = (int32_t)er->epoch,
                        .best_epoch = (int32_t)tr->es.best_epoch, .best_value = tr->es.best};
}

/* Rank 0: keeps an improved epoch in model.h5, writes the metrics row and, when due, the
 * checkpoint. A failure turns the decision into STOP_ERROR. */
static void record_epoch(Trainer *tr, const EpochRun *er, double train_loss, double vl,
                         double va, double vf, EsDecision *dec)
{
    const Config *c = &tr->cfg;
    const size_t n = tr->model.shape.n_params;
    if (dec->improved) {
        memcpy(tr->best, tr->model.params, n * sizeof *tr->best);
        tr->has_best = true;
        tr->best_vl = vl;
        tr->best_va = va;
    }
    tr->last_vl = vl;
    tr->last_va = va;
    if (!er->diverged && (dec->improved || !tr->model_keeps_best)) {
        ModelFile mf = trainer_model_file(tr, tr->model.params, er->epoch, vl, va);
        if (model_io_save(tr->model_path, &mf) != XT_OK) dec->action = ES_STOP_ERROR;
    }
    double now = comm_wtime(), train_time = now - er->t_start - er->val;
    MetricsRow row = {.epoch = er->epoch, .step = (int64_t)tr->step, .lr = er->lr,
                      .train_loss = train_loss, .has_val = tr->has_val, .val_loss = vl,
                      .train_accuracy = er->sums.decisions > 0
                                            ? er->sums.correct / er->sums.decisions : NAN,
                      .val_accuracy = va, .val_f1 = vf,
                      .samples_per_s = train_time > 0 ? er->rows_now / train_time : 0.0,
                      .compute_s = er->forward + er->loss + er->backward + er->optim + er->reduce,
                      .allreduce_s = er->allreduce, .io_s = er->io, .val_s = er->val,
                      .epoch_s = now - er->t_start, .forward_s = er->forward, .loss_s = er->loss,
                      .backward_s = er->backward, .optim_s = er->optim,
                      .best = dec->improved != 0, .reduce_s = er->reduce};
    if (!er->diverged) {
        char line[256];
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
    if (tr->cfg.checkpoint.every > 0) trainer_gather_optim(tr);
    comm_watch_phase(tr->comm, "rank 0 was writing model.h5, metrics.csv and checkpoint.h5");
    if (tr->r == 0) {
        dec = decide(tr, er, train_loss, vl, va);
        record_epoch(tr, er, train_loss, vl, va, vf, &dec);
    }
    trainer_drop_optim(tr);
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
    for (int64_t epoch = tr->start_epoch; epoch <= tr->cfg.train.epochs; epoch++) {
        bool first = epoch == tr->start_epoch;
        EpochRun er = {.epoch = epoch, .t_start = comm_wtime(),
                       .lr = optim_lr(&tr->oset, tr->step > 0 ? tr->step - 1 : 0)};
        if (first) er.sums = tr->start_sums;
        sampler_begin_epoch(&tr->sampler, (uint64_t)(epoch - 1));
        tr->next_t = SIZE_MAX; /* a new epoch: new permutations */
        for (size_t t = first ? tr->start_step : 0; t < tr->sampler.T; t++) {
            StepOutcome o = train_step(tr, t, &er);
            if (o == STEP_SIGNALLED) return stop_on_signal(tr, &er, t);
            if (o == STEP_DIVERGED) {
                er.diverged = true;
                break;
            }
        }
        dec = end_epoch(tr, &er);
        if (dec.action != ES_CONTINUE) break;
    }
    return dec;
}

/* ---- the run ------------------------------------------------------------------------------ */

/* Streaming: what the readers did, summed over ranks (rank 0 logs). Collective. */
static void report_stream(const Trainer *tr)
{
    if (!tr->streamed) return;
    StreamStats ss;
    stream_stop(tr->train_rows.stream); /* its counters are final */
    stream_stats(tr->train_rows.stream, &ss);
    double v[4] = {ss.bytes_read, ss.bytes_needed, ss.io_s, ss.wait_s};
    comm_allreduce_sum_double(tr->comm, v, 4);
    if (tr->r != 0) return;
    double hidden = v[2] > 0 ? 1.0 - v[3] / v[2] : 1.0;
    if (hidden < 0) hidden = 0;
    log_info("stream totals: bytes_read=%.0f bytes_needed=%.0f io_s=%.3f wait_s=%.3f hidden=%.3f "
             "amplification=%.3f", v[0], v[1], v[2], v[3], hidden, v[1] > 0 ? v[0] / v[1] : 0.0);
    log_info("stream: read %.1f MiB for %.1f MiB of rows; the reader thread spent %.2f s "
             "reading, training waited %.2f s for it (%.0f%% of the reading hidden behind "
             "compute)", v[0] / 1048576.0, v[1] / 1048576.0, v[2], v[3], 100.0 * hidden);
}

/* Overlap: how much of the reduction backward hid (rank 0 logs its own figures). */
static void report_overlap(const Trainer *tr)
{
    if (!tr->overlap || tr->r != 0) return;
    double busy = comm_async_inflight(tr->comm), wait = tr->overlap_wait;
    double hidden = busy > 0 ? 1.0 - wait / busy : 0.0;
    log_info("overlap totals: inflight_s=%.3f exposed_s=%.3f hidden=%.3f", busy, wait,
             hidden < 0 ? 0.0 : hidden);
    log_info("overlap: the ring allreduces were in flight for %.2f s; the steps waited %.2f s "
             "for them after backward (%.0f%% of that time hidden behind backward)", busy, wait,
             100.0 * (hidden < 0 ? 0.0 : hidden));
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
    if (!linalg_threads_from_env()) linalg_set_blas_threads(1);
    g_signal = 0;
    install_signal_handlers();
    if (sighold_caught()) g_signal = sighold_caught(); /* held since main's first instruction */
    double t_start = comm_wtime();
    bool help = false;
    comm_watch_phase(comm, "the ranks were starting up (loading the data and the checkpoint; "
                           "rank 0 alone reads data.val and checkpoint.h5)");
    Status st = trainer_setup(tr, argc, argv, &help);
    if (st == XT_OK && !help) st = trainer_resume(tr);
    comm_watch_phase(comm, NULL);
    if (st != XT_OK || help || tr->nothing_to_do) {
        trainer_free(tr);
        free(tr);
        return (int)st;
    }
    log_info("start-up took %.2f s: MPI init %.2f s, then %.2f s for data load, normalisation, "
             "parameter broadcast%s", comm_init_seconds(comm) + comm_wtime() - t_start,
             comm_init_seconds(comm), comm_wtime() - t_start,
             tr->start_epoch > 1 || tr->start_step > 0 ? ", resume" : "");
    EsDecision dec = train_loop(tr);
    report_stream(tr);
    report_overlap(tr);
    int code = trainer_report_end(tr, &dec);
    comm_watch_phase(comm, "rank 0 was writing model-last.h5");
    if (code == 0) code = trainer_finish_models(tr, &dec);
    comm_watch_phase(comm, NULL);
    char test_spec[XT_PATH_MAX], model_path[TRAINER_PATH_MAX];
    snprintf(test_spec, sizeof test_spec, "%s", tr->cfg.data.test);
    snprintf(model_path, sizeof model_path, "%s", tr->model_path);
    size_t eval_batch = (size_t)tr->cfg.eval.batch_size;
    double budget = config_memory_budget(&tr->cfg);
    trainer_free(tr); /* the training data leave memory before the test split comes in */
    free(tr);
    if (code == 0 && test_spec[0]) {
        log_info("---- test split ----");
        code = evaluate_run(comm, model_path, test_spec, NULL, eval_batch, budget);
    }
    return code;
}
