/* comm_ring: non-blocking ring allreduces that the caller progresses (comm.overlap).
 * Internal to the comm module (comm.c wraps it as comm_ring_*); nothing else includes it.
 *
 * Each queued buffer (a bucket of layer gradients) is summed over the P ranks by a ring:
 * cut into P blocks; P - 1 reduce-scatter steps (send block r - s to the right neighbour,
 * receive block r - s - 1 from the left one and add it), then P - 1 allgather steps (pass the
 * finished blocks on). Every block is summed in one order and then copied, so every rank ends
 * with the same bits. Each rank sends 2 (P - 1) / P of the buffer: a bandwidth-optimal
 * allreduce, with 2 (P - 1) latencies per bucket.
 *
 * Nothing runs in the background: a step's messages are Isend/Irecv, and ring_progress
 * (called by backward between pieces of its products) tests them, adds what arrived and posts
 * the next step. That is the point: the library moves data only inside MPI calls, and a
 * communication thread would take the core backward needs (measured: docs/architecture.md,
 * the step's reduction). All queued buckets progress at once, each on its own tag of a
 * duplicate communicator.
 * Messages: at most RING_MAX_BLOCK floats per block (larger buckets are split on queueing).
 */
#ifndef XT_COMM_RING_H
#define XT_COMM_RING_H

#include <stdbool.h>
#include <stddef.h>

#include <mpi.h>

typedef struct Ring Ring;

/* Buckets a step may queue (a bucket over RING_MAX_BLOCK * P floats counts as several). */
#define RING_MAX_OPS 64

/* Collective over world (duplicates it). max_floats: the most floats one step queues in
 * total (sizes the receive buffers). NULL on every rank when some rank is out of memory. */
Ring *ring_open(MPI_Comm world, size_t max_floats);
void ring_close(Ring **r);

/* Local: starts summing buf[0, n) in place (the first step's messages are posted now).
 * Every rank queues the same sizes in the same order. */
void ring_start(Ring *r, float *buf, size_t n);
/* Local: advances every queued sum as far as the messages that arrived allow. Cheap when
 * nothing is queued. Returns true when nothing is left in flight. */
bool ring_progress(Ring *r);
/* Returns when every queued sum is complete (progressing them); the queue is then empty. */
void ring_wait(Ring *r);
/* Seconds from the first start of a step to the completion of its last sum, over all steps
 * so far (completion as seen by a progress or wait call). */
double ring_inflight_seconds(const Ring *r);
/* The max_floats it was opened for. */
size_t ring_max_floats(const Ring *r);

#endif
