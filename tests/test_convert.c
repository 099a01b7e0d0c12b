/* Unit tests of convert: round trips (write IDX raw and gzip, CSV in several dialects,
 * LIBSVM 0/1-based; convert; read back with dataset_*), the seeded split, and bad input
 * with its exit code and a message naming the file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "convert.h"
#include "csr.h"
#include "dataset.h"
#include "h5io.h"
#include "log.h"
#include "xt_test.h"

static char g_err[8192];

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", xt_test_dir, name);
}

/* Runs `xentrain convert ARGS` (ARGS split on spaces; "@" stands for the temp dir),
 * capturing stderr into g_err. Returns the exit code. */
static int run(const char *args)
{
    char buf[4096], *argv[64];
    int argc = 0;
    argv[argc++] = "convert";
    char expanded[4096] = "";
    size_t used = 0;
    for (const char *p = args; *p && used + 600 < sizeof expanded; p++) {
        if (*p == '@') used += (size_t)snprintf(expanded + used, sizeof expanded - used, "%s", xt_test_dir);
        else expanded[used++] = *p;
        expanded[used] = '\0';
    }
    snprintf(buf, sizeof buf, "%s", expanded);
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    xt_test_capture_begin();
    int rc = convert_main(argc, argv);
    xt_test_capture_end(g_err, sizeof g_err);
    return rc;
}

static void expect_msg(const char *want)
{
    if (!strstr(g_err, want)) {
        fprintf(stderr, "expected message containing:\n  %s\ngot:\n  %s\n", want, g_err);
        fail();
    }
}

static void write_text(const char *name, const char *text)
{
    char p[600];
    path_in(p, sizeof p, name);
    assert_true(xt_test_write_file(p, text, strlen(text)));
}

/* Loads a whole split (k = 0: no label range check). */
static void load(const char *name_group, Dataset *ds)
{
    char spec[700];
    path_in(spec, sizeof spec, name_group);
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, true, &in), XT_OK);
    assert_int_equal(dataset_load(ds, &in, 0, in.n, 0, NULL), XT_OK);
}

static bool exists(const char *name)
{
    char p[600];
    path_in(p, sizeof p, name);
    return access(p, F_OK) == 0;
}

/* ---- idx ------------------------------------------------------------------------ */

/* Image i: pixel 0 = i % 256, pixel 1 = i / 256, the rest (i * 3 + p) % 256. */
static uint8_t pix(size_t i, size_t p)
{
    return p == 0 ? (uint8_t)(i % 256) : p == 1 ? (uint8_t)(i / 256) : (uint8_t)((i * 3 + p) % 256);
}

static size_t idx_bytes(unsigned char *buf, bool images, size_t n, size_t rows, size_t cols,
                        int label_mod)
{
    size_t k = 0;
    buf[k++] = 0;
    buf[k++] = 0;
    buf[k++] = 8;
    buf[k++] = images ? 3 : 1;
    uint32_t dims[3] = {(uint32_t)n, (uint32_t)rows, (uint32_t)cols};
    for (int d = 0; d < (images ? 3 : 1); d++)
        for (int s = 24; s >= 0; s -= 8) buf[k++] = (unsigned char)(dims[d] >> s);
    for (size_t i = 0; i < n; i++) {
        if (images)
            for (size_t p = 0; p < rows * cols; p++) buf[k++] = pix(i, p);
        else
            buf[k++] = (unsigned char)(i % (size_t)label_mod);
    }
    return k;
}

static void write_idx(const char *name, bool images, size_t n, size_t rows, size_t cols,
                      int label_mod, bool gz, long cut)
{
    size_t cap = 16 + n * (images ? rows * cols : 1);
    unsigned char *buf = malloc(cap);
    size_t len = idx_bytes(buf, images, n, rows, cols, label_mod);
    if (cut < 0) len -= (size_t)(-cut);
    char p[600];
    path_in(p, sizeof p, name);
    if (gz) {
        gzFile g = gzopen(p, "wb");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, buf, (unsigned)len), (int)len);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        assert_true(xt_test_write_file(p, buf, len));
    }
    free(buf);
}

static void test_convert_idx_roundtrip(void **state)
{
    (void)state;
    write_idx("tr-img.gz", true, 300, 4, 5, 0, true, 0);
    write_idx("tr-lab", false, 300, 0, 0, 3, false, 0);
    write_idx("te-img", true, 40, 4, 5, 0, false, 0);
    write_idx("te-lab.gz", false, 40, 0, 0, 3, true, 0);
    assert_int_equal(run("idx --images @/tr-img.gz --labels @/tr-lab --test-images @/te-img "
                         "--test-labels @/te-lab.gz --val-tail 50 --class-names x,y,z "
                         "--out @/idx.h5"), 0);
    assert_false(exists("idx.h5.tmp"));
    const char *groups[3] = {"idx.h5:/train", "idx.h5:/val", "idx.h5:/test"};
    size_t first[3] = {0, 250, 0}, count[3] = {250, 50, 40};
    for (int g = 0; g < 3; g++) {
        Dataset ds;
        load(groups[g], &ds);
        assert_int_equal(ds.info.n, count[g]);
        assert_int_equal(ds.info.d, 20);
        assert_string_equal(ds.info.x_type, "uint8");
        assert_true(ds.info.x_scale == 1.0 / 255.0);
        for (size_t i = 0; i < count[g]; i++) {
            for (size_t p = 0; p < 20; p++)
                assert_true(ds.X[i * 20 + p] == (float)pix(first[g] + i, p));
            assert_int_equal(ds.y[i], (int32_t)((first[g] + i) % 3));
        }
        assert_int_equal(ds.n_class_names, 3);
        assert_string_equal(ds.class_names[1], "y");
        dataset_free(&ds);
    }
}

