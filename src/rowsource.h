/* rowsource: where training and evaluation rows come from.
 *
 * Batch gathering, evaluation and the normalisation statistics ask a RowSource for rows
 * by local index (0 .. n-1: the rows this rank holds) and receive float32 features,
 * normalised when a normalisation is set, with their targets. How the rows are stored
 * stays behind this interface: a Dataset loaded in memory (uint8 or float32 features), or
 * a Stream that reads the file as it goes (stream.h; stream_csr.h for CSR splits), chosen by
 * rowsource_open. A CSR source, in memory or streamed (docs/sparse.md), hands out CSR
 * batches (SourceOptions.csr_batches) or dense ones; rowsource_read always hands out dense rows (statistics), rowsource_read_batch rows in
 * the batches' form (evaluation blocks, a solver's passes).
 *
 * Normalisation is x' = (x - shift) * mul, per feature, in float32: the same
 * expression whichever way the rows are stored, so results do not depend on it.
 * Local everywhere but rowsource_open; nothing allocates after it but the statistics.
 */
#ifndef XT_ROWSOURCE_H
#define XT_ROWSOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "csr.h"
#include "dataset.h"
#include "error.h"
#include "model.h"
#include "stream.h"
#include "stream_csr.h"

/* Buffers a caller owns for m rows: X (m, D); y (m) for class ids or t (m, K) for dense
 * targets (the other may be NULL). A training batch made by rowsource_batch_alloc holds its
 * features in the form its source hands out (X, or csr for a CSR source with CSR batches)
 * and `in` is the model's view of them, whichever it is. */
typedef struct {
    float *X;
    int32_t *y;
    float *t;
    CsrRows csr;
    ModelInput in;
} RowBatch;

typedef struct RowSourceOps RowSourceOps; /* the implementation: memory or stream */

typedef struct {
    const RowSourceOps *ops;
    size_t n, d;           /* rows held, features */
    TargetKind target;
    size_t k_dense;        /* target width when target == TARGET_DENSE */
    Dataset *ds;           /* the rows' Dataset: borrowed (row arrays empty when streamed) */
    Stream *stream;        /* a streamed source's stream, owned; NULL in memory */
    StreamCsr *cstream;    /* a streamed CSR source's stream, owned; NULL otherwise */
    const float *shift, *mul; /* normalisation applied on the way out, or NULL */
    bool centred;             /* some shift is not zero (CSR rows then come out dense) */
} RowSource;

/* A source over the rows of a loaded Dataset (borrowed; it must outlive the source). */
void rowsource_init(RowSource *s, Dataset *ds);
/* Closes a streamed source's file and thread; the Dataset stays. Safe on a zeroed source. */
void rowsource_free(RowSource *s);

/* ---- memory or stream -------------------------------------------------------------------- */

typedef enum { STREAM_FALSE, STREAM_TRUE, STREAM_AUTO } StreamMode; /* data.stream */

/* The one rule for holding a split's rows (the plan and rowsource_open both ask it): stream
 * them when mode says true, or auto and the largest rank's rows (need_max bytes) exceed the
 * budget (> 0); refuse when mode says false and they exceed it; else keep them in memory. */
typedef enum { HOLD_MEMORY, HOLD_STREAM, HOLD_REFUSED } RowHolding;
RowHolding rowsource_holding(StreamMode mode, double need_max, double budget);

/* How rowsource_open may hold a split's rows. */
typedef struct {
    StreamMode mode;
    double budget;        /* bytes this rank may give the rows (rowsource_budget) */
    bool compact;         /* keep uint8 X as uint8 */
    bool csr_batches;     /* a CSR split's gathered batches stay CSR (else densified) */
    bool probs;           /* the rows must be probability distributions (softmax probs) */
    size_t extra_per_row; /* bytes per row the caller adds in memory (the sampler's index) */
    const char *what;     /* "data.train", "--data", for messages */
    int local_ranks;      /* ranks on this node (how many shards share its page cache) */
} SourceOptions;

/* The bytes per rank for data: data.memory_budget when > 0, else DEFAULT_BUDGET_SHARE of
 * the usable memory (min(MemAvailable, the memory cgroup's limit), sysmem.h) over this
 * node's ranks; a phrase saying where it came from goes to why. 0 = nothing known (no
 * limit). Local. */
#define DEFAULT_BUDGET_SHARE 0.8
double rowsource_budget(double configured, int local_ranks, char *why, size_t whylen);

