/* reduce: every implementation of the step's reduction, in process, at several P, against
 * the plain sum:
 *   sum (MPI allreduce), sum sharded (MPI reduce-scatter + allgather), sum and sum sharded
 *   over the node's shared memory, ring (overlap), exact (MPI, sharded, shared memory), wide
 *   (a full-batch solver's double sums);
 * each rank runs an uneven number of micro-batches (a rank with none among them at P >= 3),
 * whose "backward" writes integer-valued gradients layer by layer through the reduction's
 * hooks, as model_backward does. Checked on every rank, over several steps:
 *   - this rank's slice of the reduced gradient is exactly the sum over ranks and
 *     micro-batches (integer values: exact in float in any order);
 *   - the totals (loss, weight, right and all decisions) are exactly the sums;
 *   - the update (SGD, momentum) leaves every rank with all the parameters (the allgather of
 *     a sharded update), each the expected value;
 *   - rank 0 gathers the whole optimiser state for a checkpoint;
 *   - a NaN loss on one rank, and a signal on one rank, reach every rank at the same step.
 * And the wide reduction keeps its totals in double (a loss float would round), and a
 * solver's state replaces the optimiser's in what checkpoints store; the sparse exchange
 * (CSR data) gives the plain sum whether a step goes sparse (few columns of W_1 touched)
 * or dense (all touched), and says which it took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"
#include "xt_test.h"

static Comm *g_comm;
static volatile sig_atomic_t g_sig;

typedef struct {
    const char *name;
    bool exact, overlap, shard, shm, wide;
} Case;

static const Case CASES[] = {
    {"sum mpi", false, false, false, false, false},
    {"sum mpi sharded", false, false, true, false, false},
    {"sum shm", false, false, false, true, false},
    {"sum shm sharded", false, false, true, true, false},
    {"ring", false, true, false, false, false},
    {"exact mpi", true, false, false, false, false},
    {"exact mpi sharded", true, false, true, false, false},
    {"exact shm sharded", true, false, true, true, false},
    {"wide", false, false, false, false, true},
    {"wide shm", false, false, false, true, true},
};

/* Micro-batches of rank q in a step: uneven, none on rank 2. */
static size_t parts_of(int q) { return (size_t)((q + 1) % 3); }

/* Gradient element j of micro-batch i of rank q at step s: small integers. */
static float value(int q, size_t i, size_t j, int s)
{
    return (float)((int)((size_t)q * 7 + i * 3 + j + (size_t)s) % 13 - 6);
}

static ModelShape test_shape(void)
{
    ModelShape s;
    char err[256];
    const int64_t hidden[2] = {300, 300}; /* two ring buckets: layers 3+2, then layer 1 */
    assert_int_equal(model_shape_init(&s, MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, 50, hidden, 2, 10,
                                      err, sizeof err), XT_OK);
    return s;
}

/* What model_backward does to the buffer, layer L .. 1, with the hooks between layers. */
static void fake_backward(float *g, bool acc, const BackwardHooks *h, const ModelShape *s,
                          int q, size_t i, int step)
{
    for (int l = s->n_layers; l >= 1; l--) {
        size_t lo = s->w_off[l - 1], hi = s->b_off[l - 1] + s->sizes[l];
        for (size_t j = lo; j < hi; j++) g[j] = (acc ? g[j] : 0.0f) + value(q, i, j, step);
        if (h && h->progress) h->progress(h->ctx);
        if (h && h->layer_done) h->layer_done(h->ctx, l);
    }
}

/* One step of rank q; loss_nan: this rank's loss is NaN. */
static const float *run_step(Reduce *red, const ModelShape *s, int q, int step, bool loss_nan,
                             StepTotals *tot)
{
    reduce_begin(red);
    size_t m = parts_of(q);
    for (size_t i = 0; i < m; i++) {
        StepSums ss = {.loss = loss_nan ? NAN : q + 0.5, .weight = 2.0, .correct = 1.0,
                       .decisions = 2.0};
        reduce_add(red, i, &ss);
        bool acc;
        float *g = reduce_partial(red, i, &acc);
        fake_backward(g, acc, reduce_hooks(red, i + 1 == m), s, q, i, step);
        reduce_partial_done(red, i);
    }
    ReduceTimes t;
    return reduce_finish(red, tot, &t);
}