static void test_convert_idx_random_split(void **state)
{
    (void)state;
    write_idx("s-img", true, 500, 2, 2, 0, false, 0);
    write_idx("s-lab", false, 500, 0, 0, 10, false, 0);
    assert_int_equal(run("idx --images @/s-img --labels @/s-lab --val-fraction 0.2 --seed 7 "
                         "--out @/s1.h5"), 0);
    assert_int_equal(run("idx --images @/s-img --labels @/s-lab --val-fraction 0.2 --seed 7 "
                         "--out @/s2.h5"), 0);
    assert_int_equal(run("idx --images @/s-img --labels @/s-lab --val-fraction 0.2 --seed 8 "
                         "--out @/s3.h5"), 0);
    Dataset tr, va, va2, va3;
    load("s1.h5:/train", &tr);
    load("s1.h5:/val", &va);
    load("s2.h5:/val", &va2);
    load("s3.h5:/val", &va3);
    assert_int_equal(tr.info.n, 400);
    assert_int_equal(va.info.n, 100);
    /* every original row exactly once, in file order within each split */
    int seen[500] = {0};
    const Dataset *parts[2] = {&tr, &va};
    for (int s = 0; s < 2; s++) {
        long prev = -1;
        for (size_t i = 0; i < parts[s]->info.n; i++) {
            const float *x = parts[s]->X + i * 4;
            long id = (long)x[0] + 256 * (long)x[1];
            assert_true(id > prev && id < 500);
            prev = id;
            seen[id]++;
            assert_int_equal(parts[s]->y[i], (int32_t)(id % 10));
            assert_true(x[3] == (float)pix((size_t)id, 3));
        }
    }
    for (int i = 0; i < 500; i++) assert_int_equal(seen[i], 1);
    /* same seed, same split; another seed, another split (not the tail) */
    assert_memory_equal(va.X, va2.X, 100 * 4 * sizeof(float));
    assert_true(memcmp(va.X, va3.X, 100 * 4 * sizeof(float)) != 0);
    assert_true(va.X[0] + 256 * va.X[1] < 400);
    dataset_free(&tr);
    dataset_free(&va);
    dataset_free(&va2);
    dataset_free(&va3);
}

static void test_convert_idx_errors(void **state)
{
    (void)state;
    write_idx("e-img", true, 10, 3, 3, 0, false, 0);
    write_idx("e-lab", false, 10, 0, 0, 4, false, 0);
    write_idx("e-lab9", false, 9, 0, 0, 4, false, 0);
    write_idx("e-trunc.gz", true, 10, 3, 3, 0, true, -5);
    char p[600];
    path_in(p, sizeof p, "e-magic");
    static const unsigned char magic2[13] = {0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7};
    assert_true(xt_test_write_file(p, magic2, sizeof magic2));
    path_in(p, sizeof p, "e-extra");
    unsigned char buf[200];
    size_t len = idx_bytes(buf, false, 10, 0, 0, 4);
    buf[len++] = 1;
    assert_true(xt_test_write_file(p, buf, len));
    path_in(p, sizeof p, "e-notgz.gz");
    static const char notgz[] = "\x1f\x8b\x08\x00garbage garbage garbage";
    assert_true(xt_test_write_file(p, notgz, sizeof notgz - 1));
    /* an existing output must survive every failure */
    assert_int_equal(run("idx --images @/e-img --labels @/e-lab --out @/keep.h5"), 0);

    struct { const char *args, *msg; int rc; } cases[] = {
        {"idx --images @/e-img --labels @/e-lab9 --out @/keep.h5",
         "image and label counts differ: " , 2},
        {"idx --images @/e-trunc.gz --labels @/e-lab --out @/keep.h5",
         "e-trunc.gz: truncated IDX file: the header declares 10 images (90 bytes of data) but only 85 bytes follow", 2},
        {"idx --images @/e-magic --labels @/e-lab --out @/keep.h5",
         "e-magic: bad IDX magic 0x00000802 for images: expected 0x00000803", 2},
        {"idx --images @/e-img --labels @/e-img --out @/keep.h5",
         "e-img: bad IDX magic 0x00000803 for labels: expected 0x00000801", 2},
        {"idx --images @/e-img --labels @/e-extra --out @/keep.h5",
         "e-extra: more data than the header declares", 2},
        {"idx --images @/e-notgz.gz --labels @/e-lab --out @/keep.h5", "e-notgz.gz", 2},
        {"idx --images @/nope --labels @/e-lab --out @/keep.h5",
         "nope: cannot open: No such file or directory", 2},
        {"idx --images @/e-img --labels @/e-lab --class-names a,b --out @/keep.h5",
         "2 class names for labels up to 3: give at least 4 names", 2},
        {"idx --images @/e-img --labels @/e-lab --val-fraction 0.1 --val-tail 3 --out @/keep.h5",
         "give --val-fraction or --val-tail, not both", 2},
        {"idx --images @/e-img --labels @/e-lab --val-fraction 1.5 --out @/keep.h5",
         "--val-fraction '1.5': out of range (allowed: 0 <= f < 1)", 2},
        {"idx --images @/e-img --labels @/e-lab --val-tail 10 --out @/keep.h5",
         "10 rows leave no training rows", 2},
        {"idx --images @/e-img --labels @/e-lab", "--out F.h5 is required", 2},
        {"idx --images @/e-img --labels @/e-lab --bogus 1 --out @/x.h5", "unknown option '--bogus'", 2},
        {"idx --images @/e-img --labels @/e-lab --out @/no/such/dir/x.h5", "cannot create", 1},
        {"tsv --out @/x.h5", "unknown format 'tsv'", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args);
        if (rc != cases[i].rc) fprintf(stderr, "case %zu: rc %d\n%s\n", i, rc, g_err);
        assert_int_equal(rc, cases[i].rc);
        expect_msg(cases[i].msg);
    }
    assert_false(exists("keep.h5.tmp"));
    Dataset ds;
    load("keep.h5", &ds); /* still the first, good file */
    assert_int_equal(ds.info.n + 0, 9);
    dataset_free(&ds);
    assert_int_equal(run("idx --help"), 0);
}