/* Loads rows [lo, hi) of a split into ds (dataset_load / dataset_load_compact, with their
 * checks) or opens them for streaming (stream.h: the same checks in one scan), as
 * rowsource_holding decides from o->mode and o->budget with the largest rank's need (with
 * comm: agreed, every rank streams when one must, and the load is collective; with comm ==
 * NULL, Local). A refusal names data.stream and data.memory_budget. *streamed tells which.
 * On success s is the source over the rows. */
Status rowsource_open(RowSource *s, Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi,
                      size_t k, const SourceOptions *o, const Comm *comm, bool *streamed);

/* Training rows read ahead for the steps to come (a streamed source: two windows of steps
 * planned from a copy of the sampler in what `budget` leaves after the stream's own
 * buffers; a streamed CSR source: one window of rows and non-zeros, read on the trainer's
 * thread). *bytes: what the rows take (windows and buffers, or the rows in memory).
 * XT_ERR_USAGE with the sufficient data.memory_budget in err when one step does not fit.
 * Local. */
Status rowsource_plan_training(RowSource *s, const Sampler *sampler, double budget,
                               uint64_t epochs, double *bytes, char *err, size_t errlen);
/* The same for a full-batch solver, whose passes read rows [lo, lo + m) in order: nothing
 * to plan; *bytes: what the source holds (the rows in memory, or a stream's buffers).
 * XT_ERR_USAGE with the sufficient data.memory_budget in err when a streamed CSR source's
 * indptr slice and block do not fit `budget`. Local. */
Status rowsource_plan_passes(RowSource *s, double budget, double *bytes, char *err,
                             size_t errlen);
/* A hint that training step t of epoch (0-based) comes next: a streamed source makes its
 * rows available (waiting for its reader when it is behind). A no-op in memory. */
void rowsource_begin_step(RowSource *s, uint64_t epoch, size_t t);
/* How the rows are held, for banners: "in memory" or the stream's layout and windows. */
void rowsource_describe(const RowSource *s, char *buf, size_t len);
/* A streamed source's figures so far (its reader stopped first); zeros in memory. */
void rowsource_stream_stats(RowSource *s, StreamStats *out);
/* From now on rows come out normalised (shift and mul: D values, borrowed). A float32
 * Dataset is normalised once, in place; uint8 rows are normalised as they are gathered
 * (4x less memory than float). */
void rowsource_set_normalization(RowSource *s, const float *shift, const float *mul);

/* The features of a training batch of up to cap rows, in the form this source gathers
 * (dense X, or CSR with room for the cap longest rows), and b->in set to them; the caller
 * allocates y or t. XT_ERR_RUNTIME when out of memory. rowsource_batch_free frees what
 * this allocated (safe on a zeroed batch). Local. */
Status rowsource_batch_alloc(const RowSource *s, size_t cap, RowBatch *b);
void rowsource_batch_free(RowBatch *b);

/* out <- rows[i] (local indices), i < m. */
void rowsource_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out);
/* out <- rows [lo, lo + m), in order, dense (out->X). */
void rowsource_read(const RowSource *s, size_t lo, size_t m, RowBatch *out);
/* The same in the form of this source's batches: out was made by rowsource_batch_alloc
 * (out->in is the model's view of the rows). */
void rowsource_read_batch(const RowSource *s, size_t lo, size_t m, RowBatch *out);
/* acc += the held rows' squared norms as they come out (normalised), in exact.h's units
 * (csr_sq_norm_sum; a dense row summed in column order: its zeros add nothing, so the same
 * rows in CSR give the same value); *ok false when a sum reached the units' bound.
 * XT_ERR_RUNTIME when out of memory. Local. */
Status rowsource_sq_norm_sum(const RowSource *s, int64_t acc[2], bool *ok);
/* A hint that these rows come next (the next batch's, while this one computes). */
void rowsource_prefetch(const RowSource *s, const uint32_t *rows, size_t m);

/* Per-feature sum and sum of squares (double) of the rows as they come out.
 * XT_ERR_RUNTIME when out of memory for the block buffer. */
Status rowsource_feature_sums(const RowSource *s, double *sum, double *sumsq);
/* Per-feature max |x| of the rows as they come out. */
Status rowsource_feature_absmax(const RowSource *s, double *mx);
/* Per-feature fixed-point moments (exact.h) in one pass: s1[j] = sum of q, s2[j*4 .. j*4+3]
 * the limbs of sum of q^2, q = rint(x_j 2^e[j]) with e[j] = exact_grid_exponent(the column's
 * max |x| over all ranks). Integer sums: the same however the rows are spread over ranks (the
 * caller adds the ranks' s1 and limbs). */
Status rowsource_feature_moments(const RowSource *s, const int *e, int64_t *s1, int64_t *s2);

#endif
