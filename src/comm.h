/* comm: everything xentrain asks of MPI. The only module that calls MPI for
 * communication (h5io.c hands the communicator to HDF5's MPI-IO driver, nothing more).
 *
 * A Comm is an opaque handle over MPI_COMM_WORLD. Every function marked "Collective"
 * must be reached by all ranks in the same order; none of them allocates, except the set-up
 * of the step's transports (comm_path_open_*: the shared window; comm_ring_open: the ring's
 * duplicate communicator and receive buffers), which return objects the caller owns.
 * Buffers longer than INT_MAX elements are sent in chunks (Open MPI 4.1 has no
 * large-count calls).
 *
 * Contracts the trainer relies on:
 *   - every collective leaves the SAME bits on every rank (MPI guarantees it for
 *     allreduce and bcast results), so ranks that compute from them stay replicas and
 *     take the same branches;
 *   - integer-valued floats below 2^24 (the flag slots of the step's allreduce: counts of
 *     ranks) sum exactly whatever the reduction order, so "any rank flagged" is read
 *     identically everywhere;
 *   - the sum of floats itself depends on the reduction order the MPI library picks
 *     (and on P): results are reproducible at fixed P and launcher, not across them;
 *     integer sums (the reproducible mode's, see exact.h) are exact in any order;
 *   - the watchdog thread never calls MPI: it reads a monotonic clock and the position
 *     the main thread publishes.
 */
#ifndef XT_COMM_H
#define XT_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct Comm Comm;

/* MPI_Init, rank facts, and the assertion hook that aborts every rank. Call once. */
Status comm_open(int *argc, char ***argv, Comm **out);
/* MPI_Finalize and free; sets *c to NULL. Safe on NULL. */
void comm_close(Comm **c);

int comm_rank(const Comm *c);
int comm_size(const Comm *c);
/* Ranks sharing this rank's node (MPI_COMM_TYPE_SHARED) and the number of nodes. */
int comm_local_size(const Comm *c);
int comm_node_count(const Comm *c);
/* The CPUs this rank's node may run its ranks on (the union of their affinity masks), and
 * whether some node has more ranks than such CPUs (the same answer on every rank). */
int comm_node_cpus(const Comm *c);
bool comm_oversubscribed(const Comm *c);
/* Where the ranks run, as the plan (plan.h) reads it; the same on every rank but `local`
 * and `node_cpus`, which are this rank's node's. */
typedef struct {
    int P;               /* ranks */
    int nodes;           /* nodes (MPI_COMM_TYPE_SHARED groups) */
    int local;           /* ranks on this rank's node */
    int local_min, local_max; /* the fewest and most ranks on a node */
    int node_cpus;       /* CPUs this node's ranks may run on */
    bool oversubscribed; /* some node has more ranks than such CPUs */
} CommPlacement;
void comm_placement(const Comm *c, CommPlacement *out);
/* "Open MPI v4.1.4, ..." (first line of MPI_Get_library_version: the library this process
 * runs with). Local; may be called before comm_open. */
void comm_library_version(char *buf, size_t len);
/* The MPI flavour the build chose (CMake XT_MPI: openmpi, mpich or system) and the MPI
 * standard version of its headers. Local. */
void comm_build_info(char *buf, size_t len);
/* Seconds on a monotonic clock (any thread may call it). */
double comm_wtime(void);
/* Seconds MPI_Init took in this process (for start-up reports). Local. */
double comm_init_seconds(const Comm *c);

/* Collective: the worst status over all ranks (max of the codes). Every rank takes
 * the same path out of a failed collective step. */
Status comm_agree(const Comm *c, Status local);

/* Collective, in place, sums over ranks. */
void comm_allreduce_sum_float(const Comm *c, float *buf, size_t n);
void comm_allreduce_sum_double(const Comm *c, double *buf, size_t n);
void comm_allreduce_max_double(const Comm *c, double *buf, size_t n);
void comm_allreduce_sum_i32(const Comm *c, int32_t *buf, size_t n);
void comm_allreduce_max_i32(const Comm *c, int32_t *buf, size_t n);
void comm_allreduce_sum_i64(const Comm *c, int64_t *buf, size_t n);
void comm_allreduce_max_i64(const Comm *c, int64_t *buf, size_t n);
void comm_allreduce_min_i64(const Comm *c, int64_t *buf, size_t n);
/* Collective: broadcast bytes from root. */
void comm_bcast(const Comm *c, void *buf, size_t bytes, int root);
/* Collective: rank 0 gets, concatenated in rank order, every rank's `bytes` bytes. */
void comm_gather(const Comm *c, const void *send, void *recv0, size_t bytes);
/* Collective: rank 0 gets every rank's bytes concatenated in rank order; counts[r] is
 * rank r's byte count (needed on rank 0 only; each at most INT_MAX). */
void comm_gatherv(const Comm *c, const void *send, size_t bytes, void *recv0,
                  const size_t *counts);
/* Collective: every rank gets every rank's `bytes` bytes, concatenated in rank order. */
void comm_allgather(const Comm *c, const void *send, void *recv, size_t bytes);
/* Collective: every rank's counts[r] bytes at offset displs[r] of buf (its own already
 * there) reach every rank's buf, in place; each count and offset at most INT_MAX. */
void comm_allgatherv_inplace(const Comm *c, void *buf, const size_t *counts,
                             const size_t *displs);
void comm_barrier(const Comm *c);

