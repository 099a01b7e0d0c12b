/* evaluate: loss, accuracy, confusion matrix and per-label F1 of a model on the rows of
 * a RowSource; the `xentrain eval` subcommand and evaluate_run, which the trainer calls
 * for the test split. (`xentrain predict` is predict.c.)
 *
 * The reported loss is the plain cross-entropy of the loss kind (loss.h; no class
 * weights, no label smoothing, no pos_weight; rows whose label equals
 * loss.ignore_index are skipped) with PyTorch's mean, so validation curves compare
 * across loss options. Accuracy: argmax against the class id (softmax; against the
 * argmax of the target row for probability targets), z > 0 (logistic), and for
 * multi-label the fraction of per-output decisions (z > 0 versus y >= 0.5) that are
 * right.
 * All counters live in one flat double buffer so ranks sum them with one allreduce.
 */
#ifndef XT_EVALUATE_H
#define XT_EVALUATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "dataset.h"
#include "error.h"
#include "model.h"
#include "model_io.h"
#include "rowsource.h"

/* Counters before the confusion matrix or the per-label counts in the flat buffer. */
#define EVAL_SCALARS 6

typedef struct {
    LossKind kind;       /* model_loss_kind of the model and the split's targets */
    size_t K;            /* classes (confusion matrix K x K) or labels (multi-label) */
    bool multilabel;
    double *buf;         /* one flat buffer: everything below points into it */
    size_t len;
    /* the loss's sum as an exact pair (exact.h: hi + lo 2^-32, each block's sum rounded
     * to 2^-32, then summed exactly: the same value however the blocks are spread over
     * ranks) and its mean's denominator */
    double *loss_hi, *loss_lo, *loss_weight;
    double *rows, *correct, *decisions;
    double *confusion;   /* (K, K): [true][predicted] counts (not multi-label) */
    double *tp, *fp, *fn; /* (K) per-label counts (multi-label) */
    RowBatch batch;      /* rows read from the source, max_rows of them */
    size_t max_rows;
} EvalStats;

/* Counters for a model of shape s, and a row buffer for up to max_rows rows of src in its
 * batches' form (the model's max_batch: evaluation reads that many rows per forward pass;
 * CSR rows stay CSR when src hands out CSR batches). */
Status eval_stats_init(EvalStats *st, const ModelShape *s, LossKind kind, size_t max_rows,
                       const RowSource *src);
void eval_stats_reset(EvalStats *st);
void eval_stats_free(EvalStats *st);

/* Accumulates every row of src, m->max_batch rows per forward pass (at most
 * st->max_rows). Local. */
void eval_accumulate(EvalStats *st, Model *m, const RowSource *src, int32_t ignore_index);
/* Collective: sums the counters over ranks (in place). */
void eval_stats_allreduce(EvalStats *st, const Comm *comm);

double eval_loss(const EvalStats *st);
double eval_accuracy(const EvalStats *st);
/* One class's (or label's) precision, recall, F1 and support (true rows). A class that
 * is neither present nor predicted scores 1 (nothing was missed or wrongly claimed). */
typedef struct {
    double precision, recall, f1, support;
} EvalScores;
void eval_class_scores(const EvalStats *st, size_t k, EvalScores *out);
/* The mean F1 over the classes that occur in the labels or the predictions, as
 * scikit-learn averages by default (every label of a multi-label model). */
double eval_macro_f1(const EvalStats *st);

/* Loads a model file on every rank and this rank's share of a split: whole blocks of
 * `batch` rows (shard_block_range; the same forward passes at any P), checks that they fit together (*kind: model_loss_kind) and
 * applies the model's normalisation; rows go through m in passes of at most `batch`
 * rows. targets = false (predict) reads X only: y may be absent, and is ignored when
 * present. The rows are held in memory, or read from the file block by block when they
 * do not fit `budget` bytes per rank (0 = auto, rowsource_budget; budget_name, the option
 * that set it, for messages). Collective (agreed).
 * Used by eval and predict. */
Status eval_load(const Comm *comm, const char *model_path, const char *spec, size_t batch,
                 double budget, const char *budget_name, bool targets, ModelFile *mf,
                 Dataset *ds, RowSource *src, Model *m, LossKind *kind);

/* Evaluates model_path on the split `spec` and prints the report (rank 0); writes it as
 * JSON to json_path too when not NULL. Collective. Returns an exit code. */
int evaluate_run(const Comm *comm, const char *model_path, const char *spec,
                 const char *json_path, size_t batch, double budget);

/* `xentrain eval`: argv[0] is "eval". Collective over comm. Returns an exit code. */
int evaluate_main(const Comm *comm, int argc, char **argv);

#endif