static double expected(int P, size_t j, int step)
{
    double sum = 0.0;
    for (int q = 0; q < P; q++)
        for (size_t i = 0; i < parts_of(q); i++) sum += value(q, i, j, step);
    return sum;
}

static Plan case_plan(const Case *c, int P)
{
    Plan p;
    memset(&p, 0, sizeof p);
    p.G = c->exact ? (size_t)(3 * P) : 0;
    p.pieces = 1;
    p.overlap = c->overlap && P > 1;
    p.shard = c->shard && P > 1;
    p.shm = c->shm;
    p.wide = c->wide;
    snprintf(p.path_why, sizeof p.path_why, "test: %s", c->name);
    snprintf(p.overlap_why, sizeof p.overlap_why, "test");
    return p;
}

/* The step's gradient and totals against the plain sums. */
static void check_step(const Reduce *red, const float *grads, const StepTotals *tot, int P,
                       int step)
{
    size_t lo, hi, bad = 0, mb = 0;
    reduce_slice(red, &lo, &hi);
    for (size_t j = lo; j < hi; j++) bad += grads[j] != (float)expected(P, j, step);
    double loss = 0.0;
    for (int q = 0; q < P; q++) {
        mb += parts_of(q);
        loss += (double)parts_of(q) * (q + 0.5);
    }
    assert_all_ranks(g_comm, bad == 0);
    assert_all_ranks(g_comm, tot->sums.loss == loss && tot->sums.weight == 2.0 * (double)mb &&
                                 tot->sums.correct == (double)mb &&
                                 tot->sums.decisions == 2.0 * (double)mb);
    assert_all_ranks(g_comm, !tot->nonfinite && !tot->signal);
}

/* After one SGD update from zero with lr 1 and momentum: p = -g, velocity = g. */
static void check_update(Reduce *red, const ModelShape *s, int P, int r)
{
    const float *p = reduce_params(red);
    size_t bad = 0;
    for (size_t j = 0; j < s->n_params; j++) bad += p[j] != (float)-expected(P, j, 0);
    assert_all_ranks(g_comm, bad == 0);
    reduce_gather_state(red);
    if (r == 0) {
        StateList tmp;
        const StateList *st = reduce_state(red, &tmp);
        assert_non_null(st);
        assert_int_equal(st->n_arrays, 1);
        assert_int_equal(st->arrays[0].n, s->n_params);
        for (size_t j = 0; j < s->n_params; j++)
            bad += st->arrays[0].data[j] != (float)expected(P, j, 0);
        assert_int_equal(bad, 0);
    }
    reduce_drop_state(red);
}

static void run_case(const Case *c)
{
    const int P = comm_size(g_comm), r = comm_rank(g_comm);
    ModelShape s = test_shape();
    Plan plan = case_plan(c, P);
    OptimSettings os = {.kind = OPT_SGD, .lr = 1.0, .momentum = 0.9, .schedule = SCHED_CONSTANT,
                        .epochs = 1, .steps_per_epoch = 1};
    ReduceSpec spec = {.plan = &plan, .shape = &s, .oset = &os, .parts = 3,
                       .terms = (size_t)(3 * P), .signal = &g_sig};
    Reduce *red = NULL;
    assert_int_equal(reduce_open(g_comm, &spec, &red), XT_OK);
    char desc[1024];
    reduce_describe(red, desc, sizeof desc);
    if (r == 0) printf("  P = %d, %-18s %s\n", P, c->name, desc);
    StepTotals tot;
    const float *g = run_step(red, &s, r, 0, false, &tot);
    check_step(red, g, &tot, P, 0);
    reduce_update(red, g, 1.0f, 1.0);
    check_update(red, &s, P, r);
    g = run_step(red, &s, r, 1, false, &tot); /* the buffers are reused */
    check_step(red, g, &tot, P, 1);
    /* a NaN loss on the last rank with rows reaches every rank */
    int nan_rank = parts_of(P - 1) > 0 ? P - 1 : P - 2;
    g = run_step(red, &s, r, 2, r == nan_rank, &tot);
    assert_all_ranks(g_comm, tot.nonfinite && g == NULL);
    /* a signal on the last rank reaches every rank */
    g_sig = r == P - 1 ? SIGUSR1 : 0;
    run_step(red, &s, r, 3, false, &tot);
    g_sig = 0;
    assert_all_ranks(g_comm, tot.signal && !tot.nonfinite);
    reduce_close(&red);
    assert_null(red);
}

