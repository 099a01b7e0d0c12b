/* solver: L-BFGS with a strong-Wolfe line search, and trust-region Newton with conjugate
 * gradient (see solver.h). Every sum here runs in double in index order, so the same
 * inputs give the same bits; nothing else (no rank, no time) enters a decision. */
#include "solver.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Strong Wolfe conditions: sufficient decrease and curvature (N&W 3.7). */
#define WOLFE_C1 1e-4
#define WOLFE_C2 0.9
/* A trial step that still descends steeply grows by this factor. */
#define EXTRAPOLATE 4.0
/* Interpolated steps stay this fraction of the bracket away from its ends. */
#define BRACKET_GUARD 0.1
/* The objective is known to its working precision only (float32 logits: about 1e-9
 * relative); near the optimum F barely changes and decisions rest on derivatives, which stay
 * accurate. Values within F_EPS max(|F|, 1) of F(x_k) count as not higher (Hager & Zhang,
 * "A new conjugate gradient method with guaranteed descent and an efficient line search",
 * SIAM J. Optim. 2005: their approximate Wolfe conditions; their epsilon is 1e-6, meant for
 * any objective: ours is 10 times its known precision, as 1e-6 let lbfgs accept rises of F
 * far above the distance left to the optimum). */
#define F_EPS 1e-8
/* A pair (s, y) is kept only when s.y > this times y.y (curvature, with rounding). */
#define CURVATURE_EPS 1e-10
/* CG stops when ||r||_{M^-1} <= CG_TOL ||g||_{M^-1} (LIBLINEAR's eps_cg; with M = I the
 * plain residual rule). Nash & Sofer's rule on the quadratic model (LIBLINEAR's since 2.40)
 * was tried: as many or more passes on every benchmark set here (docs/solvers.md). */
#define CG_TOL 0.1
/* The preconditioner mixes the penalty's curvature and H's diagonal (LIBLINEAR's alpha_pcg;
 * Hsia, Chiang & Lin, ACML 2018). */
#define PCG_MIX 0.01
/* Trust-region acceptance and radius rule (Lin & More 1999; LIBLINEAR's TRON). */
#define TR_ETA0 1e-4
#define TR_ETA1 0.25
#define TR_ETA2 0.75
#define TR_SIGMA1 0.25
#define TR_SIGMA2 0.5
#define TR_SIGMA3 4.0

/* ---- small vector helpers (double accumulation, index order) --------------------------- */

static double dot_ff(const float *a, const float *b, size_t n)
{
    double t = 0.0;
    for (size_t i = 0; i < n; i++) t += (double)a[i] * (double)b[i];
    return t;
}

static double dot_fd(const float *a, const double *b, size_t n)
{
    double t = 0.0;
    for (size_t i = 0; i < n; i++) t += (double)a[i] * b[i];
    return t;
}

static double dot_dd(const double *a, const double *b, size_t n)
{
    double t = 0.0;
    for (size_t i = 0; i < n; i++) t += a[i] * b[i];
    return t;
}

static double norm_inf(const float *a, size_t n)
{
    float m = 0.0f; /* a comparison, not fmax(): that is a libm call per element at -O2 */
    for (size_t i = 0; i < n; i++) {
        float v = fabsf(a[i]);
        if (v > m) m = v; /* a NaN never compares greater: skipped, as fmax skips it */
    }
    return (double)m;
}

static void swap_f(float **a, float **b)
{
    float *t = *a;
    *a = *b;
    *b = t;
}

/* point = x + a d, rounded to float. */
static void set_point(Solver *s, const double *d, double a)
{
    for (size_t i = 0; i < s->n; i++) s->point[i] = (float)((double)s->x[i] + a * d[i]);
}

/* point = x + s, rounded to float (newton's step). */
static void set_point_f(Solver *s, const float *step)
{
    for (size_t i = 0; i < s->n; i++) s->point[i] = (float)((double)s->x[i] + (double)step[i]);
}

static void restore_point(Solver *s) { memcpy(s->point, s->x, s->n * sizeof *s->point); }

/* ---- set-up ------------------------------------------------------------------------------ */