/* ---- the training step's transports ----------------------------------------------------
 * A CommPath carries the step's sums across ranks, through MPI (MPI_Allreduce,
 * MPI_Reduce_scatter, MPI_Allgatherv) or through the node's shared memory (comm_shm.c: a
 * fixed summation order; several nodes as one slice owner per node allreducing with MPI).
 * It is opened once at set-up by the reduction that uses it (reduce.h) and owned by it; the
 * Comm itself never changes after comm_open. Elements: float sums, int32 sums (the
 * reproducible mode's, exact), or double sums (a full-batch solver's; allreduce only). */
typedef enum { COMM_F32, COMM_I32, COMM_F64 } CommType;
typedef struct CommPath CommPath;

/* Local: the MPI transport (counts arrays for P ranks). */
Status comm_path_open_mpi(const Comm *c, CommPath **out);
/* Collective: maps the node's shared window for buffers of up to `bytes` bytes. XT_OK, or an
 * error with the reason in why (one rank per node, unequal nodes, no window); every rank
 * gets the same answer and *out is NULL on failure. */
Status comm_path_open_shm(const Comm *c, size_t bytes, CommPath **out, char *why, size_t len);
/* Collective for a shared-memory path (frees the window); sets *p to NULL. Safe on NULL. */
void comm_path_close(CommPath **p);
/* This rank's shared segment (bytes as opened), or NULL for MPI: a caller that computes its
 * send buffer there saves a copy. */
void *comm_path_buffer(const CommPath *p);
/* This rank's parameter segment when allgathers are pushes (shared memory, one node), else
 * NULL: parameters kept there are allgathered with one barrier. */
void *comm_path_param_buffer(const CommPath *p);
/* Ranks per node and nodes of a shared-memory path (0, 0 for MPI). */
void comm_path_shape(const CommPath *p, int *local, int *nodes);
/* Collective: n elements summed in place. */
void comm_path_allreduce(CommPath *p, void *buf, size_t n, CommType t);
/* Collective: off[0..P] cut buf into the ranks' pieces in rank order (off[P] <= INT_MAX);
 * on return buf[off[r], off[r+1]) holds this rank's piece of the sum and buf[off[P],
 * off[P] + tail) the sum of the tail (the step's loss, weight and flags reach every rank);
 * the rest of buf is undefined. */
void comm_path_reduce_scatter(CommPath *p, void *buf, const size_t *off, size_t tail,
                              CommType t);
/* Collective, in place: off[0..P] in bytes; rank r contributes buf[off[r], off[r+1]), and
 * every rank ends with all of buf[0, off[P]). */
void comm_path_allgather(CommPath *p, void *buf, const size_t *off);

/* ---- overlap: non-blocking ring allreduces progressed during backward -------------------
 * comm_ring_sum starts summing a buffer over all ranks (a ring: comm_ring.h) and returns at
 * once; comm_ring_progress, called between pieces of the caller's computation, moves the
 * sums on (the library transfers data only inside MPI calls); comm_ring_wait completes all
 * of them. Every rank queues the same sizes in the same order; between the first
 * comm_ring_sum of a step and comm_ring_wait the caller makes no other collective call. */
typedef struct Ring CommRing;
/* Collective. max_floats: the most floats one step queues. XT_OK, or an error with the
 * reason (no memory on some rank): the same answer on every rank. */
Status comm_ring_open(const Comm *c, size_t max_floats, CommRing **out, char *why, size_t len);
/* Collective (frees the duplicate communicator); sets *r to NULL. Safe on NULL. */
void comm_ring_close(CommRing **r);
/* Local: starts the sum of n floats in place (at most COMM_RING_MAX per step). */
#define COMM_RING_MAX 64
void comm_ring_sum(CommRing *r, float *buf, size_t n);
/* Local and cheap: advances the sums in flight, if any; true when none is left. */
bool comm_ring_progress(CommRing *r);
/* Collective in effect: returns when every started sum is complete. */
void comm_ring_wait(CommRing *r);
/* Seconds the sums were in flight (from a step's first start to its last completion). */
double comm_ring_inflight(const CommRing *r);

/* Ends every rank of the job now (MPI_Abort). For a rank failing alone. */
_Noreturn void comm_abort(const Comm *c, int code);

/* Collective watchdog. comm_watchdog_start runs a thread that checks, every half
 * second, whether the collective this rank is inside has lasted longer than
 * timeout_s; if so it prints which collective, at which epoch and step
 * (comm_watch_position), and ends this process with exit code 1, which makes the
 * launcher end the job: a cut link or a dead node becomes an error, not a silent hang.
 * Only time the process ran counts: a wake-up of the thread more than 2 s late means the
 * process was stopped (SIGSTOP, Ctrl-Z, Slurm's suspend, the cgroup freezer, which sends
 * no SIGCONT), and that time is not waiting. The timeout must exceed the longest phase in
 * which ranks wait for rank 0 alone (validation, checkpoint writing). Local. */
void comm_watchdog_start(const Comm *c, double timeout_s);
void comm_watch_position(const Comm *c, int64_t epoch, uint64_t step);
/* What the ranks wait for outside collectives, named in the watchdog's message instead of
 * "a rank or a link is gone or stuck" (e.g. "rank 0 was writing checkpoint.h5"); NULL
 * when nothing. Every rank sets the same phase around the same code. `phase` must be a
 * string constant (the thread reads it later). Local. */
void comm_watch_phase(const Comm *c, const char *phase);

/* The underlying MPI_Comm, as a pointer to it, for HDF5's MPI-IO driver only. */
const void *comm_native(const Comm *c);

#endif
