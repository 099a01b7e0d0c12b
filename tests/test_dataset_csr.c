/* Unit tests of the CSR reader (dataset_csr.c through dataset_probe / dataset_load): both
 * layouts (AnnData/h5ad and scipy/h5sparse), int32 and int64 index arrays, float32 and
 * float64 values, a rank's rows read alone, unsorted columns sorted, and every bad CSR file
 * refused with its row named. Fixtures are written with h5io into a fresh temp dir. */
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
#include "xt_test.h"

/* The fixture: 6 rows, 6 features, 11 non-zeros, row 1 empty. */
#define FN 6
#define FD 6
#define FNNZ 11
static const int64_t F_INDPTR[FN + 1] = {0, 2, 2, 5, 6, 8, 11};
static const int64_t F_INDICES[FNNZ] = {0, 3, 1, 2, 5, 4, 0, 5, 2, 3, 4};
static const double F_DATA[FNNZ] = {1, 2, -1.5, 0.5, 3, 4, 0.25, -2, 1, 1, 1};
static const int32_t F_Y[FN] = {0, 1, 2, 0, 1, 2};

typedef struct {
    const char *layout;     /* "h5ad", "h5sparse", "csc" (h5ad's attribute, csc_matrix) */
    H5ioType itype, vtype;  /* indptr and indices; data */
    const int64_t *indptr, *indices;
    const double *data;
    size_t n, d, nnz, n_indptr;
    bool no_shape;
} CsrFix;

static CsrFix fix_default(const char *layout)
{
    return (CsrFix){.layout = layout, .itype = H5IO_I32, .vtype = H5IO_F32, .indptr = F_INDPTR,
                    .indices = F_INDICES, .data = F_DATA, .n = FN, .d = FD, .nnz = FNNZ,
                    .n_indptr = FN + 1};
}

/* A 1-D dataset of n values given as doubles, stored as type t. */
static void put_1d(H5File *f, const char *dset, H5ioType t, const double *v, size_t n)
{
    size_t esize = t == H5IO_I32 || t == H5IO_F32 ? 4 : 8;
    unsigned char *buf = malloc(n * esize + 8);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        if (t == H5IO_I32) ((int32_t *)(void *)buf)[i] = (int32_t)v[i];
        else if (t == H5IO_I64) ((int64_t *)(void *)buf)[i] = (int64_t)v[i];
        else if (t == H5IO_F32) ((float *)(void *)buf)[i] = (float)v[i];
        else ((double *)(void *)buf)[i] = v[i];
    }
    size_t dims[1] = {n};
    assert_int_equal(h5io_write(f, dset, t, 1, dims, buf, 0), XT_OK);
    free(buf);
}

static void write_fix(const char *name, const CsrFix *c)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", xt_test_dir, name);
    H5File *f = NULL;
    assert_int_equal(h5io_create(p, &f), XT_OK);
    double ip[64], ix[64], y[64];
    for (size_t i = 0; i < c->n_indptr; i++) ip[i] = (double)c->indptr[i];
    for (size_t i = 0; i < c->nnz; i++) ix[i] = (double)c->indices[i];
    for (size_t i = 0; i < c->n; i++) y[i] = F_Y[i % FN];
    put_1d(f, "/train/X/indptr", c->itype, ip, c->n_indptr);
    put_1d(f, "/train/X/indices", c->itype, ix, c->nnz);
    put_1d(f, "/train/X/data", c->vtype, c->data, c->nnz);
    put_1d(f, "/train/y", H5IO_I32, y, c->n);
    int64_t shape[2] = {(int64_t)c->n, (int64_t)c->d};
    bool h5ad = strcmp(c->layout, "h5sparse") != 0;
    const char *kind = !strcmp(c->layout, "csc") ? "csc_matrix" : "csr_matrix";
    if (h5ad) {
        assert_int_equal(h5io_attr_write_str(f, "/train/X", "encoding-type", kind), XT_OK);
        assert_int_equal(h5io_attr_write_str(f, "/train/X", "encoding-version", "0.1.0"), XT_OK);
    } else {
        assert_int_equal(h5io_attr_write_str(f, "/train/X", "h5sparse_format", "csr"), XT_OK);
    }
    if (!c->no_shape)
        assert_int_equal(h5io_attr_write_i64s(f, "/train/X", h5ad ? "shape" : "h5sparse_shape",
                                              shape, 2), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
}

static void spec_of(char *spec, size_t len, const char *name)
{
    snprintf(spec, len, "%s/%s:/train", xt_test_dir, name);
}

/* Loads rows [lo, hi) and checks them against the fixture's dense rows. */
static void load_and_compare(const char *name, size_t lo, size_t hi)
{
    char spec[700];
    spec_of(spec, sizeof spec, name);
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_true(in.x_csr);
    assert_int_equal(in.n, FN);
    assert_int_equal(in.d, FD);
    assert_int_equal(in.x_nnz, FNNZ);
    Dataset ds;
    assert_int_equal(dataset_load(&ds, &in, lo, hi, 3, NULL), XT_OK);
    assert_null(ds.X);
    assert_int_equal(ds.csr.m, hi - lo);
    assert_int_equal(csr_nnz(&ds.csr), (size_t)(F_INDPTR[hi] - F_INDPTR[lo]));
    float got[FN * FD], want[FN * FD];
    csr_densify(got, &ds.csr, NULL, 0, hi - lo, NULL);
    memset(want, 0, sizeof want);
    for (size_t i = lo; i < hi; i++)
        for (int64_t k = F_INDPTR[i]; k < F_INDPTR[i + 1]; k++)
            want[(i - lo) * FD + (size_t)F_INDICES[k]] = (float)F_DATA[k];
    assert_memory_equal(got, want, (hi - lo) * FD * sizeof *got);
    for (size_t i = lo; i < hi; i++) assert_int_equal(ds.y[i - lo], F_Y[i]);
    dataset_free(&ds);
}

