/* plan: every auto decision as a table of cases (configuration + placement + data facts ->
 * decision and reason), and the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "plan.h"

static void assert_has(const char *text, const char *part)
{
    if (!strstr(text, part)) fail_msg("'%s' does not contain '%s'", text, part);
}

/* A configuration from --set style assignments over the defaults. */
static void cfg_with(Config *c, const char *const *sets, size_t n)
{
    char err[512];
    assert_int_equal(config_load(c, NULL, sets, n, err, sizeof err), XT_OK);
}

static CommPlacement placed(int P, int nodes, int cpus, bool over)
{
    int local = P / nodes;
    return (CommPlacement){.P = P, .nodes = nodes, .local = local, .local_min = local,
                           .local_max = local, .node_cpus = cpus, .oversubscribed = over};
}

static PlanFacts facts(size_t n, int P)
{
    return (PlanFacts){.n = n, .d = 10, .row_bytes = 44.0, .budget = 0.0, .budget_why = "test",
                       .at = placed(P, 1, 8, false)};
}

static void test_plan_batches_and_groups(void **state)
{
    (void)state;
    static const struct {
        const char *sets[3];
        size_t n_sets, rows;
        int P;
        size_t global, G, pieces, S;
        const char *why;
    } cases[] = {
        /* train.micro_batches = auto: batch / 128, at least 8, at most the shards */
        {{"train.reproducible=true", "train.batch_size=4096"}, 2, 10000, 1, 4096, 32, 1, 64,
         "auto: batch / 128"},
        {{"train.reproducible=true", "data.virtual_shards=5"}, 2, 10000, 1, 128, 5, 1, 5, "auto"},
        {{"train.reproducible=true"}, 1, 10000, 2, 128, 8, 1, 64, "auto"},
        {{"train.reproducible=true", "train.batch_size=0"}, 2, 10000, 1, 0, 8, 1, 64, "auto"},
        {{"train.reproducible=true"}, 1, 6, 1, 1, 6, 1, 6, "auto"}, /* fewer rows than 8 */
        {{"train.reproducible=true", "train.micro_batches=12"}, 2, 10000, 1, 128, 12, 1, 64,
         "train.micro_batches = 12"},
        {{"train.reproducible=true", "train.accumulate=4"}, 2, 10000, 1, 512, 8, 4, 64, "auto"},
        {{"train.batch_per_rank=10"}, 1, 1000, 3, 30, 0, 1, 64, "train.reproducible = false"},
        {{"train.accumulate=4", "train.batch_size=64"}, 2, 1000, 2, 256, 0, 4, 64,
         "train.reproducible = false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, cases[i].sets, cases[i].n_sets);
        PlanFacts f = facts(cases[i].rows, cases[i].P);
        Plan p;
        char err[512];
        assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
        if (p.global_batch != cases[i].global || p.G != cases[i].G ||
            p.pieces != cases[i].pieces || p.S != cases[i].S)
            fail_msg("case %zu: batch %zu G %zu pieces %zu S %zu", i, p.global_batch, p.G,
                     p.pieces, p.S);
        assert_has(p.groups_why, cases[i].why);
    }
}

/* train.batch_size = auto: 128, or a tenth of the rows (at least 1 per rank) below 1280 rows */
static void test_plan_batch_auto(void **state)
{
    (void)state;
    static const struct {
        const char *set;
        size_t rows;
        int P;
        size_t global;
        const char *why;
    } cases[] = {
        {NULL, 100000, 4, 128, "auto: 128"},
        {NULL, 1280, 1, 128, "auto: 128"},
        {NULL, 1279, 1, 127, "a tenth of the 1279 training rows"},
        {NULL, 90, 2, 9, "a tenth of the 90"},
        {NULL, 10, 3, 3, "at least 1 per rank"},
        {"train.batch_size=64", 90, 2, 64, "train.batch_size"},
        {"train.batch_size=0", 90, 2, 0, "train.batch_size"},
        {"train.batch_per_rank=5", 90, 2, 10, "train.batch_per_rank x P"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        const char *sets[] = {cases[i].set};
        cfg_with(&c, cases[i].set ? sets : NULL, cases[i].set ? 1 : 0);
        PlanFacts f = facts(cases[i].rows, cases[i].P);
        Plan p;
        char err[512];
        assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
        if (p.global_batch != cases[i].global)
            fail_msg("case %zu: batch %zu, expected %zu", i, p.global_batch, cases[i].global);
        assert_has(p.batch_why, cases[i].why);
    }
}

static void test_plan_shuffle_and_norm(void **state)
{
    (void)state;
    Config c;
    Plan p;
    char err[512];
    PlanFacts f = facts(1000, 1);
    const char *block[] = {"train.shuffle=block"};
    cfg_with(&c, block, 1);
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_int_equal(p.shuffle_block, 1024);
    assert_has(p.shuffle_why, "not chunked");
    f.x_chunk_rows = 100;
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_int_equal(p.shuffle_block, 100);
    const char *sized[] = {"train.shuffle=block", "train.shuffle_block=7"};
    cfg_with(&c, sized, 2);
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_int_equal(p.shuffle_block, 7);
    cfg_with(&c, NULL, 0); /* rows shuffled: no blocks */
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_int_equal(p.shuffle_block, 0);
    /* data.normalize = auto: scale with the attribute, else standardise */
    assert_int_equal(p.norm, NORM_STANDARDIZE);
    assert_has(p.norm_why, "auto: X has no scale attribute");
    f.x_has_scale = true;
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_int_equal(p.norm, NORM_SCALE);
    assert_has(p.norm_why, "auto: X has a scale attribute");
    const char *none[] = {"data.normalize=none"};
    cfg_with(&c, none, 1);
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_int_equal(p.norm, NORM_NONE);
    const char *scale[] = {"data.normalize=scale"};
    cfg_with(&c, scale, 1);
    f.x_has_scale = false;
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_ERR_USAGE);
    assert_has(err, "no scale attribute");
}

static void test_plan_stream(void **state)
{
    (void)state;
    /* 1000 rows of 44 bytes over 2 ranks: 500 rows, 22000 bytes per rank */
    static const struct {
        const char *set;
        double budget;
        Status st;
        bool stream;
        const char *why;
    } cases[] = {
        {"data.stream=auto", 0.0, XT_OK, false, "they fit the budget"},
        {"data.stream=auto", 30000.0, XT_OK, false, "they fit the budget"},
        {"data.stream=auto", 20000.0, XT_OK, true, "do not fit the budget"},
        {"data.stream=true", 0.0, XT_OK, true, "data.stream = true"},
        {"data.stream=false", 30000.0, XT_OK, false, "data.stream = false"},
        {"data.stream=false", 20000.0, XT_ERR_USAGE, false, "data.stream = false: set"},
        {"data.stream=auto", 3000.0, XT_ERR_USAGE, false, "shuffle order alone"}, /* 2 x 2000 */
        {"data.stream=false", 3000.0, XT_OK, false, "data.stream = false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, &cases[i].set, 1);
        PlanFacts f = facts(1000, 2);
        f.budget = cases[i].budget;
        f.row_bytes = 44.0;
        if (i == 7) f.row_bytes = 4.0; /* the index fits once; the rows then fit too */
        Plan p;
        char err[1024] = "";
        Status st = plan_data(&p, &c, &f, err, sizeof err);
        if (st != cases[i].st) fail_msg("case %zu: status %d (%s)", i, (int)st, err);
        if (st == XT_OK) {
            assert_int_equal(p.stream, cases[i].stream);
            assert_has(p.stream_why, cases[i].why);
        } else {
            assert_has(err, cases[i].why);
        }
    }
    /* more micro-batches per update than the exact sums take */
    Config c;
    const char *many[] = {"train.reproducible=true", "train.micro_batches=64",
                          "train.accumulate=64"};
    cfg_with(&c, many, 3);
    PlanFacts f = facts(100000, 1);
    f.n = 100000;
    Plan p;
    char err[512];
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK); /* 4096: the limit */
    const char *more[] = {"train.reproducible=true", "train.batch_size=16384",
                          "train.accumulate=64", "data.virtual_shards=4096"};
    cfg_with(&c, more, 4); /* auto: 128 groups x 64 */
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_ERR_USAGE);
    assert_has(err, "exceeds 4096 micro-batches per update");
}

