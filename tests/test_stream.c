/* stream: the stream's own decoder (pread, zlib, byte shuffle, type conversion) against
 * HDF5's own reads (dataset_load's hyperslabs), bit for bit, for every layout it takes:
 * contiguous and chunked X, chunks that split the columns with partial edge chunks, gzip with
 * and without the shuffle filter, uint8 (kept compact or not), int16, float32, big-endian
 * float64, class ids as int32, int16 or whole-number floats, (N, K) targets contiguous or
 * gzip-chunked. Each layout is read three ways over a rank's range of rows:
 *   - sequentially (stream_read, the path of statistics, validation, eval and predict) in
 *     blocks of an awkward size, with and without normalisation;
 *   - the start-up scan (stream_scan: the label range the loader would find);
 *   - as training reads it (stream_plan, stream_begin_step, stream_gather) over two epochs
 *     of a shuffled sampler with reads of 512 bytes (many runs, cut chunk rows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "h5io.h"
#include "stream.h"
#include "xt_h5fixture.h"
#include "xt_test.h"

#define N 203
#define D 16
#define K 5
#define LO 17
#define HI 190

typedef struct {
    const char *name;
    XtH5Layout x, y;
    bool dense;   /* (N, K) targets in [0, 1] */
    bool compact; /* keep uint8 X as uint8 */
} Case;

static const Case CASES[] = {
    {"contiguous f32, y i32", {"f32", 0, 0, 0, false}, {"i32", 0, 0, 0, false}, false, false},
    {"chunked f32 (10 x 16)", {"f32", 10, 0, 0, false}, {"i32", 0, 0, 0, false}, false, false},
    {"gzip+shuffle f32 in 7 x 3 chunks, y gzip", {"f32", 7, 3, 4, true}, {"i32", 9, 0, 1, false},
     false, false},
    {"gzip f32 in 64 x 16 chunks (no shuffle)", {"f32", 64, 0, 6, false}, {"i32", 0, 0, 0, false},
     false, false},
    {"big-endian f64, y i16", {"f64be", 0, 0, 0, false}, {"i16", 0, 0, 0, false}, false, false},
    {"u8 compact", {"u8", 0, 0, 0, false}, {"i32", 0, 0, 0, false}, false, true},
    {"u8 as float", {"u8", 13, 5, 1, true}, {"i32", 0, 0, 0, false}, false, false},
    {"i16 chunked gzip, y f32 whole numbers", {"i16", 11, 16, 2, false}, {"f32", 0, 0, 0, false},
     false, false},
    {"dense targets", {"f32", 0, 0, 0, false}, {"f32", 0, 0, 0, false}, true, false},
    {"dense targets gzip-chunked", {"f64", 0, 0, 0, false}, {"f32", 8, 2, 3, true}, true, false},
};

/* Values every type holds exactly (u8 0..255), varied enough to catch a wrong row,
 * column, byte order or chunk. */
static void make_values(double *x, double *y, double *t)
{
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < D; j++) x[i * D + j] = (double)((i * 31 + j * 7) % 251);
        y[i] = (double)(i % K);
        for (size_t k = 0; k < K; k++) t[i * K + k] = (double)((i + k) % 3) / 2.0;
    }
}

static void write_case(const char *path, const Case *c)
{
    double *x = malloc(N * D * sizeof *x), *y = malloc(N * sizeof *y), *t = malloc(N * K * sizeof *t);
    assert_true(x && y && t);
    make_values(x, y, t);
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(xt_h5_write_matrix(path, "/train/X", x, N, D, &c->x), XT_OK);
    assert_int_equal(xt_h5_write_matrix(path, "/train/y", c->dense ? t : y, N, c->dense ? K : 0,
                                        &c->y), XT_OK);
    free(x);
    free(y);
    free(t);
}

/* rows [a, a + m) of the reference against the stream's output. */
static void expect_rows(const Dataset *ref, const uint32_t *rows, size_t m, const float *X,
                        const int32_t *y, const float *t, const float *shift, const float *mul,
                        const char *what)
{
    const size_t kd = ref->info.k_dense;
    float *want = malloc((m ? m : 1) * D * sizeof *want);
    assert_non_null(want);
    dataset_gather_rows(want, ref, rows, m, shift, mul);
    if (memcmp(want, X, m * D * sizeof *X) != 0) fail_msg("%s: X differs", what);
    for (size_t i = 0; i < m; i++) {
        if (kd == 0 && y[i] != ref->y[rows[i]]) fail_msg("%s: y of row %u differs", what, rows[i]);
        if (kd > 0 && memcmp(t + i * kd, ref->t + rows[i] * kd, kd * sizeof *t) != 0)
            fail_msg("%s: targets of row %u differ", what, rows[i]);
    }
    free(want);
}

