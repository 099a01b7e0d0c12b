/* solver: L-BFGS and trust-region Newton on functions whose minimum is known, through the
 * same callbacks the trainer gives them:
 *   - a quadratic (the minimiser solves a linear system; Newton's CG needs at most n products);
 *   - L2-regularised logistic regression in double against a direct Newton method with a
 *     Cholesky solve (the naive reference);
 *   - Rosenbrock's function (not convex; lbfgs only);
 *   - a domain outside which F is not finite (line search and trust region back off);
 *   - an objective quantised like a float sum (both end, saying so, instead of looping);
 *   - an evaluation interrupted mid-iteration leaves the state and the point as they were,
 *     and the run continues to the same bits as an uninterrupted one;
 *   - newton's diagonal preconditioner: the same optimum, fewer products on a badly scaled
 *     problem, its formula (solver_preconditioner), an interruption in its pass;
 *   - the checkpoint state's names and sizes; the penalty on the weights only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "solver.h"

#define NMAX 8

/* ---- test problems ------------------------------------------------------------------------ */

typedef struct {
    int which;        /* 0 quadratic, 1 logistic, 2 rosenbrock, 3 domain, 4 quantised */
    size_t n;
    float *point;     /* the solver's point */
    double A[NMAX][NMAX], c[NMAX];
    /* logistic: rows X (m, n-1) plus an intercept, labels y, penalty lambda on the weights */
    size_t m;
    double X[64][NMAX], y[64], lambda;
    int calls, interrupt_at; /* interrupt the evaluation number interrupt_at (1-based) */
    int hv_calls;
    bool use_diag;           /* newton gets a preconditioner (eval_diag) */
    int diag_calls[4], n_diag; /* the call numbers of the first preconditioner passes */
} Problem;

static double quad_f(const Problem *p, const double *x, double *g, double *h_v, const double *v)
{
    double f = 0.0;
    for (size_t i = 0; i < p->n; i++) {
        double ai = 0.0, av = 0.0;
        for (size_t j = 0; j < p->n; j++) {
            ai += p->A[i][j] * (x[j] - p->c[j]);
            if (v) av += p->A[i][j] * v[j];
        }
        f += 0.5 * (x[i] - p->c[i]) * ai;
        if (g) g[i] = ai;
        if (h_v) h_v[i] = av;
    }
    return f;
}

/* Mean logistic loss over m rows + lambda/2 ||w||^2 (x = w_1..w_{n-1}, b), gradient, and
 * Hessian times v when v is given. */
static double logistic_f(const Problem *p, const double *x, double *g, double *hv, const double *v)
{
    const size_t d = p->n - 1;
    double f = 0.0;
    if (g) memset(g, 0, p->n * sizeof *g);
    if (hv) memset(hv, 0, p->n * sizeof *hv);
    for (size_t i = 0; i < p->m; i++) {
        double z = x[d], u = v ? v[d] : 0.0;
        for (size_t j = 0; j < d; j++) {
            z += p->X[i][j] * x[j];
            if (v) u += p->X[i][j] * v[j];
        }
        double s = 1.0 / (1.0 + exp(-z));
        f += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - p->y[i] * z;
        for (size_t j = 0; j <= d; j++) {
            double xj = j < d ? p->X[i][j] : 1.0;
            if (g) g[j] += (s - p->y[i]) * xj / (double)p->m;
            if (hv) hv[j] += s * (1.0 - s) * u * xj / (double)p->m;
        }
    }
    f /= (double)p->m;
    for (size_t j = 0; j < d; j++) {
        f += 0.5 * p->lambda * x[j] * x[j];
        if (g) g[j] += p->lambda * x[j];
        if (hv) hv[j] += p->lambda * v[j];
    }
    return f;
}

static double rosen_f(const double *x, double *g)
{
    double a = 1.0 - x[0], b = x[1] - x[0] * x[0];
    g[0] = -2.0 * a - 400.0 * x[0] * b;
    g[1] = 200.0 * b;
    return a * a + 100.0 * b * b;
}

