/* plan: every `auto` of a training run resolved once, with its reason.
 *
 * The configuration says what the user asked for (`auto` included); the plan says what this
 * run does: pure functions of the configuration, the placement (comm.h: CommPlacement) and
 * the data's facts (PlanFacts), unit-tested as tables (tests/test_plan.c). Nothing else
 * decides these things: the trainer sets itself up from the plan, and the banner prints each
 * decision with the reason written here, so what the log says is what ran.
 *
 * Two stages, because the second needs the model, which needs the data's classes:
 *   plan_data  the method (SGD's steps, or a full-batch solver's passes: plan.h's `solver`),
 *              batches, micro-batches (train.micro_batches, train.accumulate), the shuffle
 *              block, the normalisation, the memory budget and whether the training rows
 *              are streamed;
 *   plan_step  the step's reduction: overlap (comm.overlap), the sharded update
 *              (optim.shard), the transport (comm.allreduce) and, for a solver, double sums.
 * plan_blas decides the BLAS threads per rank for every subcommand.
 *
 * What it does not do: open files, allocate or talk to other ranks. A decision that a
 * capability can still refuse at set-up (a shared window MPI cannot map, ring buffers that do
 * not fit) falls back where it is opened (reduce.c), which says so.
 * Local everywhere (every rank computes the same plan from the same facts).
 */
#ifndef XT_PLAN_H
#define XT_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "comm.h"
#include "config.h"
#include "error.h"

/* The training split and the machine, as plan_data reads them. */
typedef struct {
    size_t n, d;           /* rows, features */
    size_t x_chunk_rows;   /* X's rows per chunk (0: contiguous) */
    bool x_has_scale;      /* X carries a scale attribute (converted images) */
    bool x_csr;            /* X is a CSR group (docs/sparse.md) */
    size_t x_nnz;          /* its non-zeros (CSR) */
    double row_bytes;      /* bytes a row takes in memory (X as held, targets, its sampler index) */
    double budget;         /* data bytes per rank (rowsource_budget; 0: no limit known) */
    const char *budget_why;
    CommPlacement at;
} PlanFacts;

/* The model's facts plan_step reads (reduce_ring_buckets counts them). */
typedef struct {
    int buckets;           /* overlap's buckets of layer gradients */
    size_t smallest;       /* the smallest bucket, bytes */
} PlanModelFacts;

#define PLAN_WHY 400

typedef struct {
    /* the method */
    bool solver;           /* optim.optimizer = lbfgs or newton: one iteration per epoch, each
                              evaluation one pass over every row in file order, read in
                              micro-batches of at most solver_rows rows */
    size_t solver_rows;
    char solver_why[PLAN_WHY];
    bool precond;              /* newton: CG preconditioned by the Hessian's diagonal */
    char precond_why[PLAN_WHY];
    int64_t epochs;        /* the loop's last epoch (a solver's iteration cap) */
    char epochs_why[PLAN_WHY];
    bool early_stop;       /* early_stopping.enabled as the run applies it (a solver: off
                              unless given) */
    char early_stop_why[PLAN_WHY];
    /* batches */
    size_t global_batch;   /* rows per update (train.batch_size or batch_per_rank x P, times
                              train.accumulate); 0: the full batch */
    char batch_why[PLAN_WHY];
    size_t S;              /* virtual shards in effect: min(data.virtual_shards, N) */
    size_t G;              /* reproducible mode: groups of virtual shards (0: off) */
    size_t pieces;         /* micro-batches per group, or per step (train.accumulate) */
    char groups_why[PLAN_WHY];
    size_t shuffle_block;  /* train.shuffle = block: rows per block (0 otherwise) */
    char shuffle_why[PLAN_WHY];
    /* features */
    Normalize norm;        /* never NORM_AUTO */
    bool norm_auto_sparse; /* NORM_MAXABS chosen by auto for CSR X: NORM_NONE when the data's
                              max |x| turns out <= 1 (plan_norm_measured) */
    char norm_why[PLAN_WHY];
    bool csr_batches;      /* CSR X: batches stay CSR (sparse kernels), else densified */
    char csr_why[PLAN_WHY];
    /* memory */
    double budget;         /* data bytes per rank (0: no limit known) */
    char budget_why[1400];
    bool stream;           /* the training rows are read from the file as training goes */
    char stream_why[PLAN_WHY];
    /* the optimiser's learning rate and momentum (auto: the optimiser's own; SGD on a
     * linear model over rows with data.normalize = none or maxabs: from the rows,
     * lr_from_rows until plan_lr_measured has them) */
    double lr, momentum;
    bool lr_from_rows;
    char lr_why[PLAN_WHY];
    /* threads (plan_blas) */
    int blas_threads;      /* BLAS threads per rank */
    char blas_why[PLAN_WHY];
    /* the step's reduction (plan_step) */
    bool overlap;          /* layer buckets ring-allreduced while backward runs */
    char overlap_why[PLAN_WHY];
    bool shard;            /* reduce-scatter, update this rank's slice, allgather */
    char shard_why[PLAN_WHY];
    bool shm;              /* through the node's shared memory (else MPI; the ring for overlap) */
    bool shm_asked;        /* comm.allreduce = shm: a window that cannot be had is warned */
    char path_why[PLAN_WHY]; /* the reason (reduce.c describes the path with it) */
    bool wide;             /* sums in double through MPI (a solver without the exact sums) */
    bool sparse;           /* CSR batches: W_1's touched columns exchanged when that moves
                              fewer bytes, per step (reduce_sparse.c), else MPI allreduce */
    bool touched;          /* and plain SGD (optim_is_plain): only the touched columns are
                              zeroed, exchanged and updated, at any P (implies sparse) */
} Plan;

