/* Unit tests of h5io: round trips of every storage type (contiguous and gzip), row
 * reads, conversions, attributes, atomic files and the failure paths (missing, corrupt,
 * truncated files, unsupported types). Fixtures live in a fresh temp dir. */
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

#include "h5io.h"
#include "xt_h5fixture.h"
#include "log.h"
#include "xt_test.h"


static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", xt_test_dir, name);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Values representable in every type: 0..250. */
static double cell(size_t i, size_t j) { return (double)((i * 11 + j * 7) % 251); }

static void write_typed(H5File *f, const char *dset, H5ioType t, size_t n, size_t d, int gz)
{
    size_t dims[2] = {n, d};
    size_t m = n * d;
    void *buf = NULL;
    switch (t) {
    case H5IO_U8: {
        uint8_t *v = malloc(m);
        for (size_t k = 0; k < m; k++) v[k] = (uint8_t)cell(k / d, k % d);
        buf = v;
        break;
    }
    case H5IO_I32: {
        int32_t *v = malloc(m * sizeof *v);
        for (size_t k = 0; k < m; k++) v[k] = (int32_t)cell(k / d, k % d) - 100;
        buf = v;
        break;
    }
    case H5IO_I64: {
        int64_t *v = malloc(m * sizeof *v);
        for (size_t k = 0; k < m; k++) v[k] = (int64_t)cell(k / d, k % d) - 100;
        buf = v;
        break;
    }
    case H5IO_F32: {
        float *v = malloc(m * sizeof *v);
        for (size_t k = 0; k < m; k++) v[k] = (float)cell(k / d, k % d) + 0.5f;
        buf = v;
        break;
    }
    case H5IO_F64: {
        double *v = malloc(m * sizeof *v);
        for (size_t k = 0; k < m; k++) v[k] = cell(k / d, k % d) + 0.25;
        buf = v;
        break;
    }
    }
    assert_non_null(buf);
    assert_int_equal(h5io_write(f, dset, t, 2, dims, buf, gz), XT_OK);
    free(buf);
}

static double expected(H5ioType t, size_t i, size_t j)
{
    double c = cell(i, j);
    switch (t) {
    case H5IO_U8: return c;
    case H5IO_I32: case H5IO_I64: return c - 100;
    case H5IO_F32: return c + 0.5;
    case H5IO_F64: return c + 0.25;
    }
    return 0;
}

static void test_h5io_roundtrip_all_types(void **state)
{
    (void)state;
    const H5ioType types[5] = {H5IO_U8, H5IO_I32, H5IO_I64, H5IO_F32, H5IO_F64};
    const char *names[5] = {"uint8", "int32", "int64", "float32", "float64"};
    const H5ioClass classes[5] = {H5IO_CLASS_UINT, H5IO_CLASS_INT, H5IO_CLASS_INT,
                                  H5IO_CLASS_FLOAT, H5IO_CLASS_FLOAT};
    const size_t sizes[5] = {1, 4, 8, 4, 8};
    const size_t n = 37, d = 5;
    for (int gz = 0; gz <= 6; gz += 6) {
        char path[600];
        path_in(path, sizeof path, gz ? "rt_gz.h5" : "rt.h5");
        H5File *f = NULL;
        assert_int_equal(h5io_create(path, &f), XT_OK);
        for (int t = 0; t < 5; t++) {
            char dset[64];
            snprintf(dset, sizeof dset, "/g/sub/%s", names[t]);
            write_typed(f, dset, types[t], n, d, gz);
        }
        assert_int_equal(h5io_close(&f), XT_OK);
        assert_null(f);

        assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
        assert_string_equal(h5io_path(f), path);
        for (int t = 0; t < 5; t++) {
            char dset[64];
            snprintf(dset, sizeof dset, "/g/sub/%s", names[t]);
            H5ioInfo in;
            assert_int_equal(h5io_info(f, dset, &in), XT_OK);
            assert_int_equal(in.rank, 2);
            assert_int_equal(in.dims[0], n);
            assert_int_equal(in.dims[1], d);
            assert_int_equal(in.cls, classes[t]);
            assert_int_equal(in.type_size, sizes[t]);
            assert_string_equal(in.type_name, names[t]);
            /* rows [3, 20): a hyperslab in the middle, as float */
            float xf[17 * 5];
            assert_int_equal(h5io_read_rows_float(f, dset, 3, 17, xf), XT_OK);
            for (size_t k = 0; k < 17 * d; k++)
                assert_true(xf[k] == (float)expected(types[t], 3 + k / d, k % d));
            if (types[t] != H5IO_F32 && types[t] != H5IO_F64) {
                int32_t xi[17 * 5];
                assert_int_equal(h5io_read_rows_i32(f, dset, 3, 17, xi), XT_OK);
                for (size_t k = 0; k < 17 * d; k++)
                    assert_int_equal(xi[k], (int32_t)expected(types[t], 3 + k / d, k % d));
            }
        }
        uint8_t xu[2 * 5];
        assert_int_equal(h5io_read_rows_u8(f, "/g/sub/uint8", n - 2, 2, xu), XT_OK);
        for (size_t k = 0; k < 2 * d; k++)
            assert_int_equal(xu[k], (uint8_t)cell(n - 2 + k / d, k % d));
        assert_int_equal(h5io_close(&f), XT_OK);
    }
}