Status solver_init(Solver *s, const SolverSettings *set, size_t n, float *point)
{
    XT_ASSERT(n > 0 && point && (set->kind == SOLVER_NEWTON || set->history >= 1));
    *s = (Solver){.set = *set, .n = n, .point = point, .f = NAN};
    /* each method's own vectors only (at 6 million parameters each float vector is 24 MB) */
    const bool lbfgs = set->kind == SOLVER_LBFGS;
    float **fl[] = {&s->g, &s->g_new, &s->x, lbfgs ? &s->g_lo : &s->vf, lbfgs ? NULL : &s->hvf,
                    lbfgs ? NULL : &s->m, lbfgs ? NULL : &s->q, lbfgs ? NULL : &s->r};
    double **dl[] = {lbfgs ? &s->d : NULL};
    bool ok = true;
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++)
        if (fl[i]) ok = (*fl[i] = calloc(n, sizeof(float))) && ok;
    for (size_t i = 0; i < sizeof dl / sizeof *dl; i++)
        if (dl[i]) ok = (*dl[i] = calloc(n, sizeof(double))) && ok;
    if (lbfgs) {
        size_t m = set->history;
        ok = (s->S = calloc(m * n, sizeof(float))) && ok;
        ok = (s->Y = calloc(m * n, sizeof(float))) && ok;
        ok = (s->alpha = calloc(2 * m, sizeof(double))) && ok;
    }
    if (!ok) {
        solver_free(s);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

void solver_free(Solver *s)
{
    float *fl[] = {s->g, s->g_new, s->g_lo, s->x, s->vf, s->hvf, s->m, s->q, s->r, s->S, s->Y};
    double *dl[] = {s->d, s->alpha};
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) free(fl[i]);
    for (size_t i = 0; i < sizeof dl / sizeof *dl; i++) free(dl[i]);
    SolverSettings keep = s->set;
    *s = (Solver){.set = keep};
}

double solver_grad_norm(const Solver *s) { return s->have ? norm_inf(s->g, s->n) : NAN; }

/* The convergence tests at x_k after an iteration that moved from F = f_old; the record
 * ||g||^2 updated. */
static SolverStatus converged(Solver *s, double f_old)
{
    s->gg_best = fmin(s->gg_best, dot_ff(s->g, s->g, s->n));
    if (norm_inf(s->g, s->n) <= s->set.tol) return SOLVER_CONVERGED_G;
    double scale = fmax(fmax(fabs(f_old), fabs(s->f)), 1.0);
    /* a flat step may raise F within its precision: that is no convergence (its ||g|| set a
     * record, see acceptable) */
    double dec = f_old - s->f;
    if (s->set.ftol > 0.0 && dec >= 0.0 && dec <= s->set.ftol * scale) return SOLVER_CONVERGED_F;
    return SOLVER_CONTINUE;
}

/* ---- L-BFGS ------------------------------------------------------------------------------ */

/* Slot of the k-th newest pair (k = 0: the newest). */
static size_t pair_slot(const Solver *s, int64_t k)
{
    int64_t m = (int64_t)s->set.history;
    return (size_t)(((s->head - 1 - k) % m + m) % m);
}

/* One pass of the first loop (newest to oldest pair): q = v (yp == NULL) or q -= ap yp (the
 * previous pair's update), and on the way sk.q, yk.sk and yk.yk (sk == NULL: none) with the
 * same products in the same order as separate passes would: the same bits in half the
 * memory traffic. */
static void two_loop_down(double *q, size_t n, const float *v, const float *yp, double ap,
                          const float *sk, const float *yk, double dots[3])
{
    double sq = 0.0, ys = 0.0, yy = 0.0;
    for (size_t i = 0; i < n; i++) {
        double qi = yp ? q[i] - ap * (double)yp[i] : (double)v[i];
        q[i] = qi;
        if (!sk) continue;
        sq += (double)sk[i] * qi;
        ys += (double)yk[i] * (double)sk[i];
        yy += (double)yk[i] * (double)yk[i];
    }
    dots[0] = sq, dots[1] = ys, dots[2] = yy;
}

/* One pass of the second loop (oldest to newest): q *= gamma (sp == NULL) or q += sp (ap -
 * bp) (the previous pair's update), and yk.q on the way (yk == NULL: none). */