/* ---- csv ------------------------------------------------------------------------ */

static void test_convert_csv_dialects(void **state)
{
    (void)state;
    /* header, label by name in the middle, quoted fields, CRLF, a blank line */
    write_text("a.csv", "f1,\"label\",f2\r\n1.5,2,-3\r\n\r\n\"4\",0,5e-1\r\n7,1,8\r\n");
    assert_int_equal(run("csv --input @/a.csv --label-column label --val-fraction 0 --out @/a.h5"), 0);
    Dataset ds;
    load("a.h5", &ds);
    float X[6] = {1.5f, -3, 4, 0.5f, 7, 8};
    int32_t y[3] = {2, 0, 1};
    assert_int_equal(ds.info.n, 3);
    assert_int_equal(ds.info.d, 2);
    assert_memory_equal(ds.X, X, sizeof X);
    assert_memory_equal(ds.y, y, sizeof y);
    dataset_free(&ds);

    /* no header (detected), label first, ';' delimiter */
    write_text("b.csv", "1;0.25;2\n0;3;4\n1;5;6\n");
    assert_int_equal(run("csv --input @/b.csv --label-column 0 --delimiter ; --val-fraction 0 "
                         "--out @/b.h5"), 0);
    load("b.h5", &ds);
    float Xb[6] = {0.25f, 2, 3, 4, 5, 6};
    int32_t yb[3] = {1, 0, 1};
    assert_memory_equal(ds.X, Xb, sizeof Xb);
    assert_memory_equal(ds.y, yb, sizeof yb);
    dataset_free(&ds);

    /* tab, last column by default, word labels -> sorted ids + class_names */
    write_text("c.tsv", "x\ty\tspecies\n1\t2\tsetosa\n3\t4\tvirginica\n5\t6\tsetosa\n7\t8\tversicolor\n");
    assert_int_equal(run("csv --input @/c.tsv --delimiter tab --val-fraction 0 --out @/c.h5"), 0);
    load("c.h5", &ds);
    int32_t yc[4] = {0, 2, 0, 1};
    assert_memory_equal(ds.y, yc, sizeof yc);
    assert_int_equal(ds.n_class_names, 3);
    assert_string_equal(ds.class_names[2], "virginica");
    dataset_free(&ds);

    /* numeric non-id labels (-1, 1) -> 0, 1 with label_values */
    write_text("d.csv", "1,-1\n2,1\n3,-1\n");
    assert_int_equal(run("csv --input @/d.csv --no-header --val-fraction 0 --out @/d.h5"), 0);
    load("d.h5", &ds);
    int32_t yd[3] = {0, 1, 0};
    assert_memory_equal(ds.y, yd, sizeof yd);
    assert_null(ds.class_names);
    dataset_free(&ds);
    char p[600];
    path_in(p, sizeof p, "d.h5");
    H5File *f = NULL;
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(h5io_open_read(p, NULL, &f), XT_OK);
    assert_int_equal(h5io_attr_read_strs(f, "/train", "label_values", &v, &n), XT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "-1");
    assert_string_equal(v[1], "1");
    h5io_strs_free(v, n);
    assert_int_equal(h5io_close(&f), XT_OK);

    /* split: val + test fractions partition the rows */
    write_text("e.csv", "a,b\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n7,0\n8,1\n9,0\n10,1\n");
    assert_int_equal(run("csv --input @/e.csv --header --val-fraction 0.2 --test-fraction 0.3 "
                         "--out @/e.h5"), 0);
    Dataset a, b, c;
    load("e.h5:/train", &a);
    load("e.h5:/val", &b);
    load("e.h5:/test", &c);
    assert_int_equal(a.info.n, 5);
    assert_int_equal(b.info.n, 2);
    assert_int_equal(c.info.n, 3);
    float total = 0;
    const Dataset *parts[3] = {&a, &b, &c};
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < parts[s]->info.n; i++) {
            total += parts[s]->X[i];
            assert_int_equal(parts[s]->y[i], (int32_t)(1 - (int)parts[s]->X[i] % 2));
        }
    assert_true(total == 55.0f);
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&c);
}

