/* comm_shm: the step's reductions through the node's shared memory (comm.allreduce = shm).
 * Internal to the comm module (comm.c wraps it as a CommPath); nothing else includes this header.
 *
 * The ranks of a node (MPI_COMM_TYPE_SHARED) map one MPI-3 shared window:
 *   every rank   a segment of `cap` bytes: its send buffer. A caller that computes into it
 *                (comm_path_buffer) saves the copy in. And a parameter segment of `cap`
 *                bytes: a caller that keeps its parameters there (comm_path_param_buffer)
 *                has them allgathered by pushes, with one barrier.
 *   local rank 0 also the control block (a barrier of two atomic counters on their own
 *                cache lines) and a shared area of `cap` bytes (allgather, small results).
 * Reduction (sum of floats, int32 or doubles over L local ranks): the buffer is cut into L slices;
 * after a barrier local rank l sums slice l over the L segments in the FIXED order
 * 0, 1, .., L-1 (chunks of a few KiB, so the partial sums stay in L1) and writes it into
 * every segment (an allreduce) or into its own (a reduce-scatter: slice l is world rank l's
 * piece; every rank sums the few tail values itself); a second barrier ends it, after which
 * no rank reads another's segment, so each may overwrite its own at once. With several nodes
 * (the same L on every node), slices are even, and slice l is allreduced with MPI among the
 * ranks of local rank l on every node (one slice owner per node, all in parallel) before it
 * is pushed and the second barrier is reached.
 * The barrier spins on the shared counters and yields the core after a while (ranks may
 * share cores). No allocation after shmred_open; no MPI call except the inter-node one.
 */
#ifndef XT_COMM_SHM_H
#define XT_COMM_SHM_H

#include <stdbool.h>
#include <stddef.h>

#include <mpi.h>

#include "error.h"

typedef struct ShmRed ShmRed;

typedef enum { SHM_F32, SHM_I32, SHM_F64 } ShmType; /* 4, 4 and 8 bytes */

/* Collective over world. cap: bytes per segment. On failure (one rank per node, unequal
 * ranks per node, no shared window) *out is NULL and why says what; every rank gets the
 * same answer. In the test build, XT_TEST_NODE_RANKS = k splits each node into groups of k
 * consecutive ranks (the multi-node path on one machine; fault.h). */
Status shmred_open(ShmRed **out, MPI_Comm world, size_t cap, char *why, size_t len);
void shmred_close(ShmRed **s);

void *shmred_segment(ShmRed *s);
void *shmred_param_segment(ShmRed *s);
size_t shmred_capacity(const ShmRed *s);
int shmred_local_size(const ShmRed *s);
int shmred_nodes(const ShmRed *s);

/* Collective (world). buf: n elements of type t, summed in place. */
void shmred_allreduce(ShmRed *s, void *buf, size_t n, ShmType t);
/* Collective. off[0..P]: the pieces of world ranks in rank order; on return buf[off[r],
 * off[r+1]) holds rank r's piece of the sum, and buf[off[P], off[P] + tail) the summed tail;
 * the rest of buf is undefined. */
void shmred_reduce_scatter(ShmRed *s, void *buf, const size_t *off, size_t tail, ShmType t);
/* (reduce-scatter: 4-byte types only) */
/* Collective, one node only (shmred_nodes == 1). off[0..P] in bytes: rank r contributes
 * buf[off[r], off[r+1]); on return buf[0, off[P]) holds every piece. When buf is this rank's
 * parameter segment each rank writes its piece into every other rank's parameter segment and
 * one barrier ends it; that is safe because between two such calls every rank passes the two
 * barriers of a reduction (the sharded step: reduce-scatter, update, allgather), so no rank
 * still reads the parameters another overwrites. */
void shmred_allgather(ShmRed *s, void *buf, const size_t *off);

#endif
