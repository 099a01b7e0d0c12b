/* reduce: the training step's reduction, one interface, one implementation chosen at set-up.
 *
 * A step computes its micro-batches' gradient SUMS into partial buffers this module owns,
 * with each micro-batch's totals (loss, weight, right decisions, all decisions); then ONE
 * logical reduction carries the gradients and the totals, with the flags every rank must
 * agree on (a non-finite loss or gradient, a caught signal), to every rank; then the
 * optimiser updates the parameters this rank owns and, when the update is sharded, the ranks
 * allgather them. The trainer drives that with the same calls in every mode:
 *
 *   reduce_begin                                       a new step
 *   for each micro-batch i of the step plan (shard.h):
 *     reduce_add(i's totals); reduce_note_input(&i's rows); g = reduce_partial(i)
 *                                                      before its backward
 *     backward into g, with reduce_hooks(last?)        (overlap: buckets start inside it)
 *     reduce_partial_done(i)
 *   reduce_finish -> the totals, the reduced gradient  the step's collective
 *   reduce_update(lr)                                  the optimiser, then the allgather
 *
 * Implementations (plan.h decides which; the banner prints reduce_describe):
 *   sum    float sums in one buffer (micro-batches add up), allreduced, or reduce-scattered
 *          with each rank updating its slice and allgathering (optim.shard), through MPI or
 *          the node's shared memory (comm.allreduce)                     reduce_sum.c
 *   ring   the same float sums, each layer's bucket ring-allreduced while backward computes
 *          the layers below it (comm.overlap)                            reduce_ring.c
 *   exact  each micro-batch its own partial, rounded once to integers and summed exactly,
 *          the same bits at any P (train.reproducible; exact.h), allreduced or sliced like
 *          sum                                                           reduce_exact.c
 *   wide   float sums like sum, then the gradient and the totals allreduced in double: a
 *          full-batch solver's pass (its line search needs the loss to 1e-15) reduce_wide.c
 *   sparse float sums like sum; for CSR data the touched columns of W_1 allgathered with
 *          the rest allreduced, when that moves fewer bytes, decided per step reduce_sparse.c
 *   touched  the same exchange for plain SGD on CSR data, with the touched columns taken
 *          from the rows (reduce_note_input), their gradient packed in runs at the start of
 *          W_1's part of a buffer kept zero elsewhere, only those columns updated: a step
 *          costs O(its non-zeros) in time and memory, not O(D)          reduce_sparse.c
 * A new way to reduce is one more implementation of reduce_impl.h's table.
 *
 * Buffers: reduce_open allocates, before the model exists, the parameters (in the node's
 * shared window when a sharded update pushes them there), the partial gradient buffers (the
 * sum's in the window when the reduction reads it in place) and the optimiser with its
 * state for this rank's slice. Nothing is swapped or allocated afterwards.
 * Checkpoints see the whole optimiser state: reduce_gather_state brings a sharded state
 * together on rank 0; reduce_restore_state takes this rank's slice of a saved one.
 */
#ifndef XT_REDUCE_H
#define XT_REDUCE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "error.h"
#include "model.h"
#include "optim.h"
#include "plan.h"
#include "state.h"

typedef struct Reduce Reduce;

/* Sums of a micro-batch (this rank) or of a step (all ranks). */
typedef struct {
    double loss, weight;       /* the loss sum and its mean's denominator */
    double correct, decisions; /* training accuracy */
} StepSums;

typedef struct {
    StepSums sums;
    bool nonfinite;            /* some rank's loss or gradient was NaN or Inf */
    bool signal;               /* some rank caught a signal */
} StepTotals;

/* Seconds a step's finish spent moving data between ranks, and computing around it (the
 * exact sums' conversions). */
typedef struct {
    double comm_s, work_s;
} ReduceTimes;

/* What reduce_open reads (during the call only, but the signal flag). */
typedef struct {
    const Plan *plan;
    const ModelShape *shape;
    const OptimSettings *oset;
    size_t parts;             /* partial buffers a step needs here (step_plan_max_parts) */
    size_t terms;             /* micro-batches per update over all ranks (exact sums) */
    const volatile sig_atomic_t *signal; /* nonzero: this rank caught a signal; borrowed */
} ReduceSpec;

