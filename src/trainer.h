/* trainer: the state of one `xentrain train` run, shared by the files of the train
 * module only (train.c: the loop; train_setup.c: set-up; train_resume.c: checkpoints
 * and resume). Nothing outside them includes this header.
 *
 * Every set-up step that all ranks run ends in one agreement (comm_agree), so a rank
 * that fails takes every rank down the same path out.
 */
#ifndef XT_TRAINER_H
#define XT_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "dataset.h"
#include "early_stop.h"
#include "evaluate.h"
#include "exact.h"
#include "loss.h"
#include "metrics.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "rowsource.h"
#include "runlock.h"
#include "shard.h"

/* Trailing slots of the gradient buffer that ride in the same allreduce. The flags and
 * counts are whole numbers below 2^24 (ranks; a step's decisions), exact in float, so
 * every rank reads the same value. */
enum {
    SLOT_LOSS,      /* the loss sum */
    SLOT_WEIGHT,    /* its mean's denominator */
    SLOT_NONFINITE, /* ranks whose loss was NaN or Inf */
    SLOT_SIGNAL,    /* ranks that caught a signal */
    SLOT_CORRECT,   /* right decisions (training accuracy) */
    SLOT_DECISIONS, /* all decisions */
    N_SLOTS
};

/* Reproducible mode: the int32 slots after the exact gradient sums (exact.h), in place of
 * the float slots above. Sums of doubles as limbs; flags as counts of micro-batches. */
enum {
    XS_LOSS = 0,
    XS_WEIGHT = XS_LOSS + EXACT_LIMBS,
    XS_CORRECT = XS_WEIGHT + EXACT_LIMBS,
    XS_DECISIONS = XS_CORRECT + EXACT_LIMBS,
    XS_NONFINITE = XS_DECISIONS + EXACT_LIMBS, /* micro-batches with a NaN or Inf */
    XS_SIGNAL,                                 /* ranks that caught a signal */
    N_XSLOTS
};

/* The epoch's accumulators so far, saved in checkpoints. */
typedef struct {
    double loss_sum, weight_sum, rows, correct, decisions;
} EpochSums;

#define TRAINER_PATH_MAX (XT_PATH_MAX + 16)

typedef struct {
    const Comm *comm;
    int P, r;
    Config cfg;
    char *cfg_text;    /* the resolved INI text, stored in checkpoints */
    char model_path[TRAINER_PATH_MAX], metrics_path[TRAINER_PATH_MAX];
    char ckpt_path[TRAINER_PATH_MAX];
    RunLock *lock;     /* rank 0: run.dir's lock, held for the whole run (runlock.h) */
    /* data */
    DatasetInfo tinfo, vinfo, test_info; /* test_info.n == 0: no test split */
    DataPrint data_print; /* the training split's fingerprint, kept in checkpoints */
    Dataset train, val;
    RowSource train_rows, val_rows;
    bool has_val;
    bool dense;        /* targets are (N, K) floats */
    LossKind loss_kind; /* model_loss_kind of the model and the training targets */
    size_t K;          /* classes (or labels) */
    Sampler sampler;
    size_t global_batch;
    size_t shuffle_block; /* train.shuffle = block: rows per block (resolved) */
    /* memory: the data budget per rank (0: no limit known), what decided it, how the
     * splits are held and what they take */
    double budget;
    char budget_why[1400];
    bool streamed, val_streamed;
    double data_bytes;
    /* reproducible mode (train.reproducible): G groups of virtual shards, one micro-batch
     * each per step (times train.accumulate), summed exactly */
    bool repro;
    size_t G;
    ExactGrad exact;
    float *shift, *mul; /* (D) normalisation, or NULL */
    Normalize norm;     /* data.normalize resolved (never NORM_AUTO) */
    /* model, loss, optimiser */
    Model model;
    LossOptions lopt;
    float *class_w;
    Optim optim;
    OptimSettings oset;
    /* the step's reduction and update (train_reduce.c) */
    bool shard;        /* optim.shard resolved: this rank updates parameters [part[r], part[r+1]) */
    size_t *part;      /* (P + 1) the ranks' slices, on norm-block boundaries */
    size_t *part_bytes; /* (P + 1) the same in bytes (the parameter allgather) */
    size_t lo, hi;     /* the parameters this rank updates: its slice, or all of them */
    float *gbuf;       /* the step's gradient sums and slots: the node's shared segment when
                          there is one (no copy into it), else model.grads */
    char shard_why[160], reduce_why[400];
    bool overlap;      /* comm.overlap resolved: layer buckets reduced while backward runs */
    char overlap_why[256];
    size_t pend_end;   /* overlap: gradients [.., pend_end) not yet queued */
    int next_layer;    /* overlap: the next layer whose bucket is due (L .. 1; 0: all queued) */
    double overlap_wait; /* overlap: seconds the steps waited for the reductions after backward */
    BackwardHooks hooks; /* overlap: the hooked backward's calls into train_reduce.c */
    StateList ostate;  /* rank 0, sharded: the whole optimiser state for a checkpoint */
    float *ostate_buf[STATE_MAX_ITEMS];
    bool ostate_ready;
    /* the step's buffers */
    RowBatch batch;    /* this rank's rows of the step */
    float *dz;         /* dL/dlogits */
    uint32_t *rows, *next_rows; /* this step's and the next step's local rows */
    size_t next_t, next_m;        /* next_rows holds step next_t (SIZE_MAX: none) */
    /* the epoch's end */
    EvalStats vstats;
    EarlyStop es;
    Metrics metrics;
    float *best;       /* rank 0: the best epoch's parameters (checkpoint /best) */
    bool has_best;
    bool model_keeps_best; /* model.h5 holds the best epoch (else the latest) */
    char last_path[TRAINER_PATH_MAX]; /* model-last.h5 */
    double last_vl, last_va; /* the latest epoch's validation figures */
    double best_vl, best_va; /* the best epoch's */
    uint64_t step;     /* optimiser steps taken */
    /* where the loop starts (a fresh run: epoch 1, step 0; a resumed one: the checkpoint's) */
    int64_t start_epoch;
    size_t start_step;
    EpochSums start_sums;
    bool nothing_to_do; /* resumed a run that had already finished */
} Trainer;