static double two_loop_up(double *q, size_t n, double gamma, const float *sp, double ab,
                          const float *yk)
{
    double yq = 0.0;
    for (size_t i = 0; i < n; i++) {
        double qi = sp ? q[i] + (double)sp[i] * ab : q[i] * gamma;
        q[i] = qi;
        if (yk) yq += (double)yk[i] * qi;
    }
    return yq;
}

void solver_lbfgs_apply(Solver *s, const float *v, double *out)
{
    const size_t n = s->n;
    const int64_t c = s->count;
    double *q = out, *rho = s->alpha + s->set.history, gamma = 1.0;
#define PAIR(M, k) (s->M + pair_slot(s, k) * n)
    for (int64_t k = 0; k <= c; k++) { /* newest to oldest, then the last update */
        double d[3];
        two_loop_down(q, n, v, k > 0 ? PAIR(Y, k - 1) : NULL, k > 0 ? s->alpha[k - 1] : 0.0,
                      k < c ? PAIR(S, k) : NULL, k < c ? PAIR(Y, k) : NULL, d);
        if (k == c) break;
        rho[k] = 1.0 / d[1];
        s->alpha[k] = rho[k] * d[0];
        if (k == 0) gamma = d[1] / d[2];
    }
    double b = 0.0;
    for (int64_t k = c - 1; k >= -1; k--) { /* oldest to newest, then the last update */
        const float *sp = k + 1 < c ? PAIR(S, k + 1) : NULL;
        double yq = two_loop_up(q, n, gamma, sp, sp ? s->alpha[k + 1] - b : 0.0,
                                k >= 0 ? PAIR(Y, k) : NULL);
        if (k >= 0) b = rho[k] * yq;
    }
#undef PAIR
}

/* d = -H g. */
static void lbfgs_direction(Solver *s)
{
    solver_lbfgs_apply(s, s->g, s->d);
    for (size_t i = 0; i < s->n; i++) s->d[i] = -s->d[i];
}

/* One point on the search line: step a, F, the directional derivative g.d; moved: the
 * point differs from x_k (a step below the floats' resolution does not). */
typedef struct {
    double a, f, dg, gg; /* gg = ||g||^2 at the point */
    double aux[SOLVER_AUX];
    bool finite, moved;
} Trial;

/* Evaluates at x + a d into t (its gradient in g_new). Returns false when interrupted. */
static bool evaluate(Solver *s, const SolverOps *ops, double a, Trial *t)
{
    set_point(s, s->d, a);
    *t = (Trial){.a = a};
    for (size_t i = 0; i < s->n && !t->moved; i++) t->moved = s->point[i] != s->x[i];
    SolverEval e = ops->fg(ops->ctx, &t->f, s->g_new, t->aux);
    s->evals++;
    if (e == SOLVER_EVAL_INTERRUPTED) return false;
    t->finite = e == SOLVER_EVAL_OK && isfinite(t->f);
    if (t->finite) {
        t->dg = dot_fd(s->g_new, s->d, s->n);
        t->gg = dot_ff(s->g_new, s->g_new, s->n);
    } else {
        t->f = INFINITY;
    }
    return true;
}

/* A step inside the bracket [lo, hi] (lo < hi): where the slope's secant crosses zero when
 * the slopes bracket one (exact for a quadratic), else the minimiser of the cubic through
 * both ends' values and slopes; kept BRACKET_GUARD of the bracket away from its ends, else
 * the middle. */
static double interpolate(const Trial *lo, const Trial *hi)
{
    double a = lo->a, b = hi->a, w = b - a, t = NAN;
    if (hi->finite && lo->dg < 0.0 && hi->dg >= 0.0) {
        t = a - lo->dg * w / (hi->dg - lo->dg);
    } else if (hi->finite) {
        double d1 = lo->dg + hi->dg - 3.0 * (lo->f - hi->f) / (a - b);
        double disc = d1 * d1 - lo->dg * hi->dg;
        if (disc >= 0.0) {
            double d2 = sqrt(disc);
            t = b - w * (hi->dg + d2 - d1) / (hi->dg - lo->dg + 2.0 * d2);
        }
    }
    return isfinite(t) && t >= a + BRACKET_GUARD * w && t <= b - BRACKET_GUARD * w ? t
                                                                                  : a + 0.5 * w;
}