static SolverEval eval_fg(void *ctx, double *f, float *g, double aux[SOLVER_AUX])
{
    Problem *p = ctx;
    if (++p->calls == p->interrupt_at) return SOLVER_EVAL_INTERRUPTED;
    double x[NMAX] = {0}, gd[NMAX] = {0}; /* zeroed: gcc -O3 cannot see that n <= NMAX */
    for (size_t i = 0; i < p->n; i++) x[i] = (double)p->point[i];
    switch (p->which) {
    case 0: *f = quad_f(p, x, gd, NULL, NULL); break;
    case 1: *f = logistic_f(p, x, gd, NULL, NULL); break;
    case 2: *f = rosen_f(x, gd); break;
    case 3:
        for (size_t i = 0; i < p->n; i++)
            if (fabs(x[i]) > 2.0) return SOLVER_EVAL_NONFINITE;
        *f = quad_f(p, x, gd, NULL, NULL);
        break;
    default:
        *f = quad_f(p, x, gd, NULL, NULL);
        *f = round(*f * 1e4) / 1e4; /* an objective known to 1e-4 only */
    }
    for (size_t i = 0; i < p->n; i++) g[i] = (float)gd[i];
    aux[0] = *f;
    aux[1] = (double)p->calls;
    return SOLVER_EVAL_OK;
}

static SolverEval eval_hv(void *ctx, const float *v, float *hv)
{
    Problem *p = ctx;
    if (++p->calls == p->interrupt_at) return SOLVER_EVAL_INTERRUPTED;
    p->hv_calls++;
    double x[NMAX] = {0}, vd[NMAX] = {0}, h[NMAX] = {0};
    for (size_t i = 0; i < p->n; i++) {
        x[i] = (double)p->point[i];
        vd[i] = (double)v[i];
    }
    if (p->which == 1) logistic_f(p, x, NULL, h, vd);
    else quad_f(p, x, NULL, h, vd);
    for (size_t i = 0; i < p->n; i++) hv[i] = (float)h[i];
    return SOLVER_EVAL_OK;
}

/* newton's preconditioner: the quadratic's diagonal of A; the logistic's from its rows' sums
 * of s (1 - s) x_ij^2 through solver_preconditioner. */
static SolverEval eval_diag(void *ctx, float *m)
{
    Problem *p = ctx;
    if (++p->calls == p->interrupt_at) return SOLVER_EVAL_INTERRUPTED;
    if (p->n_diag < 4) p->diag_calls[p->n_diag++] = p->calls;
    if (p->which != 1) {
        for (size_t i = 0; i < p->n; i++) m[i] = (float)p->A[i][i];
        return SOLVER_EVAL_OK;
    }
    const size_t d = p->n - 1;
    float sums[NMAX] = {0};
    for (size_t i = 0; i < p->m; i++) {
        double z = (double)p->point[d];
        for (size_t j = 0; j < d; j++) z += p->X[i][j] * (double)p->point[j];
        double s = 1.0 / (1.0 + exp(-z));
        for (size_t j = 0; j <= d; j++) {
            double xj = j < d ? p->X[i][j] : 1.0;
            sums[j] += (float)(s * (1.0 - s) * xj * xj);
        }
    }
    SolverPenalty pen = {.lambda = p->lambda, .nseg = 1, .off = {0}, .len = {d}};
    solver_preconditioner(&pen, (double)p->m, sums, p->n, m);
    return SOLVER_EVAL_OK;
}

static SolverOps ops_of(Problem *p)
{
    return (SolverOps){.fg = eval_fg, .hv = eval_hv, .diag = p->use_diag ? eval_diag : NULL,
                       .ctx = p};
}

/* A = B B^T + 0.1 I with B from a fixed sequence: SPD, condition about 100; c = 0.3 i - 1. */
static void make_quadratic(Problem *p, size_t n, int which)
{
    memset(p, 0, sizeof *p);
    p->which = which;
    p->n = n;
    double B[NMAX][NMAX];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) B[i][j] = sin(1.0 + (double)(7 * i + 3 * j));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            double t = i == j ? 0.1 : 0.0;
            for (size_t k = 0; k < n; k++) t += B[i][k] * B[j][k];
            p->A[i][j] = t;
        }
        p->c[i] = 0.3 * (double)i - 1.0;
    }
}

static void make_logistic(Problem *p)
{
    memset(p, 0, sizeof *p);
    p->which = 1;
    p->n = 4; /* 3 weights + intercept */
    p->m = 40;
    p->lambda = 0.02;
    for (size_t i = 0; i < p->m; i++) {
        double t = (double)i;
        p->X[i][0] = sin(0.7 * t);
        p->X[i][1] = cos(1.3 * t + 0.5);
        p->X[i][2] = sin(0.31 * t * t);
        double z = 1.5 * p->X[i][0] - 2.0 * p->X[i][1] + 0.5 * p->X[i][2] + 0.3 + 0.8 * sin(5.1 * t);
        p->y[i] = z > 0 ? 1.0 : 0.0;
    }
}