static void test_reduce_every_implementation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) run_case(&CASES[i]);
}

/* The wide reduction through MPI or the shared window (doubles there too): totals in double
 * (1 + r 2^-40 is not a float), and a solver's state in the optimiser's place for
 * checkpoints. */
static void check_wide(bool shm)
{
    const int P = comm_size(g_comm), r = comm_rank(g_comm);
    ModelShape s = test_shape();
    Case c = {"wide", false, false, false, shm, true};
    Plan plan = case_plan(&c, P);
    OptimSettings os = {.kind = OPT_LBFGS, .schedule = SCHED_CONSTANT, .epochs = 1,
                        .steps_per_epoch = 1};
    ReduceSpec spec = {.plan = &plan, .shape = &s, .oset = &os, .parts = 1, .terms = 1,
                       .signal = &g_sig};
    Reduce *red = NULL;
    assert_int_equal(reduce_open(g_comm, &spec, &red), XT_OK);
    reduce_begin(red);
    StepSums ss = {.loss = 1.0 + ldexp((double)r, -40), .weight = 1.0};
    reduce_add(red, 0, &ss);
    bool acc;
    float *g = reduce_partial(red, 0, &acc);
    for (size_t j = 0; j < s.n_params; j++) g[j] = (float)r;
    reduce_partial_done(red, 0);
    StepTotals tot;
    ReduceTimes t;
    const float *sums = reduce_finish(red, &tot, &t);
    double want = (double)P + ldexp((double)P * (P - 1) / 2.0, -40);
    assert_all_ranks(g_comm, tot.sums.loss == want && tot.sums.weight == (double)P);
    assert_all_ranks(g_comm, sums && sums[0] == (float)(P * (P - 1) / 2));
    float buf[3] = {1.0f, 2.0f, 3.0f};
    double f = 0.5;
    StateList mine, tmp;
    state_init(&mine, "lbfgs");
    state_add_array(&mine, "grad", buf, 3);
    state_add_f64(&mine, "f", &f);
    reduce_set_solver_state(red, &mine);
    assert_ptr_equal(reduce_state(red, &tmp), &mine);
    reduce_set_solver_state(red, NULL);
    assert_ptr_not_equal(reduce_state(red, &tmp), &mine);
    reduce_close(&red);
}

static void test_reduce_wide_doubles_and_solver_state(void **state)
{
    (void)state;
    check_wide(false);
    check_wide(true);
}

/* The sparse exchange (CSR data): W_1's gradient ((K, D), or (D, K) by column for touched)
 * of rank q's micro-batch i at step st is
 * non-zero in a few columns only (all of them when `wide`); the rest (the intercepts) is
 * dense. Values are small integers: the sums are exact in any order. */
enum { SP_D = 3000, SP_K = 3 };

static bool sp_touched(int q, size_t i, size_t j, int st, bool wide)
{
    if (wide) return true;
    for (size_t k = 0; k < 5; k++)
        if (j == ((size_t)q * 37 + i * 11 + (size_t)st * 5 + k * 101) % SP_D) return true;
    return false;
}

static float sp_value(const ModelShape *s, int q, size_t i, size_t e, int st, bool wide)
{
    size_t j = e >= s->b_off[0] ? 0 : s->w1_by_column ? e / SP_K : e % SP_D; /* W_1's column */
    if (e < s->b_off[0] && !sp_touched(q, i, j, st, wide)) return 0.0f;
    return (float)((int)((size_t)q * 5 + i * 3 + e + (size_t)st) % 7 + 1);
}

/* The touched columns of rank q's micro-batch i as one CSR row (touched: the reduction learns
 * them from the rows), noted. Returns where the micro-batch's gradient of column j goes: its
 * run pos[j] of W_1's packed gradient. */
static const uint32_t *sp_note(Reduce *red, int q, size_t i, int st, bool wide)
{
    int32_t cols[SP_D];
    size_t ptr[2] = {0, 0};
    for (size_t j = 0; j < SP_D; j++)
        if (sp_touched(q, i, j, st, wide)) cols[ptr[1]++] = (int32_t)j;
    CsrRows rows = {.m = 1, .d = SP_D, .indptr = ptr, .indices = cols};
    ModelInput in = {.csr = &rows};
    reduce_note_input(red, i, &in);
    assert_non_null(in.w1_pos);
    return in.w1_pos;
}