/* Whether a step ends the search: the strong Wolfe conditions, or the approximate ones of
 * Hager & Zhang for an objective flat to its precision (the curvature condition with F no
 * higher than F(x_k) + eps; for a quadratic the curvature condition alone implies a
 * decrease). Where F is flat to its precision it no longer tells better from worse, so a
 * step accepted on the approximate conditions must also lower ||g||^2 below the lowest of
 * any iterate so far (gg_best): without that the iterates wander, or cycle, at the level of
 * F's rounding and never settle; with it a step either lowers F for real or sets a record,
 * so no point repeats. */
static bool acceptable(const Trial *t, double f0, double dg0, double gg_best, double eps)
{
    if (!t->finite || fabs(t->dg) > -WOLFE_C2 * dg0) return false;
    return t->f <= f0 + WOLFE_C1 * t->a * dg0 || (t->f <= f0 + eps && t->gg < gg_best);
}

/* Shrinks the bracket [lo, hi] (lo.a < hi.a; lo descends with F <= F(x_k) + eps and its
 * gradient in g_lo unless lo.a == 0; hi has a slope >= 0 or a higher F) until a step is
 * acceptable (Hager & Zhang's update rules U1-U3, with one evaluation per step). Returns 1
 * with the step in *out (gradient in g_lo), 0 when the evaluations ran out (or the step no
 * longer moves the point) without a lower F than F(x_k), -1 when interrupted. */
static int zoom(Solver *s, const SolverOps *ops, double dg0, double eps, Trial lo, Trial hi,
                int used, Trial *out)
{
    const double f0 = s->f;
    while (used < SOLVER_MAX_LS) {
        Trial t;
        if (!evaluate(s, ops, interpolate(&lo, &hi), &t)) return -1;
        used++;
        if (!t.moved) break;
        if (acceptable(&t, f0, dg0, s->gg_best, eps)) {
            swap_f(&s->g_new, &s->g_lo);
            *out = t;
            return 1;
        }
        if (!t.finite || t.dg >= 0.0 || t.f > f0 + eps) {
            hi = t;
        } else {
            swap_f(&s->g_new, &s->g_lo);
            lo = t;
        }
    }
    if (lo.a > 0.0 && lo.f < f0) { /* a decrease without the curvature condition */
        *out = lo;
        return 1;
    }
    return 0;
}

/* From step a1 along d (dg0 = g.d < 0): steps grow by EXTRAPOLATE while they descend, then
 * zoom (N&W Algorithm 3.5 with zoom's rules above). As zoom for the result. */
static int line_search(Solver *s, const SolverOps *ops, double dg0, double a1, Trial *out)
{
    const double f0 = s->f, eps = F_EPS * fmax(fabs(f0), 1.0);
    Trial prev = {.a = 0.0, .f = f0, .dg = dg0, .finite = true}, cur;
    memcpy(prev.aux, s->aux, sizeof prev.aux);
    double a = a1;
    for (int i = 1; i <= SOLVER_MAX_LS; i++, a *= EXTRAPOLATE) {
        if (!evaluate(s, ops, a, &cur)) return -1;
        if (!cur.moved) break;
        if (acceptable(&cur, f0, dg0, s->gg_best, eps)) {
            swap_f(&s->g_new, &s->g_lo);
            *out = cur;
            return 1;
        }
        if (!cur.finite || cur.dg >= 0.0 || cur.f > f0 + eps)
            return zoom(s, ops, dg0, eps, prev, cur, i, out);
        swap_f(&s->g_new, &s->g_lo); /* cur becomes the low end */
        prev = cur;
    }
    if (prev.a > 0.0 && prev.f < f0) { /* still descending after every evaluation */
        *out = prev;
        return 1;
    }
    return 0;
}

/* The accepted step: the pair (s, y) into the history (after clearing it when reset), then
 * x_k+1, F, g. */
