/* trainer: the state of one `xentrain train` run, shared by the files of the train module
 * only (train.c: the loop; train_setup.c: set-up; train_data.c: the splits; train_banner.c:
 * what the run says it does; train_resume.c: checkpoints and resume; train_outputs.c: model
 * files and the closing line). Nothing outside them includes this header.
 *
 * What the run does is decided once (plan.h) and built once: the training rows' source
 * (rowsource.h: memory or stream), the step plan (shard.h), the step's reduction
 * (reduce.h: sum, ring, exact or wide) and the method of an epoch (TrainMethod: SGD's steps,
 * or one iteration of a full-batch solver), so the loop never asks which mode it is in.
 * Every set-up step that all ranks run ends in one agreement (comm_agree), so a rank that
 * fails takes every rank down the same path out.
 */
#ifndef XT_TRAINER_H
#define XT_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "dataset.h"
#include "early_stop.h"
#include "evaluate.h"
#include "loss.h"
#include "metrics.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "plan.h"
#include "reduce.h"
#include "rowsource.h"
#include "runlock.h"
#include "shard.h"

/* The epoch's accumulators so far, saved in checkpoints. */
typedef struct {
    double loss_sum, weight_sum, rows, correct, decisions;
} EpochSums;

#define TRAINER_PATH_MAX (XT_PATH_MAX + 16)

/* The run directory's files. */
typedef struct {
    char model[TRAINER_PATH_MAX], last[TRAINER_PATH_MAX]; /* model.h5, model-last.h5 */
    char metrics[TRAINER_PATH_MAX], ckpt[TRAINER_PATH_MAX];
} RunFiles;

/* Rank 0: what the run's epochs did, for the hints at its end (train_outputs.c). */
typedef struct {
    int64_t epochs;               /* epochs run in this process */
    double first_loss, last_loss; /* their first and last training loss */
    bool last_improved;           /* the last epoch was a new best of the monitored value */
} RunTrace;

/* Where the loop starts: a fresh run at epoch 1, step 0; a resumed one at the checkpoint's. */
typedef struct {
    int64_t epoch;
    size_t step;
    EpochSums sums;
    bool nothing_to_do; /* resumed a run that had already finished */
} RunStart;

/* One epoch in progress: its sums, timers and where it stands. */
typedef struct {
    int64_t epoch;
    double t_start, last_progress;
    bool progress_shown;
    EpochSums sums;  /* loss, weight, rows, correct and all decisions of the epoch so far */
    double rows_now; /* rows trained in this process (for samples/s) */
    double lr;       /* SGD: the learning rate; a solver: its step length (metrics' lr) */
    bool diverged;
    size_t resume_step; /* after EPOCH_SIGNALLED: the step of this epoch a resumed run runs next */
    /* a full-batch solver: the objective and max |gradient| after the iteration (NAN for
     * SGD), and whether it ended the run (converged, or its pass cap) */
    double objective, grad_norm;
    bool converged, capped;
    /* wall-clock split, seconds; compute = forward + loss + backward + optim (+ reduce:
     * the reproducible mode's conversions to and from integers) */
    double forward, loss, backward, optim, allreduce, io, val, reduce;
} EpochRun;

typedef enum { EPOCH_DONE, EPOCH_DIVERGED, EPOCH_SIGNALLED } EpochEnd;

typedef struct Trainer Trainer;

/* How an epoch trains, chosen once at set-up (trainer_setup): SGD's steps (train.c) or one
 * iteration of a full-batch solver (train_solver.c). The loop calls it and then ends the
 * epoch the same way for both (validation, decision, metrics row, checkpoint). Collective. */
typedef struct {
    const char *name;
    /* One epoch, from step `first` (a resumed epoch's; 0 otherwise). */
    EpochEnd (*epoch)(Trainer *tr, EpochRun *er, size_t first);
} TrainMethod;

extern const TrainMethod TRAIN_SGD, TRAIN_SOLVER;

struct TrainSolver; /* train_solver.c */