/* One step of rank q through the reduction; returns the reduced gradient, checked against
 * the plain sum on the caller's side. touched: every backward accumulates (the buffer is
 * zero where this step has not written) into W_1's packed gradient, column j at run pos[j]
 * (W_1 by column, w0 = 0), as the model's backward would. */
static const float *sp_step(Reduce *red, const ModelShape *s, int q, int st, bool wide,
                            bool touched, StepTotals *tot)
{
    reduce_begin(red);
    for (size_t i = 0; i < parts_of(q); i++) {
        StepSums ss = {.loss = 1.0, .weight = 1.0};
        reduce_add(red, i, &ss);
        const uint32_t *pos = touched ? sp_note(red, q, i, st, wide) : NULL;
        bool acc;
        float *g = reduce_partial(red, i, &acc);
        if (touched) assert_true(acc);
        for (size_t e = 0; e < s->n_params; e++) {
            size_t at = e;
            if (pos && e < s->b_off[0]) {
                size_t j = e / SP_K;
                if (!sp_touched(q, i, j, st, wide)) continue;
                at = pos[j] * SP_K + e % SP_K;
            }
            g[at] = (acc ? g[at] : 0.0f) + sp_value(s, q, i, e, st, wide);
        }
        reduce_partial_done(red, i);
    }
    ReduceTimes t;
    return reduce_finish(red, tot, &t);
}

/* A softmax model of SP_D inputs and SP_K outputs, plain SGD, and the reduction the plan
 * names (sparse or touched). */
typedef struct {
    ModelShape s;
    Plan plan;
    OptimSettings os;
    Reduce *red;
} SpRig;

static void sp_open(SpRig *g, bool sparse, bool touched)
{
    char err[256];
    assert_int_equal(model_shape_init(&g->s, MODEL_SOFTMAX, ACT_RELU, HEAD_SOFTMAX, SP_D, NULL,
                                      0, SP_K, err, sizeof err), XT_OK);
    memset(&g->plan, 0, sizeof g->plan);
    g->plan.pieces = 1;
    g->plan.sparse = sparse;
    g->plan.touched = touched;
    g->s.w1_by_column = touched; /* as train_setup.c keeps it for touched */
    g->os = (OptimSettings){.kind = OPT_SGD, .lr = 0.5, .schedule = SCHED_CONSTANT,
                           .epochs = 1, .steps_per_epoch = 1};
    ReduceSpec spec = {.plan = &g->plan, .shape = &g->s, .oset = &g->os, .parts = 3,
                       .terms = 1, .signal = &g_sig};
    g->red = NULL;
    assert_int_equal(reduce_open(g_comm, &spec, &g->red), XT_OK);
}

/* The plain sum of every rank's micro-batches at every element (exact: small integers). */
static void sp_want(const ModelShape *s, int st, bool wide, float *want)
{
    const int P = comm_size(g_comm);
    for (size_t e = 0; e < s->n_params; e++) {
        double w = 0.0;
        for (int q = 0; q < P; q++)
            for (size_t i = 0; i < parts_of(q); i++) w += sp_value(s, q, i, e, st, wide);
        want[e] = (float)w;
    }
}

/* The loss sum counts every micro-batch, no flag, on every rank. */
static bool sp_totals_ok(const StepTotals *tot)
{
    size_t mb = 0;
    for (int q = 0; q < comm_size(g_comm); q++) mb += parts_of(q);
    return tot->sums.loss == (double)mb && !tot->nonfinite;
}

/* Every rank: the reduced gradient is the plain sum at EVERY element, and the totals. */
static void sp_check_sum(const ModelShape *s, const float *g, const StepTotals *tot, int st,
                         bool wide)
{
    float *want = malloc(s->n_params * sizeof *want);
    assert_non_null(want);
    sp_want(s, st, wide, want);
    size_t bad = 0;
    for (size_t e = 0; e < s->n_params; e++) bad += g[e] != want[e];
    free(want);
    assert_all_ranks(g_comm, bad == 0 && sp_totals_ok(tot));
}

