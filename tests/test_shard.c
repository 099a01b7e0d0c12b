/* shard: coverage of rows by ranks and by steps, rank-count invariance, balance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"

/* Ranks' row ranges tile [0, N) in order, for N divisible by P or not, and N < P. */
static void test_shard_ranges_tile_rows(void **state)
{
    (void)state;
    const size_t ns[] = {1, 7, 10, 100, 1001};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int P = 1; P <= 5; P++) {
            size_t S = shard_count(ns[a], 64);
            if ((size_t)P > S) continue;
            size_t next = 0;
            for (int r = 0; r < P; r++) {
                size_t lo, hi;
                shard_rank_shards(S, P, r, &lo, &hi);
                size_t rlo = shard_row_begin(ns[a], S, lo), rhi = shard_row_begin(ns[a], S, hi);
                assert_int_equal(rlo, next);
                assert_true(hi > lo);
                next = rhi;
            }
            assert_int_equal(next, ns[a]);
        }
}

/* Every row appears exactly once per epoch, over all steps and all ranks; and the set
 * of global rows of each step is the same for P = 1, 2, 3, 4. */
static void check_epoch(size_t N, size_t S, size_t B, uint64_t epoch)
{
    size_t T = shard_steps_per_epoch(N, B);
    uint32_t *ref = calloc(N, sizeof *ref); /* ref[row] = step + 1 at P = 1 */
    for (int P = 1; P <= 4; P++) {
        uint32_t *seen = calloc(N, sizeof *seen);
        for (int r = 0; r < P; r++) {
            Sampler s;
            char err[256];
            assert_int_equal(sampler_init(&s, N, S, B, P, r, 1234, true, 0, err, sizeof err), XT_OK);
            sampler_begin_epoch(&s, epoch);
            uint32_t *rows = malloc(s.max_local * sizeof *rows + 4);
            for (size_t t = 0; t < T; t++) {
                size_t m = sampler_step_rows(&s, t, rows);
                for (size_t i = 0; i < m; i++) {
                    size_t g = s.row_lo + rows[i];
                    assert_true(g >= s.row_lo && g < s.row_hi);
                    assert_int_equal(seen[g], 0);
                    seen[g] = (uint32_t)t + 1;
                }
            }
            free(rows);
            sampler_free(&s);
        }
        for (size_t i = 0; i < N; i++) {
            assert_true(seen[i] != 0);
            if (P == 1) ref[i] = seen[i];
            else assert_int_equal(seen[i], ref[i]);
        }
        free(seen);
    }
    free(ref);
}

static void test_shard_epoch_coverage_and_invariance(void **state)
{
    (void)state;
    check_epoch(1000, 64, 32, 0);
    check_epoch(1000, 64, 32, 5);
    check_epoch(997, 12, 100, 1);
    check_epoch(50, 64, 7, 0);  /* S clamps to N */
    check_epoch(300, 8, 0, 0);  /* full batch */
    check_epoch(300, 8, 1000, 0);
}

/* Block shuffle: each epoch every row once; the order of each shard is whole blocks
 * (aligned to multiples of the block in global rows, rows ascending inside), a
 * permutation of the shard's blocks that changes with the epoch; the same global order at
 * P = 1, 2, 3, 4; a clone draws the same order. */
