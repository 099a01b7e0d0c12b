/* early_stop: the early-stopping state machine. Pure: no I/O, no MPI.
 *
 * Rank 0 feeds it one epoch's metrics and gets a decision; the trainer broadcasts the
 * decision struct and every rank acts on that broadcast value, never on a float it
 * computed itself.
 *
 * Rules (epochs are numbered from 1):
 *   - a non-finite train loss or monitored value gives STOP_DIVERGED at once;
 *   - monitor auto is val_loss with a validation split (data.val), else train_loss: without
 *     one the run can still stop when the training loss stops falling (scikit-learn's
 *     n_iter_no_change and tol); model.h5 then holds the last epoch (the trainer's rule);
 *   - epochs before start_epoch are not monitored (no best, no patience used);
 *   - an epoch improves when, for mode min, value < best - min_delta (for mode max,
 *     value > best + min_delta); the first monitored epoch always improves;
 *   - after `patience` consecutive monitored epochs without improvement: STOP_EARLY
 *     (only when enabled; when disabled the best epoch is still tracked);
 *   - at epoch == max_epochs: STOP_MAX_EPOCHS.
 * mode auto means min for the losses and max for val_accuracy.
 */
#ifndef XT_EARLY_STOP_H
#define XT_EARLY_STOP_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "state.h"

typedef enum {
    ES_CONTINUE = 0,
    ES_STOP_EARLY = 1,
    ES_STOP_MAX_EPOCHS = 2,
    ES_STOP_DIVERGED = 3,
    ES_STOP_ERROR = 4,  /* set by the trainer when rank 0 failed at a rank-0-only task */
    ES_STOP_SIGNAL = 5  /* set by the trainer when a rank caught SIGTERM/SIGINT/SIGUSR1 */
} EsAction;

/* What rank 0 broadcasts after each epoch: plain integers and one double. */
typedef struct {
    int32_t action;     /* EsAction */
    int32_t epoch;      /* the epoch just finished */
    int32_t best_epoch; /* 0 when nothing monitored yet */
    int32_t improved;   /* 1 when this epoch became the new best */
    double best_value;
} EsDecision;

typedef struct {
    bool enabled;
    bool has_val;       /* a validation split exists (data.val) */
    Monitor monitor;
    MonitorMode mode;   /* resolved: MODE_MIN or MODE_MAX */
    int64_t patience, start_epoch, max_epochs;
    double min_delta;
    /* state */
    double best;
    int64_t best_epoch;
    int64_t bad_epochs; /* consecutive monitored epochs without improvement */
} EarlyStop;

/* From cfg->early_stopping, cfg->train.epochs and cfg->data.val. Local. */
void early_stop_init(EarlyStop *es, const Config *cfg);

/* The state a checkpoint must carry (kind "early_stopping": best, best_epoch,
 * bad_epochs), as views of es's fields. Local. */
void early_stop_state(EarlyStop *es, StateList *out);

/* Feeds the metrics of `epoch`; returns the decision. Local (rank 0). */
EsDecision early_stop_update(EarlyStop *es, int64_t epoch, double train_loss, double val_loss,
                             double val_accuracy);

const char *early_stop_action_name(EsAction a);

#endif