static void test_convert_csv_errors(void **state)
{
    (void)state;
    write_text("m1.csv", "a,b,label\n1,2,0\n3,x4,1\n");
    write_text("m2.csv", "1,2,0\n3,4\n");
    write_text("m3.csv", "1,2,0\n3,4.5.6,1\n");
    write_text("m4.csv", "1,2,0\n3,,1\n");
    write_text("m5.csv", "1,2,0\n3,\"4,1\n");
    write_text("m6.csv", "1,2,0\n3,nan,1\n");
    write_text("m7.csv", "a,b\n");
    write_text("m8.csv", "1,2,0\n3,1e39,1\n");
    char p[600];
    path_in(p, sizeof p, "long.csv");
    size_t big = ((size_t)8 << 20) + 100;
    char *line = malloc(big + 20);
    strcpy(line, "1,2,0\n");
    memset(line + 6, '1', big);
    strcpy(line + 6 + big, ",2,0\n");
    assert_true(xt_test_write_file(p, line, strlen(line)));
    free(line);
    struct { const char *args, *msg; } cases[] = {
        {"csv --input @/m1.csv --out @/x.h5", "m1.csv:3: field 2 'x4': not a number"},
        {"csv --input @/m2.csv --out @/x.h5", "m2.csv:2: 2 fields, expected 3 (as on line 1)"},
        {"csv --input @/m3.csv --out @/x.h5", "m3.csv:2: field 2 '4.5.6': trailing characters after the number"},
        {"csv --input @/m4.csv --out @/x.h5", "m4.csv:2: field 2 '': empty field (missing value)"},
        {"csv --input @/m5.csv --out @/x.h5", "m5.csv:2: unterminated quoted field"},
        {"csv --input @/m6.csv --out @/x.h5", "m6.csv:2: field 2 'nan': missing value"},
        {"csv --input @/m7.csv --out @/x.h5", "m7.csv: no data rows"},
        {"csv --input @/m8.csv --out @/x.h5", "m8.csv:2: field 2 '1e39': outside the float32 range"},
        {"csv --input @/long.csv --out @/x.h5", "long.csv:2: line longer than 8388608 bytes"},
        {"csv --input @/m1.csv --label-column nope --out @/x.h5", "m1.csv:1: no column named 'nope'"},
        {"csv --input @/m2.csv --label-column 7 --out @/x.h5", "--label-column 7 is outside the 3 columns"},
        {"csv --input @/m2.csv --delimiter ab --out @/x.h5", "--delimiter 'ab'"},
        {"csv --input @/absent.csv --out @/x.h5", "absent.csv: cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args);
        if (rc != 2) fprintf(stderr, "case %zu: rc %d\n%s\n", i, rc, g_err);
        assert_int_equal(rc, 2);
        expect_msg(cases[i].msg);
    }
    assert_false(exists("x.h5"));
    assert_false(exists("x.h5.tmp"));
}

/* ---- csv: users' tables (issue 26) ------------------------------------------------ */

/* The string-array attribute `attr` of `obj` in the output file `name`; *n gets its length. */
static char **read_strs(const char *name, const char *obj, const char *attr, size_t *n)
{
    char p[600];
    path_in(p, sizeof p, name);
    H5File *f = NULL;
    char **v = NULL;
    assert_int_equal(h5io_open_read(p, NULL, &f), XT_OK);
    assert_int_equal(h5io_attr_read_strs(f, obj, attr, &v, n), XT_OK);
    assert_int_equal(h5io_close(&f), XT_OK);
    return v;
}

/* Rows of 30 class ids 0..2 in column `lab` of a numeric table: x = the row's class times
 * 10 plus a row-dependent part, so each row is recognisable after a split. */
static void write_numeric(const char *name, const char *header, bool label_first)
{
    char text[8192];
    size_t u = (size_t)snprintf(text, sizeof text, "%s", header);
    for (int i = 0; i < 30; i++) {
        int c = (i * 7) % 3;
        if (label_first) u += (size_t)snprintf(text + u, sizeof text - u, "%d,%d.5,%d\n", c, c * 10 + i % 5, i % 4);
        else u += (size_t)snprintf(text + u, sizeof text - u, "%d.5,%d,%d\n", c * 10 + i % 5, i % 4, c);
    }
    write_text(name, text);
}

static void test_convert_csv_label_choice(void **state)
{
    (void)state;
    /* the class ids in the first column, named "class": the default (the last column, an
     * integer feature) is refused with the fix; naming it works */
    write_numeric("lf.csv", "class,x1,x2\n", true);
    assert_int_equal(run("csv --input @/lf.csv --out @/lf.h5"), 2);
    expect_msg("the header names column 'class', a usual name for the label: give --label-column class");
    assert_false(exists("lf.h5"));
    assert_int_equal(run("csv --input @/lf.csv --label-column class --val-fraction 0 --out @/lf.h5"), 0);
    Dataset ds;
    load("lf.h5", &ds);
    assert_int_equal(ds.info.d, 2);
    for (size_t i = 0; i < 30; i++) assert_int_equal(ds.y[i], (int32_t)((i * 7) % 3));
    dataset_free(&ds);
    /* a case-insensitive suggestion */
    assert_int_equal(run("csv --input @/lf.csv --label-column CLASS --out @/lf2.h5"), 2);
    expect_msg("no column named 'CLASS' in the header (--label-column); did you mean 'class'?");
    /* no header, label first: the last column holds fractions, not labels */
    write_text("nf.csv", "0,1,2.5\n1,3,4.25\n2,5,6.5\n0,2,1.5\n");
    assert_int_equal(run("csv --input @/nf.csv --out @/nf.h5"), 2);
    expect_msg("holds numbers that are not whole ('2.5'): a feature or a regression target");
    /* words in the first column, numbers in the last: the label is likely the first */
    write_text("wf.csv", "T,2,8,3\nI,5,12,3\nD,4,11,6\nT,7,11,6\nI,2,1,3\n");
    assert_int_equal(run("csv --input @/wf.csv --out @/wf.h5"), 2);
    expect_msg("the label is likely the first column: --label-column 0");
    assert_int_equal(run("csv --input @/wf.csv --label-column 0 --val-fraction 0 --out @/wf.h5"), 0);
    size_t n = 0;
    char **names = read_strs("wf.h5", "/", "class_names", &n);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "D");
    h5io_strs_free(names, n);
    /* a label column with one value */
    write_text("one.csv", "a,b,label\n1,2,7\n3,5,7\n2,2,7\n");
    assert_int_equal(run("csv --input @/one.csv --out @/one.h5"), 2);
    expect_msg("holds one value ('7') in every row: nothing to classify");
}