static void check_block_epoch(size_t N, size_t S, size_t block, uint64_t epoch)
{
    uint32_t *ref = calloc(N, sizeof *ref); /* ref[k] = the k-th row of the P = 1 order */
    bool moved = false;
    for (int P = 1; P <= 4; P++) {
        size_t k = 0;
        for (int r = 0; r < P; r++) {
            Sampler s, c;
            char err[256];
            assert_int_equal(sampler_init(&s, N, S, 64, P, r, 99, true, 0, err, sizeof err), XT_OK);
            assert_int_equal(sampler_set_block_shuffle(&s, block, err, sizeof err), XT_OK);
            sampler_begin_epoch(&s, epoch);
            assert_int_equal(sampler_clone(&c, &s, err, sizeof err), XT_OK);
            sampler_begin_epoch(&c, epoch);
            size_t local = s.row_hi - s.row_lo;
            assert_memory_equal(s.perm, c.perm, local * sizeof *s.perm);
            for (size_t i = 0; i < local; i++, k++) {
                size_t g = s.row_lo + s.perm[i];
                if (P == 1) ref[k] = (uint32_t)g;
                else assert_int_equal(g, ref[k]);
                if (i > 0) { /* inside a block: the next row; else a block's first row */
                    size_t prev = s.row_lo + s.perm[i - 1];
                    bool shard_start = false;
                    for (size_t q = 0; q < s.S; q++) shard_start |= shard_row_begin(N, s.S, q) == g;
                    if (g != prev + 1) assert_true(g % block == 0 || shard_start);
                }
                if (g != k) moved = true;
            }
            sampler_free(&c);
            sampler_free(&s);
        }
        assert_int_equal(k, N);
    }
    uint32_t *seen = calloc(N, sizeof *seen);
    for (size_t i = 0; i < N; i++) seen[ref[i]]++;
    for (size_t i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    assert_true(moved); /* the order is not the file order */
    free(seen);
    free(ref);
}

static void test_shard_block_shuffle(void **state)
{
    (void)state;
    check_block_epoch(1000, 4, 50, 0);
    check_block_epoch(1000, 4, 50, 3);
    check_block_epoch(997, 6, 64, 1);  /* blocks cut at shard ends */
    check_block_epoch(2000, 8, 7, 2);
}

/* Global batches hold about B rows each, and local parts are balanced. */
static void test_shard_batch_sizes_balanced(void **state)
{
    (void)state;
    const size_t N = 54000, S = 64, B = 256;
    Sampler s0, s1;
    char err[256];
    assert_int_equal(sampler_init(&s0, N, S, B, 2, 0, 1, true, 0, err, sizeof err), XT_OK);
    assert_int_equal(sampler_init(&s1, N, S, B, 2, 1, 1, true, 0, err, sizeof err), XT_OK);
    uint32_t *rows = malloc((s0.max_local + s1.max_local) * sizeof *rows);
    size_t total = 0;
    for (size_t t = 0; t < s0.T; t++) {
        size_t g = sampler_global_count(&s0, t);
        assert_true(g >= B - S / 2 && g <= B + S / 2);
        size_t a = sampler_step_rows(&s0, t, rows), b = sampler_step_rows(&s1, t, rows);
        assert_int_equal(a + b, g);
        assert_true(a + 20 >= b && b + 20 >= a);
        total += g;
    }
    assert_int_equal(total, N);
    /* shuffling changes between epochs, and the order is a permutation */
    uint32_t first = s0.perm[0];
    int changed = 0;
    for (uint64_t e = 1; e < 5; e++) {
        sampler_begin_epoch(&s0, e);
        changed += s0.perm[0] != first;
    }
    assert_true(changed > 0);
    free(rows);
    sampler_free(&s0);
    sampler_free(&s1);
}

/* When shards contribute less than one row per step, the phases spread them over the
 * steps: every global batch stays within a few rows of N / T (without phases whole
 * groups of shards would contribute at the same steps: batches of 0 and 2B). */
static void test_shard_phases_spread_small_shards(void **state)
{
    (void)state;
    const size_t N = 1000, S = 64, B = 32;
    Sampler s;
    char err[256];
    assert_int_equal(sampler_init(&s, N, S, B, 1, 0, 1, true, 0, err, sizeof err), XT_OK);
    double mean = (double)N / (double)s.T;
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t t = 0; t < s.T; t++) {
        size_t g = sampler_global_count(&s, t);
        lo = g < lo ? g : lo;
        hi = g > hi ? g : hi;
    }
    printf("N=%zu S=%zu B=%zu: %zu steps, global batch %zu..%zu (mean %.2f)\n", N, S, B, s.T, lo,
           hi, mean);
    assert_true((double)lo >= mean - 3.0 && (double)hi <= mean + 3.0);
    sampler_free(&s);
}