/* Streamed CSR: chosen by the rows' bytes (non-zeros), the reason saying so; refused when a
 * rank's indptr slice and shuffle orders (16 bytes a row) exceed the budget. */
static void test_plan_sparse_stream(void)
{
    static const struct {
        const char *set;
        double budget;
        Status st;
        bool stream;
        const char *why;
    } cases[] = {
        /* 1000 rows of 8 non-zeros (80 bytes a row) over 2 ranks: 40000 bytes per rank */
        {"data.stream=auto", 50000.0, XT_OK, false, "they fit the budget (CSR: 8.0 non-zeros"},
        {"data.stream=auto", 30000.0, XT_OK, true, "do not fit the budget (CSR: 8.0 non-zeros"},
        {"data.stream=true", 0.0, XT_OK, true, "data.stream = true (CSR: 8.0 non-zeros a row"},
        {"data.stream=auto", 7000.0, XT_ERR_USAGE, false, "their indptr slice and shuffle"},
        {"data.stream=false", 7000.0, XT_ERR_USAGE, false, "data.stream = false: set"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, &cases[i].set, 1);
        PlanFacts f = facts(1000, 2);
        f.x_csr = true;
        f.x_nnz = 8000;
        f.row_bytes = 80.0;
        f.budget = cases[i].budget;
        Plan p;
        char err[1024] = "";
        Status st = plan_data(&p, &c, &f, err, sizeof err);
        if (st != cases[i].st) fail_msg("case %zu: status %d (%s)", i, (int)st, err);
        if (st == XT_OK) {
            assert_int_equal(p.stream, cases[i].stream);
            assert_has(p.stream_why, cases[i].why);
        } else {
            assert_has(err, cases[i].why);
        }
    }
}

