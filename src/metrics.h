/* metrics: metrics.csv, one machine-readable row per epoch, and the console line.
 *
 * Columns (the first four are fixed by DESIGN.md §4):
 *   epoch,train_loss,val_loss,val_accuracy,step,lr,samples_per_s,
 *   compute_s,allreduce_s,io_s,val_s,epoch_s,val_f1,forward_s,loss_s,backward_s,optim_s,
 *   best,train_accuracy,reduce_s,objective,grad_norm
 * train_loss and val_loss are printed with 17 significant digits (a double round-trips:
 * two runs that claim the same loss hold the same bits). best is 1 on the epoch that became the best so far (the log's `*`): the monitored
 * validation metric improved, or, without validation, every epoch. The last row with 1
 * is the run's best epoch; model.h5's own epoch attribute says which epoch it holds.
 * (compute_s = forward_s + loss_s + backward_s + optim_s + reduce_s; io_s = gathering batch
 * rows; reduce_s = the reproducible mode's exponents and conversions to and from integers,
 * 0 otherwise).
 * objective and grad_norm are a full-batch solver's (optim.optimizer = lbfgs, newton): the
 * objective (mean loss + L2 penalty) and max |its gradient| after the iteration; empty
 * otherwise. For a solver an epoch is one iteration, step counts passes over the rows and lr
 * is the step length (lbfgs: |x_k+1 - x_k|; newton: the trial step's length).
 * Times are this rank's (rank 0's) wall-clock seconds within the epoch.
 * val_* are empty when there is no validation split; val_f1 is the macro F1 for
 * multi-label models and empty otherwise. Rank 0 only. Each row is flushed at once.
 */
#ifndef XT_METRICS_H
#define XT_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "error.h"

typedef struct {
    int64_t epoch, step;           /* step = optimiser steps taken so far */
    double lr, train_loss;
    bool has_val;
    double val_loss, val_accuracy, val_f1; /* val_f1: NAN when not multi-label */
    double samples_per_s;
    double compute_s, allreduce_s, io_s, val_s, epoch_s;
    double forward_s, loss_s, backward_s, optim_s;
    bool best;
    double train_accuracy;         /* right decisions / decisions over the epoch's steps, as
                                      the parameters stood at each step (before its update) */
    double reduce_s;
    double objective, grad_norm;   /* a full-batch solver's; NAN otherwise */
} MetricsRow;

typedef struct {
    FILE *f;
    char path[XT_PATH_MAX + 64];
    unsigned long long dev, ino; /* the file opened: a row is written only while path is it */
} Metrics;

/* Creates (truncates) path and writes the header; append = true keeps existing rows
 * (resume) and writes the header only to an empty file. */
Status metrics_open(Metrics *m, const char *path, bool append);
/* For a resumed run: keeps the whole rows of epochs before `epoch` (a killed run may have
 * written rows its checkpoint does not cover, or half a row) under the current header,
 * rewriting the file atomically, then opens it for appending. */
Status metrics_open_resume(Metrics *m, const char *path, int64_t epoch);
/* Appends one row with one write. Fails, naming the file, when path is no longer the file
 * that was opened (deleted, or replaced: run.dir purged during the run). */
Status metrics_write(Metrics *m, const MetricsRow *row);
void metrics_close(Metrics *m);
/* The console line for one epoch. */
void metrics_format_line(const MetricsRow *row, char *buf, size_t len);
/* The header matching metrics_format_line. */
const char *metrics_line_header(void);

#endif