static void test_h5io_rows_1d_and_bounds(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "oned.h5");
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    int32_t v[10];
    for (int i = 0; i < 10; i++) v[i] = i * i;
    size_t dims[1] = {10};
    assert_int_equal(h5io_write(f, "/y", H5IO_I32, 1, dims, v, 0), XT_OK);
    size_t zero[2] = {0, 3};
    assert_int_equal(h5io_write(f, "/empty", H5IO_F32, 2, zero, NULL, 4), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);

    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    int32_t got[4];
    assert_int_equal(h5io_read_rows_i32(f, "/y", 6, 4, got), XT_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(got[i], (6 + i) * (6 + i));
    assert_int_equal(h5io_read_rows_i32(f, "/y", 10, 0, got), XT_OK); /* empty at the end */
    char err[1024];
    xt_test_capture_begin();
    Status s1 = h5io_read_rows_i32(f, "/y", 8, 3, got);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(s1, XT_ERR_USAGE);
    assert_non_null(strstr(err, "oned.h5:/y: rows [8, 11) are outside the dataset's 10 rows"));
    H5ioInfo in;
    assert_int_equal(h5io_info(f, "/empty", &in), XT_OK);
    assert_int_equal(in.rank, 2);
    assert_int_equal(in.dims[0], 0);
    assert_int_equal(in.dims[1], 3);
    assert_int_equal(h5io_close(&f), XT_OK);
}

static void test_h5io_int_conversion_refuses_overflow(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "ovf.h5");
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    int64_t big[3] = {1, (int64_t)1 << 40, 2};
    int32_t i300[2] = {5, 300};
    double frac[2] = {1.0, 2.5};
    size_t d3[1] = {3}, d2[1] = {2};
    assert_int_equal(h5io_write(f, "/big", H5IO_I64, 1, d3, big, 0), XT_OK);
    assert_int_equal(h5io_write(f, "/i300", H5IO_I32, 1, d2, i300, 0), XT_OK);
    assert_int_equal(h5io_write(f, "/frac", H5IO_F64, 1, d2, frac, 0), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    int32_t out[3];
    uint8_t u[2];
    char err[1024];
    xt_test_capture_begin();
    Status a = h5io_read_rows_i32(f, "/big", 0, 3, out);
    Status b = h5io_read_rows_u8(f, "/i300", 0, 2, u);
    Status c = h5io_read_rows_i32(f, "/frac", 0, 2, out);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(a, XT_ERR_USAGE);
    assert_int_equal(b, XT_ERR_USAGE);
    assert_int_equal(c, XT_ERR_USAGE);
    assert_non_null(strstr(err, "ovf.h5:/big: rows [0, 3): integers outside int32's range (class "
                                "ids go up to 2^31 - 1: relabel them 0..K-1"));
    assert_non_null(strstr(err, "/i300: rows [0, 2): integers outside uint8's range"));
    /* rows without the bad value still read */
    assert_int_equal(h5io_read_rows_i32(f, "/big", 2, 1, out), XT_OK);
    assert_int_equal(out[0], 2);
    float fl[3];
    assert_int_equal(h5io_read_rows_float(f, "/big", 0, 3, fl), XT_OK);
    assert_true(fl[1] == 1099511627776.0f);
    assert_int_equal(h5io_close(&f), XT_OK);
}

