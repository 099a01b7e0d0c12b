/* comm's non-blocking ring allreduce (comm.overlap) and its placement facts, at several P:
 *  - buckets of awkward sizes (fewer floats than ranks, not divisible by P, one float, a
 *    large one), several in flight at once, moved on by progress calls in between and
 *    completed by wait: every element is the exact sum (integer-valued floats), on every rank;
 *  - the same again in a second step (the queue and the receive areas are reused);
 *  - the in-flight time counts a span once: a bucket started after the queue drained
 *    starts a new span (the sum of spans never exceeds the wall time);
 *  - comm_node_cpus holds this rank's own CPUs and no more than the machine has, and
 *    comm_oversubscribed is the same on every rank: some node has more ranks than CPUs;
 *    comm_placement's fewest and most ranks per node are the node sizes' min and max.
 * The step's reductions built on these transports are tested in test_reduce_mpi.c. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "comm.h"
#include "xt_test.h"

static Comm *g_comm;

static const size_t SIZES[] = {1, 2, 3, 7, 1000, 4099, 65537};
#define NB (sizeof SIZES / sizeof *SIZES)

static float value(int rank, size_t bucket, size_t i)
{
    return (float)((rank + 1) * 3 + (int)(i % 101) - (int)bucket);
}

static void test_ring_sums_exactly(void **state)
{
    (void)state;
    const int P = comm_size(g_comm), r = comm_rank(g_comm);
    size_t total = 0;
    for (size_t b = 0; b < NB; b++) total += SIZES[b];
    float *buf = malloc(total * sizeof *buf);
    assert_non_null(buf);
    char why[200];
    CommRing *ring = NULL;
    assert_int_equal(comm_ring_open(g_comm, total, &ring, why, sizeof why), XT_OK);
    for (int step = 0; step < 2; step++) {
        size_t off = 0;
        for (size_t b = 0; b < NB; b++) {
            for (size_t i = 0; i < SIZES[b]; i++) buf[off + i] = value(r, b, i) + (float)step;
            comm_ring_sum(ring, buf + off, SIZES[b]);
            for (int k = 0; k < 3; k++) comm_ring_progress(ring);
            off += SIZES[b];
        }
        comm_ring_wait(ring);
        size_t bad = 0;
        off = 0;
        for (size_t b = 0; b < NB; b++) {
            for (size_t i = 0; i < SIZES[b]; i++) {
                float want = 0.0f;
                for (int q = 0; q < P; q++) want += value(q, b, i) + (float)step;
                bad += buf[off + i] != want;
            }
            off += SIZES[b];
        }
        assert_int_equal(bad, 0);
    }
    assert_true(comm_ring_inflight(ring) >= 0.0);
    comm_ring_close(&ring);
    assert_null(ring);
    free(buf);
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_inflight_spans(void **state)
{
    (void)state;
    enum { N = 4096 };
    static float a[N], b[N];
    for (size_t i = 0; i < N; i++) a[i] = b[i] = 1.0f;
    char why[200];
    CommRing *ring = NULL;
    assert_int_equal(comm_ring_open(g_comm, 2 * N, &ring, why, sizeof why), XT_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    const double before = comm_ring_inflight(ring), t0 = wall();
    comm_ring_sum(ring, a, N);
    /* move bucket a on until it is complete here (at most 20 s), then idle 50 ms */
    bool drained = false;
    for (int k = 0; k < 80000 && !drained; k++) {
        drained = comm_ring_progress(ring);
        if (!drained) nanosleep(&(struct timespec){.tv_nsec = 250000}, NULL);
    }
    assert_true(drained);
    nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    comm_ring_sum(ring, b, N);
    comm_ring_wait(ring);
    const double elapsed = wall() - t0, counted = comm_ring_inflight(ring) - before;
    comm_ring_close(&ring);
    assert_true(a[0] == (float)comm_size(g_comm) && b[N - 1] == (float)comm_size(g_comm));
    /* two spans, the idle 50 ms in neither: well under the wall time */
    assert_true(counted <= elapsed - 0.04);
}

static void test_placement_facts(void **state)
{
    (void)state;
    const int cpus = comm_node_cpus(g_comm), local = comm_local_size(g_comm);
    /* the union of the node's masks holds this rank's own CPUs and no more than the machine */
    cpu_set_t own;
    assert_int_equal(sched_getaffinity(0, sizeof own, &own), 0);
    assert_true(cpus >= CPU_COUNT(&own));
    assert_true(cpus <= sysconf(_SC_NPROCESSORS_CONF));
    int over = local > cpus, any = 0;
    MPI_Allreduce(&over, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    assert_int_equal(comm_oversubscribed(g_comm), any != 0);
    /* the placement the plan reads: the fewest and most ranks on a node, the same everywhere */
    CommPlacement at;
    comm_placement(g_comm, &at);
    int mm[2] = {local, -local};
    MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    assert_int_equal(at.local_min, mm[0]);
    assert_int_equal(at.local_max, -mm[1]);
    assert_true(at.local_min <= at.local && at.local <= at.local_max);
    assert_int_equal(at.P, comm_size(g_comm));
    assert_int_equal(at.oversubscribed, comm_oversubscribed(g_comm));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_sums_exactly),
        cmocka_unit_test(test_inflight_spans),
        cmocka_unit_test(test_placement_facts),
    };
    return xt_test_run_mpi(&argc, &argv, "comm_mpi", tests, sizeof tests / sizeof *tests, &g_comm);
}