static void test_convert_csv_header_lines(void **state)
{
    (void)state;
    /* pandas' header of unnamed columns: 0,1,2 then the rows; not a data row */
    write_text("nh.csv", "0,1,2\n1.5,2,0\n2.5,1,1\n0.5,3,0\n4.5,0,1\n");
    assert_int_equal(run("csv --input @/nh.csv --val-fraction 0 --out @/nh.h5"), 0);
    Dataset ds;
    load("nh.h5", &ds);
    assert_int_equal(ds.info.n, 4);
    float X[8] = {1.5f, 2, 2.5f, 1, 0.5f, 3, 4.5f, 0};
    assert_memory_equal(ds.X, X, sizeof X);
    dataset_free(&ds);
    /* numbered feature columns and a named label column */
    write_text("nh2.csv", "0,1,label\n1.5,2,0\n2.5,1,1\n0.5,3,0\n");
    assert_int_equal(run("csv --input @/nh2.csv --val-fraction 0 --out @/nh2.h5"), 0);
    load("nh2.h5", &ds);
    assert_int_equal(ds.info.n, 3);
    assert_null(ds.class_names);
    dataset_free(&ds);
    /* a line of names and values is neither */
    write_text("mix.csv", "a,2,label\n1.5,2,0\n2.5,1,1\n");
    assert_int_equal(run("csv --input @/mix.csv --out @/mix.h5"), 2);
    expect_msg("mix.csv:1: the first line is neither a header (names only) nor data");
    /* a TSV without --delimiter is read as one */
    write_text("t.tsv", "x\ty\tspecies\n1\t2\ta\n3\t4\tb\n5\t6\ta\n");
    assert_int_equal(run("csv --input @/t.tsv --val-fraction 0 --out @/t.h5"), 0);
    load("t.h5", &ds);
    assert_int_equal(ds.info.d, 2);
    dataset_free(&ds);
    /* with another --delimiter, the tab is named in the message */
    write_text("t2.tsv", "\"x\"\ty\tq\n1\t2\t3\n");
    assert_int_equal(run("csv --input @/t2.tsv --delimiter , --out @/t2.h5"), 2);
    expect_msg("a TSV file? --delimiter tab");
}

/* R's write.csv: quoted names, an unnamed column of row names, NA, quoted factor labels,
 * sorted by class (so the row names leak the label). */
static const char *const r_csv =
    "\"\",\"Sepal.Length\",\"Sepal.Width\",\"Species\"\n"
    "\"1\",5.1,3.5,\"setosa\"\n\"2\",4.9,NA,\"setosa\"\n\"3\",4.7,3.2,\"setosa\"\n"
    "\"4\",7,3.2,\"versicolor\"\n\"5\",6.4,3.3,\"versicolor\"\n\"6\",6.9,3.1,\"versicolor\"\n"
    "\"7\",6.3,NA,\"virginica\"\n\"8\",5.8,2.7,\"virginica\"\n\"9\",7.1,3,\"virginica\"\n";

static void test_convert_csv_r_style(void **state)
{
    (void)state;
    write_text("r.csv", r_csv);
    /* NA is refused by default, naming the column, the line and the choices */
    assert_int_equal(run("csv --input @/r.csv --out @/r.h5"), 2);
    expect_msg("r.csv:3: field 3 'NA': missing value; column 'Sepal.Width' has 2 missing value(s): --missing drop");
    /* dropped rows */
    assert_int_equal(run("csv --input @/r.csv --missing drop --val-fraction 0 --out @/r.h5"), 0);
    Dataset ds;
    load("r.h5", &ds);
    assert_int_equal(ds.info.n, 7);
    assert_int_equal(ds.info.d, 2); /* the row names are not a feature */
    assert_true(ds.X[2] == 4.7f && ds.X[3] == 3.2f);
    dataset_free(&ds);
    size_t n = 0;
    char **names = read_strs("r.h5", "/", "feature_names", &n);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "Sepal.Length");
    h5io_strs_free(names, n);
    /* the median of the training rows fills the gaps; stored in /encoding */
    assert_int_equal(run("csv --input @/r.csv --missing median --val-fraction 0 --out @/r.h5"), 0);
    load("r.h5", &ds);
    assert_int_equal(ds.info.n, 9);
    assert_true(ds.X[3] == 3.2f && ds.X[13] == 3.2f); /* median of 3.5 3.2 3.2 3.3 3.1 2.7 3 */
    dataset_free(&ds);
    char **roles = read_strs("r.h5", "/encoding", "roles", &n);
    assert_int_equal(n, 4);
    assert_string_equal(roles[0], "dropped");
    assert_string_equal(roles[3], "label");
    h5io_strs_free(roles, n);
    char **fill = read_strs("r.h5", "/encoding", "fill", &n);
    assert_true(strtod(fill[2], NULL) == (double)3.2f);
    h5io_strs_free(fill, n);
    /* the mean, from the training rows only: a val split changes it */
    assert_int_equal(run("csv --input @/r.csv --missing mean --val-fraction 0 --out @/r.h5"), 0);
    load("r.h5", &ds);
    assert_true(ds.X[3] == (float)((3.5 + 3.2 + 3.2 + 3.3 + 3.1 + 2.7 + 3.0) / 7));
    dataset_free(&ds);
}