static void test_shard_errors(void **state)
{
    (void)state;
    Sampler s;
    char err[256];
    assert_int_equal(sampler_init(&s, 3, 64, 2, 4, 0, 1, true, 0, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "virtual_shards"));
    assert_int_equal(sampler_init(&s, 100, 2, 2, 4, 0, 1, true, 0, err, sizeof err), XT_ERR_USAGE);
    assert_int_equal(sampler_init(&s, 0, 2, 2, 1, 0, 1, true, 0, err, sizeof err), XT_ERR_USAGE);
    /* no shuffle: steps walk the shards in order */
    assert_int_equal(sampler_init(&s, 10, 1, 5, 1, 0, 1, false, 0, err, sizeof err), XT_OK);
    uint32_t rows[10];
    assert_int_equal(sampler_step_rows(&s, 0, rows), 5);
    for (uint32_t i = 0; i < 5; i++) assert_int_equal(rows[i], i);
    sampler_free(&s);
}

/* Groups (reproducible mode): a group's rows of a step are the same list, in the same
 * order, whichever rank of whichever P holds it; the groups of a step together are the
 * step's global batch; ranks own whole groups, contiguous; P > G is refused. */
static void test_shard_groups_invariant(void **state)
{
    (void)state;
    const size_t N = 1003, S = 37, B = 96, G = 12;
    char err[512];
    Sampler ref;
    assert_int_equal(sampler_init(&ref, N, S, B, 1, 0, 9, true, G, err, sizeof err), XT_OK);
    sampler_begin_epoch(&ref, 2);
    uint32_t *a = malloc(ref.max_local * sizeof *a), *b = malloc(ref.max_local * sizeof *b);
    size_t cap = sampler_max_group_rows(&ref);
    for (int P = 1; P <= 6; P++) {
        size_t next_group = 0;
        for (int r = 0; r < P; r++) {
            Sampler s;
            assert_int_equal(sampler_init(&s, N, S, B, P, r, 9, true, G, err, sizeof err), XT_OK);
            sampler_begin_epoch(&s, 2);
            assert_int_equal(s.g_lo, next_group);
            assert_true(s.g_hi > s.g_lo);
            next_group = s.g_hi;
            for (size_t t = 0; t < s.T; t++) {
                size_t total = 0;
                for (size_t g = s.g_lo; g < s.g_hi; g++) {
                    size_t m = sampler_group_rows(&s, t, g, a);
                    size_t mr = sampler_group_rows(&ref, t, g, b);
                    assert_int_equal(m, mr);
                    assert_true(m <= cap);
                    for (size_t i = 0; i < m; i++) /* same global rows, same order */
                        assert_int_equal(a[i] + s.row_lo, b[i] + ref.row_lo);
                    total += m;
                }
                assert_int_equal(total, sampler_step_rows(&s, t, a));
            }
            sampler_free(&s);
        }
        assert_int_equal(next_group, G);
    }
    Sampler s;
    assert_int_equal(sampler_init(&s, N, S, B, 13, 0, 9, true, G, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "train.micro_batches >= 13"));
    assert_int_equal(sampler_init(&s, N, S, B, 2, 0, 9, true, 38, err, sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "data.virtual_shards"));
    free(a);
    free(b);
    sampler_free(&ref);
}

/* Evaluation blocks: whole blocks per rank, tiling [0, n). */
static void test_shard_block_ranges(void **state)
{
    (void)state;
    for (int P = 1; P <= 5; P++) {
        size_t next = 0;
        for (int r = 0; r < P; r++) {
            size_t lo, hi;
            shard_block_range(2500, 1024, P, r, &lo, &hi);
            assert_int_equal(lo, next);
            assert_true(lo % 1024 == 0);
            next = hi;
        }
        assert_int_equal(next, 2500);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_ranges_tile_rows),
        cmocka_unit_test(test_shard_epoch_coverage_and_invariance),
        cmocka_unit_test(test_shard_batch_sizes_balanced),
        cmocka_unit_test(test_shard_phases_spread_small_shards),
        cmocka_unit_test(test_shard_errors),
        cmocka_unit_test(test_shard_groups_invariant),
        cmocka_unit_test(test_shard_block_ranges),
        cmocka_unit_test(test_shard_block_shuffle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