/* Collective: the implementation the plan chose, its buffers and the optimiser. A shared
 * window or ring buffers that cannot be had fall back to MPI (warned, and described). */
Status reduce_open(const Comm *comm, const ReduceSpec *spec, Reduce **out);
/* Collective (frees windows and communicators); sets *r to NULL. Safe on NULL. */
void reduce_close(Reduce **r);

/* The parameters (n_params floats): the model computes over them. */
float *reduce_params(Reduce *r);
/* The parameters this rank's optimiser updates: [lo, hi) (all of them unless sharded). */
void reduce_slice(const Reduce *r, size_t *lo, size_t *hi);
/* One banner line: the path and why ("MPI allreduce (comm.allreduce = mpi)"). */
void reduce_describe(const Reduce *r, char *buf, size_t len);
/* Rank 0 logs what the reduction did over the run (overlap: how much backward hid; the
 * sparse exchange: how many steps it served). */
void reduce_report(const Reduce *r);
/* The sparse implementation's steps so far, exchanged sparse and dense (0 and 0 for the
 * others). Local. */
void reduce_sparse_counts(const Reduce *r, uint64_t *sparse_steps, uint64_t *dense_steps);

/* ---- the step (Local but reduce_finish and reduce_update) ------------------------------ */
void reduce_begin(Reduce *r);
/* Micro-batch `part`'s totals (before its backward). */
void reduce_add(Reduce *r, size_t part, const StepSums *s);
/* Where micro-batch `part`'s backward writes; *accumulate: add to what is there. */
float *reduce_partial(Reduce *r, size_t part, bool *accumulate);
/* The hooks for the backward of a micro-batch (last: the step's last), or NULL. */
const BackwardHooks *reduce_hooks(Reduce *r, bool last);
/* Micro-batch `part`'s first-layer input, before its backward, which must take `in` as this
 * leaves it (the touched implementation learns the columns its CSR rows touch and sets
 * in->w1_pos, where backward adds their gradient; the others leave it alone). */
void reduce_note_input(Reduce *r, size_t part, ModelInput *in);
/* Micro-batch `part`'s gradient is written. */
void reduce_partial_done(Reduce *r, size_t part);
/* Collective: the step's reduction. Returns the reduced gradient sums of this rank's slice
 * (valid until the next reduce_begin; NULL when tot->nonfinite), the totals (the same bits
 * on every rank) and the times. */
const float *reduce_finish(Reduce *r, StepTotals *tot, ReduceTimes *times);
/* Collective when sharded: the optimiser's update of this rank's slice with grad_scale *
 * grads, then the parameters' allgather. Returns the allgather's seconds. */
double reduce_update(Reduce *r, const float *grads, float grad_scale, double lr);

/* Collective: aborts the job when the ranks' parameters are not bit-identical (a bug or a
 * faulty node; train.check_every). step: for the message. */
void reduce_check_replicas(const Reduce *r, uint64_t step);

/* ---- checkpoints ------------------------------------------------------------------------ */
/* Collective when sharded (else nothing): rank 0 gathers the whole optimiser state. */
void reduce_gather_state(Reduce *r);
/* Rank 0: the whole optimiser state (views; tmp is storage for them), NULL when a sharded
 * state could not be gathered. */
const StateList *reduce_state(Reduce *r, StateList *tmp);
/* Frees what reduce_gather_state gathered. */
void reduce_drop_state(Reduce *r);
/* A full-batch solver keeps its own state (solver.h): from now on checkpoints store `s`
 * (borrowed: its buffers must outlive r) in place of the optimiser's, and
 * reduce_restore_state restores into it. Local. */
void reduce_set_solver_state(Reduce *r, StateList *s);
/* Local: this rank's optimiser state (its slice when sharded) and the early-stopping state
 * from a checkpoint. */
Status reduce_restore_state(Reduce *r, const char *path, StateList *early_stop);

/* Overlap's buckets for a model: layers L .. 1 merged until a bucket holds at least
 * REDUCE_BUCKET_MIN bytes (the slots ride in the first), the rest in the last. Their number,
 * and the smallest one's bytes in *smallest (plan_step's facts). */
#define REDUCE_BUCKET_MIN ((size_t)256 << 10)
int reduce_ring_buckets(const ModelShape *s, size_t *smallest);

#endif