static void test_convert_csv_id_columns(void **state)
{
    (void)state;
    char text[4096];
    size_t u = (size_t)snprintf(text, sizeof text, "PassengerId,Age,Fare,Survived\n");
    for (int i = 0; i < 12; i++)
        u += (size_t)snprintf(text + u, sizeof text - u, "%d,%d,%d.25,%d\n", 100 - 3 * i,
                              20 + i % 5, i % 3, i % 2);
    write_text("id.csv", text);
    assert_int_equal(run("csv --input @/id.csv --val-fraction 0 --out @/id.h5"), 0);
    Dataset ds;
    load("id.h5", &ds);
    assert_int_equal(ds.info.d, 2);
    assert_true(ds.X[0] == 20 && ds.X[1] == 0.25f);
    dataset_free(&ds);
    /* a column counting the rows under another name is refused; --drop-columns drops it */
    u = (size_t)snprintf(text, sizeof text, "X,a,b\n");
    for (int i = 0; i < 24; i++)
        u += (size_t)snprintf(text + u, sizeof text - u, "%d,%d.5,%d\n", i + 1, i % 4, i / 12);
    write_text("rn.csv", text);
    assert_int_equal(run("csv --input @/rn.csv --out @/rn.h5"), 2);
    expect_msg("column 'X': it holds whole numbers increasing down the file: row numbers or ids");
    expect_msg("--drop-columns X or --keep-columns X");
    assert_int_equal(run("csv --input @/rn.csv --drop-columns X --val-fraction 0 --out @/rn.h5"), 0);
    load("rn.h5", &ds);
    assert_int_equal(ds.info.d, 1);
    assert_true(ds.X[0] == 0.5f);
    dataset_free(&ds);
    assert_int_equal(run("csv --input @/rn.csv --drop-columns nope --out @/rn2.h5"), 2);
    expect_msg("no column named 'nope' in the header (--drop-columns)");
    assert_int_equal(run("csv --input @/rn.csv --drop-columns X,b --out @/rn2.h5"), 2);
    expect_msg("--drop-columns names the label column");
}

static void test_convert_csv_categorical(void **state)
{
    (void)state;
    write_text("cat.csv", "color,size,kind\nred,1.5,a\nblue,2,b\nred,3,a\ngreen,1,b\nblue,0.5,a\n");
    write_text("cat-test.csv", "size,kind,color\n2,b,red\n1,a,purple\n");
    assert_int_equal(run("csv --input @/cat.csv --test-input @/cat-test.csv --val-fraction 0 "
                         "--out @/cat.h5"), 0);
    size_t n = 0;
    char **names = read_strs("cat.h5", "/", "feature_names", &n);
    assert_int_equal(n, 4);
    assert_string_equal(names[0], "color=blue");
    assert_string_equal(names[2], "color=red");
    assert_string_equal(names[3], "size");
    h5io_strs_free(names, n);
    Dataset tr, te;
    load("cat.h5:/train", &tr);
    load("cat.h5:/test", &te);
    float X0[4] = {0, 0, 1, 1.5f}, T[8] = {0, 0, 1, 2, 0, 0, 0, 1}; /* purple: zeros */
    assert_memory_equal(tr.X, X0, sizeof X0);
    assert_memory_equal(te.X, T, sizeof T);
    int32_t ty[2] = {1, 0};
    assert_memory_equal(te.y, ty, sizeof ty);
    dataset_free(&tr);
    dataset_free(&te);
    /* only the columns named: a word elsewhere is refused with the hints */
    assert_int_equal(run("csv --input @/cat.csv --categorical none --out @/c2.h5"), 2);
    expect_msg("cat.csv:2: field 1 'red': not a number. If 'red' marks a missing value: --na-values 'red'; if the column is categorical: --categorical color");
    /* categories become feature names: UTF-8 only */
    write_text("cat8.csv", "color,size,kind\nred,1,a\ncaf\xe9,2,b\nred,3,a\n");
    assert_int_equal(run("csv --input @/cat8.csv --out @/c2.h5"), 2);
    expect_msg("cat8.csv: column 'color': the category on line 3 is not valid UTF-8");
    /* numbers and words in one column */
    write_text("mixed.csv", "a,b,label\n1,2,0\n3,x4,1\n5,6,1\n");
    assert_int_equal(run("csv --input @/mixed.csv --out @/c2.h5"), 2);
    expect_msg("mixed.csv:3: field 2 'x4': not a number; column 'b' holds numbers elsewhere (line 2)");
    /* a word column with a different value in every row is not categorical */
    char text[8192];
    size_t u = (size_t)snprintf(text, sizeof text, "name,v,label\n");
    for (int i = 0; i < 40; i++)
        u += (size_t)snprintf(text + u, sizeof text - u, "person%d,%d.5,%d\n", (i * 13) % 40, i % 3, i % 2);
    write_text("names.csv", text);
    assert_int_equal(run("csv --input @/names.csv --out @/c2.h5"), 2);
    expect_msg("column 'name' holds 40 different words in 40 rows: free text or ids");
}

