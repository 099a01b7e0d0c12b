/* The sparse exchange against the dense allreduce (issue 27), per step, through xentrain's
 * own reductions (reduce.h) on the same gradients, interleaved: a linear model of D inputs
 * and H outputs (W_1 (H, D) and H intercepts), each rank's step gradient non-zero in a
 * fraction f of W_1's columns (its own random columns, as rows with different features
 * touch) and in every intercept. For each f the median time of reduce_finish (the slowest
 * rank's) of the `sum` implementation (MPI allreduce of everything) and of the `sparse` one
 * (which itself takes the allreduce when the records would be larger: the column `took`).
 *
 *   mpirun -np P xt_bench_exchange [REPS] [D] [H] [FRACTIONS...]
 *
 * Defaults: 15 repetitions, D = 100000, H = 60 (issue 27's shape), fractions 0.001 .. 0.5.
 * CSV on stdout: f,columns_per_rank,dense_s,sparse_s,took
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "rng.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* This rank's step: columns drawn with probability f, values in them and in the intercepts. */
static void fill(float *g, const ModelShape *s, double f, Rng *rng)
{
    const size_t H = s->sizes[1], D = s->sizes[0];
    memset(g, 0, H * D * sizeof *g);
    for (size_t j = 0; j < D; j++) {
        if (rng_uniform(rng) >= f) continue;
        for (size_t o = 0; o < H; o++) g[s->w_off[0] + o * D + j] = (float)(o + 1) * 0.01f;
    }
    for (size_t o = 0; o < H; o++) g[s->b_off[0] + o] = 0.5f;
}

/* One timed step of red: the slowest rank's seconds. */
static double step(Reduce *red, const Comm *c, const ModelShape *s, double f, Rng *rng)
{
    reduce_begin(red);
    StepSums ss = {.loss = 1.0, .weight = 1.0};
    reduce_add(red, 0, &ss);
    bool acc;
    fill(reduce_partial(red, 0, &acc), s, f, rng);
    reduce_partial_done(red, 0);
    comm_barrier(c);
    double t0 = comm_wtime();
    StepTotals tot;
    ReduceTimes t;
    reduce_finish(red, &tot, &t);
    double dt = comm_wtime() - t0;
    comm_allreduce_max_double(c, &dt, 1);
    return dt;
}

static Reduce *open_one(const Comm *c, const ModelShape *s, bool sparse, Plan *plan,
                        OptimSettings *os)
{
    memset(plan, 0, sizeof *plan);
    plan->pieces = 1;
    plan->sparse = sparse;
    snprintf(plan->path_why, sizeof plan->path_why, "bench");
    *os = (OptimSettings){.kind = OPT_SGD, .lr = 0.1, .schedule = SCHED_CONSTANT, .epochs = 1,
                          .steps_per_epoch = 1};
    ReduceSpec spec = {.plan = plan, .shape = s, .oset = os, .parts = 1, .terms = 1};
    Reduce *red = NULL;
    if (reduce_open(c, &spec, &red) != XT_OK) abort();
    return red;
}

int main(int argc, char **argv)
{
    Comm *c;
    if (comm_open(&argc, &argv, &c) != XT_OK) return 1;
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    size_t D = argc > 2 ? (size_t)atol(argv[2]) : 100000, H = argc > 3 ? (size_t)atol(argv[3]) : 60;
    const double def[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5};
    size_t nf = argc > 4 ? (size_t)(argc - 4) : sizeof def / sizeof *def;
    ModelShape s;
    char err[256];
    if (model_shape_init(&s, MODEL_SOFTMAX, ACT_RELU, HEAD_SOFTMAX, D, NULL, 0, H, err,
                         sizeof err) != XT_OK)
        return 1;
    Plan pd, ps;
    OptimSettings od, os;
    Reduce *dense = open_one(c, &s, false, &pd, &od), *sparse = open_one(c, &s, true, &ps, &os);
    Rng rng;
    rng_seed_tuple(&rng, 7, 1, (uint64_t)comm_rank(c));
    double *td = malloc((size_t)reps * sizeof *td), *ts = malloc((size_t)reps * sizeof *ts);
    if (comm_rank(c) == 0) printf("f,columns_per_rank,dense_s,sparse_s,took\n");
    for (size_t k = 0; k < nf; k++) {
        double f = argc > 4 ? atof(argv[4 + k]) : def[k];
        uint64_t s0, d0, s1, d1;
        reduce_sparse_counts(sparse, &s0, &d0);
        for (int i = 0; i < reps; i++) { /* interleaved */
            td[i] = step(dense, c, &s, f, &rng);
            ts[i] = step(sparse, c, &s, f, &rng);
        }
        reduce_sparse_counts(sparse, &s1, &d1);
        qsort(td, (size_t)reps, sizeof *td, cmp);
        qsort(ts, (size_t)reps, sizeof *ts, cmp);
        if (comm_rank(c) == 0)
            printf("%g,%.0f,%.6f,%.6f,%s\n", f, f * (double)D, td[reps / 2], ts[reps / 2],
                   s1 - s0 == (uint64_t)reps ? "sparse" : d1 - d0 == (uint64_t)reps ? "dense"
                                                                                   : "mixed");
    }
    free(td);
    free(ts);
    reduce_close(&dense);
    reduce_close(&sparse);
    comm_close(&c);
    return 0;
}