/* CSR X (docs/sparse.md): batches CSR or densified, a normalisation that never centres,
 * rows streamed like dense ones (counted by their non-zeros). */
static void test_plan_sparse(void **state)
{
    (void)state;
    static const struct {
        const char *set;
        bool csr, scale_attr;
        Status st;
        bool csr_batches;
        Normalize norm;
        const char *why; /* in csr_why, norm_why or err */
    } cases[] = {
        {"train.seed=1", false, false, XT_OK, false, NORM_STANDARDIZE, "X is dense"},
        {"train.seed=1", true, false, XT_OK, true, NORM_MAXABS, "sparse kernels for the first"},
        {"train.seed=1", true, false, XT_OK, true, NORM_MAXABS, "never centred, has no scale"},
        {"train.seed=1", true, true, XT_OK, true, NORM_SCALE, "auto: X has a scale attribute"},
        {"train.reproducible=true", true, false, XT_OK, false, NORM_MAXABS, "micro-batch densified"},
        {"data.normalize=maxabs", false, false, XT_OK, false, NORM_MAXABS, "as configured"},
        {"data.normalize=standardize", true, false, XT_ERR_USAGE, false, NORM_NONE,
         "centring would make every zero a non-zero"},
        {"data.stream=true", true, false, XT_OK, true, NORM_MAXABS, "sparse kernels"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, &cases[i].set, 1);
        PlanFacts f = facts(1000, 2);
        f.x_csr = cases[i].csr;
        f.x_has_scale = cases[i].scale_attr;
        Plan p;
        char err[1024] = "", all[3 * PLAN_WHY + 8];
        Status st = plan_data(&p, &c, &f, err, sizeof err);
        if (st != cases[i].st) fail_msg("case %zu: status %d (%s)", i, (int)st, err);
        if (st != XT_OK) {
            assert_has(err, cases[i].why);
            continue;
        }
        assert_int_equal(p.csr_batches, cases[i].csr_batches);
        assert_int_equal(p.norm, cases[i].norm);
        snprintf(all, sizeof all, "%s | %s", p.csr_why, p.norm_why);
        assert_has(all, cases[i].why);
        /* auto's max-abs on CSR becomes none when every |x| <= 1 (binary, tf-idf), and
         * only auto's: a configured maxabs stays */
        bool auto_sparse = cases[i].csr && !cases[i].scale_attr;
        plan_norm_measured(&p, 3.5);
        assert_int_equal(p.norm, cases[i].norm);
        plan_norm_measured(&p, 1.0);
        assert_int_equal(p.norm, auto_sparse ? NORM_NONE : cases[i].norm);
        if (auto_sparse) assert_has(p.norm_why, "every |x| <= 1 already (max 1)");
    }
    test_plan_sparse_stream();
}

