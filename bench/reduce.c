/* The step's reductions side by side (issue 19): MPI_Allreduce against the node's
 * shared-memory allreduce, and the sharded step's reduce-scatter + allgather on both paths,
 * through xentrain's own comm module, on the same buffers, interleaved; plus the memory
 * bandwidth of the node measured in the same run (a triad on every rank at once, out of
 * cache), so the reductions' GB/s can be read against what memory moves.
 *
 *   mpirun -np P xt_bench_reduce [REPS] [ELEMS...]
 *
 * ELEMS: buffer sizes in 4-byte floats (default: the Fashion-MNIST MLP's gradient and slots,
 * 235152, and a sweep 2 .. 4Mi for the alpha-beta fit). Before every timed call each rank
 * writes its buffer, as backward does, so it is hot in cache for both paths, and every timed
 * call ends with a read of the result as its consumers do (the optimiser reads the reduced
 * gradient, the next forward the gathered parameters): a path that leaves the result in
 * another core's cache pays for it there. A call's time is the slowest rank's; the median
 * over REPS is printed as CSV:
 *   op,path,P,bytes,seconds,algbw_GBps,busbw_GBps
 * and one line "triad,...,GB/s" for the memory bandwidth of all ranks together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

#define TRIAD_DOUBLES (8u << 20) /* 64 MiB per array, far beyond the caches */

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads x[lo, hi) as the consumer of a reduction does (the optimiser, the next forward):
 * data another core wrote comes over now, so it counts. */
static float consume(const float *x, size_t lo, size_t hi)
{
    float acc[8] = {0};
    for (size_t i = lo; i + 8 <= hi; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + (size_t)j];
    return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

static void fill(float *x, size_t n, int r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((i + (size_t)r) % 13) * 0.001f;
}

/* The node's memory bandwidth: every rank runs a = b + s c at once; bytes counted as 3 x 8
 * per element (STREAM's convention), summed over ranks. Median of 5. */
static double triad(const Comm *c)
{
    double *a = malloc(TRIAD_DOUBLES * sizeof *a), *b = malloc(TRIAD_DOUBLES * sizeof *b),
           *cc = malloc(TRIAD_DOUBLES * sizeof *cc);
    if (!a || !b || !cc) abort();
    for (size_t i = 0; i < TRIAD_DOUBLES; i++) {
        a[i] = 0;
        b[i] = (double)i;
        cc[i] = 1.0;
    }
    double t[5];
    for (int k = 0; k < 5; k++) {
        comm_barrier(c);
        double t0 = comm_wtime();
        for (size_t i = 0; i < TRIAD_DOUBLES; i++) a[i] = b[i] + 3.0 * cc[i];
        double dt = comm_wtime() - t0;
        comm_allreduce_max_double(c, &dt, 1);
        t[k] = dt;
    }
    qsort(t, 5, sizeof *t, cmp);
    volatile double sink = a[TRIAD_DOUBLES / 2];
    (void)sink;
    free(a);
    free(b);
    free(cc);
    return 24.0 * TRIAD_DOUBLES * comm_size(c) / t[2] / 1e9;
}

int main(int argc, char **argv)
{
    Comm *c;
    if (comm_open(&argc, &argv, &c) != XT_OK) return 1;
    const int P = comm_size(c), r = comm_rank(c);
    int reps = argc > 1 ? atoi(argv[1]) : 200;
    size_t sizes[32], ns = 0;
    for (int i = 2; i < argc && ns < 32; i++) sizes[ns++] = (size_t)strtoull(argv[i], NULL, 10);
    if (ns == 0) {
        sizes[ns++] = 235152;
        for (size_t n = 2; n <= ((size_t)4 << 20); n *= 4) sizes[ns++] = n;
    }
    size_t maxn = 0;
    for (size_t i = 0; i < ns; i++) maxn = sizes[i] > maxn ? sizes[i] : maxn;
    char why[256];
    CommPath *via[2] = {NULL, NULL}; /* MPI, shared memory */
    if (comm_path_open_mpi(c, &via[0]) != XT_OK ||
        comm_path_open_shm(c, maxn * 4, &via[1], why, sizeof why) != XT_OK) {
        if (r == 0) fprintf(stderr, "xt_bench_reduce: no shared-memory path: %s\n", why);
        comm_path_close(&via[0]);
        comm_close(&c);
        return 2;
    }
    /* both paths reduce the segment and gather into the parameter segment, as the trainer */
    float *seg = comm_path_buffer(via[1]), *params = comm_path_param_buffer(via[1]);
    size_t *off = malloc(((size_t)P + 1) * sizeof *off), *offb = malloc(((size_t)P + 1) * sizeof *offb);
    double *t = malloc(2 * (size_t)reps * sizeof *t);
    if (!params || !off || !offb || !t) abort();
    double bw = triad(c);
    volatile float sink = 0.0f;
    if (r == 0) {
        printf("op,path,P,bytes,seconds,algbw_GBps,busbw_GBps\n");
        printf("triad,memory,%d,%u,0,%.2f,%.2f\n", P, 24u * TRIAD_DOUBLES, bw, bw);
    }
    const char *ops[] = {"allreduce", "reduce_scatter+allgather"};
    const char *paths[] = {"mpi", "shm"};
    for (size_t si = 0; si < ns; si++) {
        const size_t n = sizes[si];
        for (int p = 0; p <= P; p++) off[p] = n / (size_t)P * (size_t)p + n % (size_t)P * (size_t)p / (size_t)P;
        for (int p = 0; p <= P; p++) offb[p] = off[p] * 4;
        for (int op = 0; op < 2; op++) {
            /* the two paths alternate call by call: a drift of the shared machine hits both */
            for (int k = -10; k < reps; k++) {
                for (int path = 0; path < 2; path++) {
                    CommPath *cp = via[path];
                    fill(seg, n, r);
                    comm_barrier(c);
                    double t0 = comm_wtime();
                    if (op == 0) {
                        comm_path_allreduce(cp, seg, n, COMM_F32);
                        sink += consume(seg, 0, n);
                    } else {
                        comm_path_reduce_scatter(cp, seg, off, 0, COMM_F32);
                        sink += consume(seg, off[r], off[r + 1]);
                        comm_path_allgather(cp, params, offb);
                        sink += consume(params, 0, n);
                    }
                    double dt = comm_wtime() - t0;
                    comm_allreduce_max_double(c, &dt, 1);
                    if (k >= 0) t[path * reps + k] = dt;
                    /* the two paths must agree on the sum (2 ranks: a + b either way) */
                    if (op == 0 && P == 2 && n > 1 && seg[1] != 1 * 0.001f + 2 * 0.001f) {
                        fprintf(stderr, "xt_bench_reduce: wrong sum on path %s\n", paths[path]);
                        return 3;
                    }
                }
            }
            for (int path = 0; path < 2; path++) {
                qsort(t + path * reps, (size_t)reps, sizeof *t, cmp);
                double med = t[path * reps + reps / 2];
                if (r == 0) {
                    double bytes = (double)n * 4, alg = bytes / med / 1e9;
                    printf("%s,%s,%d,%.0f,%.9f,%.3f,%.3f\n", ops[op], paths[path], P, bytes, med,
                           alg, alg * 2.0 * (P - 1) / P);
                }
            }
        }
        fflush(stdout);
    }
    free(off);
    free(offb);
    free(t);
    comm_path_close(&via[1]);
    comm_path_close(&via[0]);
    comm_close(&c);
    return 0;
}
