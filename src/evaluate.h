/* evaluate: loss, accuracy, confusion matrix and per-label F1 of a model on rows in
 * memory; and the `xentrain eval` and `xentrain predict` subcommands.
 *
 * The reported loss is the plain cross-entropy of the model's head (no class weights,
 * no label smoothing; rows whose label equals loss.ignore_index are skipped), averaged
 * over rows, so validation curves compare across loss options.
 * Accuracy: argmax (softmax), z > 0 (logistic), and for multi-label the fraction of
 * per-label decisions (z > 0 versus y >= 0.5) that are right.
 * All counters live in one flat double buffer so ranks sum them with one allreduce.
 */
#ifndef XT_EVALUATE_H
#define XT_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "error.h"
#include "model.h"

typedef struct {
    size_t K;            /* classes (confusion matrix K x K) or labels (multi-label) */
    bool multilabel;
    double *buf;         /* one flat buffer: everything below points into it */
    size_t len;
    double *loss_sum, *rows, *correct, *decisions;
    double *confusion;   /* (K, K): [true][predicted] counts (not multi-label) */
    double *tp, *fp, *fn; /* (K) per-label counts (multi-label) */
} EvalStats;

Status eval_stats_init(EvalStats *st, const ModelShape *s);
void eval_stats_reset(EvalStats *st);
void eval_stats_free(EvalStats *st);

/* Accumulates n rows (X (n, D); y class ids or t (n, K) dense targets) using the
 * model's buffers in chunks of m->max_batch rows. Local. */
void eval_accumulate(EvalStats *st, Model *m, const float *X, const int32_t *y,
                     const float *t, size_t n, int32_t ignore_index);
/* Collective: sums the counters over ranks (in place). */
void eval_stats_allreduce(EvalStats *st, const Comm *comm);

double eval_loss(const EvalStats *st);
double eval_accuracy(const EvalStats *st);
double eval_macro_f1(const EvalStats *st); /* multi-label: mean per-label F1 */

/* `xentrain eval` / `xentrain predict`: argv[0] is the subcommand. Collective over
 * comm (every rank evaluates its balanced share of the rows). Return exit codes. */
int evaluate_main(const Comm *comm, int argc, char **argv);
int predict_main(const Comm *comm, int argc, char **argv);

#endif
