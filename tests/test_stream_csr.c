/* Unit tests of the streamed CSR reader (stream_csr.c) against the in-memory CSR load
 * (dataset_load): sequential reads (CSR and dense, with a normalisation), the column maxima,
 * the rows of planned windows step by step over epochs (and a jump, as a resume makes), and
 * bad rows refused at the scan with the global row named. The fixture is written into a
 * fresh temp dir: 300 rows of 40 features, 0 to 12 non-zeros a row, every 5th row's columns
 * stored unsorted, blocks of 4 KiB so the scan and the reads take several. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"
#include "dataset.h"
#include "h5io.h"
#include "shard.h"
#include "stream_csr.h"
#include "xt_test.h"

#define TN 300
#define TD 40
#define IO_BYTES 4096

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Writes the fixture to name; bad_row >= 0 puts column TD (out of range) into the first row
 * from there that has a non-zero, whose index it returns. */
static long write_fixture(const char *name, long bad_row)
{
    long bad = -1;
    CsrRows c;
    assert_int_equal(csr_init(&c, TN, TN * 12, TD), XT_OK);
    int32_t y[TN];
    uint64_t s = 7;
    for (size_t i = 0; i < TN; i++) {
        size_t k = (size_t)(lcg(&s) % 13), at = c.indptr[i];
        for (size_t j = 0; j < k; j++) { /* distinct columns: a stride through TD */
            c.indices[at + j] = (int32_t)((i * 7 + j * 3) % TD);
            c.values[at + j] = (float)((double)(lcg(&s) % 2000) / 100.0 - 10.0);
        }
        if (i % 5 == 0 && k > 1) { /* stored unsorted */
            int32_t t = c.indices[at];
            c.indices[at] = c.indices[at + k - 1];
            c.indices[at + k - 1] = t;
        }
        if (bad_row >= 0 && bad < 0 && (long)i >= bad_row && k > 0) {
            c.indices[at] = TD;
            bad = (long)i;
        }
        c.indptr[i + 1] = at + k;
        y[i] = (int32_t)(lcg(&s) % 3);
    }
    c.m = TN;
    char p[700];
    snprintf(p, sizeof p, "%s/%s", xt_test_dir, name);
    H5File *f = NULL;
    assert_int_equal(h5io_create(p, &f), XT_OK);
    DatasetRows r = {.d = TD, .y = y, .n = TN, .csr = &c};
    assert_int_equal(dataset_write_split(f, "/train", &r, 0), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    csr_free(&c);
    return bad;
}

static void probe(const char *name, DatasetInfo *in)
{
    char spec[700];
    snprintf(spec, sizeof spec, "%s/%s:/train", xt_test_dir, name);
    assert_int_equal(dataset_probe(spec, NULL, true, in), XT_OK);
    assert_true(in->x_csr);
}

/* The same rows in memory and opened for streaming (scanned). */
static void open_both(const DatasetInfo *in, size_t lo, size_t hi, Dataset *mem,
                      StreamCsr **st, Dataset *sds)
{
    char why[512];
    assert_int_equal(dataset_load(mem, in, lo, hi, 3, NULL), XT_OK);
    assert_int_equal(stream_csr_open(st, in, lo, hi, IO_BYTES, why, sizeof why), XT_OK);
    assert_int_equal(stream_csr_scan(*st, sds, 3, false), XT_OK);
    assert_int_equal(sds->label_min, mem->label_min);
    assert_int_equal(sds->label_max, mem->label_max);
}

static void assert_same_csr(const CsrRows *a, const CsrRows *b)
{
    assert_int_equal(a->m, b->m);
    assert_memory_equal(a->indptr, b->indptr, (a->m + 1) * sizeof *a->indptr);
    assert_memory_equal(a->indices, b->indices, csr_nnz(a) * sizeof *a->indices);
    assert_memory_equal(a->values, b->values, csr_nnz(a) * sizeof *a->values);
}

static void test_stream_csr_reads_equal_memory(void **state)
{
    (void)state;
    write_fixture("s.h5", -1);
    DatasetInfo in;
    probe("s.h5", &in);
    float shift[TD], mul[TD];
    for (size_t j = 0; j < TD; j++) {
        shift[j] = (float)j / 8.0f;
        mul[j] = 1.0f / (float)(j + 3);
    }
    const size_t ranges[2][2] = {{0, TN}, {37, 251}};
    for (int q = 0; q < 2; q++) {
        size_t lo = ranges[q][0], hi = ranges[q][1], n = hi - lo;
        Dataset mem, sds;
        StreamCsr *st = NULL;
        open_both(&in, lo, hi, &mem, &st, &sds);
        assert_int_equal(stream_csr_nnz(st), csr_nnz(&mem.csr));
        assert_int_equal(stream_csr_max_nnz(st, 16), csr_max_nnz(&mem.csr, 16));
        assert_true(stream_csr_fixed_bytes_at(st, 1 << 20) > stream_csr_fixed_bytes(st));
        CsrRows got, want;
        size_t cap = stream_csr_max_nnz(st, n);
        assert_int_equal(csr_init(&got, n, cap, TD), XT_OK);
        assert_int_equal(csr_init(&want, n, cap, TD), XT_OK);
        int32_t y[TN];
        for (int scaled = 0; scaled < 2; scaled++) { /* the whole range, then a middle part */
            const float *m = scaled ? mul : NULL;
            size_t a = scaled ? 5 : 0, len = scaled ? n - 40 : n;
            stream_csr_read(st, a, len, &got, y, NULL, m);
            csr_slice(&want, &mem.csr, a, len, m);
            assert_same_csr(&got, &want);
            assert_memory_equal(y, mem.y + a, len * sizeof *y);
        }
        float *X = malloc(n * TD * sizeof *X), *Xw = malloc(n * TD * sizeof *Xw);
        assert_non_null(X);
        assert_non_null(Xw);
        stream_csr_read_dense(st, 0, n, X, y, NULL, shift, mul);
        csr_densify_affine(Xw, &mem.csr, NULL, 0, n, shift, mul);
        assert_memory_equal(X, Xw, n * TD * sizeof *X);
        double mx[TD] = {0}, mw[TD] = {0};
        stream_csr_column_absmax(st, mx);
        csr_column_absmax(&mem.csr, mw);
        assert_memory_equal(mx, mw, sizeof mx);
        free(X);
        free(Xw);
        csr_free(&got);
        csr_free(&want);
        stream_csr_close(st);
        dataset_free(&sds);
        dataset_free(&mem);
    }
}

/* One step's rows from the window and from memory. */
static void compare_step(StreamCsr *st, Sampler *sp, const Dataset *mem, uint64_t e, size_t t,
                         CsrRows *got, CsrRows *want, const float *mul)
{
    uint32_t rows[TN];
    int32_t y[TN];
    stream_csr_begin_step(st, e, t);
    sampler_begin_epoch(sp, e);
    size_t k = sampler_step_rows(sp, t, rows);
    stream_csr_gather(st, rows, k, got, y, NULL, mul);
    csr_gather(want, &mem->csr, rows, k, mul);
    assert_same_csr(got, want);
    for (size_t i = 0; i < k; i++) assert_int_equal(y[i], mem->y[rows[i]]);
}

static void test_stream_csr_windows_equal_memory(void **state)
{
    (void)state;
    write_fixture("w.h5", -1);
    DatasetInfo in;
    probe("w.h5", &in);
    Sampler sp;
    char err[256];
    assert_int_equal(sampler_init(&sp, TN, 8, 24, 2, 1, 11, true, 0, err, sizeof err), XT_OK);
    Dataset mem, sds;
    StreamCsr *st = NULL;
    open_both(&in, sp.row_lo, sp.row_hi, &mem, &st, &sds);
    /* windows of about two steps: several a epoch */
    size_t ml = sp.max_local, zl = stream_csr_max_nnz(st, ml);
    assert_int_equal(stream_csr_plan(st, &sp, 2 * ml, 2 * zl), XT_OK);
    float mul[TD];
    for (size_t j = 0; j < TD; j++) mul[j] = 0.5f + (float)j / 16.0f;
    CsrRows got, want;
    assert_int_equal(csr_init(&got, ml, zl, TD), XT_OK);
    assert_int_equal(csr_init(&want, ml, zl, TD), XT_OK);
    for (uint64_t e = 0; e < 3; e++)
        for (size_t t = 0; t < sp.T; t++) compare_step(st, &sp, &mem, e, t, &got, &want, mul);
    compare_step(st, &sp, &mem, 1, 3, &got, &want, NULL); /* backwards: a resume */
    compare_step(st, &sp, &mem, 1, 4, &got, &want, NULL);
    char desc[1000];
    stream_csr_describe(st, desc, sizeof desc);
    assert_non_null(strstr(desc, "one window of up to"));
    csr_free(&got);
    csr_free(&want);
    stream_csr_close(st);
    dataset_free(&sds);
    dataset_free(&mem);
    sampler_free(&sp);
}

static void test_stream_csr_bad_row_named(void **state)
{
    (void)state;
    long bad = write_fixture("bad.h5", 287);
    assert_true(bad >= 287 && bad < TN);
    DatasetInfo in;
    probe("bad.h5", &in);
    Dataset sds;
    StreamCsr *st = NULL;
    char why[512], text[4096];
    assert_int_equal(stream_csr_open(&st, &in, 100, TN, IO_BYTES, why, sizeof why), XT_OK);
    xt_test_capture_begin();
    Status s = stream_csr_scan(st, &sds, 3, false);
    xt_test_capture_end(text, sizeof text);
    assert_int_equal(s, XT_ERR_USAGE);
    char want[200];
    snprintf(want, sizeof want, "bad.h5:/train/X/indices: row %ld: column index 40 is outside "
             "[0, 40) (D = 40)", bad);
    assert_non_null(strstr(text, want));
    stream_csr_close(st);
    dataset_free(&sds);
    /* rows before it pass */
    assert_int_equal(stream_csr_open(&st, &in, 0, (size_t)bad, IO_BYTES, why, sizeof why), XT_OK);
    assert_int_equal(stream_csr_scan(st, &sds, 3, false), XT_OK);
    stream_csr_close(st);
    dataset_free(&sds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_csr_reads_equal_memory),
        cmocka_unit_test(test_stream_csr_windows_equal_memory),
        cmocka_unit_test(test_stream_csr_bad_row_named),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