static void test_convert_csv_test_input(void **state)
{
    (void)state;
    write_numeric("tr.csv", "a,b,label\n", false);
    /* the test file's columns in another order, the label first */
    write_text("te.csv", "label,b,a\n2,3,25.5\n0,1,4.5\n");
    assert_int_equal(run("csv --input @/tr.csv --test-input @/te.csv --val-fraction 0 "
                         "--out @/tt.h5"), 0);
    Dataset te;
    load("tt.h5:/test", &te);
    float X[4] = {25.5f, 3, 4.5f, 1};
    int32_t y[2] = {2, 0};
    assert_memory_equal(te.X, X, sizeof X);
    assert_memory_equal(te.y, y, sizeof y);
    dataset_free(&te);
    /* rows to predict: no label column, /test gets X only */
    write_text("te3.csv", "b,a\n3,25.5\n1,4.5\n2,0.5\n");
    assert_int_equal(run("csv --input @/tr.csv --test-input @/te3.csv --val-fraction 0 "
                         "--out @/tt3.h5"), 0);
    char spec[700];
    path_in(spec, sizeof spec, "tt3.h5:/test");
    DatasetInfo in;
    assert_int_equal(dataset_probe(spec, NULL, false, &in), XT_OK);
    assert_false(in.has_y);
    assert_int_equal(in.n, 3);
    assert_int_equal(dataset_load(&te, &in, 0, in.n, 0, NULL), XT_OK);
    float X3[6] = {25.5f, 3, 4.5f, 1, 0.5f, 2};
    assert_memory_equal(te.X, X3, sizeof X3);
    dataset_free(&te);
    /* a column missing and one extra: both listed */
    write_text("te2.csv", "label,a,c\n2,3,25.5\n");
    assert_int_equal(run("csv --input @/tr.csv --test-input @/te2.csv --out @/tt2.h5"), 2);
    expect_msg("te2.csv: its columns differ from");
    expect_msg("missing 'b'; not in the training file 'c'");
    assert_false(exists("tt2.h5"));
}

/* ---- libsvm --------------------------------------------------------------------- */

static void test_convert_libsvm_roundtrip(void **state)
{
    (void)state;
    /* one-based (detected), labels +1/-1, comment, qid, empty row */
    write_text("a.svm", "# a comment line\n+1 1:0.5 3:2\n-1 qid:3 2:-1 # tail\n+1\n-1 1:4 2:5 3:6\n");
    assert_int_equal(run("libsvm --input @/a.svm --val-fraction 0 --out @/sa.h5"), 0);
    Dataset ds;
    load("sa.h5", &ds);
    assert_int_equal(ds.info.n, 4);
    assert_int_equal(ds.info.d, 3);
    float X[12] = {0.5f, 0, 2, 0, -1, 0, 0, 0, 0, 4, 5, 6};
    int32_t y[4] = {1, 0, 1, 0};
    assert_memory_equal(ds.X, X, sizeof X);
    assert_memory_equal(ds.y, y, sizeof y);
    dataset_free(&ds);

    /* zero-based (detected), given --features wider than used, labels 3/7/5 -> 0/2/1 */
    write_text("b.svm", "3 0:1 2:3\n7 1:2\n5 0:-1\n");
    assert_int_equal(run("libsvm --input @/b.svm --features 5 --val-fraction 0 --out @/sb.h5"), 0);
    load("sb.h5", &ds);
    assert_int_equal(ds.info.d, 5);
    float Xb[15] = {1, 0, 3, 0, 0, 0, 2, 0, 0, 0, -1, 0, 0, 0, 0};
    int32_t yb[3] = {0, 2, 1};
    assert_memory_equal(ds.X, Xb, sizeof Xb);
    assert_memory_equal(ds.y, yb, sizeof yb);
    dataset_free(&ds);
    char p[600];
    path_in(p, sizeof p, "sb.h5");
    H5File *f = NULL;
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(h5io_open_read(p, NULL, &f), XT_OK);
    assert_int_equal(h5io_attr_read_strs(f, "/train", "label_values", &v, &n), XT_OK);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "3");
    assert_string_equal(v[1], "5");
    assert_string_equal(v[2], "7");
    h5io_strs_free(v, n);
    assert_int_equal(h5io_close(&f), XT_OK);

    /* --one-based forced on a file without index 0 vs --zero-based: D differs by one */
    write_text("c.svm", "1 1:1 2:2\n2 2:3\n");
    assert_int_equal(run("libsvm --input @/c.svm --zero-based --val-fraction 0 --out @/sc.h5"), 0);
    load("sc.h5", &ds);
    assert_int_equal(ds.info.d, 3);
    assert_true(ds.X[0] == 0 && ds.X[1] == 1 && ds.X[2] == 2);
    dataset_free(&ds);
}

/* Sparse lines become a CSR X (auto; the printed reason is checked in cli/sparse.sh), the
 * same rows as --dense gives;
 * --sparse forces CSR on dense-ish lines; a random split keeps each row's columns. */