static void test_plan_step_decisions(void **state)
{
    (void)state;
    const PlanModelFacts big = {.buckets = 3, .smallest = 4u << 20};
    const PlanModelFacts one = {.buckets = 1, .smallest = 4u << 20};
    static const struct {
        const char *set;
        int P, nodes, cpus;
        bool over, two_buckets;
        bool overlap, shard, shm;
        const char *overlap_why, *path_why;
    } cases[] = {
        {"comm.overlap=auto", 1, 1, 8, false, true, false, false, false, "one rank",
         "one rank per node"},
        {"comm.overlap=auto", 2, 1, 8, false, true, false, true, true, "one node",
         "a CPU per rank, 2 ranks on 8 CPUs"},
        {"comm.overlap=auto", 2, 1, 1, true, true, false, true, false, "one node",
         "2 ranks share 1 CPU(s)"},
        {"comm.overlap=auto", 4, 4, 8, false, true, true, false, false, "3 buckets",
         "3 buckets of layers on 4 nodes"},
        {"comm.overlap=auto", 4, 4, 8, false, false, false, true, false, "one bucket",
         "one rank per node"},
        {"comm.overlap=auto", 4, 2, 8, false, true, false, true, true, "several ranks per node",
         "a CPU per rank, 2 ranks"},
        {"train.reproducible=true", 4, 4, 8, false, true, false, true, false,
         "off with train.reproducible = true", "one rank per node"},
        {"comm.overlap=false", 4, 4, 8, false, true, false, true, false, "comm.overlap = false",
         "one rank per node"},
        {"comm.overlap=true", 2, 1, 8, false, false, true, false, false, "comm.overlap = true",
         "comm.overlap = true"},
        {"optim.shard=false", 2, 1, 8, false, true, false, false, true, "one node",
         "a CPU per rank"},
        {"comm.allreduce=mpi", 2, 1, 8, false, true, false, true, false, "one node",
         "comm.allreduce = mpi"},
        {"comm.allreduce=shm", 2, 2, 8, false, true, false, true, true, "off with comm.allreduce",
         "comm.allreduce = shm"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, &cases[i].set, 1);
        CommPlacement at = placed(cases[i].P, cases[i].nodes, cases[i].cpus, cases[i].over);
        Plan p;
        memset(&p, 0, sizeof p);
        plan_step(&p, &c, &at, cases[i].two_buckets ? &big : &one);
        if (p.overlap != cases[i].overlap || p.shard != cases[i].shard || p.shm != cases[i].shm)
            fail_msg("case %zu: overlap %d shard %d shm %d (%s | %s | %s)", i, p.overlap, p.shard,
                     p.shm, p.overlap_why, p.shard_why, p.path_why);
        assert_has(p.overlap_why, cases[i].overlap_why);
        assert_has(p.path_why, cases[i].path_why);
    }
    /* unequal nodes and slow rings keep MPI and overlap off */
    Config c;
    cfg_with(&c, NULL, 0);
    CommPlacement at = placed(3, 2, 8, false);
    at.local_min = 1;
    at.local_max = 2;
    Plan p;
    plan_step(&p, &c, &at, &big);
    assert_false(p.shm);
    assert_has(p.path_why, "different numbers of ranks (1 to 2)");
    at = placed(64, 64, 8, false);
    PlanModelFacts small = {.buckets = 2, .smallest = 1u << 20}; /* 16 KiB per message */
    plan_step(&p, &c, &at, &small);
    assert_false(p.overlap);
    assert_has(p.overlap_why, "latency-bound");
    /* CSR batches: the sparse exchange across nodes (no overlap, no sharding, MPI), never
     * on one node nor when a key asks for what it excludes */
    static const struct {
        const char *set;
        int nodes;
        bool sparse;
    } sp[] = {{"train.seed=1", 2, true},          {"train.seed=1", 1, false},
              {"optim.shard=true", 2, false},     {"comm.overlap=true", 2, false},
              {"comm.allreduce=shm", 2, false},   {"comm.allreduce=mpi", 2, true}};
    for (size_t i = 0; i < sizeof sp / sizeof *sp; i++) {
        cfg_with(&c, &sp[i].set, 1);
        at = placed(4, sp[i].nodes, 8, false);
        memset(&p, 0, sizeof p);
        p.csr_batches = true;
        p.momentum = 0.9; /* SGD's default: every parameter moves each step */
        plan_step(&p, &c, &at, &big);
        if (p.sparse != sp[i].sparse) fail_msg("sparse case %zu: %d (%s)", i, p.sparse, p.path_why);
        assert_false(p.touched);
        if (p.sparse) {
            assert_false(p.overlap || p.shard || p.shm);
            assert_has(p.path_why, "touched columns of W_1");
            assert_has(p.shard_why, "off for sparse data");
            assert_has(p.overlap_why, "off for sparse data");
        }
    }
    /* plain SGD (no momentum, weight decay or clipping) on CSR batches: only the touched
     * columns, at any P and on one node too, unless a key asks for what it excludes */
    static const struct {
        const char *set;
        int P, nodes;
        bool touched;
    } tc[] = {{"train.seed=1", 1, 1, true},           {"train.seed=1", 4, 1, true},
              {"train.seed=1", 4, 2, true},           {"optim.weight_decay=0.001", 1, 1, false},
              {"optim.clip_norm=1", 4, 1, false},     {"optim.optimizer=adam", 4, 1, false},
              {"optim.shard=true", 4, 1, false},      {"comm.overlap=true", 4, 2, false},
              {"comm.allreduce=shm", 4, 1, false},    {"comm.allreduce=mpi", 4, 1, true}};
    for (size_t i = 0; i < sizeof tc / sizeof *tc; i++) {
        cfg_with(&c, &tc[i].set, 1);
        at = placed(tc[i].P, tc[i].nodes, 8, false);
        memset(&p, 0, sizeof p);
        p.csr_batches = true; /* p.momentum = 0: optim.momentum = 0 resolved */
        plan_step(&p, &c, &at, &big);
        if (p.touched != tc[i].touched)
            fail_msg("touched case %zu (%s): %d (%s)", i, tc[i].set, p.touched, p.path_why);
        if (p.touched) {
            assert_true(p.sparse);
            assert_false(p.overlap || p.shard || p.shm);
            assert_has(p.path_why, "only the columns of W_1 its rows touched");
        }
    }
    /* dense batches never */
    cfg_with(&c, &tc[0].set, 1);
    memset(&p, 0, sizeof p);
    plan_step(&p, &c, &at, &big);
    assert_false(p.touched || p.sparse);
}