struct Trainer {
    const Comm *comm;
    int P, r;
    Config cfg;
    char *cfg_text;     /* the resolved INI text, stored in checkpoints */
    RunFiles files;
    Plan plan;          /* every auto resolved, with its reason */
    RunLock *lock;      /* rank 0: run.dir's lock, held for the whole run (runlock.h) */
    /* data */
    DatasetInfo tinfo, vinfo, test_info; /* test_info.n == 0: no test split */
    DataPrint data_print; /* the training split's fingerprint, kept in checkpoints */
    Dataset train, val;
    RowSource train_rows, val_rows;
    bool has_val;
    LossKind loss_kind; /* model_loss_kind of the model and the training targets */
    size_t K;           /* classes (or labels) */
    Sampler sampler;
    StepPlan steps[2];  /* this step's plan and the next one's (its rows read ahead) */
    float *shift, *mul; /* (D) normalisation, or NULL */
    double data_bytes;  /* what the training rows take on this rank */
    /* model, loss, optimiser, reduction */
    Model model;        /* over the reduction's parameters */
    LossOptions lopt;
    float *class_w;
    OptimSettings oset;
    Reduce *red;
    RowBatch batch;     /* one micro-batch's rows */
    float *dz;          /* dL/dlogits */
    /* the epoch's end */
    EvalStats vstats;
    EarlyStop es;
    Metrics metrics;
    bool model_keeps_best; /* model.h5 holds the best epoch (else the latest) */
    bool best_kept;        /* rank 0: it does hold one (the only copy: checkpoints copy
                              their /best from it, a resume writes it from theirs) */
    bool model_when_due;   /* the latest goes to model.h5 only with a checkpoint and at the
                              end (a solver: an iteration costs about one write) */
    double last_vl, last_va; /* the latest epoch's validation figures */
    uint64_t step;      /* optimiser steps taken (a solver: passes over the rows) */
    RunStart start;
    RunTrace trace;
    const TrainMethod *method;
    struct TrainSolver *solver; /* a full-batch solver's, NULL for SGD */
    char end_why[320];  /* a solver's closing line: why it stopped (the same on every rank) */
};

/* train_batch.c: the m rows in tr->batch through the model into the reduction's partial
 * buffer `part`: forward -> loss (its totals added to the reduction) -> backward (with the
 * reduction's hooks; `last`: the step's last micro-batch). The micro-batch of SGD's steps
 * and of a solver's passes; timings go to er. Local. */
void trainer_batch_gradient(Trainer *tr, size_t m, size_t part, bool last, EpochRun *er);

/* train_setup.c: parse the command line and config, create the run directory, load the
 * data, plan, build the model and the reduction (which reads `signal`, the flag train.c's
 * handler sets; borrowed); print the banner. Collective. */
Status trainer_setup(Trainer *tr, int argc, char **argv, const volatile sig_atomic_t *signal,
                     bool *help);
void trainer_free(Trainer *tr);

/* train_data.c: the splits (probe, plan_data, shard, load or open for streaming, classes,
 * normalisation, validation rows). Collective. */
Status trainer_setup_data(Trainer *tr);
void trainer_free_data(Trainer *tr);

/* train_solver.c: a full-batch solver over the model and the reduction (after both exist;
 * registers its state for checkpoints). Collective (agreed). */
Status trainer_setup_solver(Trainer *tr);
void trainer_free_solver(Trainer *tr);
/* Rank 0: the banner's lines of the solver. */
void trainer_banner_solver(const Trainer *tr);

/* train_banner.c: rank 0 prints what the run does and why. */
void trainer_banner(const Trainer *tr);

/* train_resume.c. Decides whether to resume (train.resume), restores the run, opens
 * metrics.csv, and writes config.ini when the run goes ahead. Collective. */
Status trainer_resume(Trainer *tr);
/* Rank 0: checkpoint.h5 for the position (epoch, step_in_epoch) and the epoch's
 * accumulators so far. */
Status trainer_write_checkpoint(Trainer *tr, int64_t epoch, size_t step_in_epoch,
                                const EpochSums *sums, bool finished, int32_t action);

/* train_outputs.c. A model file of these parameters (a view: nothing is copied). */
ModelFile trainer_model_file(const Trainer *tr, const float *params, int64_t epoch, double vl,
                             double va);
/* Streaming: what the readers did, summed over ranks (rank 0 logs). Collective; nothing
 * when the rows are in memory. */
void trainer_report_stream(Trainer *tr);
/* The closing line for the final decision, then the hints (each with its reason) when the
 * run's figures suggest a setting to change; returns the exit code. Rank 0 prints. */
int trainer_report_end(const Trainer *tr, const EsDecision *dec);
/* At the end of a finished run: model-last.h5 when model.h5 holds an earlier epoch (no
 * stale one otherwise), and the line naming the epoch model.h5 says it holds.
 * Collective (agreed); returns an exit code. */
int trainer_finish_models(Trainer *tr, const EsDecision *dec);

#endif
