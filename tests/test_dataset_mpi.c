/* MPI tests of dataset (P = 1..4): each rank loads the balanced contiguous range
 * [r*N/P, (r+1)*N/P) through parallel HDF5; gathered on rank 0 the shards cover every
 * row once and their concatenation equals the file (a uint8 gzip-chunked X and a float64
 * contiguous X, N not divisible by P; and N < P, where some shards are empty).
 * Allreduced per-shard feature sums equal the serial full-file sums. Bad input ends
 * with the same status on every rank, whether every rank or only one sees it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "dataset.h"
#include "rowsource.h"
#include "h5io.h"
#include "xt_test.h"

static Comm *g_comm;
static char g_dir[512];

#define N_ROWS 1001
#define D_COLS 7

static double cell64(size_t i, size_t j) { return sin((double)i * 0.37 + (double)j) * 1e3; }
static uint8_t cell8(size_t i, size_t j) { return (uint8_t)((i * 7 + j * 13) % 251); }

/* Rank 0 writes the fixtures; everybody waits. */
static void write_fixtures(void)
{
    if (comm_rank(g_comm) == 0) {
        char p[600];
        snprintf(p, sizeof p, "%s/data.h5", g_dir);
        uint8_t *x8 = malloc(N_ROWS * D_COLS);
        double *x64 = malloc(N_ROWS * D_COLS * sizeof *x64);
        int32_t *y = malloc(N_ROWS * sizeof *y);
        for (size_t i = 0; i < N_ROWS; i++) {
            y[i] = (int32_t)(i % 5);
            for (size_t j = 0; j < D_COLS; j++) {
                x8[i * D_COLS + j] = cell8(i, j);
                x64[i * D_COLS + j] = cell64(i, j);
            }
        }
        size_t xd[2] = {N_ROWS, D_COLS}, yd[1] = {N_ROWS};
        size_t td[2] = {2, 3}, sd[1] = {2};
        float tiny[6] = {1, 2, 3, 4, 5, 6};
        int32_t ty[2] = {1, 0};
        H5File *f = NULL;
        assert_int_equal(h5io_create(p, &f), XT_OK);
        /* gzip-chunked uint8: chunks of 1 MiB / 7 B rows hold the whole set; use a level
         * that still makes HDF5 decompress for every rank. */
        assert_int_equal(h5io_write(f, "/u8/X", H5IO_U8, 2, xd, x8, 4), XT_OK);
        assert_int_equal(h5io_write(f, "/u8/y", H5IO_I32, 1, yd, y, 4), XT_OK);
        assert_int_equal(h5io_write(f, "/f64/X", H5IO_F64, 2, xd, x64, 0), XT_OK);
        assert_int_equal(h5io_write(f, "/f64/y", H5IO_I32, 1, yd, y, 0), XT_OK);
        for (size_t i = 0; i < N_ROWS; i++) y[i] = i == N_ROWS - 1 ? 9 : 0;
        assert_int_equal(h5io_write(f, "/onebad/X", H5IO_F64, 2, xd, x64, 0), XT_OK);
        assert_int_equal(h5io_write(f, "/onebad/y", H5IO_I32, 1, yd, y, 0), XT_OK);
        assert_int_equal(h5io_write(f, "/tiny/X", H5IO_F32, 2, td, tiny, 0), XT_OK);
        assert_int_equal(h5io_write(f, "/tiny/y", H5IO_I32, 1, sd, ty, 0), XT_OK);
        assert_int_equal(h5io_close(&f), XT_OK);
        free(x8);
        free(x64);
        free(y);
    }
    comm_barrier(g_comm);
}

/* Loads this rank's balanced range of `group`, gathers (lo, hi) and the rows on rank 0
 * and compares with a serial load of the whole split there. */