/* A full-batch solver: the full batch in pieces of about 4 MiB of features (a group's rows
 * in the reproducible mode: the same pieces at any P), its iteration cap, and the step
 * stage's reduction: no overlap, no sharding, double sums (exact ones when reproducible). */
static void test_plan_solver(void **state)
{
    (void)state;
    const PlanModelFacts big = {.buckets = 3, .smallest = 4u << 20};
    static const struct {
        const char *sets[3];
        size_t n_sets;
        int P;
        size_t G, pieces, rows;
        int64_t epochs;
        bool wide, shm;
        const char *epochs_why;
    } cases[] = {
        /* 1000 features: 1048 rows per piece; 100000 rows over 2 ranks: 48 pieces of 1042;
         * the double sums through the node's shared memory as auto decides for SGD */
        {{"optim.optimizer=lbfgs"}, 1, 2, 0, 48, 1042, 1000000, true, true,
         "train.epochs not set"},
        {{"optim.optimizer=newton", "train.epochs=30"}, 2, 4, 0, 24, 1042, 30, true, true,
         "train.epochs = 30"},
        {{"optim.optimizer=newton", "comm.allreduce=mpi"}, 2, 4, 0, 24, 1042, 1000000, true,
         false, "not set"},
        {{"optim.optimizer=lbfgs", "train.accumulate=3"}, 2, 2, 0, 3, 16667, 1000000, true,
         true, "not set"},
        /* reproducible: 8 groups of 12500 rows, 12 pieces each, at any P; the exact sums
         * through the node's shared memory as for SGD */
        {{"optim.optimizer=lbfgs", "train.reproducible=true"}, 2, 1, 8, 12, 1042, 1000000, false,
         false, "not set"},
        {{"optim.optimizer=lbfgs", "train.reproducible=true"}, 2, 4, 8, 12, 1042, 1000000, false,
         true, "not set"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, cases[i].sets, cases[i].n_sets);
        PlanFacts f = facts(100000, cases[i].P);
        f.d = 1000;
        f.at = placed(cases[i].P, 1, 8, false);
        Plan p;
        char err[512];
        assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
        plan_step(&p, &c, &f.at, &big);
        if (!p.solver || p.global_batch != 0 || p.G != cases[i].G || p.pieces != cases[i].pieces ||
            p.solver_rows != cases[i].rows || p.epochs != cases[i].epochs ||
            p.wide != cases[i].wide || p.shard || p.overlap || p.shm != cases[i].shm)
            fail_msg("case %zu: batch %zu G %zu pieces %zu rows %zu epochs %lld wide %d shard %d "
                     "overlap %d shm %d", i, p.global_batch, p.G, p.pieces, p.solver_rows,
                     (long long)p.epochs, p.wide, p.shard, p.overlap, p.shm);
        assert_has(p.epochs_why, cases[i].epochs_why);
        assert_has(p.shard_why, "off for a full-batch solver");
        assert_has(p.overlap_why, "once per pass");
        if (p.wide) assert_has(p.path_why, "in double");
        if (p.wide) assert_has(p.path_why, p.shm ? "a CPU per rank" : "comm.allreduce = mpi");
        assert_false(p.early_stop); /* off unless given: patience stops short of the optimum */
        assert_has(p.early_stop_why, "stops at its tolerances");
        assert_has(p.lr_why, "chooses every step"); /* no learning rate to make auto */
    }
    const char *es[] = {"optim.optimizer=newton", "data.val=v.h5:/val",
                        "early_stopping.monitor=val_loss"};
    Config ce;
    cfg_with(&ce, es, 3);
    PlanFacts fe = facts(1000, 1);
    Plan pe;
    char erre[512];
    assert_int_equal(plan_data(&pe, &ce, &fe, erre, sizeof erre), XT_OK);
    assert_true(pe.solver && pe.early_stop);
    /* CSR rows are pieced by their non-zeros, not by D: 60000 rows of 15 non-zeros and
     * 100000 features over 2 ranks make one piece of 30000 rows per rank (by D it would be
     * the minimum, 256 rows, and 118 pieces) */
    const char *lb[] = {"optim.optimizer=lbfgs"};
    cfg_with(&ce, lb, 1);
    fe = facts(60000, 2);
    fe.d = 100000;
    fe.x_csr = true;
    fe.x_nnz = 900000;
    assert_int_equal(plan_data(&pe, &ce, &fe, erre, sizeof erre), XT_OK);
    assert_int_equal(pe.pieces, 1);
    assert_has(pe.solver_why, "CSR rows");
    fe.x_csr = false;
    assert_int_equal(plan_data(&pe, &ce, &fe, erre, sizeof erre), XT_OK);
    assert_int_equal(pe.pieces, 118);
    assert_false(pe.precond); /* lbfgs: never */
    /* newton's preconditioner: auto = on for CSR rows only; true and false as told */
    static const struct {
        const char *set;
        bool csr, on;
        const char *why;
    } pc[] = {{NULL, true, true, "sparse (CSR) rows"},
              {NULL, false, false, "dense rows"},
              {"optim.precondition=true", false, true, "optim.precondition = true"},
              {"optim.precondition=false", true, false, "optim.precondition = false"}};
    for (size_t i = 0; i < sizeof pc / sizeof *pc; i++) {
        const char *sets[2] = {"optim.optimizer=newton", pc[i].set};
        cfg_with(&ce, sets, pc[i].set ? 2 : 1);
        fe.x_csr = pc[i].csr;
        assert_int_equal(plan_data(&pe, &ce, &fe, erre, sizeof erre), XT_OK);
        if (pe.precond != pc[i].on) fail_msg("precondition case %zu: %d", i, pe.precond);
        assert_has(pe.precond_why, pc[i].why);
    }
    Config c; /* SGD keeps train.epochs and decides nothing of the solver's */
    cfg_with(&c, NULL, 0);
    PlanFacts f = facts(1000, 1);
    Plan p;
    char err[512];
    assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
    assert_false(p.solver);
    assert_int_equal(p.epochs, 200);
}

