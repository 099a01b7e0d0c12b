/* Unit tests of dataset (serial): spec parsing, probe and load of good files, every bad
 * input of issue 3 with its status and message, the memory guard, and the statistics
 * helpers. Fixtures are written with h5io into a fresh temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "exact.h"
#include "rng.h"
#include "rowsource.h"
#include "h5io.h"
#include "xt_h5fixture.h"
#include "xt_test.h"


static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", xt_test_dir, name);
}

static H5File *fixture(const char *name)
{
    char p[600];
    path_in(p, sizeof p, name);
    H5File *f = NULL;
    assert_int_equal(h5io_create(p, &f), XT_OK);
    return f;
}

static void put(H5File *f, const char *dset, H5ioType t, int rank, size_t d0, size_t d1,
                size_t d2, const void *data)
{
    size_t dims[3] = {d0, d1, d2};
    assert_int_equal(h5io_write(f, dset, t, rank, dims, data, 0), XT_OK);
}

static void done(H5File **f) { assert_int_equal(h5io_close(f), XT_OK); }

/* Asserts that `err` contains `want`, showing the text otherwise. */
static void expect_msg(const char *err, const char *want)
{
    if (!strstr(err, want)) {
        fprintf(stderr, "expected message containing:\n  %s\ngot:\n  %s\n", want, err);
        fail();
    }
}

/* Probe that must fail with XT_ERR_USAGE and a message containing `want`. */
static void probe_fails(const char *name_spec, const char *want)
{
    char spec[700], err[4096];
    path_in(spec, sizeof spec, name_spec);
    DatasetInfo in;
    xt_test_capture_begin();
    Status st = dataset_probe(spec, NULL, true, &in);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_msg(err, want);
}

/* Probe that succeeds, then a load of [lo, hi) that must fail with status and message. */
static void load_fails(const char *name_spec, size_t lo, size_t hi, size_t k, Status want_st,
                       const char *want)
{
    char spec[700], err[4096];
    path_in(spec, sizeof spec, name_spec);
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    Dataset ds;
    xt_test_capture_begin();
    Status st = dataset_load(&ds, &in, lo, hi, k, NULL);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, want_st);
    expect_msg(err, want);
    assert_null(ds.X); /* freed on failure */
    assert_null(ds.y);
    dataset_free(&ds);
}

/* ---- spec ------------------------------------------------------------------------ */