static void check_shards(const char *group, size_t n_expect)
{
    int P = comm_size(g_comm), r = comm_rank(g_comm);
    char spec[700];
    snprintf(spec, sizeof spec, "%s/data.h5:%s", g_dir, group);
    DatasetInfo in;
    assert_all_ranks(g_comm, dataset_probe(spec, g_comm, true, &in) == XT_OK);
    assert_all_ranks(g_comm, in.n == n_expect);
    size_t n = in.n, d = in.d;
    size_t lo = (size_t)r * n / (size_t)P, hi = (size_t)(r + 1) * n / (size_t)P;
    Dataset ds;
    Status st = dataset_load(&ds, &in, lo, hi, 5, g_comm);
    assert_all_ranks(g_comm, comm_agree(g_comm, st) == XT_OK);

    /* gather: every rank sends (lo, hi) and a padded block of max_rows rows */
    size_t max_rows = (n + (size_t)P - 1) / (size_t)P;
    uint64_t range[2] = {ds.lo, ds.hi};
    uint64_t *ranges = malloc(2 * sizeof(uint64_t) * (size_t)P);
    size_t bytes = max_rows * d * sizeof(float);
    float *mine = calloc(max_rows * d + 1, sizeof(float));
    float *all = malloc(bytes * (size_t)P + 1);
    if (hi > lo) memcpy(mine, ds.X, (hi - lo) * d * sizeof(float));
    comm_gather(g_comm, range, ranges, sizeof range);
    comm_gather(g_comm, mine, all, bytes);

    /* standardize: allreduced shard sums == serial sums (up to summation order) */
    double *sum = calloc(2 * d, sizeof(double)), *sumsq = sum + d;
    RowSource src;
    rowsource_init(&src, &ds);
    assert_int_equal(rowsource_feature_sums(&src, sum, sumsq), XT_OK);
    comm_allreduce_sum_double(g_comm, sum, 2 * d);

    bool ok = true;
    if (r == 0) {
        Dataset full;
        ok = dataset_load(&full, &in, 0, n, 5, NULL) == XT_OK;
        size_t next = 0;
        for (int q = 0; q < P && ok; q++) {
            size_t qlo = (size_t)ranges[2 * q], qhi = (size_t)ranges[2 * q + 1];
            ok = qlo == next && qhi >= qlo; /* contiguous, in rank order, no gap or overlap */
            if (ok && qhi > qlo)
                ok = memcmp(all + (size_t)q * max_rows * d, full.X + qlo * d,
                            (qhi - qlo) * d * sizeof(float)) == 0;
            next = qhi;
        }
        ok = ok && next == n; /* every row once */
        double *fs = calloc(2 * d, sizeof(double));
        RowSource fsrc;
        rowsource_init(&fsrc, &full);
        ok = ok && rowsource_feature_sums(&fsrc, fs, fs + d) == XT_OK;
        size_t where = 0;
        double e = xt_max_rel_err(sum, fs, 2 * d, 1e-9, &where);
        if (e > 1e-12) {
            fprintf(stderr, "%s: sums differ by %g (relative) at %zu\n", group, e, where);
            ok = false;
        }
        free(fs);
        dataset_free(&full);
    }
    /* and each rank's rows hold the values written, at the right global rows */
    for (size_t i = lo; i < hi && ok; i++)
        for (size_t j = 0; j < d && ok; j++) {
            float v = ds.X[(i - lo) * d + j];
            float want = !strcmp(group, "/u8")    ? (float)cell8(i, j)
                         : !strcmp(group, "/f64") ? (float)cell64(i, j)
                                                  : (float)(i * d + j + 1);
            ok = v == want;
        }
    for (size_t i = lo; i < hi && ok && strcmp(group, "/tiny"); i++) ok = ds.y[i - lo] == (int32_t)(i % 5);
    free(sum);
    free(ranges);
    free(mine);
    free(all);
    dataset_free(&ds);
    assert_all_ranks(g_comm, ok);
}

static void test_dataset_mpi_shards_uint8_gzip(void **state)
{
    (void)state;
    check_shards("/u8", N_ROWS);
}

static void test_dataset_mpi_shards_float64(void **state)
{
    (void)state;
    check_shards("/f64", N_ROWS);
}

/* N = 2 < P at P = 3, 4: empty shards are valid and the rest still covers the file. */
static void test_dataset_mpi_more_ranks_than_rows(void **state)
{
    (void)state;
    check_shards("/tiny", 2);
}

static void test_dataset_mpi_errors_agree(void **state)
{
    (void)state;
    char spec[700];
    /* layout fault: the same status on every rank, no hang */
    snprintf(spec, sizeof spec, "%s/data.h5:/nothere", g_dir);
    DatasetInfo in;
    Status st = dataset_probe(spec, g_comm, true, &in);
    assert_all_ranks(g_comm, st == XT_ERR_USAGE);
    snprintf(spec, sizeof spec, "%s/missing.h5", g_dir);
    st = dataset_probe(spec, g_comm, true, &in);
    assert_all_ranks(g_comm, st == XT_ERR_USAGE);
    /* a fault in the last rank's rows only (label 9 in the last row, k = 5): that rank
     * fails, the others load, and the agreement gives every rank the failure */
    snprintf(spec, sizeof spec, "%s/data.h5:/onebad", g_dir);
    assert_all_ranks(g_comm, dataset_probe(spec, g_comm, true, &in) == XT_OK);
    int P = comm_size(g_comm), r = comm_rank(g_comm);
    size_t lo = (size_t)r * in.n / (size_t)P, hi = (size_t)(r + 1) * in.n / (size_t)P;
    Dataset ds;
    st = dataset_load(&ds, &in, lo, hi, 5, g_comm);
    assert_all_ranks(g_comm, (st == XT_ERR_USAGE) == (r == P - 1));
    assert_all_ranks(g_comm, comm_agree(g_comm, st) == XT_ERR_USAGE);
    dataset_free(&ds);
}

/* First and last "tests": the runner owns the Comm, so fixtures are made here. */
static void test_dataset_mpi_fixtures(void **state)
{
    (void)state;
    xt_test_tmpdir(g_dir, sizeof g_dir, g_comm);
    assert_all_ranks(g_comm, g_dir[0] != '\0');
    write_fixtures();
}

static void test_dataset_mpi_cleanup(void **state)
{
    (void)state;
    xt_test_rmtree(g_dir, g_comm);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_mpi_fixtures),
        cmocka_unit_test(test_dataset_mpi_shards_uint8_gzip),
        cmocka_unit_test(test_dataset_mpi_shards_float64),
        cmocka_unit_test(test_dataset_mpi_more_ranks_than_rows),
        cmocka_unit_test(test_dataset_mpi_errors_agree),
        cmocka_unit_test(test_dataset_mpi_cleanup),
    };
    return xt_test_run_mpi(&argc, &argv, "dataset_mpi", tests, sizeof tests / sizeof tests[0],
                           &g_comm);
}