static void test_plan_optimiser_defaults(void **state)
{
    (void)state;
    static const struct {
        const char *sets[2];
        size_t n;
        double lr, momentum;
        const char *why;
    } cases[] = {
        {{NULL}, 0, 0.01, 0.9, "optim.lr and optim.momentum = auto: sgd's own"},
        {{"optim.optimizer=adam"}, 1, 0.001, 0.0, "optim.lr = auto: adam's own"},
        {{"optim.optimizer=adamw"}, 1, 0.001, 0.0, "adamw's own"},
        {{"optim.optimizer=lamb"}, 1, 0.001, 0.0, "lamb's own"},
        {{"optim.optimizer=lars"}, 1, 0.01, 0.9, "lars's own"},
        {{"optim.lr=0.3"}, 1, 0.3, 0.9, "optim.momentum = auto: sgd's own"},
        {{"optim.lr=0.3", "optim.momentum=0"}, 2, 0.3, 0.0, "as configured"},
        {{"optim.optimizer=adam", "optim.lr=0.01"}, 2, 0.01, 0.0, "as configured"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Config c;
        cfg_with(&c, cases[i].n ? cases[i].sets : NULL, cases[i].n);
        PlanFacts f = facts(100, 1);
        Plan p;
        char err[256];
        assert_int_equal(plan_data(&p, &c, &f, err, sizeof err), XT_OK);
        if (p.lr != cases[i].lr || p.momentum != cases[i].momentum)
            fail_msg("case %zu: lr %g momentum %g", i, p.lr, p.momentum);
        assert_has(p.lr_why, cases[i].why);
    }
}

static void test_plan_blas_and_rank_rows(void **state)
{
    (void)state;
    char why[128];
    assert_int_equal(plan_blas(false, 4, why, sizeof why), 1);
    assert_has(why, "one per rank");
    assert_int_equal(plan_blas(true, 4, why, sizeof why), 4);
    assert_has(why, "environment");
    size_t lo, hi;
    /* 10 rows, 4 shards (2, 3, 2, 3 rows), 3 ranks owning shards {0}, {1}, {2, 3} */
    assert_int_equal(plan_max_rank_rows(10, 4, 0, 3, &lo, &hi), 5);
    assert_int_equal(lo, 5);
    assert_int_equal(hi, 10);
    assert_int_equal(plan_max_rank_rows(10, 4, 0, 1, &lo, &hi), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_batches_and_groups),
        cmocka_unit_test(test_plan_shuffle_and_norm),
        cmocka_unit_test(test_plan_sparse),
        cmocka_unit_test(test_plan_stream),
        cmocka_unit_test(test_plan_step_decisions),
        cmocka_unit_test(test_plan_solver),
        cmocka_unit_test(test_plan_optimiser_defaults),
        cmocka_unit_test(test_plan_batch_auto),
        cmocka_unit_test(test_plan_blas_and_rank_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
