/* comm's non-blocking ring allreduce (comm.overlap) and its placement facts, at several P:
 *  - buckets of awkward sizes (fewer floats than ranks, not divisible by P, one float, a
 *    large one), several in flight at once, moved on by progress calls in between and
 *    completed by wait: every element is the exact sum (integer-valued floats), on every rank;
 *  - the same again in a second step (the queue and the receive areas are reused);
 *  - comm_node_cpus and comm_oversubscribed agree with what the ranks see. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

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
    assert_int_equal(comm_async_start(g_comm, total, why, sizeof why), XT_OK);
    for (int step = 0; step < 2; step++) {
        size_t off = 0;
        for (size_t b = 0; b < NB; b++) {
            for (size_t i = 0; i < SIZES[b]; i++) buf[off + i] = value(r, b, i) + (float)step;
            comm_async_sum(g_comm, buf + off, SIZES[b]);
            for (int k = 0; k < 3; k++) comm_async_progress(g_comm);
            off += SIZES[b];
        }
        comm_async_wait(g_comm);
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
    assert_true(comm_async_inflight(g_comm) >= 0.0);
    free(buf);
}

static void test_placement_facts(void **state)
{
    (void)state;
    const int cpus = comm_node_cpus(g_comm), local = comm_local_size(g_comm);
    assert_true(cpus >= 1);
    int over = local > cpus, any = 0;
    MPI_Allreduce(&over, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    assert_int_equal(comm_oversubscribed(g_comm), any != 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_sums_exactly),
        cmocka_unit_test(test_placement_facts),
    };
    return xt_test_run_mpi(&argc, &argv, "comm_mpi", tests, sizeof tests / sizeof *tests, &g_comm);
}