static SolverStatus lbfgs_accept(Solver *s, const Trial *t, bool reset)
{
    const size_t n = s->n;
    set_point(s, s->d, t->a);
    if (reset) s->count = s->head = 0;
    size_t slot = (size_t)s->head;
    float *sk = s->S + slot * n, *yk = s->Y + slot * n;
    for (size_t i = 0; i < n; i++) {
        sk[i] = (float)((double)s->point[i] - (double)s->x[i]);
        yk[i] = (float)((double)s->g_lo[i] - (double)s->g[i]);
    }
    double sy = dot_ff(sk, yk, n), yy = dot_ff(yk, yk, n);
    if (yy > 0.0 && sy > CURVATURE_EPS * yy) {
        s->head = (s->head + 1) % (int64_t)s->set.history;
        if (s->count < (int64_t)s->set.history) s->count++;
    }
    double f_old = s->f, dn = sqrt(dot_dd(s->d, s->d, n));
    s->f = t->f;
    memcpy(s->aux, t->aux, sizeof s->aux);
    memcpy(s->g, s->g_lo, n * sizeof *s->g);
    s->xk_version++;
    s->step = t->a * dn;
    return converged(s, f_old);
}

static SolverStatus lbfgs_iterate(Solver *s, const SolverOps *ops)
{
    const size_t n = s->n;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool steepest = attempt > 0 || s->count == 0;
        if (steepest)
            for (size_t i = 0; i < n; i++) s->d[i] = -(double)s->g[i];
        else lbfgs_direction(s);
        double dg0 = dot_fd(s->g, s->d, n);
        if (!(dg0 < 0.0)) {
            if (steepest) return SOLVER_STALLED; /* g == 0 was caught by the tolerance */
            continue;                            /* not a descent direction: -g instead */
        }
        double a1 = steepest ? 1.0 / sqrt(dot_dd(s->d, s->d, n)) : 1.0;
        if (!(a1 <= 1.0)) a1 = 1.0;
        Trial t;
        int ls = line_search(s, ops, dg0, a1, &t);
        if (ls < 0) return SOLVER_INTERRUPTED;
        if (ls > 0) return lbfgs_accept(s, &t, attempt > 0);
        if (steepest) break; /* no lower F along -g either */
    }
    restore_point(s);
    return SOLVER_STALLED;
}

/* ---- trust-region Newton ------------------------------------------------------------------ */

/* tau >= 0 with ||s + tau d||_M = delta, from ss = s.Ms, sd = s.Md, dd = d.Md. */
static double to_boundary(double ss, double sd, double dd, double delta)
{
    double root = sqrt(fmax(sd * sd + dd * (delta * delta - ss), 0.0));
    return sd >= 0.0 ? (delta * delta - ss) / (sd + root) : (root - sd) / dd;
}

/* The preconditioner at x_k: M (s->m, from ops->diag), or NULL for the identity. */
static const float *precond_of(const Solver *s) { return s->m_have ? s->m : NULL; }

/* M_i, 1 without a preconditioner. Inlined into loops called with m NULL or not, so each
 * loop is compiled once per case without a test per element. */
static inline double pm(const float *m, size_t i) { return m ? (double)m[i] : 1.0; }

/* x_k moved: its preconditioner is to be made (zeros, so that a checkpoint's bytes do not
 * depend on an abandoned pass). */
static void forget_precond(Solver *s)
{
    s->m_have = 0;
    if (s->m) memset(s->m, 0, s->n * sizeof *s->m);
}

/* ||v||_M^2 and ||v||_{M^-1}^2. */
static double norm_m2(const Solver *s, const float *v)
{
    const float *m = precond_of(s);
    double t = 0.0;
    for (size_t i = 0; i < s->n; i++) t += pm(m, i) * (double)v[i] * (double)v[i];
    return t;
}

static double norm_minv2(const Solver *s, const float *v)
{
    const float *m = precond_of(s);
    double t = 0.0;
    for (size_t i = 0; i < s->n; i++) t += (double)v[i] * (double)v[i] / pm(m, i);
    return t;
}

/* CG's vector work, one sweep over memory per step (n = 6 million parameters makes it most
 * of an iteration; several independent sums in one loop also hide the additions' latency).
 * The vectors are floats (the parameters' precision: CG stops at a tenth of ||g||, and x + s
 * is rounded to float), every product and sum is in double, and each sum is taken over the
 * stored floats, so the scalars describe exactly the vectors kept. */
typedef struct {
    float *sv, *r, *d; /* step, residual, direction (also the next product's vector) */
    const float *m;    /* M, or NULL */
    size_t n;
} CgVectors;

