/* The hardware limits the benchmark compares xentrain with, measured on this machine:
 *   1. single-thread cblas_sgemm at the model's own GEMM shapes (batch B rows): the
 *      time of one step's GEMMs, hence an upper bound on samples/s;
 *   2. MPI_Allreduce (sum, float) of the model's gradient buffer (run under mpirun);
 *   3. the read bandwidth of the training split (this rank's balanced share).
 * Prints "key value" lines (rank 0) for bench/run.sh to collect.
 * Usage: xt_bench_limits DATA.h5:/train B HIDDEN(0 for softmax) [REPS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "dataset.h"
#include "linalg.h"
#include "log.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    size_t M, N, K;
    bool ta, tb;
} Gemm;

int main(int argc, char **argv)
{
    Comm *comm = NULL;
    if (comm_open(&argc, &argv, &comm) != XT_OK) return 1;
    if (argc < 4) {
        log_error0("usage: xt_bench_limits DATA.h5:/train B HIDDEN1,HIDDEN2|0 [REPS]");
        comm_close(&comm);
        return 2;
    }
    linalg_set_blas_threads(1);
    const char *spec = argv[1];
    size_t B = (size_t)strtoul(argv[2], NULL, 10);
    size_t sizes[8] = {784}, L = 0;
    if (strcmp(argv[3], "0") != 0)
        for (char *save = NULL, *h = strtok_r(argv[3], ",", &save); h && L < 6;
             h = strtok_r(NULL, ",", &save))
            sizes[++L] = (size_t)strtoul(h, NULL, 10);
    sizes[++L] = 10;
    int reps = argc > 4 ? atoi(argv[4]) : 200;
    int r = comm_rank(comm), P = comm_size(comm);

    /* 1. The GEMMs of one step: forward Z = A W^T, backward dW = dZ^T A, dA = dZ W. */
    Gemm g[24];
    size_t ng = 0, n_params = 0;
    double flops = 0;
    for (size_t l = 1; l <= L; l++) {
        size_t in = sizes[l - 1], out = sizes[l];
        n_params += in * out + out;
        g[ng++] = (Gemm){B, out, in, false, true};
        g[ng++] = (Gemm){out, in, B, true, false};
        if (l > 1) g[ng++] = (Gemm){B, in, out, false, false};
        flops += 2.0 * (double)(B * in * out) * (l > 1 ? 3 : 2);
    }
    size_t big = 0;
    for (size_t i = 0; i < ng; i++) {
        size_t a = g[i].M * g[i].K, b = g[i].K * g[i].N, c = g[i].M * g[i].N;
        big = a > big ? a : big;
        big = b > big ? b : big;
        big = c > big ? c : big;
    }
    float *A = malloc(big * sizeof *A), *Bm = malloc(big * sizeof *Bm), *C = malloc(big * sizeof *C);
    for (size_t i = 0; i < big; i++) {
        A[i] = (float)(i % 7) * 0.1f;
        Bm[i] = (float)(i % 5) * 0.1f;
        C[i] = 0;
    }
    double *t = malloc((size_t)reps * sizeof *t);
    for (int k = 0; k < reps + 10; k++) {
        double t0 = comm_wtime();
        for (size_t i = 0; i < ng; i++)
            linalg_gemm(C, A, Bm, g[i].M, g[i].N, g[i].K, g[i].ta, g[i].tb, 1.0f, 0.0f);
        if (k >= 10) t[k - 10] = comm_wtime() - t0;
    }
    double step = median(t, reps);
    if (r == 0) {
        printf("gemm_step_s %.9f\n", step);
        printf("gemm_gflops %.2f\n", flops / step * 1e-9);
        printf("gemm_bound_samples_per_s %.1f\n", (double)B / step);
        printf("n_params %zu\n", n_params);
    }

    /* 2. The gradient allreduce: n_params + 4 floats, in place. */
    size_t n = n_params + 4;
    float *buf = calloc(n, sizeof *buf);
    for (int k = 0; k < reps + 10; k++) {
        comm_barrier(comm);
        double t0 = comm_wtime();
        comm_allreduce_sum_float(comm, buf, n);
        if (k >= 10) t[k - 10] = comm_wtime() - t0;
    }
    double ar = median(t, reps);
    if (r == 0) {
        printf("allreduce_s %.9f\n", ar);
        printf("allreduce_bytes %zu\n", n * sizeof(float));
        printf("allreduce_busbw_GBps %.3f\n",
               P > 1 ? 2.0 * (P - 1) / P * (double)(n * sizeof(float)) / ar * 1e-9 : 0.0);
    }

    /* 3. Reading this rank's share of the training split (page cache as it is). */
    DatasetInfo info;
    Dataset ds = {0};
    if (dataset_probe(spec, comm, true, &info) == XT_OK) {
        size_t lo = (size_t)r * info.n / (size_t)P, hi = (size_t)(r + 1) * info.n / (size_t)P;
        comm_barrier(comm);
        double t0 = comm_wtime();
        Status st = dataset_load(&ds, &info, lo, hi, 0, comm);
        double dt = comm_wtime() - t0;
        comm_allreduce_max_double(comm, &dt, 1);
        if (st == XT_OK && r == 0) {
            printf("read_s %.6f\n", dt);
            printf("read_rows_per_rank %zu\n", hi - lo);
            printf("read_float_GBps %.3f\n", (double)(hi - lo) * (double)info.d * 4.0 / dt * 1e-9);
        }
        dataset_free(&ds);
    }
    free(A);
    free(Bm);
    free(C);
    free(t);
    free(buf);
    comm_close(&comm);
    return 0;
}
