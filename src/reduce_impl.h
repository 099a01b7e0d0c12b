/* reduce_impl: what an implementation of the step's reduction provides (see reduce.h).
 * Internal to the reduce module (reduce.c and its reduce_*.c implementations).
 *
 * reduce.c owns what every implementation shares: the parameters, the transport (CommPath),
 * the slices of a sharded update and the optimiser. An implementation owns its partial
 * buffers and its slot layout (the totals that ride in the reduction) and fills this table.
 * To add one: write reduce_NAME.c with the table, add it to reduce_choose in reduce.c and to
 * the plan's decision (plan.c), and test it in tests/test_reduce_mpi.c against the plain sum.
 */
#ifndef XT_REDUCE_IMPL_H
#define XT_REDUCE_IMPL_H

#include "reduce.h"

typedef struct {
    const char *name;
    /* 4-byte elements of the buffer the reduction reads in place, for n parameters: what a
     * shared window must hold. */
    size_t (*buffer_elems)(size_t n);
    /* Allocates the implementation's state (r->impl); the buffer in the transport's window
     * when it has one (comm_path_buffer). XT_ERR_RUNTIME with the reason in why. Collective
     * (every rank opens the same implementation). */
    Status (*open)(Reduce *r, const ReduceSpec *spec, char *why, size_t len);
    void (*close)(Reduce *r);
    void (*begin)(Reduce *r);
    void (*add)(Reduce *r, size_t part, const StepSums *s);
    float *(*partial)(Reduce *r, size_t part, bool *accumulate);
    const BackwardHooks *(*hooks)(Reduce *r, bool last);
    void (*done)(Reduce *r, size_t part);
    const float *(*finish)(Reduce *r, StepTotals *tot, ReduceTimes *t);
    void (*report)(const Reduce *r);
    /* Optional (NULL: ignored): micro-batch part's first-layer input, before its backward
     * (the touched columns of CSR rows; may set in->w1_pos). */
    void (*note)(Reduce *r, size_t part, ModelInput *in);
    /* Optional (NULL: optim_step then after_update): the update. */
    double (*update)(Reduce *r, const float *grads, float grad_scale, double lr);
} ReduceOps;

extern const ReduceOps REDUCE_SUM, REDUCE_RING, REDUCE_EXACT, REDUCE_WIDE, REDUCE_SPARSE,
    REDUCE_TOUCHED;

struct Reduce {
    const ReduceOps *ops;
    const Comm *comm;
    int P, rank;
    size_t n;                    /* parameters */
    CommPath *path;              /* the transport (NULL for the ring, which has its own) */
    /* The step's collective on a buffer of n values and `tail` slots: all of it
     * (allreduce), or each rank its slice and the tail (reduce-scatter). Chosen at open. */
    void (*cross)(Reduce *r, void *buf, size_t tail, CommType t);
    /* After the update: nothing, or the parameters' allgather (sharded). */
    double (*after_update)(Reduce *r);
    size_t *part, *part_bytes;   /* (P + 1) the ranks' slices, elements and bytes */
    size_t lo, hi;               /* this rank's slice */
    float *params;               /* (n) the parameters: params_own, or the shared window's */
    float *params_own;
    Optim optim;                 /* this rank's slice */
    StateList ostate;            /* rank 0, sharded: the gathered state for a checkpoint */
    float *ostate_buf[STATE_MAX_ITEMS];
    bool ostate_ready;
    StateList *solver_state;     /* a full-batch solver's state, checkpointed in the optimiser's
                                    place (reduce_set_solver_state); borrowed */
    const volatile sig_atomic_t *signal;
    char why[2 * PLAN_WHY];      /* reduce_describe's line */
    void *impl;
};

/* ---- float sums (reduce_sum.c; the ring reuses them) ------------------------------------
 * The buffer holds the n gradient sums, then these slots: the step's totals ride in the same
 * reduction. The flags and counts are whole numbers below 2^24 (ranks; a step's
 * decisions), exact in float, so every rank reads the same value. */
enum {
    SLOT_LOSS,      /* the loss sum */
    SLOT_WEIGHT,    /* its mean's denominator */
    SLOT_NONFINITE, /* ranks whose loss was NaN or Inf */
    SLOT_SIGNAL,    /* ranks that caught a signal */
    SLOT_CORRECT,   /* right decisions (training accuracy) */
    SLOT_DECISIONS, /* all decisions */
    N_SLOTS
};

typedef struct {
    float *g;        /* (n + N_SLOTS) the step's gradient sums and slots */
    float *own;      /* g when allocated here (else the transport's window): zero pages,
                        resident once written (linalg_alloc_zeros) */
    size_t own_bytes;
    StepSums acc;    /* this rank's totals of the step so far */
    size_t written;  /* micro-batches whose gradient is in g */
    bool sealed;     /* the slots are written */
} FloatSums;

Status float_sums_open(FloatSums *f, size_t n, void *window);
void float_sums_close(FloatSums *f);
void float_sums_begin(FloatSums *f);
/* A micro-batch's totals, added in doubles. */
void float_sums_add(FloatSums *f, const StepSums *s);
/* The slots from the totals and this rank's signal flag (once per step; the gradient part
 * is the caller's: zeroed when no micro-batch wrote it). */
void float_sums_seal(FloatSums *f, size_t n, bool signal);
/* After the reduction: the totals the slots hold. */
void float_sums_totals(const FloatSums *f, size_t n, StepTotals *tot);

/* The sum implementation's step calls (reduce_sum.c), for implementations whose r->impl
 * begins with a FloatSums (reduce_sparse.c): micro-batches add into one buffer. */
void sum_op_begin(Reduce *r);
void sum_op_add(Reduce *r, size_t part, const StepSums *s);
float *sum_op_partial(Reduce *r, size_t part, bool *accumulate);
const BackwardHooks *sum_op_hooks(Reduce *r, bool last);
void sum_op_done(Reduce *r, size_t part);

/* Whether this rank caught a signal: the flag rides in the step's reduction. */
static inline bool reduce_signalled(const Reduce *r) { return r->signal && *r->signal != 0; }

#endif