/* The reference: Newton's method in double with a Cholesky solve, to machine precision. */
static void logistic_reference(Problem *p, double *x)
{
    const size_t n = p->n;
    memset(x, 0, n * sizeof *x);
    for (int it = 0; it < 50; it++) {
        double g[NMAX], H[NMAX][NMAX], e[NMAX] = {0};
        logistic_f(p, x, g, NULL, NULL);
        for (size_t j = 0; j < n; j++) { /* H column by column */
            memset(e, 0, sizeof e);
            e[j] = 1.0;
            double col[NMAX];
            logistic_f(p, x, NULL, col, e);
            for (size_t i = 0; i < n; i++) H[i][j] = col[i];
        }
        double L[NMAX][NMAX] = {{0}}, z[NMAX], step[NMAX];
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j <= i; j++) {
                double t = H[i][j];
                for (size_t k = 0; k < j; k++) t -= L[i][k] * L[j][k];
                L[i][j] = i == j ? sqrt(t) : t / L[j][j];
            }
        for (size_t i = 0; i < n; i++) {
            double t = -g[i];
            for (size_t k = 0; k < i; k++) t -= L[i][k] * z[k];
            z[i] = t / L[i][i];
        }
        for (size_t i = n; i-- > 0;) {
            double t = z[i];
            for (size_t k = i + 1; k < n; k++) t -= L[k][i] * step[k];
            step[i] = t / L[i][i];
        }
        for (size_t i = 0; i < n; i++) x[i] += step[i];
    }
}

/* Runs iterations until the status is not CONTINUE (at most `cap`); returns it. */
static SolverStatus run(Solver *s, Problem *p, int cap, int *iters)
{
    const SolverOps ops = ops_of(p);
    SolverStatus st = SOLVER_CONTINUE;
    int i = 0;
    while (st == SOLVER_CONTINUE && i < cap) {
        st = solver_iterate(s, &ops);
        i++;
    }
    if (iters) *iters = i;
    return st;
}

static void settings(SolverSettings *set, SolverKind kind, double tol)
{
    *set = (SolverSettings){.kind = kind, .history = 5, .tol = tol, .ftol = 0.0};
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_solver_quadratic(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        Problem p;
        make_quadratic(&p, 6, 0);
        float x[NMAX] = {0};
        p.point = x;
        SolverSettings set;
        settings(&set, k ? SOLVER_NEWTON : SOLVER_LBFGS, 1e-5);
        Solver s;
        assert_int_equal(solver_init(&s, &set, p.n, x), XT_OK);
        int iters;
        SolverStatus st = run(&s, &p, 200, &iters);
        assert_int_equal(st, SOLVER_CONVERGED_G);
        double worst = 0.0;
        for (size_t i = 0; i < p.n; i++) worst = fmax(worst, fabs((double)x[i] - p.c[i]));
        if (worst > 1e-3) fail_msg("%s: |x - x*| = %g after %d iterations", k ? "newton" : "lbfgs",
                                   worst, iters);
        assert_true(solver_grad_norm(&s) <= 1e-5);
        printf("  %s: %d iterations, %d evaluations\n", k ? "newton" : "lbfgs", iters, p.calls);
        if (k) assert_true(iters <= 4); /* Newton on a quadratic: CG is exact in n products */
        else assert_true(iters <= 15 && p.calls <= 20); /* one evaluation per step, mostly */
        solver_free(&s);
    }
}

static void test_solver_logistic_matches_reference(void **state)
{
    (void)state;
    Problem p;
    make_logistic(&p);
    double ref[NMAX];
    logistic_reference(&p, ref);
    static const char *name[3] = {"lbfgs", "newton", "newton, preconditioned"};
    for (int k = 0; k < 3; k++) {
        make_logistic(&p);
        p.use_diag = k == 2;
        float x[NMAX] = {0};
        p.point = x;
        SolverSettings set;
        settings(&set, k ? SOLVER_NEWTON : SOLVER_LBFGS, 1e-7);
        Solver s;
        assert_int_equal(solver_init(&s, &set, p.n, x), XT_OK);
        int iters;
        SolverStatus st = run(&s, &p, 500, &iters);
        assert_true(st == SOLVER_CONVERGED_G || st == SOLVER_STALLED);
        double worst = 0.0, scale = 0.0;
        for (size_t i = 0; i < p.n; i++) {
            worst = fmax(worst, fabs((double)x[i] - ref[i]));
            scale = fmax(scale, fabs(ref[i]));
        }
        if (worst > 1e-5 * scale)
            fail_msg("%s: max |x - x*| = %g (|x*| %g) after %d iterations", name[k], worst,
                     scale, iters);
        double fr = logistic_f(&p, ref, NULL, NULL, NULL);
        assert_true(fabs(s.f - fr) <= 1e-9 * fabs(fr));
        printf("  %s: %d iterations, %d evaluations\n", name[k], iters, p.calls);
        if (k) assert_true(iters <= 15 && p.hv_calls > 0);
        else assert_true(p.calls <= 20);
        solver_free(&s);
    }
}