static void test_h5io_attributes(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "attr.h5");
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    assert_int_equal(h5io_create_group(f, "/a/b"), XT_OK);
    assert_int_equal(h5io_create_group(f, "/a/b"), XT_OK); /* idempotent */
    float x[2] = {1, 2};
    size_t d[1] = {2};
    assert_int_equal(h5io_write(f, "/a/b/X", H5IO_F32, 1, d, x, 0), XT_OK);
    assert_int_equal(h5io_attr_write_i64(f, "/a", "n", -7), XT_OK);
    assert_int_equal(h5io_attr_write_i64(f, "/a", "n", 42), XT_OK); /* replaces */
    assert_int_equal(h5io_attr_write_f64(f, "/a/b/X", "scale", 1.0 / 255.0), XT_OK);
    assert_int_equal(h5io_attr_write_str(f, "/", "note", "héllo wörld"), XT_OK);
    int64_t iv[4] = {3, -1, 1L << 40, 0};
    assert_int_equal(h5io_attr_write_i64s(f, "/a/b", "sizes", iv, 4), XT_OK);
    const char *names[3] = {"T-shirt/top", "", "Ankle boot"};
    assert_int_equal(h5io_attr_write_strs(f, "/a/b", "class_names", names, 3), XT_OK);
    char err[1024];
    xt_test_capture_begin();
    Status bad = h5io_attr_write_i64(f, "/nope", "x", 1);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(bad, XT_ERR_RUNTIME);
    assert_non_null(strstr(err, "attr.h5:/nope: attribute x: no such object"));
    assert_int_equal(h5io_close(&f), XT_OK);

    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    assert_true(h5io_exists(f, "/"));
    assert_true(h5io_exists(f, "/a/b/X"));
    assert_false(h5io_exists(f, "/a/c/X"));
    assert_false(h5io_exists(f, "/a/b/X/deeper"));
    assert_false(h5io_exists(f, "relative"));
    assert_true(h5io_attr_exists(f, "/a", "n"));
    assert_false(h5io_attr_exists(f, "/a", "m"));
    assert_false(h5io_attr_exists(f, "/missing", "n"));
    int64_t n = 0;
    double sc = 0;
    assert_int_equal(h5io_attr_read_i64(f, "/a", "n", &n), XT_OK);
    assert_int_equal(n, 42);
    assert_int_equal(h5io_attr_read_f64(f, "/a/b/X", "scale", &sc), XT_OK);
    assert_true(sc == 1.0 / 255.0);
    assert_int_equal(h5io_attr_read_f64(f, "/a", "n", &sc), XT_OK); /* int as double */
    assert_true(sc == 42.0);
    char buf[64];
    assert_int_equal(h5io_attr_read_str(f, "/", "note", buf, sizeof buf), XT_OK);
    assert_string_equal(buf, "héllo wörld");
    assert_int_equal(h5io_attr_read_str(f, "/", "note", buf, 4), XT_OK); /* truncates */
    assert_string_equal(buf, "h\xc3\xa9");
    int64_t ov[4];
    size_t cnt = 0;
    assert_int_equal(h5io_attr_read_i64s(f, "/a/b", "sizes", ov, 4, &cnt), XT_OK);
    assert_int_equal(cnt, 4);
    assert_memory_equal(ov, iv, sizeof iv);
    char **s = NULL;
    assert_int_equal(h5io_attr_read_strs(f, "/a/b", "class_names", &s, &cnt), XT_OK);
    assert_int_equal(cnt, 3);
    for (int i = 0; i < 3; i++) assert_string_equal(s[i], names[i]);
    h5io_strs_free(s, cnt);
    h5io_strs_free(NULL, 0);

    xt_test_capture_begin();
    Status e1 = h5io_attr_read_i64s(f, "/a/b", "sizes", ov, 3, &cnt);
    Status e2 = h5io_attr_read_i64(f, "/", "note", &n);
    Status e3 = h5io_attr_read_str(f, "/a", "n", buf, sizeof buf);
    Status e4 = h5io_attr_read_i64(f, "/a", "absent", &n);
    Status e5 = h5io_attr_read_f64(f, "/a/b", "sizes", &sc);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(e1, XT_ERR_USAGE);
    assert_int_equal(cnt, 4);
    assert_int_equal(e2, XT_ERR_USAGE);
    assert_int_equal(e3, XT_ERR_USAGE);
    assert_int_equal(e4, XT_ERR_USAGE);
    assert_int_equal(e5, XT_ERR_USAGE);
    assert_non_null(strstr(err, "attribute sizes: 4 values, more than the 3 expected"));
    assert_non_null(strstr(err, "attribute note: expected one integer, got 1 string value(s)"));
    assert_non_null(strstr(err, "attr.h5:/a: no attribute 'absent'"));
    assert_int_equal(h5io_close(&f), XT_OK);
}

