/* checkpoint: checkpoint.h5, everything needed to continue a run exactly.
 *
 * Layout (HDF5; readable with h5py):
 *   /model              the current parameters and normalisation (model_io layout)
 *   /best               the best epoch's parameters (model_io layout), when one exists
 *   /optimizer/velocity float32 (n_params) momentum buffer, when momentum > 0
 *   /state              attributes: format = "xentrain-checkpoint", format_version,
 *                       epoch, step_in_epoch (the next step to run in that epoch),
 *                       step (optimiser steps so far: the schedule position),
 *                       loss_sum, weight_sum, rows_seen (the epoch in progress),
 *                       es_best, es_best_epoch, es_bad_epochs (early stopping),
 *                       finished (0/1), final_action, ranks (P when written),
 *                       seed (the sampler is a pure function of seed, epoch and shard:
 *                       no other RNG state exists), config (the resolved INI text)
 * Written by rank 0 to a temporary name, flushed, fsync'ed, renamed, directory
 * fsync'ed: a failure at any point leaves the previous checkpoint intact.
 * Local (rank 0 writes; every rank may read).
 */
#ifndef XT_CHECKPOINT_H
#define XT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model_io.h"

#define CHECKPOINT_FORMAT_VERSION 1

typedef struct {
    int64_t epoch;          /* the epoch to continue (1-based) */
    int64_t step_in_epoch;  /* the next step of that epoch to run */
    uint64_t step;          /* optimiser steps taken */
    double loss_sum, weight_sum, rows_seen; /* accumulators of `epoch` so far */
    double es_best;
    int64_t es_best_epoch, es_bad_epochs;
    int64_t finished;       /* 1 when the run ended (max epochs or early stop) */
    int64_t final_action;   /* EsAction that ended it */
    int64_t ranks;
    uint64_t seed;
} CheckpointState;

typedef struct {
    CheckpointState state;
    ModelFile model;        /* current parameters (+ normalisation) */
    ModelFile best;         /* best parameters; best.params == NULL when none */
    float *velocity;        /* (n_params) or NULL */
    char *config_text;      /* resolved INI */
} Checkpoint;

/* Writes atomically. Borrowed pointers only. Local (rank 0). */
Status checkpoint_save(const char *path, const Checkpoint *ck);
/* Reads and validates; allocates the arrays and text (checkpoint_free). Local. */
Status checkpoint_load(const char *path, Checkpoint *ck);
void checkpoint_free(Checkpoint *ck);

/* Compares the keys that must not change across a resume (data, model shape, loss,
 * batch, seed, shuffling, virtual shards, momentum) between two resolved INI texts.
 * Writes "key: 'old' -> 'new'" entries for every difference into diff; returns how
 * many differ. */
size_t checkpoint_config_diff(const char *saved, const char *current, char *diff, size_t len);

#endif