/* train_reduce.c. Collective. The slices of a sharded update (before optim_init) ... */
Status trainer_setup_shard(Trainer *tr);
/* ... and, once the model exists, the reduction path: the node's shared memory or MPI
 * (comm.allreduce; auto takes shared memory when every rank of a node has a CPU of its own). */
Status trainer_setup_reduce(Trainer *tr);
/* The step's reduction of tr->gbuf (n gradient sums, then the N_SLOTS slots): all of it,
 * or this rank's slice and the slots when sharded. Collective. */
void trainer_reduce(Trainer *tr);
/* The reproducible mode's integer sums (exact.acc and its N_XSLOTS slots), likewise. */
void trainer_reduce_exact(Trainer *tr);
/* Overlap: a step's buckets. begin before the hooked backward; tr->hooks are its hooks
 * (layer_done starts the ring allreduce of layer buckets of at least BUCKET_MIN bytes, the
 * first with the slots; progress moves them on); flush starts whatever is left (a rank
 * without rows starts the same buckets). */
void trainer_overlap_begin(Trainer *tr);
void trainer_overlap_flush(Trainer *tr);
/* The update with the reduced gradient; a sharded update then allgathers the parameters.
 * Collective. Returns the seconds spent in the allgather. */
double trainer_update(Trainer *tr, const float *grads, float grad_scale, double lr);
/* Rank 0 gets the whole optimiser state of a sharded update (tr->ostate) for a checkpoint;
 * nothing to do unsharded. Collective. trainer_drop_optim frees it again. */
void trainer_gather_optim(Trainer *tr);
void trainer_drop_optim(Trainer *tr);
/* The optimiser state for a checkpoint: the whole of it (rank 0). NULL when a sharded state
 * could not be gathered. */
const StateList *trainer_optim_state(Trainer *tr, StateList *tmp);
/* Restores this rank's optimiser state (its slice when sharded) and the early-stopping
 * state from a checkpoint. Local. */
Status trainer_restore_optim(Trainer *tr, const char *path, StateList *early_stop);

/* train_setup.c: parse the command line and config, create the run directory, load the
 * data and build the model; print the banner. Collective. */
Status trainer_setup(Trainer *tr, int argc, char **argv, bool *help);
void trainer_free(Trainer *tr);

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
/* The closing line for the final decision; returns the exit code. Rank 0 prints. */
int trainer_report_end(const Trainer *tr, const EsDecision *dec);
/* At the end of a finished run: model-last.h5 when model.h5 holds an earlier epoch (no
 * stale one otherwise), and the line naming the epoch model.h5 says it holds.
 * Collective (agreed); returns an exit code. */
int trainer_finish_models(Trainer *tr, const EsDecision *dec);

#endif