/* After a product hd = H d: d.Hd, s.Md and d.Md. */
static inline void cg_curvature(const CgVectors *v, const float *m, const float *hd,
                                double out[3])
{
    double dhd = 0.0, sd = 0.0, dd = 0.0;
    for (size_t i = 0; i < v->n; i++) {
        double di = (double)v->d[i], p = pm(m, i);
        dhd += (double)hd[i] * di;
        sd += p * (double)v->sv[i] * di;
        dd += p * di * di;
    }
    out[0] = dhd, out[1] = sd, out[2] = dd;
}

/* s += a d, r -= a Hd; returns s.Ms, and r.M^-1 r in *rz. */
static inline double cg_advance(const CgVectors *v, const float *m, const float *hd, double a,
                                double *rz)
{
    double ss = 0.0, rr = 0.0;
    for (size_t i = 0; i < v->n; i++) {
        double p = pm(m, i);
        float si = (float)((double)v->sv[i] + a * (double)v->d[i]);
        float ri = (float)((double)v->r[i] - a * (double)hd[i]);
        v->sv[i] = si;
        v->r[i] = ri;
        ss += p * (double)si * (double)si;
        rr += (double)ri * (double)ri / p;
    }
    *rz = rr;
    return ss;
}

/* d = M^-1 r + beta d; returns r.d (r.M^-1 r when beta = 0). */
static inline double cg_direction(const CgVectors *v, const float *m, double beta)
{
    double rd = 0.0;
    for (size_t i = 0; i < v->n; i++) {
        float di = (float)((double)v->r[i] / pm(m, i) + beta * (double)v->d[i]);
        v->d[i] = di;
        rd += (double)v->r[i] * (double)di;
    }
    return rd;
}

static void cg_curvature_any(const CgVectors *v, const float *hd, double out[3])
{
    if (v->m) cg_curvature(v, v->m, hd, out);
    else cg_curvature(v, NULL, hd, out);
}

static double cg_advance_any(const CgVectors *v, const float *hd, double a, double *rz)
{
    return v->m ? cg_advance(v, v->m, hd, a, rz) : cg_advance(v, NULL, hd, a, rz);
}

static double cg_direction_any(const CgVectors *v, double beta)
{
    return v->m ? cg_direction(v, v->m, beta) : cg_direction(v, NULL, beta);
}

/* Preconditioned Steihaug CG on H s = -g within ||s||_M <= delta: s in s->q, the residual
 * -g - H s in s->r. Returns false when interrupted. */
static bool tron_cg(Solver *s, const SolverOps *ops, double delta)
{
    const size_t n = s->n;
    const CgVectors v = {.sv = s->q, .r = s->r, .d = s->vf, .m = precond_of(s), .n = n};
    for (size_t i = 0; i < n; i++) {
        v.sv[i] = 0.0f;
        v.r[i] = -s->g[i];
    }
    double rz = cg_direction_any(&v, 0.0), cgtol = CG_TOL * sqrt(rz), ss = 0.0;
    for (int j = 1; j <= SOLVER_MAX_CG && sqrt(rz) > cgtol; j++) {
        SolverEval e = ops->hv(ops->ctx, s->vf, s->hvf);
        s->products++;
        if (e == SOLVER_EVAL_INTERRUPTED) return false;
        if (e != SOLVER_EVAL_OK) break; /* an overflowing product: keep the step so far */
        double c[3];
        cg_curvature_any(&v, s->hvf, c);
        double dhd = c[0], sd = c[1], dd = c[2], a = rz / dhd;
        if (!(dhd > 0.0) || ss + a * (2.0 * sd + a * dd) >= delta * delta) {
            double tau = to_boundary(ss, sd, dd, delta); /* to the boundary, and stop */
            double unused;
            cg_advance_any(&v, s->hvf, tau, &unused);
            break;
        }
        double rz_new;
        ss = cg_advance_any(&v, s->hvf, a, &rz_new);
        cg_direction_any(&v, rz_new / rz);
        rz = rz_new;
    }
    return true;
}

/* The radius after a trial step of length snorm (Lin & More's rule, with the step that
 * minimises the quadratic through F(x), g.s and F(x + s)). */
