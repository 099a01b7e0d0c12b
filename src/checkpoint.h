/* checkpoint: checkpoint.h5, everything needed to continue a run exactly.
 *
 * Layout (HDF5; readable with h5py), format version 2:
 *   /model              the current parameters and normalisation (model_io layout)
 *   /best               a copy of model.h5's /model when it keeps the best epoch and one
 *                       has been kept (the trainer holds no copy of it in memory)
 *   /optimizer          the optimiser's named state (optim_state): attribute kind
 *                       ("sgd"), one float32 dataset per array ("velocity"), one
 *                       attribute per scalar
 *   /early_stopping     early stopping's named state (early_stop_state): attribute kind,
 *                       attributes best, best_epoch, bad_epochs
 *   /state              attributes: format = "xentrain-checkpoint", format_version,
 *                       epoch, step_in_epoch (the next step to run in that epoch),
 *                       step (optimiser steps so far: the schedule position),
 *                       loss_sum, weight_sum, rows_seen, correct_seen, decisions_seen
 *                       (the epoch in progress),
 *                       finished (0/1), final_action, ranks (P when written),
 *                       seed (the sampler is a pure function of seed, epoch and shard:
 *                       no other RNG state exists), config (the resolved INI text),
 *                       blas_threads (per rank: the reproducible mode's bits depend on it;
 *                       optional when reading), data_rows, data_cols, data_crc32,
 *                       data_bytes, data_mtime (the training split's fingerprint,
 *                       dataset_fingerprint; optional when reading: older files have none)
 *   every float32 array carries a crc32 attribute (model_io.h), checked on load
 * Version 1 files (before named state) still load: their momentum buffer is
 * /optimizer/velocity and their early-stopping state the /state attributes es_best,
 * es_best_epoch, es_bad_epochs.
 *
 * This module never interprets module state: it stores what a StateList lists and
 * restores it by name, refusing a file whose state belongs to another kind (an Adam
 * checkpoint for an SGD run), lacks a listed item, or holds one the run does not list.
 * Written by rank 0 to a temporary name, flushed, fsync'ed, renamed, directory
 * fsync'ed: a failure at any point leaves the previous checkpoint intact.
 * Local (rank 0 writes; every rank may read).
 */
#ifndef XT_CHECKPOINT_H
#define XT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "error.h"
#include "model_io.h"
#include "state.h"

#define CHECKPOINT_FORMAT_VERSION 2

/* Where the run stands. */
typedef struct {
    int64_t epoch;          /* the epoch to continue (1-based) */
    int64_t step_in_epoch;  /* the next step of that epoch to run */
    uint64_t step;          /* optimiser steps taken */
    double loss_sum, weight_sum, rows_seen; /* accumulators of `epoch` so far */
    double correct_seen, decisions_seen;    /* its training-accuracy counts (0 in files
                                               written before they existed) */
    int64_t finished;       /* 1 when the run ended (max epochs or early stop) */
    int64_t final_action;   /* EsAction that ended it */
    int64_t ranks;
    uint64_t seed;
    int64_t blas_threads;   /* BLAS threads per rank when written (0 in older files) */
    bool has_data;          /* the training split's fingerprint is known (not in older files) */
    DataPrint data;
} CheckpointState;

typedef struct {
    CheckpointState state;
    ModelFile model;        /* current parameters (+ normalisation) */
    ModelFile best;         /* load: the kept epoch; best.params == NULL when none */
    const char *best_from;  /* save: the model file holding the kept epoch, copied to /best
                               (model_io_copy_group), or NULL: none */
    int64_t best_epoch;     /* save: that epoch (the file must say so) */
    char *config_text;      /* resolved INI */
    /* save: the module state to store (borrowed); load leaves them NULL */
    const StateList *optimizer, *early_stop;
    int64_t format_version; /* load: the file's version */
} Checkpoint;

/* Writes atomically. Borrowed pointers only. Local (rank 0). */
Status checkpoint_save(const char *path, const Checkpoint *ck);
/* Reads the position, the models and the config text (not the module state: see
 * checkpoint_restore); allocates (checkpoint_free). Local. */
Status checkpoint_load(const char *path, Checkpoint *ck);
/* Restores the listed module state, by name, straight into the lists' buffers. Errors
 * name the file, the item and the two kinds or sizes. Local. */
Status checkpoint_restore(const char *path, StateList *optimizer, StateList *early_stop);
void checkpoint_free(Checkpoint *ck);

#endif