static void test_solver_rosenbrock(void **state)
{
    (void)state;
    Problem p = {.which = 2, .n = 2};
    float x[2] = {-1.2f, 1.0f};
    p.point = x;
    SolverSettings set;
    settings(&set, SOLVER_LBFGS, 1e-5);
    Solver s;
    assert_int_equal(solver_init(&s, &set, 2, x), XT_OK);
    int iters;
    SolverStatus st = run(&s, &p, 500, &iters);
    assert_true(st == SOLVER_CONVERGED_G || st == SOLVER_STALLED);
    if (fabs(x[0] - 1.0f) > 1e-3f || fabs(x[1] - 1.0f) > 1e-3f)
        fail_msg("rosenbrock: (%g, %g) after %d iterations", (double)x[0], (double)x[1], iters);
    solver_free(&s);
}

/* F is NaN outside |x_j| <= 2; the minimum (c) lies inside, the first steps go outside. */
static void test_solver_backs_off_nonfinite(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        Problem p;
        make_quadratic(&p, 3, 3);
        for (size_t i = 0; i < 3; i++) {
            p.c[i] = 1.5;
            for (size_t j = 0; j < 3; j++) p.A[i][j] *= 50.0; /* steep: a long first step */
        }
        float x[NMAX] = {-1.9f, -1.9f, -1.9f};
        p.point = x;
        SolverSettings set;
        settings(&set, k ? SOLVER_NEWTON : SOLVER_LBFGS, 1e-4);
        Solver s;
        assert_int_equal(solver_init(&s, &set, 3, x), XT_OK);
        SolverStatus st = run(&s, &p, 300, NULL);
        assert_true(st == SOLVER_CONVERGED_G || st == SOLVER_STALLED);
        for (size_t i = 0; i < 3; i++) assert_true(fabs(x[i] - 1.5f) < 1e-3f);
        solver_free(&s);
    }
}

/* An objective known to 1e-4 only: with tol = ftol = 0 both must still end, saying why. */
static void test_solver_ends_at_working_precision(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        Problem p;
        make_quadratic(&p, 5, 4);
        float x[NMAX] = {0};
        p.point = x;
        SolverSettings set;
        settings(&set, k ? SOLVER_NEWTON : SOLVER_LBFGS, 0.0);
        Solver s;
        assert_int_equal(solver_init(&s, &set, p.n, x), XT_OK);
        int iters;
        SolverStatus st = run(&s, &p, 2000, &iters);
        if (st == SOLVER_CONTINUE) fail_msg("%s did not end in %d iterations", k ? "newton" : "lbfgs",
                                            iters);
        assert_true(st == SOLVER_STALLED || st == SOLVER_CONVERGED_F);
        solver_free(&s);
    }
}

/* Bytes of the state a checkpoint would hold, plus the point. */
static size_t snapshot(Solver *s, unsigned char *buf)
{
    StateList l;
    solver_state(s, &l);
    size_t used = 0;
    for (size_t i = 0; i < l.n_arrays; i++) {
        memcpy(buf + used, l.arrays[i].data, l.arrays[i].n * sizeof(float));
        used += l.arrays[i].n * sizeof(float);
    }
    for (size_t i = 0; i < l.n_scalars; i++) {
        memcpy(buf + used, l.scalars[i].value, 8);
        used += 8;
    }
    memcpy(buf + used, s->point, s->n * sizeof(float));
    return used + s->n * sizeof(float);
}