static double tron_radius(double delta, double actred, double prered, double gs, double fdiff,
                          double snorm)
{
    double a = fdiff <= 0.0 ? TR_SIGMA3 : fmax(TR_SIGMA1, -0.5 * gs / fdiff);
    if (actred < TR_ETA0 * prered) return fmin(fmax(a, TR_SIGMA1) * snorm, TR_SIGMA2 * delta);
    if (actred < TR_ETA1 * prered) return fmax(TR_SIGMA1 * delta, fmin(a * snorm, TR_SIGMA2 * delta));
    if (actred < TR_ETA2 * prered) return fmax(TR_SIGMA1 * delta, fmin(a * snorm, TR_SIGMA3 * delta));
    return fmax(delta, fmin(a * snorm, TR_SIGMA3 * delta));
}

static SolverStatus tron_iterate(Solver *s, const SolverOps *ops)
{
    const size_t n = s->n;
    if (ops->diag && !s->m_have) { /* x_k is new: its preconditioner, one pass */
        SolverEval e = ops->diag(ops->ctx, s->m);
        if (e == SOLVER_EVAL_INTERRUPTED) return SOLVER_INTERRUPTED;
        s->m_have = e == SOLVER_EVAL_OK; /* an overflowing diagonal: the identity */
    }
    double delta = s->iter == 0 ? sqrt(norm_minv2(s, s->g)) : s->delta;
    if (!tron_cg(s, ops, delta)) return SOLVER_INTERRUPTED;
    const float *sv = s->q;
    set_point_f(s, sv);
    bool moved = false;
    for (size_t i = 0; i < n && !moved; i++) moved = s->point[i] != s->x[i];
    if (!moved) { /* the region is below the floats' resolution: no step can move x */
        restore_point(s);
        return SOLVER_STALLED;
    }
    double fnew, aux[SOLVER_AUX];
    SolverEval e = ops->fg(ops->ctx, &fnew, s->g_new, aux);
    s->evals++;
    if (e == SOLVER_EVAL_INTERRUPTED) return SOLVER_INTERRUPTED;
    bool finite = e == SOLVER_EVAL_OK && isfinite(fnew);
    double gs = dot_ff(s->g, sv, n), prered = -0.5 * (gs - dot_ff(sv, s->r, n));
    double actred = finite ? s->f - fnew : -INFINITY, snorm = sqrt(norm_m2(s, sv));
    if (s->iter == 0) delta = fmin(delta, snorm);
    /* Near the optimum F changes by less than its precision: a step that leaves F within
     * that and at least halves the gradient's norm is taken as the model predicted it (the
     * halving bounds a run of such steps: ||g|| cannot halve for ever above its rounding
     * floor, where a merely lower ||g|| let the iterates creep along F's floor to
     * optim.max_passes (seen with the preconditioned CG); a rejected step shrinks the
     * radius, so this cannot cycle; the stricter record of lbfgs's approximate Wolfe steps
     * would stop TRON short of the optimum). */
    bool flat = finite && fabs(actred) <= F_EPS * fmax(fabs(s->f), 1.0) &&
                dot_ff(s->g_new, s->g_new, n) <= 0.25 * dot_ff(s->g, s->g, n);
    bool accept = actred > TR_ETA0 * prered || (flat && prered > 0.0);
    s->delta = tron_radius(delta, accept && flat ? prered : actred, prered, gs,
                           finite ? fnew - s->f - gs : INFINITY, snorm);
    s->step = snorm;
    if (accept) {
        double f_old = s->f;
        s->f = fnew;
        memcpy(s->aux, aux, sizeof s->aux);
        memcpy(s->g, s->g_new, n * sizeof *s->g);
        forget_precond(s);
        s->xk_version++;
        return converged(s, f_old);
    }
    restore_point(s);
    double scale = fmax(fabs(s->f), 1.0);
    /* a rejected step whose predicted decrease is below F's known precision (a tenth of
     * F_EPS): no smaller region can show a decrease either, only noise (seen: 250 such
     * iterations to optim.max_passes at a 1e-9 tolerance) */
    if (!(prered > 0.1 * F_EPS * scale)) return SOLVER_STALLED;
    /* even the model predicts less than ftol: the objective is converged */
    if (s->set.ftol > 0.0 && prered <= s->set.ftol * scale) return SOLVER_CONVERGED_F;
    return SOLVER_CONTINUE;
}