/* Sequential blocks of 13 rows, as statistics and evaluation read them. */
static void check_sequential(Stream *st, const Dataset *ref, const float *shift, const float *mul,
                             const char *name)
{
    const size_t n = HI - LO, B = 13, kd = ref->info.k_dense;
    float *X = malloc(B * D * sizeof *X), *t = malloc(B * K * sizeof *t);
    int32_t *y = malloc(B * sizeof *y);
    uint32_t rows[13];
    assert_true(X && t && y);
    for (size_t lo = 0; lo < n; lo += B) {
        size_t m = n - lo < B ? n - lo : B;
        stream_read(st, lo, m, X, kd ? NULL : y, kd ? t : NULL, shift, mul);
        for (size_t i = 0; i < m; i++) rows[i] = (uint32_t)(lo + i);
        expect_rows(ref, rows, m, X, y, t, shift, mul, name);
    }
    free(X);
    free(t);
    free(y);
}

/* Two epochs of planned windows, as training reads them (this is rank 1 of 2). */
static void check_planned(const DatasetInfo *info, const Case *c, const float *shift,
                          const float *mul)
{
    Sampler sp;
    char err[256], why[512];
    assert_int_equal(sampler_init(&sp, N, 8, 24, 2, 1, 5, true, 0, err, sizeof err), XT_OK);
    Dataset ref = {0}, scan = {0};
    Status rs = c->compact ? dataset_load_compact(&ref, info, sp.row_lo, sp.row_hi, 0, NULL)
                           : dataset_load(&ref, info, sp.row_lo, sp.row_hi, 0, NULL);
    assert_int_equal(rs, XT_OK);
    Stream *st = NULL;
    assert_int_equal(stream_open(&st, info, sp.row_lo, sp.row_hi, c->compact, 512, why,
                                 sizeof why), XT_OK);
    assert_int_equal(stream_scan(st, &scan, 0, false), XT_OK);
    assert_int_equal(stream_plan(st, &sp, sp.max_local * 2, 2), XT_OK);
    float *X = malloc(sp.max_local * D * sizeof *X), *t = malloc(sp.max_local * K * sizeof *t);
    int32_t *y = malloc(sp.max_local * sizeof *y);
    uint32_t *rows = malloc(sp.max_local * sizeof *rows);
    assert_true(X && t && y && rows);
    const bool dense = info->target == TARGET_DENSE;
    for (uint64_t e = 0; e < 2; e++) {
        sampler_begin_epoch(&sp, e);
        for (size_t s = 0; s < sp.T; s++) {
            stream_begin_step(st, e, s);
            size_t m = sampler_step_rows(&sp, s, rows);
            stream_gather(st, rows, m, X, dense ? NULL : y, dense ? t : NULL, shift, mul);
            expect_rows(&ref, rows, m, X, y, t, shift, mul, c->name);
        }
    }
    stream_close(st);
    dataset_free(&scan);
    dataset_free(&ref);
    sampler_free(&sp);
    free(X);
    free(t);
    free(y);
    free(rows);
}

static void check_case(const Case *c, float *shift, float *mul)
{
    char path[600];
    snprintf(path, sizeof path, "%s/stream.h5", xt_test_dir);
    write_case(path, c);
    char spec[700], why[512];
    snprintf(spec, sizeof spec, "%s:/train", path);
    DatasetInfo info;
    assert_int_equal(dataset_probe(spec, NULL, true, &info), XT_OK);
    Dataset ref = {0}, scan = {0};
    Status rs = c->compact ? dataset_load_compact(&ref, &info, LO, HI, 0, NULL)
                           : dataset_load(&ref, &info, LO, HI, 0, NULL);
    assert_int_equal(rs, XT_OK);
    Stream *st = NULL;
    assert_int_equal(stream_open(&st, &info, LO, HI, c->compact, 512, why, sizeof why), XT_OK);
    assert_int_equal(stream_scan(st, &scan, 0, false), XT_OK);
    if (!c->dense) { /* the scan finds the loader's label range */
        assert_int_equal(scan.label_min, ref.label_min);
        assert_int_equal(scan.label_max, ref.label_max);
    }
    check_sequential(st, &ref, NULL, NULL, c->name);
    check_sequential(st, &ref, shift, mul, c->name);
    stream_close(st);
    dataset_free(&scan);
    dataset_free(&ref);
    check_planned(&info, c, shift, mul);
    remove(path);
    printf("  stream = HDF5, bit for bit: %s\n", c->name);
}

static void test_stream_every_layout_matches_hdf5(void **state)
{
    (void)state;
    float shift[D], mul[D];
    for (size_t j = 0; j < D; j++) {
        shift[j] = (float)j * 3.25f;
        mul[j] = 1.0f / (float)(j + 3);
    }
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) check_case(&CASES[i], shift, mul);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_every_layout_matches_hdf5),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
