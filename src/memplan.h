/* memplan: what a training run's model takes in memory per rank, before it is allocated.
 *
 * A model too large for the node used to be killed by the kernel (exit 137, no word) or
 * to fail an allocation without saying which (`eval.batch_size = 2147483647`: exit 1, no
 * output). The set-up estimates the model's bytes from the shapes and settings and
 * refuses, naming the keys that drive it, when they do not fit the memory this rank may
 * use: the limit sysmem reads (the smaller of MemAvailable and the memory cgroup's limit,
 * shared by the node's ranks), less what the data plan took.
 *
 * Counted per rank (float32 everywhere):
 *   parameters  n x param_copies: the parameters, the gradient sums (plus the step's
 *               slots), the node's shared segments (the best epoch is kept in model.h5,
 *               not in memory);
 *   optimiser   n x optim_buffers x the share this rank updates (1/P when optim.shard),
 *               plus, on rank 0 of a sharded run, the whole state gathered for a
 *               checkpoint;
 *   activations the model's forward/backward buffers for the larger of a micro-step's rows
 *               (train.batch_size / P / train.accumulate) and the validation pass's
 *               (eval.batch_size, capped by the validation split's rows): one row holds
 *               every layer's outputs and two work rows of the widest hidden layer; plus the
 *               step's input rows (D), targets and dL/dlogits;
 *   evaluation  the validation pass's input rows and targets;
 *   exact       the reproducible mode's partial gradients (n each).
 * Does not: count the data (the data plan does: data.memory_budget), the MPI library, HDF5
 * or BLAS's own buffers (hence the margin MEMPLAN_HEADROOM).
 * Pure functions; Local.
 */
#ifndef XT_MEMPLAN_H
#define XT_MEMPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "model.h"

/* The share of the limit the model may take: the rest is for the libraries and the
 * stack; the data plan has its own share. */
#define MEMPLAN_HEADROOM 0.9

typedef struct {
    size_t n_params;       /* n */
    size_t slots;          /* extra floats reduced with the gradient sums */
    size_t layer_sum;      /* sizes[1] + ... + sizes[L]: one row's layer outputs */
    size_t widest;         /* the widest hidden layer (backward's scratch), at least 1 */
    size_t d, k_out, k_targets; /* floats per input row (features; for CSR rows the values,
                                   indices and indptr), model outputs, target columns (0: ids) */
    size_t train_rows;     /* rows of one micro-step on this rank */
    size_t eval_rows;      /* eval.batch_size capped by the validation rows; 0: none */
    size_t param_copies;   /* whole-model float buffers besides the optimiser's */
    size_t optim_buffers;  /* optimiser buffers per parameter (sgd 0 or 1, adam 2, ...) */
    size_t ranks;          /* P */
    bool sharded;          /* optim.shard: this rank holds 1/P of the optimiser state */
    bool rank0;            /* rank 0 (gathers a sharded state for checkpoints) */
    size_t exact_parts;    /* reproducible mode: partial gradients held; 0 otherwise */
} MemNeeds;

typedef struct {
    double params, optim, activations, eval, exact; /* bytes */
    double total;
} MemEstimate;

/* Bytes per rank of the model described by n. */
void memplan_estimate(const MemNeeds *n, MemEstimate *e);

/* XT_OK when e fits MEMPLAN_HEADROOM x limit (limit <= 0: unknown, nothing refused);
 * otherwise XT_ERR_USAGE and, in msg, what does not fit: the total and its parts, the
 * limit and where it comes from (limit_why), and the keys to change, the largest part's
 * first. */
Status memplan_check(const MemEstimate *e, double limit, const char *limit_why, char *msg,
                     size_t len);

/* The needs of a training run from its settings: the model's shape, the rows of one
 * micro-step on this rank, the validation split's rows (0: none), the target columns
 * (0: class ids), P, and the reproducible mode's partial gradients (0: off). Estimated for
 * rank 0, which holds the most (a sharded state gathered, the validation pass). */
void memplan_needs(MemNeeds *n, const ModelShape *shape, const Config *c,
                   size_t train_rows, size_t val_rows, size_t k_targets, int ranks,
                   size_t exact_parts);
/* Collective in effect (every rank computes the same): estimates n against the memory
 * sysmem reads for this node, shared by local_ranks ranks, less data_bytes (this rank's
 * data); rank 0 logs the refusal. XT_ERR_USAGE when it does not fit. */
Status memplan_refuse(const MemNeeds *n, int local_ranks, double data_bytes);

#endif