/* ---- one iteration ------------------------------------------------------------------------ */

SolverStatus solver_iterate(Solver *s, const SolverOps *ops)
{
    s->evals = s->products = 0;
    s->step = 0.0;
    memcpy(s->x, s->point, s->n * sizeof *s->x);
    double saved_delta = s->delta;
    int64_t saved_m_have = s->m_have;
    if (!s->have) { /* x_0: written into the state, made valid (have) when the iteration ends */
        SolverEval e = ops->fg(ops->ctx, &s->f, s->g, s->aux);
        s->evals++;
        if (e == SOLVER_EVAL_INTERRUPTED) return SOLVER_INTERRUPTED;
        if (e != SOLVER_EVAL_OK || !isfinite(s->f)) return SOLVER_DIVERGED;
        s->gg_best = dot_ff(s->g, s->g, s->n);
        if (norm_inf(s->g, s->n) <= s->set.tol) {
            s->have = 1;
            s->iter++;
            return SOLVER_CONVERGED_G;
        }
    }
    SolverStatus st = s->set.kind == SOLVER_LBFGS ? lbfgs_iterate(s, ops) : tron_iterate(s, ops);
    if (st == SOLVER_INTERRUPTED) { /* nothing of the iteration stays */
        restore_point(s);
        s->delta = saved_delta;
        if (!saved_m_have) forget_precond(s); /* a resumed run repeats its pass too */
        return st;
    }
    s->have = 1;
    s->iter++;
    return st;
}

/* ---- state and objective ------------------------------------------------------------------- */

void solver_state(Solver *s, StateList *out)
{
    bool lbfgs = s->set.kind == SOLVER_LBFGS;
    state_init(out, lbfgs ? "lbfgs" : "newton");
    state_add_array(out, "grad", s->g, s->n);
    state_add_f64(out, "f", &s->f);
    state_add_i64(out, "have", &s->have);
    state_add_i64(out, "iter", &s->iter);
    state_add_f64(out, "aux0", &s->aux[0]);
    state_add_f64(out, "aux1", &s->aux[1]);
    state_add_f64(out, "gg_best", &s->gg_best);
    if (lbfgs) {
        state_add_array(out, "s", s->S, s->set.history * s->n);
        state_add_array(out, "y", s->Y, s->set.history * s->n);
        state_add_i64(out, "count", &s->count);
        state_add_i64(out, "head", &s->head);
    } else {
        state_add_f64(out, "delta", &s->delta);
        state_add_array(out, "precond", s->m, s->n);
        state_add_i64(out, "precond_have", &s->m_have);
    }
}

double solver_objective_grad(const SolverPenalty *p, double weight, const float *x,
                             const float *sums, size_t n, float *g)
{
    const double inv = 1.0 / weight;
    for (size_t i = 0; i < n; i++) g[i] = (float)(inv * (double)sums[i]);
    double pen = 0.0;
    for (size_t k = 0; k < p->nseg; k++) {
        XT_ASSERT(p->off[k] + p->len[k] <= n);
        for (size_t i = p->off[k]; i < p->off[k] + p->len[k]; i++) {
            g[i] = (float)(inv * (double)sums[i] + p->lambda * (double)x[i]);
            pen += (double)x[i] * (double)x[i];
        }
    }
    return 0.5 * p->lambda * pen;
}

void solver_preconditioner(const SolverPenalty *p, double weight, const float *sums, size_t n,
                           float *m)
{
    const double inv = 1.0 / weight;
    for (size_t i = 0; i < n; i++) m[i] = (float)(inv * (double)sums[i]); /* intercepts */
    for (size_t k = 0; k < p->nseg; k++)
        for (size_t i = p->off[k]; i < p->off[k] + p->len[k]; i++)
            m[i] = (float)(inv * (double)sums[i] + p->lambda);
    for (size_t i = 0; i < n; i++) {
        double v = (1.0 - PCG_MIX) * p->lambda + PCG_MIX * (double)m[i];
        m[i] = v > 0.0 ? (float)v : 1.0f; /* lambda = 0 and no curvature: r_i stays 0 there */
    }
}
