/* rng: determinism, independence of derived streams, ranges, shuffles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "rng.h"

static void test_rng_deterministic_and_distinct(void **state)
{
    (void)state;
    Rng a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_next(&a);
        assert_true(x == rng_next(&b));
        same_c += x == rng_next(&c);
    }
    assert_true(same_c == 0);
    Rng t1, t2, t3;
    rng_seed_tuple(&t1, 1, 2, 3);
    rng_seed_tuple(&t2, 1, 3, 2);
    rng_seed_tuple(&t3, 1, 2, 3);
    assert_true(rng_next(&t1) != rng_next(&t2));
    rng_seed_tuple(&t1, 1, 2, 3);
    assert_true(memcmp(&t1, &t3, sizeof t1) == 0);
}

static void test_rng_ranges_and_moments(void **state)
{
    (void)state;
    Rng r;
    rng_seed(&r, 0);
    double s = 0, s2 = 0, m = 0;
    int counts[7] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        m += u;
        double z = rng_normal(&r);
        s += z;
        s2 += z * z;
        counts[rng_below(&r, 7)]++;
    }
    assert_true(fabs(m / n - 0.5) < 0.005);
    assert_true(fabs(s / n) < 0.01 && fabs(s2 / n - 1.0) < 0.02);
    for (int k = 0; k < 7; k++) assert_true(fabs(counts[k] / (double)n - 1.0 / 7) < 0.005);
}

static void test_rng_shuffle_is_permutation(void **state)
{
    (void)state;
    uint32_t v[1000];
    for (uint32_t i = 0; i < 1000; i++) v[i] = i;
    Rng r;
    rng_seed(&r, 9);
    rng_shuffle_u32(&r, v, 1000);
    int seen[1000] = {0}, moved = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        seen[v[i]]++;
        moved += v[i] != i;
    }
    for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 900);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic_and_distinct),
        cmocka_unit_test(test_rng_ranges_and_moments),
        cmocka_unit_test(test_rng_shuffle_is_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