static void test_dataset_csr_layouts_and_types(void **state)
{
    (void)state;
    CsrFix a = fix_default("h5ad");
    write_fix("h5ad.h5", &a);
    CsrFix b = fix_default("h5sparse");
    b.itype = H5IO_I64;
    b.vtype = H5IO_F64;
    write_fix("h5sparse.h5", &b);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "h5sparse.h5" : "h5ad.h5";
        load_and_compare(name, 0, FN);
        /* the three ranks of P = 3, each alone, and an empty range */
        load_and_compare(name, 0, 2);
        load_and_compare(name, 2, 4);
        load_and_compare(name, 4, 6);
        load_and_compare(name, 3, 3);
    }
}

static void test_dataset_csr_unsorted_columns_sorted(void **state)
{
    (void)state;
    static const int64_t idx[FNNZ] = {3, 0, 5, 1, 2, 4, 5, 0, 4, 2, 3};
    static const double val[FNNZ] = {2, 1, 3, -1.5, 0.5, 4, -2, 0.25, 1, 1, 1};
    CsrFix c = fix_default("h5ad");
    c.indices = idx;
    c.data = val;
    write_fix("unsorted.h5", &c);
    load_and_compare("unsorted.h5", 0, FN);
    char spec[700];
    spec_of(spec, sizeof spec, "unsorted.h5");
    DatasetInfo in;
    Dataset ds;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_int_equal(dataset_load(&ds, &in, 0, FN, 3, NULL), XT_OK);
    for (size_t k = 0; k < FNNZ; k++) assert_int_equal(ds.csr.indices[k], F_INDICES[k]);
    dataset_free(&ds);
}

static void expect_msg(const char *err, const char *want)
{
    if (!strstr(err, want)) {
        fprintf(stderr, "expected message containing:\n  %s\ngot:\n  %s\n", want, err);
        fail();
    }
}

static void probe_fails(const char *name, const CsrFix *c, const char *want)
{
    write_fix(name, c);
    char spec[700], err[4096];
    spec_of(spec, sizeof spec, name);
    DatasetInfo in;
    xt_test_capture_begin();
    Status st = dataset_probe(spec, NULL, true, &in);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_msg(err, want);
}

/* Probes, then the load of [lo, hi) fails with the message. */
static void load_fails(const char *name, const CsrFix *c, size_t lo, size_t hi, const char *want)
{
    write_fix(name, c);
    char spec[700], err[4096];
    spec_of(spec, sizeof spec, name);
    DatasetInfo in;
    Dataset ds;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    xt_test_capture_begin();
    Status st = dataset_load(&ds, &in, lo, hi, 3, NULL);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_msg(err, want);
    assert_null(ds.csr.indptr); /* freed on failure */
}

static void test_dataset_csr_bad_files_refused(void **state)
{
    (void)state;
    CsrFix c = fix_default("csc");
    probe_fails("csc.h5", &c, "is a CSC (column-compressed) matrix");
    c = fix_default("h5ad");
    c.no_shape = true;
    probe_fails("noshape.h5", &c, "attribute shape must hold the matrix's (N, D)");
    static const int64_t short_end[FN + 1] = {0, 2, 2, 5, 6, 8, 10};
    c = fix_default("h5ad");
    c.indptr = short_end;
    probe_fails("end.h5", &c, "indptr[N = 6] = 10; expected 0 and nnz = 11");
    c = fix_default("h5ad");
    c.n_indptr = FN;
    probe_fails("len.h5", &c, "indptr 6; expected data and indices of equal length");
    /* indices out of range: the row is named, also when another rank's rows are fine */
    static const int64_t out[FNNZ] = {0, 3, 1, 2, 5, 6, 0, 5, 2, 3, 4};
    c = fix_default("h5ad");
    c.indices = out;
    load_fails("range.h5", &c, 0, FN, "row 3: column index 6 is outside [0, 6)");
    load_fails("range.h5", &c, 2, 4, "row 3: column index 6 is outside [0, 6)");
    static const int64_t neg[FNNZ] = {0, 3, 1, 2, 5, 4, 0, 5, 2, 3, -1};
    c.indices = neg;
    load_fails("neg.h5", &c, 4, 6, "row 5: column index -1 is outside [0, 6)");
    /* indptr decreasing */
    static const int64_t dec[FN + 1] = {0, 2, 5, 2, 6, 8, 11};
    c = fix_default("h5ad");
    c.indptr = dec;
    load_fails("dec.h5", &c, 0, FN, "indptr[3] = 2 is less than the row before it");
    /* a non-finite value, a duplicate column */
    double nan_data[FNNZ];
    memcpy(nan_data, F_DATA, sizeof nan_data);
    nan_data[7] = NAN;
    c = fix_default("h5ad");
    c.data = nan_data;
    load_fails("nan.h5", &c, 0, FN, "row 4, column 5: non-finite value NaN");
    static const int64_t dup[FNNZ] = {0, 3, 1, 2, 5, 4, 0, 5, 2, 4, 4};
    c = fix_default("h5ad");
    c.indices = dup;
    load_fails("dup.h5", &c, 0, FN, "row 5: column 4 appears twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_csr_layouts_and_types),
        cmocka_unit_test(test_dataset_csr_unsorted_columns_sorted),
        cmocka_unit_test(test_dataset_csr_bad_files_refused),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
