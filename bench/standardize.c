/* xt_bench_standardize: the exact standardisation statistics (issue 29), the one-pass moments
 * (max |x|, then S1 = sum q and S2 = sum q^2 in 128 bits) against the two-pass form they
 * replaced (max |x|, sum q for the mean, then sum of rounded (x - mean)^2), on one rank's rows
 * in memory, interleaved repetition by repetition; medians. Also the largest relative
 * difference between the two methods' means and standard deviations.
 * Usage: xt_bench_standardize [ROWS] [FEATURES] [REPS]   (default 54000 784 7)
 * Prints CSV: method,rows,features,median_s,values_per_s, then a summary line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exact.h"
#include "rng.h"
#include "rowsource.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The two-pass form (the reference). */
static void two_pass(const RowSource *s, size_t n, double *mx, double *mean, double *sd)
{
    const size_t d = s->d;
    int64_t *sum = malloc(d * sizeof *sum);
    int *e = malloc(d * sizeof *e);
    if (!sum || !e) abort();
    rowsource_feature_absmax(s, mx);
    for (size_t j = 0; j < d; j++) e[j] = exact_fixed_exponent(mx[j], n);
    rowsource_feature_fixed_sums(s, NULL, e, sum);
    for (size_t j = 0; j < d; j++) {
        mean[j] = ldexp((double)sum[j], -e[j]) / (double)n;
        double dev = mx[j] + fabs(mean[j]);
        e[j] = exact_fixed_exponent(dev * dev, n);
    }
    rowsource_feature_fixed_sums(s, mean, e, sum);
    for (size_t j = 0; j < d; j++) sd[j] = sqrt(ldexp((double)sum[j], -e[j]) / (double)n);
    free(sum);
    free(e);
}

/* The one-pass moments (what train_data.c's fit_standardize does on each rank). */
static void one_pass(const RowSource *s, size_t n, double *mx, double *mean, double *sd)
{
    const size_t d = s->d;
    int64_t *s1 = malloc(d * sizeof *s1), *s2 = malloc(d * EXACT_Q2_LIMBS * sizeof *s2);
    int *e = malloc(d * sizeof *e);
    if (!s1 || !s2 || !e) abort();
    rowsource_feature_absmax(s, mx);
    for (size_t j = 0; j < d; j++) e[j] = exact_grid_exponent(mx[j]);
    rowsource_feature_moments(s, e, s1, s2);
    for (size_t j = 0; j < d; j++) {
        double var;
        exact_moments(s1[j], exact_q2_from_limbs(s2 + j * EXACT_Q2_LIMBS), n, e[j], &mean[j],
                      &var);
        sd[j] = sqrt(var);
    }
    free(s1);
    free(s2);
    free(e);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 54000;
    size_t d = argc > 2 ? strtoull(argv[2], NULL, 10) : 784;
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.info.n = ds.info.d = 0;
    ds.info.d = d;
    ds.info.n = n;
    ds.lo = 0;
    ds.hi = n;
    ds.X = malloc(n * d * sizeof *ds.X);
    if (!ds.X) return 1;
    Rng r;
    rng_seed(&r, 29);
    for (size_t i = 0; i < n * d; i++) /* pixel-like values with a few wide features */
        ds.X[i] = (float)(i % d < 8 ? 1000.0 * rng_normal(&r) : floor(256.0 * rng_uniform(&r)) / 255.0);
    RowSource s;
    rowsource_init(&s, &ds);
    double *mx = malloc(d * sizeof *mx), *m1 = malloc(d * sizeof *m1), *s1 = malloc(d * sizeof *s1);
    double *m2 = malloc(d * sizeof *m2), *s2 = malloc(d * sizeof *s2);
    double *t[2] = {malloc((size_t)reps * sizeof(double)), malloc((size_t)reps * sizeof(double))};
    if (!mx || !m1 || !s1 || !m2 || !s2 || !t[0] || !t[1]) return 1;
    for (int k = -1; k < reps; k++) { /* one warm-up, then interleaved */
        double a = now_s();
        two_pass(&s, n, mx, m1, s1);
        double b = now_s();
        one_pass(&s, n, mx, m2, s2);
        double c = now_s();
        if (k >= 0) {
            t[0][k] = b - a;
            t[1][k] = c - b;
        }
    }
    double worst = 0.0;
    for (size_t j = 0; j < d; j++) {
        worst = fmax(worst, fabs(m1[j] - m2[j]) / fmax(fabs(m1[j]), s1[j]));
        worst = fmax(worst, fabs(s1[j] - s2[j]) / s1[j]);
    }
    printf("method,rows,features,median_s,values_per_s\n");
    const char *name[2] = {"two_pass", "one_pass_moments"};
    double med[2];
    for (int m = 0; m < 2; m++) {
        qsort(t[m], (size_t)reps, sizeof(double), cmp_double);
        med[m] = t[m][reps / 2];
        printf("%s,%zu,%zu,%.4f,%.3g\n", name[m], n, d, med[m], (double)(n * d) / med[m]);
    }
    printf("# speed-up %.2fx; largest relative difference of mean or sd (scaled by sd): %.2e\n",
           med[0] / med[1], worst);
    free(ds.X);
    return 0;
}