static void test_h5io_gzip_is_chunked_and_smaller(void **state)
{
    (void)state;
    char p0[600], p6[600];
    path_in(p0, sizeof p0, "plain.h5");
    path_in(p6, sizeof p6, "deflate.h5");
    size_t n = 4096, d = 64;
    uint8_t *v = calloc(n * d, 1);
    assert_non_null(v);
    for (size_t i = 0; i < n * d; i += 97) v[i] = (uint8_t)i;
    size_t dims[2] = {n, d};
    H5File *f = NULL;
    assert_int_equal(h5io_create(p0, &f), XT_OK);
    assert_int_equal(h5io_write(f, "/X", H5IO_U8, 2, dims, v, 0), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(h5io_create(p6, &f), XT_OK);
    assert_int_equal(h5io_write(f, "/X", H5IO_U8, 2, dims, v, 6), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_true(file_size(p0) > (long)(n * d));
    assert_true(file_size(p6) < (long)(n * d) / 4);
    assert_int_equal(h5io_open_read(p6, NULL, &f), XT_OK);
    uint8_t *back = malloc(n * d);
    assert_int_equal(h5io_read_rows_u8(f, "/X", 0, n, back), XT_OK);
    assert_memory_equal(back, v, n * d);
    /* a range crossing chunk boundaries (1 MiB chunks would hold all; these are 64 B rows) */
    assert_int_equal(h5io_read_rows_u8(f, "/X", 1000, 3000, back), XT_OK);
    assert_memory_equal(back, v + 1000 * d, 3000 * d);
    assert_int_equal(h5io_close(&f), XT_OK);
    free(back);
    free(v);
}

static void test_h5io_create_dataset_is_lazy(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "lazy.h5");
    H5File *f = NULL;
    size_t dims[2] = {(size_t)1 << 30, 1024}; /* 1 TiB of uint8 */
    assert_int_equal(h5io_create(path, &f), XT_OK);
    assert_int_equal(h5io_create_dataset(f, "/big/X", H5IO_U8, 2, dims, 1), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_true(file_size(path) < 100000);
    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    H5ioInfo in;
    assert_int_equal(h5io_info(f, "/big/X", &in), XT_OK);
    assert_int_equal(in.dims[0], dims[0]);
    float row[1024];
    row[5] = 7.0f;
    assert_int_equal(h5io_read_rows_float(f, "/big/X", 123456789, 1, row), XT_OK);
    assert_true(row[5] == 0.0f);
    assert_int_equal(h5io_close(&f), XT_OK);
}

static void test_h5io_atomic_replace(void **state)
{
    (void)state;
    char path[600], tmp[620];
    path_in(path, sizeof path, "atomic.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int64_t v = 0;
    H5File *f = NULL;
    /* first version, committed */
    assert_int_equal(h5io_create_atomic(path, &f), XT_OK);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(h5io_attr_write_i64(f, "/", "version", 1), XT_OK);
    assert_int_equal(h5io_commit(&f), XT_OK);
    assert_null(f);
    assert_int_equal(access(tmp, F_OK), -1);
    /* second version, abandoned: the first stays */
    assert_int_equal(h5io_create_atomic(path, &f), XT_OK);
    assert_int_equal(h5io_attr_write_i64(f, "/", "version", 2), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    assert_int_equal(h5io_attr_read_i64(f, "/", "version", &v), XT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK); /* safe on NULL */
}

static void test_h5io_open_failures(void **state)
{
    (void)state;
    char missing[600], garbage[600], trunc[600], err[2048];
    path_in(missing, sizeof missing, "missing.h5");
    path_in(garbage, sizeof garbage, "garbage.h5");
    path_in(trunc, sizeof trunc, "trunc.h5");
    assert_true(xt_test_write_file(garbage, "this is not HDF5 at all, just text\n", 35));
    /* a good file cut in half */
    H5File *f = NULL;
    float *v = calloc(20000, sizeof *v);
    size_t dims[2] = {1000, 20};
    assert_int_equal(h5io_create(trunc, &f), XT_OK);
    assert_int_equal(h5io_write(f, "/train/X", H5IO_F32, 2, dims, v, 0), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    free(v);
    assert_int_equal(truncate(trunc, file_size(trunc) / 2), 0);

    xt_test_capture_begin();
    Status a = h5io_open_read(missing, NULL, &f);
    Status b = h5io_open_read(garbage, NULL, &f);
    Status c = h5io_open_read(trunc, NULL, &f);
    Status d = h5io_open_read(xt_test_dir, NULL, &f);
    xt_test_capture_end(err, sizeof err);
    assert_null(f);
    assert_int_equal(a, XT_ERR_USAGE);
    assert_int_equal(b, XT_ERR_USAGE);
    assert_int_equal(c, XT_ERR_USAGE);
    assert_int_equal(d, XT_ERR_USAGE);
    assert_non_null(strstr(err, "missing.h5: cannot open: No such file or directory"));
    assert_non_null(strstr(err, "garbage.h5: not an HDF5 file, or a truncated or corrupt one"));
    assert_non_null(strstr(err, "trunc.h5: cannot open as HDF5 (truncated or corrupt?)"));
    assert_non_null(strstr(err, "truncated file"));
    assert_non_null(strstr(err, "is a directory"));
}

static void test_h5io_unsupported_types(void **state)
{
    (void)state;
    char path[600], err[2048];
    path_in(path, sizeof path, "types.h5");
    H5File *f = NULL;
    assert_int_equal(h5io_create(path, &f), XT_OK);
    assert_int_equal(h5io_create_group(f, "/grp"), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    assert_int_equal(xt_h5_write_unsupported(path, "/s", "string", 4), XT_OK);
    assert_int_equal(xt_h5_write_unsupported(path, "/c", "compound", 4), XT_OK);
    assert_int_equal(xt_h5_write_unsupported(path, "/e", "enum", 4), XT_OK);
    assert_int_equal(h5io_open_read(path, NULL, &f), XT_OK);
    const char *ds[3] = {"/s", "/c", "/e"}, *nm[3] = {"string", "compound", "enum"};
    for (int i = 0; i < 3; i++) {
        H5ioInfo in;
        assert_int_equal(h5io_info(f, ds[i], &in), XT_OK);
        assert_int_equal(in.cls, H5IO_CLASS_OTHER);
        assert_string_equal(in.type_name, nm[i]);
        assert_int_equal(in.rank, 1);
        assert_int_equal(in.dims[0], 4);
    }
    float out[4];
    H5ioInfo in;
    xt_test_capture_begin();
    Status a = h5io_read_rows_float(f, "/s", 0, 4, out);
    Status b = h5io_info(f, "/grp", &in);
    Status c = h5io_info(f, "/nothing/here", &in);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(a, XT_ERR_USAGE);
    assert_int_equal(b, XT_ERR_USAGE);
    assert_int_equal(c, XT_ERR_USAGE);
    assert_non_null(strstr(err, "types.h5:/s: cannot read rows [0, 4) as float32"));
    assert_non_null(strstr(err, "types.h5:/grp: cannot open as a dataset"));
    assert_non_null(strstr(err, "types.h5:/nothing/here: no such dataset"));
    assert_int_equal(h5io_close(&f), XT_OK);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h5io_roundtrip_all_types),
        cmocka_unit_test(test_h5io_rows_1d_and_bounds),
        cmocka_unit_test(test_h5io_int_conversion_refuses_overflow),
        cmocka_unit_test(test_h5io_attributes),
        cmocka_unit_test(test_h5io_gzip_is_chunked_and_smaller),
        cmocka_unit_test(test_h5io_create_dataset_is_lazy),
        cmocka_unit_test(test_h5io_atomic_replace),
        cmocka_unit_test(test_h5io_open_failures),
        cmocka_unit_test(test_h5io_unsupported_types),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