static void test_solver_interrupt_repeats_the_iteration(void **state)
{
    (void)state;
    /* lbfgs, newton, preconditioned newton interrupted in its second iteration's
     * preconditioner pass (at = 0), in the product after it (at = -1) and at evaluation 6 */
    static const int kind[5] = {0, 1, 2, 2, 2}, at[5] = {6, 6, 0, -1, 6};
    for (int c = 0; c < 5; c++) {
        const int k = kind[c];
        /* the uninterrupted run */
        Problem p;
        make_logistic(&p);
        p.use_diag = k == 2;
        float xa[NMAX] = {0}, xb[NMAX] = {0};
        p.point = xa;
        SolverSettings set;
        settings(&set, k ? SOLVER_NEWTON : SOLVER_LBFGS, 1e-7);
        Solver a, b;
        assert_int_equal(solver_init(&a, &set, p.n, xa), XT_OK);
        int ia;
        run(&a, &p, 500, &ia);
        int calls_a = p.calls, second_diag = p.diag_calls[1];
        if (k == 2) assert_true(p.n_diag >= 2);
        /* the same with evaluation at[c] interrupted */
        make_logistic(&p);
        p.use_diag = k == 2;
        p.point = xb;
        p.interrupt_at = at[c] > 0 ? at[c] : second_diag - at[c];
        assert_int_equal(solver_init(&b, &set, p.n, xb), XT_OK);
        const SolverOps ops = ops_of(&p);
        static unsigned char before[1 << 14], after[1 << 14];
        SolverStatus st = SOLVER_CONTINUE;
        int iters = 0;
        while (st == SOLVER_CONTINUE) {
            size_t nb = snapshot(&b, before);
            int calls0 = p.calls;
            st = solver_iterate(&b, &ops);
            if (st == SOLVER_INTERRUPTED) {
                assert_int_equal(snapshot(&b, after), nb);
                assert_memory_equal(before, after, nb); /* nothing of it stayed */
                p.calls = calls0;                       /* the resumed run's count */
                p.interrupt_at = 0;
                st = SOLVER_CONTINUE;
                continue;
            }
            iters++;
        }
        assert_int_equal(iters, ia);
        assert_int_equal(p.calls, calls_a);
        assert_memory_equal(xa, xb, sizeof xa); /* the same bits */
        solver_free(&a);
        solver_free(&b);
    }
}

/* The two-loop recursion's estimate satisfies the secant condition H y = s for the newest
 * pair, after every iteration of a run. */
static void test_solver_lbfgs_secant(void **state)
{
    (void)state;
    Problem p;
    make_logistic(&p);
    float x[NMAX] = {0};
    p.point = x;
    SolverSettings set;
    settings(&set, SOLVER_LBFGS, 1e-7);
    set.history = 3;
    Solver s;
    assert_int_equal(solver_init(&s, &set, p.n, x), XT_OK);
    const SolverOps ops = {.fg = eval_fg, .hv = eval_hv, .ctx = &p};
    int checked = 0;
    for (int it = 0; it < 8; it++) {
        if (solver_iterate(&s, &ops) != SOLVER_CONTINUE) break;
        if (s.count == 0) continue;
        size_t slot = (size_t)((s.head - 1 + 3) % 3);
        double hy[NMAX], worst = 0.0, scale = 0.0;
        solver_lbfgs_apply(&s, s.Y + slot * p.n, hy);
        for (size_t i = 0; i < p.n; i++) {
            worst = fmax(worst, fabs(hy[i] - (double)s.S[slot * p.n + i]));
            scale = fmax(scale, fabs((double)s.S[slot * p.n + i]));
        }
        if (worst > 1e-9 * scale) fail_msg("iteration %d: |H y - s| = %g (|s| %g)", it, worst, scale);
        checked++;
    }
    assert_true(checked >= 4);
    solver_free(&s);
}

static void test_solver_state_lists(void **state)
{
    (void)state;
    float x[3] = {0};
    SolverSettings set;
    settings(&set, SOLVER_LBFGS, 1e-6);
    set.history = 7;
    Solver s;
    assert_int_equal(solver_init(&s, &set, 3, x), XT_OK);
    StateList l;
    solver_state(&s, &l);
    assert_string_equal(l.kind, "lbfgs");
    assert_int_equal(l.n_arrays, 3);
    assert_string_equal(l.arrays[1].name, "s");
    assert_int_equal(l.arrays[1].n, 21);
    assert_int_equal(l.arrays[2].n, 21);
    assert_int_equal(l.n_scalars, 8);
    solver_free(&s);
    settings(&set, SOLVER_NEWTON, 1e-6);
    assert_int_equal(solver_init(&s, &set, 3, x), XT_OK);
    solver_state(&s, &l);
    assert_string_equal(l.kind, "newton");
    assert_int_equal(l.n_arrays, 2);
    assert_string_equal(l.arrays[1].name, "precond");
    assert_int_equal(l.arrays[1].n, 3);
    assert_string_equal(l.scalars[l.n_scalars - 1].name, "precond_have");
    solver_free(&s);
}

