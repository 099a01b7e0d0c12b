/* trainer: the state of one `xentrain train` run, shared by the files of the train module
 * only (train.c: the loop; train_setup.c: set-up; train_data.c: the splits; train_banner.c:
 * what the run says it does; train_resume.c: checkpoints and resume; train_outputs.c: model
 * files and the closing line). Nothing outside them includes this header.
 *
 * What the run does is decided once (plan.h) and built once: the training rows' source
 * (rowsource.h: memory or stream), the step plan (shard.h) and the step's reduction
 * (reduce.h: sum, ring or exact), so the loop never asks which mode it is in.
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

/* Rank 0: the best epoch so far (checkpoint /best, model.h5). */
typedef struct {
    float *params;   /* (n_params) */
    bool has;
    double vl, va;   /* its validation loss and accuracy */
} BestModel;

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

typedef struct {
    const Comm *comm;
    int P, r;
    Config cfg;
    char *cfg_text;     /* the resolved INI text, stored in checkpoints */
    RunFiles files;
    Plan plan;          /* every auto resolved, with its reason */
    /* data */
    DatasetInfo tinfo, vinfo, test_info; /* test_info.n == 0: no test split */
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
    BestModel best;
    bool model_keeps_best; /* model.h5 holds the best epoch (else the latest) */
    double last_vl, last_va; /* the latest epoch's validation figures */
    uint64_t step;      /* optimiser steps taken */
    RunStart start;
    RunTrace trace;
} Trainer;

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