static void test_dataset_parse_spec(void **state)
{
    (void)state;
    char file[64], group[32], err[256];
    struct { const char *spec, *file, *group; } ok[] = {
        {"f.h5:/val", "f.h5", "/val"},
        {"f.h5", "f.h5", "/train"},
        {"dir/f.h5:/a/b", "dir/f.h5", "/a/b"},
        {"run:3/f.h5:/test", "run:3/f.h5", "/test"},
        {"x:/y.h5:/val", "x:/y.h5", "/val"}, /* the LAST ":/" splits */
        {"f.h5:/val/", "f.h5", "/val"},
        {"f.h5:/", "f.h5", "/"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(dataset_parse_spec(ok[i].spec, file, sizeof file, group, sizeof group,
                                            err, sizeof err), XT_OK);
        assert_string_equal(file, ok[i].file);
        assert_string_equal(group, ok[i].group);
    }
    assert_int_equal(dataset_parse_spec("", file, sizeof file, group, sizeof group, err,
                                        sizeof err), XT_ERR_USAGE);
    expect_msg(err, "empty data spec");
    assert_int_equal(dataset_parse_spec(":/val", file, sizeof file, group, sizeof group, err,
                                        sizeof err), XT_ERR_USAGE);
    expect_msg(err, "no file name");
    char longspec[200];
    memset(longspec, 'a', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    assert_int_equal(dataset_parse_spec(longspec, file, sizeof file, group, sizeof group, err,
                                        sizeof err), XT_ERR_USAGE);
    expect_msg(err, "longer than");
    assert_int_equal(dataset_parse_spec("f.h5:/a-group-name-longer-than-32-bytes", file,
                                        sizeof file, group, sizeof group, err, sizeof err),
                     XT_ERR_USAGE);
}

/* ---- good files ------------------------------------------------------------------ */

static void write_good(void)
{
    /* /train: X uint8 (6, 3) with scale, y int64 labels; /val: X float64 (4, 2), y
     * float32 (4, 3) dense; class names on the root and (other) on /train. */
    uint8_t X[18];
    for (int i = 0; i < 18; i++) X[i] = (uint8_t)(i * 13);
    int64_t y[6] = {0, 2, 1, 2, 0, 1};
    double Xv[8] = {0.5, -1.5, 2.25, 3, -4, 5, 6.125, -7};
    float t[12] = {0, 1, 0.5f, 1, 0, 0, 0.25f, 0.75f, 1, 0, 0, 0};
    H5File *f = fixture("good.h5");
    put(f, "/train/X", H5IO_U8, 2, 6, 3, 0, X);
    put(f, "/train/y", H5IO_I64, 1, 6, 0, 0, y);
    assert_int_equal(h5io_attr_write_f64(f, "/train/X", "scale", 1.0 / 255.0), XT_OK);
    put(f, "/val/X", H5IO_F64, 2, 4, 2, 0, Xv);
    put(f, "/val/y", H5IO_F32, 2, 4, 3, 0, t);
    const char *root[3] = {"a", "b", "c"}, *grp[3] = {"cat", "dog", "emu"};
    assert_int_equal(h5io_attr_write_strs(f, "/", "class_names", root, 3), XT_OK);
    assert_int_equal(h5io_attr_write_strs(f, "/train", "class_names", grp, 3), XT_OK);
    done(&f);
}

static void test_dataset_probe_and_load_class(void **state)
{
    (void)state;
    write_good();
    char spec[700];
    path_in(spec, sizeof spec, "good.h5"); /* bare file: /train */
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_int_equal(in.n, 6);
    assert_int_equal(in.d, 3);
    assert_int_equal(in.target, TARGET_CLASS);
    assert_int_equal(in.k_dense, 0);
    assert_string_equal(in.group, "/train");
    assert_string_equal(in.x_type, "uint8");
    assert_true(in.x_scale == 1.0 / 255.0);

    Dataset ds;
    assert_int_equal(dataset_load(&ds, &in, 0, 6, 3, NULL), XT_OK);
    for (int i = 0; i < 18; i++) assert_true(ds.X[i] == (float)(uint8_t)(i * 13));
    int32_t y[6] = {0, 2, 1, 2, 0, 1};
    assert_memory_equal(ds.y, y, sizeof y);
    assert_null(ds.t);
    assert_int_equal(ds.label_min, 0);
    assert_int_equal(ds.label_max, 2);
    assert_int_equal(ds.n_class_names, 3);
    assert_string_equal(ds.class_names[0], "cat"); /* the group's attribute wins */
    dataset_free(&ds);
    dataset_free(&ds); /* idempotent */

    /* a middle range: rows [2, 5) */
    assert_int_equal(dataset_load(&ds, &in, 2, 5, 0, NULL), XT_OK);
    assert_int_equal(ds.lo, 2);
    assert_int_equal(ds.hi, 5);
    for (int i = 0; i < 9; i++) assert_true(ds.X[i] == (float)(uint8_t)((i + 6) * 13));
    assert_int_equal(ds.label_min, 0);
    assert_int_equal(ds.label_max, 2);
    dataset_free(&ds);

    /* empty range: valid, nothing held */
    assert_int_equal(dataset_load(&ds, &in, 4, 4, 3, NULL), XT_OK);
    assert_null(ds.X);
    assert_int_equal(ds.label_min, 0);
    assert_int_equal(ds.label_max, -1);
    double s[3], sq[3];
    RowSource src;
    rowsource_init(&src, &ds);
    assert_int_equal(rowsource_feature_sums(&src, s, sq), XT_OK);
    assert_true(s[0] == 0.0 && sq[2] == 0.0);
    dataset_free(&ds);

    Dataset zero;
    memset(&zero, 0, sizeof zero);
    dataset_free(&zero); /* safe on a zeroed struct */
}

static void test_dataset_probe_and_load_dense(void **state)
{
    (void)state;
    write_good();
    char spec[700];
    path_in(spec, sizeof spec, "good.h5:/val");
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_int_equal(in.n, 4);
    assert_int_equal(in.d, 2);
    assert_int_equal(in.target, TARGET_DENSE);
    assert_int_equal(in.k_dense, 3);
    assert_string_equal(in.x_type, "float64");
    assert_true(in.x_scale == 0.0);
    Dataset ds;
    assert_int_equal(dataset_load(&ds, &in, 1, 4, 0, NULL), XT_OK);
    float X[6] = {2.25f, 3, -4, 5, 6.125f, -7};
    float t[9] = {1, 0, 0, 0.25f, 0.75f, 1, 0, 0, 0};
    assert_memory_equal(ds.X, X, sizeof X);
    assert_memory_equal(ds.t, t, sizeof t);
    assert_null(ds.y);
    assert_int_equal(ds.n_class_names, 3);
    assert_string_equal(ds.class_names[2], "c"); /* from the root */
    dataset_free(&ds);
}

/* Several read blocks: D = 2^20 floats (4 MiB per row) gives 4 rows per 16 MiB block. */
static void test_dataset_load_blocks(void **state)
{
    (void)state;
    size_t n = 9, d = (size_t)1 << 20;
    float *X = calloc(n * d, sizeof *X);
    int32_t y[9] = {0};
    assert_non_null(X);
    for (size_t i = 0; i < n; i++) {
        X[i * d] = (float)i;
        X[i * d + d - 1] = -(float)i;
    }
    H5File *f = fixture("blocks.h5");
    size_t dims[2] = {n, d}, yd[1] = {n};
    assert_int_equal(h5io_write(f, "/train/X", H5IO_F32, 2, dims, X, 1), XT_OK);
    assert_int_equal(h5io_write(f, "/train/y", H5IO_I32, 1, yd, y, 1), XT_OK);
    X[7 * d + 5] = NAN; /* for the second file: a NaN in the last block */
    assert_int_equal(h5io_write(f, "/nan/X", H5IO_F32, 2, dims, X, 1), XT_OK);
    assert_int_equal(h5io_write(f, "/nan/y", H5IO_I32, 1, yd, y, 1), XT_OK);
    done(&f);
    free(X);
    char spec[700];
    path_in(spec, sizeof spec, "blocks.h5");
    DatasetInfo in;
    Dataset ds;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_int_equal(dataset_load(&ds, &in, 1, 9, 1, NULL), XT_OK);
    for (size_t i = 0; i < 8; i++) {
        assert_true(ds.X[i * d] == (float)(i + 1));
        assert_true(ds.X[i * d + d - 1] == -(float)(i + 1));
        assert_true(ds.X[i * d + 1] == 0.0f);
    }
    dataset_free(&ds);
    load_fails("blocks.h5:/nan", 2, 9, 1, XT_ERR_USAGE,
               "blocks.h5:/nan/X: non-finite value NaN at row 7, column 5");
}

/* ---- bad inputs ------------------------------------------------------------------ */

static void test_dataset_missing_things(void **state)
{
    (void)state;
    write_good();
    float X[4] = {1, 2, 3, 4};
    int32_t y[2] = {0, 1};
    H5File *f = fixture("parts.h5");
    put(f, "/nox/y", H5IO_I32, 1, 2, 0, 0, y);
    put(f, "/noy/X", H5IO_F32, 2, 2, 2, 0, X);
    assert_int_equal(h5io_create_group(f, "/grpx/X"), XT_OK);
    put(f, "/grpx/y", H5IO_I32, 1, 2, 0, 0, y);
    done(&f);
    probe_fails("nosuch.h5", "nosuch.h5: cannot open: No such file or directory");
    probe_fails("good.h5:/test", "good.h5: no group '/test'");
    probe_fails("parts.h5:/nox", "parts.h5:/nox: no dataset 'X'");
    probe_fails("parts.h5:/noy", "parts.h5:/noy: no dataset 'y'");
    probe_fails("parts.h5:/grpx", "parts.h5:/grpx/X is a group without encoding-type = "
                "csr_matrix (AnnData) or format = csr");
    char err[512];
    DatasetInfo in;
    xt_test_capture_begin();
    Status st = dataset_probe("", NULL, true, &in);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_msg(err, "empty data spec");
}

static void test_dataset_bad_shapes(void **state)
{
    (void)state;
    float X[24] = {0};
    int32_t y[4] = {0, 1, 0, 1};
    float yf[24] = {0};
    H5File *f = fixture("shapes.h5");
    put(f, "/x1d/X", H5IO_F32, 1, 4, 0, 0, X);
    put(f, "/x1d/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/x3d/X", H5IO_F32, 3, 4, 2, 3, X);
    put(f, "/x3d/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/ylen/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/ylen/y", H5IO_I32, 1, 3, 0, 0, y);
    put(f, "/y3d/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/y3d/y", H5IO_F32, 3, 4, 3, 2, yf);
    put(f, "/yfloat/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/yfloat/y", H5IO_F32, 1, 4, 0, 0, yf);
    put(f, "/yint2d/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/yint2d/y", H5IO_I32, 2, 4, 1, 0, y);
    put(f, "/ydenselen/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/ydenselen/y", H5IO_F32, 2, 5, 2, 0, yf);
    put(f, "/empty/X", H5IO_F32, 2, 0, 2, 0, X);
    put(f, "/empty/y", H5IO_I32, 1, 0, 0, 0, y);
    put(f, "/nod/X", H5IO_F32, 2, 4, 0, 0, X);
    put(f, "/nod/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/strx/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/compy/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/badscale/X", H5IO_F32, 2, 4, 2, 0, X);
    put(f, "/badscale/y", H5IO_I32, 1, 4, 0, 0, y);
    assert_int_equal(h5io_attr_write_f64(f, "/badscale/X", "scale", -1.0), XT_OK);
    done(&f);
    char shapes[600];
    path_in(shapes, sizeof shapes, "shapes.h5");
    assert_int_equal(xt_h5_write_unsupported(shapes, "/strx/X", "string", 4), XT_OK);
    assert_int_equal(xt_h5_write_unsupported(shapes, "/compy/y", "compound", 4), XT_OK);
    probe_fails("shapes.h5:/x1d", "shapes.h5:/x1d/X: expected 2-D features (N, D), got (4,) float32");
    probe_fails("shapes.h5:/x3d", "shapes.h5:/x3d/X: expected 2-D features (N, D), got (4, 2, 3) float32");
    probe_fails("shapes.h5:/ylen", "shapes.h5:/ylen/y: expected (N,) class ids (integer, bool or "
                                   "whole-number floats; (N, 1) also works) or (N, K) floats in "
                                   "[0, 1], with N = 4 as X, got (3,) int32");
    probe_fails("shapes.h5:/y3d", "with N = 4 as X, got (4, 3, 2) float32");
    /* (N,) floats and (N, 1) integers are class ids (floats checked as rows are read) */
    const char *as_ids[2] = {"shapes.h5:/yfloat", "shapes.h5:/yint2d"};
    for (int i = 0; i < 2; i++) {
        char spec[700];
        DatasetInfo in;
        path_in(spec, sizeof spec, as_ids[i]);
        assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
        assert_int_equal(in.target, TARGET_CLASS);
        assert_true(in.has_y);
    }
    probe_fails("shapes.h5:/ydenselen", "with N = 4 as X, got (5, 2) float32");
    probe_fails("shapes.h5:/empty", "shapes.h5:/empty: empty split: X is (0, 2) float32");
    probe_fails("shapes.h5:/nod", "shapes.h5:/nod/X: expected D > 0 features, got (4, 0) float32");
    probe_fails("shapes.h5:/strx", "shapes.h5:/strx/X: expected an integer or float type, got (4,) string");
    probe_fails("shapes.h5:/compy", "with N = 4 as X, got (4,) compound");
    probe_fails("shapes.h5:/badscale", "attribute scale = -1, expected a finite number > 0");
}

static void test_dataset_bad_values(void **state)
{
    (void)state;
    float X[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int32_t y[4] = {0, 1, 5, 1};
    int32_t yneg[4] = {0, -1, 1, 1};
    int64_t yhuge[4] = {0, 1, (int64_t)1 << 40, 1};
    double Xd[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1e300, 11};
    float Xinf[12] = {0, 1, 2, 3, 4, 5, 6, 7, -INFINITY, 9, 10, 11};
    float tbad[8] = {0, 1, 0.5f, 1.5f, 0, 0, 1, 1};
    H5File *f = fixture("values.h5");
    put(f, "/lab/X", H5IO_F32, 2, 4, 3, 0, X);
    put(f, "/lab/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/neg/X", H5IO_F32, 2, 4, 3, 0, X);
    put(f, "/neg/y", H5IO_I32, 1, 4, 0, 0, yneg);
    put(f, "/huge/X", H5IO_F32, 2, 4, 3, 0, X);
    put(f, "/huge/y", H5IO_I64, 1, 4, 0, 0, yhuge);
    put(f, "/ovf/X", H5IO_F64, 2, 4, 3, 0, Xd);
    put(f, "/ovf/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/inf/X", H5IO_F32, 2, 4, 3, 0, Xinf);
    put(f, "/inf/y", H5IO_I32, 1, 4, 0, 0, y);
    put(f, "/dense/X", H5IO_F32, 2, 4, 3, 0, X);
    put(f, "/dense/y", H5IO_F32, 2, 4, 2, 0, tbad);
    done(&f);
    load_fails("values.h5:/lab", 0, 4, 3, XT_ERR_USAGE,
               "values.h5:/lab/y: label 5 at row 2 is outside [0, 3) (K = 3 classes)");
    load_fails("values.h5:/neg", 1, 3, 3, XT_ERR_USAGE, "label -1 at row 1: class ids are 0..K-1; labels -1/+1");
    load_fails("values.h5:/huge", 0, 4, 0, XT_ERR_USAGE,
               "values.h5:/huge/y: rows [0, 4): integers outside int32's range (class ids go up to 2^31 - 1");
    load_fails("values.h5:/ovf", 1, 4, 0, XT_ERR_USAGE,
               "values.h5:/ovf/X: non-finite value +Inf at row 3, column 1");
    load_fails("values.h5:/inf", 0, 4, 0, XT_ERR_USAGE, "non-finite value -Inf at row 2, column 2");
    load_fails("values.h5:/dense", 0, 4, 0, XT_ERR_USAGE,
               "values.h5:/dense/y: target 1.5 at row 1, column 1 is outside [0, 1]");
    /* k == 0 skips the range check; rows without the bad label load with k = 3 */
    char spec[700];
    path_in(spec, sizeof spec, "values.h5:/lab");
    DatasetInfo in;
    Dataset ds;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_int_equal(dataset_load(&ds, &in, 0, 4, 0, NULL), XT_OK);
    assert_int_equal(ds.label_max, 5);
    dataset_free(&ds);
    assert_int_equal(dataset_load(&ds, &in, 3, 4, 3, NULL), XT_OK);
    dataset_free(&ds);
}

static void test_dataset_corrupt_files(void **state)
{
    (void)state;
    char good[600], trunc[600], garbage[600], flipped[600];
    path_in(good, sizeof good, "big.h5");
    path_in(trunc, sizeof trunc, "trunc.h5");
    path_in(garbage, sizeof garbage, "garbage.h5");
    path_in(flipped, sizeof flipped, "flipped.h5");
    size_t n = 2000, d = 16;
    float *X = calloc(n * d, sizeof *X);
    int32_t *y = calloc(n, sizeof *y);
    H5File *f = fixture("big.h5");
    put(f, "/train/X", H5IO_F32, 2, n, d, 0, X);
    put(f, "/train/y", H5IO_I32, 1, n, 0, 0, y);
    done(&f);
    free(X);
    free(y);
    /* truncated: the first half of the file */
    FILE *in = fopen(good, "rb");
    assert_non_null(in);
    static char buf[1 << 18];
    size_t len = fread(buf, 1, sizeof buf, in);
    fclose(in);
    assert_true(len > 4096);
    assert_true(xt_test_write_file(trunc, buf, len / 2));
    assert_true(xt_test_write_file(garbage, "\x89HDF but not really\n", 20));
    /* the superblock signature damaged */
    buf[1] = 'X';
    assert_true(xt_test_write_file(flipped, buf, len));
    probe_fails("trunc.h5", "trunc.h5: cannot open as HDF5 (truncated or corrupt?)");
    probe_fails("garbage.h5", "garbage.h5: not an HDF5 file, or a truncated or corrupt one");
    probe_fails("flipped.h5", "flipped.h5: not an HDF5 file, or a truncated or corrupt one");
}

static void test_dataset_memory_guard(void **state)
{
    (void)state;
    /* 2^40 rows x 1024 uint8 features, never written: a tiny file whose load would
     * need 4 PiB of float32. */
    H5File *f = fixture("huge.h5");
    size_t xd[2] = {(size_t)1 << 40, 1024}, yd[1] = {(size_t)1 << 40};
    assert_int_equal(h5io_create_dataset(f, "/train/X", H5IO_U8, 2, xd, 1), XT_OK);
    assert_int_equal(h5io_create_dataset(f, "/train/y", H5IO_I32, 1, yd, 1), XT_OK);
    done(&f);
    load_fails("huge.h5", 0, (size_t)1 << 40, 10, XT_ERR_USAGE,
               "use more ranks (or nodes) so each shard fits");
    load_fails("huge.h5", 0, (size_t)1 << 40, 10, XT_ERR_USAGE,
               "huge.h5:/train: rows [0, 1099511627776) need about 4.0 PiB "
               "(1099511627776 rows x 4100 bytes)");
}

/* ---- statistics ------------------------------------------------------------------ */

static void test_dataset_statistics(void **state)
{
    (void)state;
    float X[6] = {1, -2, 3, 4, -5, 6}; /* (3, 2) */
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.info.d = 2;
    ds.lo = 10;
    ds.hi = 13;
    ds.X = X;
    double s[2], sq[2];
    RowSource src;
    rowsource_init(&src, &ds);
    assert_int_equal(src.n, 3);
    assert_int_equal(rowsource_feature_sums(&src, s, sq), XT_OK);
    assert_true(s[0] == -1.0 && s[1] == 8.0);
    assert_true(sq[0] == 35.0 && sq[1] == 56.0);
    float shift[2] = {1, -2}, mul[2] = {0.5f, 2};
    rowsource_set_normalization(&src, shift, mul); /* float rows: in place */
    float want[6] = {0, 0, 1, 12, -3, 16};
    assert_memory_equal(X, want, sizeof want);
}


/* Exact moments of a held block: S1 and S2 from the source as a straightforward 128-bit
 * reference computes them (q = rint(x 2^e) one value at a time). */
static void moments_of(const float *X, const uint8_t *X8, size_t n, size_t d, const int *e,
                       int64_t *s1, exact_u128 *s2)
{
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.info.d = d;
    ds.hi = n;
    ds.X = (float *)X;
    ds.X8 = (uint8_t *)X8;
    RowSource src;
    rowsource_init(&src, &ds);
    int64_t limbs[8 * EXACT_Q2_LIMBS];
    assert_int_equal(rowsource_feature_moments(&src, e, s1, limbs), XT_OK);
    for (size_t j = 0; j < d; j++) s2[j] = exact_q2_from_limbs(limbs + j * EXACT_Q2_LIMBS);
}

/* The standardisation statistics (issue 29): the one-pass moments equal a value-by-value
 * 128-bit reference exactly, add exactly over row splits (any rank count), compact bytes
 * give what their floats give, and mean and sd match a long-double two-pass computation. */
static void test_rowsource_exact_moments(void **state)
{
    (void)state;
    enum { N = 1000, D = 6 };
    static float X[N * D];
    static uint8_t X8[N * D];
    Rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < N; i++) {
        float *x = X + i * D;
        x[0] = (float)rng_normal(&r);                      /* mean 0, sd 1 */
        x[1] = (float)(1000.0 + 1e-3 * rng_normal(&r));   /* mean far from 0: no cancellation */
        x[2] = 5.0f;                                       /* constant */
        x[3] = (float)(1e-30 * rng_uniform(&r));          /* tiny */
        x[4] = (float)(i % 7 == 0 ? -3e4 : rng_uniform(&r)); /* wide, with outliers */
        x[5] = (float)floor(256.0 * rng_uniform(&r));      /* bytes */
        for (size_t j = 0; j < D; j++)
            X8[i * D + j] = (uint8_t)(j == 5 ? (size_t)x[5] : (i * 7 + j) % 256);
    }
    double mx[D];
    int e[D];
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.info.d = D;
    ds.hi = N;
    ds.X = X;
    RowSource src;
    rowsource_init(&src, &ds);
    assert_int_equal(rowsource_feature_absmax(&src, mx), XT_OK);
    for (size_t j = 0; j < D; j++) e[j] = exact_grid_exponent(mx[j]);
    int64_t s1[D], h1[D], t1[D];
    exact_u128 s2[D], h2[D], t2[D];
    moments_of(X, NULL, N, D, e, s1, s2);
    for (size_t j = 0; j < D; j++) { /* the reference, one value at a time */
        int64_t r1 = 0;
        exact_u128 r2 = 0;
        for (size_t i = 0; i < N; i++) {
            int64_t q = llrint(ldexp((double)X[i * D + j], e[j]));
            assert_true(q <= (1 << EXACT_GRID_BITS) && -q <= (1 << EXACT_GRID_BITS));
            r1 += q;
            r2 += (exact_u128)((exact_i128)q * q);
        }
        assert_true(s1[j] == r1);
        assert_true(s2[j] == r2);
    }
    /* split at a row that is not a multiple of the kernel's groups: the same totals */
    moments_of(X, NULL, 333, D, e, h1, h2);
    moments_of(X + 333 * D, NULL, N - 333, D, e, t1, t2);
    for (size_t j = 0; j < D; j++) assert_true(h1[j] + t1[j] == s1[j] && h2[j] + t2[j] == s2[j]);
    /* mean and sd against long double, in units of the column's sd (or its scale) */
    for (size_t j = 0; j < D; j++) {
        long double m = 0, v = 0;
        for (size_t i = 0; i < N; i++) m += X[i * D + j];
        m /= N;
        for (size_t i = 0; i < N; i++) v += (X[i * D + j] - m) * (X[i * D + j] - m);
        double sd = sqrt((double)(v / N)), mean, var;
        exact_moments(s1[j], s2[j], N, e[j], &mean, &var);
        double unit = sd > 0 ? sd : 1.0;
        if (fabs(mean - (double)m) > 1e-6 * unit || fabs(sqrt(var) - sd) > 1e-6 * unit)
            fail_msg("column %zu: mean %.17g vs %.17Lg, sd %.17g vs %.17g", j, mean, m,
                     sqrt(var), sd);
    }
    /* compact bytes: the same sums as their values as floats */
    float F[N * D];
    for (size_t i = 0; i < N * D; i++) F[i] = (float)X8[i];
    ds.X = NULL;
    ds.X8 = X8;
    assert_int_equal(rowsource_feature_absmax(&src, mx), XT_OK);
    assert_true(mx[5] == 255.0);
    for (size_t j = 0; j < D; j++) e[j] = exact_grid_exponent(mx[j]);
    moments_of(F, NULL, N, D, e, s1, s2);
    moments_of(NULL, X8, N, D, e, h1, h2);
    for (size_t j = 0; j < D; j++) assert_true(s1[j] == h1[j] && s2[j] == h2[j]);
}

/* A uint8 X loaded compact stays uint8, and gathering rows with an affine map gives
 * exactly the floats that the float path (load, then dataset_apply_affine) holds. */
static void test_dataset_compact_gather(void **state)
{
    (void)state;
    enum { N = 7, D = 5 };
    uint8_t X[N * D];
    int32_t y[N];
    for (int i = 0; i < N * D; i++) X[i] = (uint8_t)(i * 37 % 256);
    for (int i = 0; i < N; i++) y[i] = i % 3;
    H5File *f = fixture("u8.h5");
    assert_int_equal(h5io_create_group(f, "/train"), XT_OK);
    put(f, "/train/X", H5IO_U8, 2, N, D, 0, X);
    put(f, "/train/y", H5IO_I32, 1, N, 0, 0, y);
    done(&f);
    char spec[700];
    path_in(spec, sizeof spec, "u8.h5");
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_true(in.x_u8);
    Dataset a = {0}, b = {0};
    assert_int_equal(dataset_load_compact(&a, &in, 2, 7, 3, NULL), XT_OK);
    assert_int_equal(dataset_load(&b, &in, 2, 7, 3, NULL), XT_OK);
    assert_non_null(a.X8);
    assert_null(a.X);
    assert_non_null(b.X);
    for (size_t i = 0; i < 5 * D; i++) assert_int_equal(a.X8[i], X[2 * D + i]);
    /* statistics agree between the two storages (read through row sources) */
    RowSource ra, rb;
    rowsource_init(&ra, &a);
    rowsource_init(&rb, &b);
    double s1[D], q1[D], s2[D], q2[D];
    assert_int_equal(rowsource_feature_sums(&ra, s1, q1), XT_OK);
    assert_int_equal(rowsource_feature_sums(&rb, s2, q2), XT_OK);
    for (int j = 0; j < D; j++) assert_true(s1[j] == s2[j] && q1[j] == q2[j]);
    assert_true(s1[1] == (double)X[2 * D + 1] + X[3 * D + 1] + X[4 * D + 1] + X[5 * D + 1] +
                             X[6 * D + 1]);
    /* uint8 rows are normalised as gathered, float rows once in place: same bits */
    const float shift[D] = {1.5f, 0, 100, -3, 7}, mul[D] = {0.25f, 1.0f / 255, 2, 0.5f, 1e-3f};
    rowsource_set_normalization(&ra, shift, mul);
    rowsource_set_normalization(&rb, shift, mul);
    assert_null(rb.shift); /* applied to b's floats */
    const uint32_t rows[3] = {4, 0, 2};
    float ga[3 * D], gb[3 * D], rd[2 * D];
    int32_t ya[3], yb[3];
    RowBatch ba = {.X = ga, .y = ya}, bb = {.X = gb, .y = yb}, br = {.X = rd};
    rowsource_gather(&ra, rows, 3, &ba);
    rowsource_gather(&rb, rows, 3, &bb);
    assert_memory_equal(ga, gb, sizeof ga); /* bit-identical */
    assert_memory_equal(ya, yb, sizeof ya);
    assert_int_equal(ya[0], y[6]);
    assert_true(gb[0] == ((float)X[6 * D] - 1.5f) * 0.25f);
    rowsource_read(&ra, 2, 2, &br); /* rows 2 and 3 in order, targets not wanted */
    assert_memory_equal(rd, ga + 2 * D, D * sizeof(float));
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&a); /* idempotent */
}

/* The labels' declared classes (label_values), a split's labels checked against K from the
 * file (the test split before training), class counts in memory and from the file, and the
 * ids of an AnnData-style categorical group (codes and categories, a path in the spec). */
static void test_dataset_labels_checked_and_counted(void **state)
{
    (void)state;
    H5File *f = fixture("lab.h5");
    float X[12] = {0};
    int32_t y[6] = {0, 2, 2, 1, 2, 0}, bad[6] = {0, 1, 4, 1, 0, 0};
    put(f, "/train/X", H5IO_F32, 2, 6, 2, 0, X);
    put(f, "/train/y", H5IO_I32, 1, 6, 0, 0, y);
    const char *vals[4] = {"1", "2", "5", "7"};
    assert_int_equal(h5io_attr_write_strs(f, "/train", "label_values", vals, 4), XT_OK);
    put(f, "/test/X", H5IO_F32, 2, 6, 2, 0, X);
    put(f, "/test/y", H5IO_I32, 1, 6, 0, 0, bad);
    put(f, "/obs/kind/codes", H5IO_I32, 1, 6, 0, 0, y);
    done(&f);
    char spec[700], err[2048];
    DatasetInfo tr, te, ob;
    path_in(spec, sizeof spec, "lab.h5:/train");
    assert_int_equal(dataset_probe(spec, NULL, true, &tr), XT_OK);
    assert_int_equal(tr.k_declared, 4);
    Dataset ds;
    assert_int_equal(dataset_load(&ds, &tr, 1, 6, 4, NULL), XT_OK);
    assert_int_equal(ds.n_label_values, 4);
    double counts[4];
    assert_int_equal(dataset_count_classes(&ds, 4, counts), XT_OK);
    assert_true(counts[0] == 1 && counts[1] == 1 && counts[2] == 3 && counts[3] == 0);
    Dataset streamed = ds; /* as a streamed Dataset (no y in memory): counted from the file */
    streamed.y = NULL;
    assert_int_equal(dataset_count_classes(&streamed, 4, counts), XT_OK);
    assert_true(counts[0] == 1 && counts[1] == 1 && counts[2] == 3 && counts[3] == 0);
    dataset_free(&ds);
    path_in(spec, sizeof spec, "lab.h5:/test");
    assert_int_equal(dataset_probe(spec, NULL, true, &te), XT_OK);
    xt_test_capture_begin();
    Status st = dataset_check_labels(&te, 4, NULL);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_msg(err, "lab.h5:/test/y: label 4 at row 2 is outside [0, 4)");
    assert_int_equal(dataset_check_labels(&te, 5, NULL), XT_OK);
    /* y names a group without categories: refused, listing what it holds */
    path_in(spec, sizeof spec, "lab.h5:/?X=train/X&y=obs/kind");
    xt_test_capture_begin();
    st = dataset_probe(spec, NULL, true, &ob);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    expect_msg(err, "lab.h5:/obs/kind: a group (it holds: codes), not labels");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_parse_spec),
        cmocka_unit_test(test_dataset_probe_and_load_class),
        cmocka_unit_test(test_dataset_probe_and_load_dense),
        cmocka_unit_test(test_dataset_load_blocks),
        cmocka_unit_test(test_dataset_missing_things),
        cmocka_unit_test(test_dataset_bad_shapes),
        cmocka_unit_test(test_dataset_bad_values),
        cmocka_unit_test(test_dataset_corrupt_files),
        cmocka_unit_test(test_dataset_memory_guard),
        cmocka_unit_test(test_dataset_statistics),
        cmocka_unit_test(test_dataset_compact_gather),
        cmocka_unit_test(test_rowsource_exact_moments),
        cmocka_unit_test(test_dataset_labels_checked_and_counted),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