static void test_convert_libsvm_csr(void **state)
{
    (void)state;
    /* 4 rows x 40 features, 6 non-zeros: CSR takes 80 bytes against 640 dense */
    write_text("s.svm", "1 3:0.5 40:2\n0\n2 1:-1 7:4 8:1.5\n1 39:3\n");
    assert_int_equal(run("libsvm --input @/s.svm --one-based --val-fraction 0 --out @/ss.h5"), 0);
    Dataset sp, de;
    load("ss.h5", &sp);
    assert_true(sp.info.x_csr);
    assert_int_equal(sp.info.d, 40);
    assert_int_equal(sp.info.x_nnz, 6);
    const size_t ip[5] = {0, 2, 2, 5, 6};
    const int32_t ix[6] = {2, 39, 0, 6, 7, 38};
    const float v[6] = {0.5f, 2, -1, 4, 1.5f, 3};
    assert_memory_equal(sp.csr.indptr, ip, sizeof ip);
    assert_memory_equal(sp.csr.indices, ix, sizeof ix);
    assert_memory_equal(sp.csr.values, v, sizeof v);
    assert_int_equal(run("libsvm --input @/s.svm --one-based --dense --val-fraction 0 "
                         "--out @/sd.h5"), 0);
    load("sd.h5", &de);
    assert_false(de.info.x_csr);
    float X[4 * 40];
    csr_densify(X, &sp.csr, NULL, 0, 4, NULL);
    assert_memory_equal(de.X, X, sizeof X);
    assert_memory_equal(de.y, sp.y, 4 * sizeof *de.y);
    dataset_free(&de);
    /* a held-out split: every row of /val is one of the file's rows, columns intact */
    assert_int_equal(run("libsvm --input @/s.svm --one-based --val-fraction 0.5 --seed 3 "
                         "--out @/sv.h5"), 0);
    load("sv.h5:/val", &de);
    assert_true(de.info.x_csr);
    float Xv[4 * 40];
    csr_densify(Xv, &de.csr, NULL, 0, de.csr.m, NULL);
    for (size_t i = 0; i < de.csr.m; i++) {
        bool found = false;
        for (size_t r = 0; r < 4 && !found; r++)
            found = !memcmp(Xv + i * 40, X + r * 40, 40 * sizeof(float)) && de.y[i] == sp.y[r];
        assert_true(found);
    }
    dataset_free(&de);
    dataset_free(&sp);
    /* --sparse forces CSR where auto would not */
    write_text("d.svm", "1 1:1 2:2\n0 1:3 2:4\n");
    assert_int_equal(run("libsvm --input @/d.svm --one-based --val-fraction 0 --out @/da.h5"), 0);
    load("da.h5", &de);
    assert_false(de.info.x_csr);
    dataset_free(&de);
    assert_int_equal(run("libsvm --input @/d.svm --one-based --sparse --val-fraction 0 "
                         "--out @/ds.h5"), 0);
    load("ds.h5", &de);
    assert_true(de.info.x_csr);
    assert_int_equal(de.info.x_nnz, 4);
    dataset_free(&de);
}

static void test_convert_libsvm_errors(void **state)
{
    (void)state;
    write_text("e1.svm", "1 1:1\n1 3:1 2:1\n");
    write_text("e2.svm", "1 1:1\n1 2:abc\n");
    write_text("e3.svm", "1 1:1 7:2\n");
    write_text("e4.svm", "1 0:1\n");
    write_text("e5.svm", "x 1:1\n");
    write_text("e6.svm", "1 1:1\n2 5\n");
    write_text("e7.svm", "1,2 1:1\n");
    write_text("e8.svm", "1 1:1\n1 -2:1\n");
    struct { const char *args, *msg; } cases[] = {
        {"libsvm --input @/e1.svm --out @/x.h5", "e1.svm:2: '2:1': indices must increase along a line"},
        {"libsvm --input @/e2.svm --out @/x.h5", "e2.svm:2: '2:abc': not a number"},
        {"libsvm --input @/e3.svm --features 4 --out @/x.h5", "e3.svm:1: index 7 is beyond --features 4 (one-based)"},
        {"libsvm --input @/e4.svm --one-based --out @/x.h5", "e4.svm:1: '0:1': index 0 with --one-based"},
        {"libsvm --input @/e5.svm --out @/x.h5", "e5.svm:1: 'x': the label is not a finite number"},
        {"libsvm --input @/e6.svm --out @/x.h5", "e6.svm:2: '5': expected INDEX:VALUE"},
        {"libsvm --input @/e7.svm --out @/x.h5", "e7.svm:1: '1,2': multi-label LIBSVM lines are not supported"},
        {"libsvm --input @/e8.svm --out @/x.h5", "e8.svm:2: '-2:1': the index is not an integer >= 0"},
        {"libsvm --input @/e1.svm --features 0 --out @/x.h5", "--features '0': out of range (allowed: D >= 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args);
        if (rc != 2) fprintf(stderr, "case %zu: rc %d\n%s\n", i, rc, g_err);
        assert_int_equal(rc, 2);
        expect_msg(cases[i].msg);
    }
    assert_false(exists("x.h5"));
    assert_int_equal(run("libsvm --help"), 0);
    assert_int_equal(run("csv --help"), 0);
    assert_int_equal(run("--help"), 0);
}

static int setup(void **state)
{
    log_set_quiet(true);
    return xt_test_group_setup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_idx_roundtrip),
        cmocka_unit_test(test_convert_idx_random_split),
        cmocka_unit_test(test_convert_idx_errors),
        cmocka_unit_test(test_convert_csv_dialects),
        cmocka_unit_test(test_convert_csv_errors),
        cmocka_unit_test(test_convert_csv_label_choice),
        cmocka_unit_test(test_convert_csv_header_lines),
        cmocka_unit_test(test_convert_csv_r_style),
        cmocka_unit_test(test_convert_csv_id_columns),
        cmocka_unit_test(test_convert_csv_categorical),
        cmocka_unit_test(test_convert_csv_test_input),
        cmocka_unit_test(test_convert_libsvm_roundtrip),
        cmocka_unit_test(test_convert_libsvm_errors),
        cmocka_unit_test(test_convert_libsvm_csr),
    };
    return cmocka_run_group_tests(tests, setup, xt_test_group_teardown);
}