/* Batches, micro-batches, shuffle, normalisation, memory. XT_ERR_USAGE with the keys and the
 * fix in err when the configuration cannot run on these facts (data.normalize = scale
 * without the attribute; data.stream = false with rows over the budget; a budget smaller
 * than the shuffle order; more micro-batches per update than the exact sums take). */
Status plan_data(Plan *p, const Config *c, const PlanFacts *f, char *err, size_t len);
/* data.normalize = auto on CSR X, once the training split's max |x| over every column is
 * known (all ranks agree on it): none when it is <= 1 (binary, tf-idf: used as stored, as
 * liblinear does), else the max-abs scale plan_data chose. */
void plan_norm_measured(Plan *p, double max_abs);

/* Overlap, the sharded update, the transport. Never fails: a conflicting explicit
 * configuration was refused by config_validate. */
void plan_step(Plan *p, const Config *c, const CommPlacement *at, const PlanModelFacts *m);
/* optim.lr = auto for SGD on a linear model over rows not normalised or max-abs scaled
 * (p->lr_from_rows), once
 * the n training rows' mean squared norm after normalisation is known (the same value at any P;
 * ok = false when it could not be had): lr = PLAN_LR_ROWS_STEP B w / mean ||x||^2
 * (1 - momentum), B the rows of an update, w = row_weight the loss mean's count per row
 * (loss.h's d_i: K outputs for multi-label, else 1), rounded to two significant digits. */
void plan_lr_measured(Plan *p, double mean_sq_norm, size_t n, size_t row_weight, bool ok);

/* BLAS threads per rank: the environment's (OPENBLAS_NUM_THREADS and the like) when it sets
 * them, else 1 (the ranks fill the cores; threads inside a rank would share them, and a
 * product's last bits depend on the count: eval at P = 1 and P = 2 would differ). */
int plan_blas(bool env_sets, int env_threads, char *why, size_t len);
/* What train, eval and predict do first: plan_blas applied (linalg_set_blas_threads), the
 * count in force returned and its reason in why. The one function of this module that acts.
 * Local; call before the first BLAS call. */
int plan_apply_blas(char *why, size_t len);

/* The most training rows one rank holds when N rows in S virtual shards (G groups, 0 for
 * none) are spread over P ranks (shard.h's rule), and which rows they are. */
size_t plan_max_rank_rows(size_t n, size_t S, size_t G, int P, size_t *lo, size_t *hi);

#endif