static void test_solver_penalty_on_weights_only(void **state)
{
    (void)state;
    SolverPenalty p = {.lambda = 0.5, .nseg = 2, .off = {0, 4}, .len = {2, 1}};
    const float x[5] = {1.0f, -2.0f, 3.0f, 4.0f, 2.0f}, sums[5] = {4.0f, 8.0f, -4.0f, 2.0f, 0.0f};
    float g[5];
    double pen = solver_objective_grad(&p, 4.0, x, sums, 5, g);
    assert_true(pen == 0.25 * (1.0 + 4.0 + 4.0));
    const float want[5] = {1.5f, 1.0f, -1.0f, 0.5f, 1.0f};
    for (int i = 0; i < 5; i++)
        if (g[i] != want[i]) fail_msg("g[%d] = %g, want %g", i, (double)g[i], (double)want[i]);
}

/* A quadratic whose variables' scales span six decades: with its diagonal as preconditioner
 * newton reaches the same minimiser with fewer Hessian-vector products. */
static void test_solver_preconditioner_cuts_products(void **state)
{
    (void)state;
    int products[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        Problem p;
        make_quadratic(&p, 6, 0);
        for (size_t i = 0; i < p.n; i++)
            for (size_t j = 0; j < p.n; j++) p.A[i][j] *= pow(10.0, 0.6 * (double)(i + j));
        p.use_diag = k == 1;
        float x[NMAX] = {0};
        p.point = x;
        SolverSettings set;
        settings(&set, SOLVER_NEWTON, 1e-5);
        Solver s;
        assert_int_equal(solver_init(&s, &set, p.n, x), XT_OK);
        SolverStatus st = run(&s, &p, 500, NULL);
        assert_true(st == SOLVER_CONVERGED_G || st == SOLVER_STALLED);
        for (size_t i = 0; i < p.n; i++)
            if (fabs((double)x[i] - p.c[i]) > 1e-3)
                fail_msg("%s: x[%zu] = %g, want %g", k ? "preconditioned" : "plain", i,
                         (double)x[i], p.c[i]);
        products[k] = p.hv_calls;
        solver_free(&s);
    }
    printf("  products: %d plain, %d preconditioned\n", products[0], products[1]);
    assert_true(products[1] < products[0]);
}

/* M = 0.99 lambda + 0.01 H_jj, H_jj = sums / weight (+ lambda on the weights); positive. */
static void test_solver_preconditioner_formula(void **state)
{
    (void)state;
    SolverPenalty p = {.lambda = 0.5, .nseg = 1, .off = {0}, .len = {2}};
    const float sums[3] = {4.0f, 0.0f, 8.0f};
    float m[3];
    solver_preconditioner(&p, 4.0, sums, 3, m);
    const double want[3] = {0.99 * 0.5 + 0.01 * 1.5, 0.99 * 0.5 + 0.01 * 0.5,
                            0.99 * 0.5 + 0.01 * 2.0};
    for (int i = 0; i < 3; i++)
        if (fabs((double)m[i] - want[i]) > 1e-7)
            fail_msg("m[%d] = %.9g, want %.9g", i, (double)m[i], want[i]);
    p.lambda = 0.0; /* no penalty and no curvature: still positive */
    const float none[3] = {0.0f, 0.0f, 0.0f};
    solver_preconditioner(&p, 4.0, none, 3, m);
    for (int i = 0; i < 3; i++) assert_true(m[i] > 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_solver_quadratic),
        cmocka_unit_test(test_solver_logistic_matches_reference),
        cmocka_unit_test(test_solver_rosenbrock),
        cmocka_unit_test(test_solver_backs_off_nonfinite),
        cmocka_unit_test(test_solver_ends_at_working_precision),
        cmocka_unit_test(test_solver_interrupt_repeats_the_iteration),
        cmocka_unit_test(test_solver_lbfgs_secant),
        cmocka_unit_test(test_solver_state_lists),
        cmocka_unit_test(test_solver_penalty_on_weights_only),
        cmocka_unit_test(test_solver_preconditioner_cuts_products),
        cmocka_unit_test(test_solver_preconditioner_formula),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