static void test_reduce_sparse_exchange(void **state)
{
    (void)state;
    const int P = comm_size(g_comm), r = comm_rank(g_comm);
    SpRig g;
    sp_open(&g, P > 1, false); /* plan.c's rule: never at P = 1 */
    for (int st = 0; st < 4; st++) {
        bool wide = st == 2; /* every column touched: the dense allreduce moves fewer bytes */
        StepTotals tot;
        sp_check_sum(&g.s, sp_step(g.red, &g.s, r, st, wide, false, &tot), &tot, st, wide);
        uint64_t ns, nd;
        reduce_sparse_counts(g.red, &ns, &nd);
        /* P > 1: steps 0, 1 sparse, step 2 dense, step 3 sparse again */
        uint64_t want_s = P == 1 ? 0 : (uint64_t)(st < 2 ? st + 1 : st);
        uint64_t want_d = P == 1 ? 0 : (uint64_t)(st >= 2);
        assert_all_ranks(g_comm, ns == want_s && nd == want_d);
    }
    /* a signal and a NaN loss on one rank still reach every rank */
    g_sig = r == P - 1 ? SIGUSR1 : 0;
    StepTotals tot;
    sp_step(g.red, &g.s, r, 5, false, false, &tot);
    g_sig = 0;
    assert_all_ranks(g_comm, tot.signal && !tot.nonfinite);
    reduce_close(&g.red);
}

/* touched (plain SGD on CSR data): the reduction learns each micro-batch's columns from its
 * rows, every backward accumulates into a packed gradient kept zero elsewhere, and the
 * update moves the union's columns and the intercepts exactly as optim_step moves
 * everything with the plain sum of the gradients (checked at every parameter, so a column
 * of an earlier step left non-zero, a run added to the wrong column or a column missed
 * fails). Steps touch different columns; step 2 every column (the allreduce and a dense
 * update), steps 3 and 4 few again (the whole buffer zeroed first). */
static void test_reduce_touched(void **state)
{
    (void)state;
    const int r = comm_rank(g_comm);
    SpRig g;
    sp_open(&g, true, true);
    float *params = reduce_params(g.red), *ref = malloc(g.s.n_params * sizeof *ref);
    float *want = malloc(g.s.n_params * sizeof *want);
    Optim dense;
    assert_true(ref && want);
    assert_int_equal(optim_init(&dense, &g.os, g.s.n_params), XT_OK);
    for (size_t e = 0; e < g.s.n_params; e++) params[e] = ref[e] = (float)(e % 13) * 0.25f - 1.0f;
    for (int st = 0; st < 5; st++) {
        bool wide = st == 2;
        StepTotals tot;
        const float *grad = sp_step(g.red, &g.s, r, st, wide, true, &tot);
        sp_want(&g.s, st, wide, want);
        optim_step(&dense, ref, want, 0.125f, 0.5);
        reduce_update(g.red, grad, 0.125f, 0.5);
        assert_all_ranks(g_comm, sp_totals_ok(&tot) &&
                                 memcmp(params, ref, g.s.n_params * sizeof *ref) == 0);
    }
    optim_free(&dense);
    free(ref);
    free(want);
    reduce_close(&g.red);
}

/* The ring's buckets: layers merged from the top until 256 KiB, the slots in the first. */
static void test_reduce_ring_buckets(void **state)
{
    (void)state;
    ModelShape s = test_shape();
    size_t smallest;
    assert_int_equal(reduce_ring_buckets(&s, &smallest), 2);
    /* layer 1 alone: 50 x 300 + 300 floats */
    assert_int_equal(smallest, (50 * 300 + 300) * sizeof(float));
    ModelShape lin;
    char err[256];
    assert_int_equal(model_shape_init(&lin, MODEL_SOFTMAX, ACT_RELU, HEAD_SOFTMAX, 784, NULL, 0,
                                      10, err, sizeof err), XT_OK);
    assert_int_equal(reduce_ring_buckets(&lin, &smallest), 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_every_implementation),
        cmocka_unit_test(test_reduce_wide_doubles_and_solver_state),
        cmocka_unit_test(test_reduce_ring_buckets),
        cmocka_unit_test(test_reduce_sparse_exchange),
        cmocka_unit_test(test_reduce_touched),
    };
    return xt_test_run_mpi(&argc, &argv, "reduce_mpi", tests, sizeof tests / sizeof *tests,
                           &g_comm);
}
