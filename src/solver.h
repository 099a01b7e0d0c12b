/* solver: full-batch L-BFGS and trust-region Newton (optim.optimizer = lbfgs, newton), the
 * arithmetic only: it minimises a smooth F over n float parameters through the caller's
 * evaluations, one iteration per call.
 *
 *   lbfgs   the two-loop recursion over the last `history` pairs (s, y) = (x_{k+1} - x_k,
 *           g_{k+1} - g_k), scaled by s.y / y.y (Nocedal & Wright, Numerical Optimization,
 *           2nd ed., Algorithm 7.4), then a line search for the strong Wolfe conditions
 *           (c1 = 1e-4, c2 = 0.9; N&W Algorithms 3.5 and 3.6, the trial steps from a
 *           safeguarded cubic), at most SOLVER_MAX_LS evaluations. The first step is
 *           1 / ||g|| (a step of unit length), later ones 1. A failed search is retried once
 *           along -g with the history cleared. Near the optimum the objective is flat to its
 *           working precision (float32 logits: about 1e-9 relative) while its gradient is
 *           still accurate: the search then also accepts Hager & Zhang's approximate Wolfe
 *           conditions (the curvature condition with F within 1e-8 relative of F(x_k)) when the
 *           step also lowers ||g|| (the merit where F is flat), and brackets by the slope's
 *           sign, so the iterate keeps approaching the optimum and settles there.
 *   newton  trust-region Newton with conjugate gradient (Steihaug), as LIBLINEAR's TRON (Lin,
 *           Weng & Keerthi, "Trust region Newton method for large-scale logistic regression",
 *           JMLR 2008, Algorithm 2 with Lin & More's radius rule), optionally preconditioned by
 *           H's diagonal (Hsia, Chiang & Lin, ACML 2018: ops->diag gives, at each new x_k, M =
 *           (1 - 0.01) lambda + 0.01 diag(H), solver_preconditioner, from one pass): CG on
 *           H s = -g inside ||s||_M <= delta until ||r||_{M^-1} <= 0.1 ||g||_{M^-1} (at most
 *           SOLVER_MAX_CG products; M = I without ops->diag), one evaluation at x + s,
 *           accepted when the actual decrease exceeds 1e-4 of the predicted one, or when F
 *           changed by less than its precision and the gradient's norm at least halved;
 *           delta starts at ||g||_{M^-1}.
 * Evaluations (SolverOps): fg gives F and its gradient at the caller's point (the buffer
 * `point` that solver_init was given: the model's parameters, so an evaluation reads them
 * where they are); hv gives the Hessian of F at the current iterate times a vector (newton
 * only; what it needs of x_k alone, the loss's curvature, the caller may compute once and
 * keep under s->xk_version). Each is one pass over the data and one reduction for the
 * caller.
 *
 * Parallel semantics: every decision here (step lengths, acceptance, the trust radius,
 * convergence) depends only on the values the evaluations return and on the state; the
 * trainer's evaluations return the same bits on every rank (they come out of the step's
 * reduction), so every rank takes the same decisions and holds the same iterate without
 * further communication. The caller relies on this; the replica check (reduce.h) verifies it.
 *
 * State: x_k is the caller's point between iterations; F(x_k), its gradient, the lowest
 * ||g||^2 so far and the method's state (the (s, y) history, the trust radius) are listed by
 * solver_state for checkpoints.
 * An iteration changes the state only when it ends; an evaluation that reports
 * SOLVER_EVAL_INTERRUPTED abandons it (the point is restored to x_k), so a checkpoint taken
 * then and resumed repeats the same iteration with the same bits.
 * Local; allocates at init only.
 */
#ifndef XT_SOLVER_H
#define XT_SOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "state.h"

#define SOLVER_MAX_LS 20  /* evaluations per line search */
#define SOLVER_MAX_CG 100 /* Hessian-vector products per trust-region iteration */
#define SOLVER_AUX 2      /* values the caller keeps with each evaluation (e.g. loss, accuracy) */

typedef enum { SOLVER_LBFGS, SOLVER_NEWTON } SolverKind;

typedef struct {
    SolverKind kind;
    size_t history;   /* lbfgs: pairs kept (>= 1) */
    double tol;       /* converged when max |g| <= tol */
    double ftol;      /* converged when (F_k - F_k+1) <= ftol max(|F_k|, |F_k+1|, 1); 0: off */
} SolverSettings;

/* What an evaluation returns: fine, a non-finite F (the point is too far: lbfgs backtracks,
 * newton shrinks the radius; at x_k itself the run has diverged), or interrupted (a signal:
 * the iteration is abandoned). */
typedef enum { SOLVER_EVAL_OK, SOLVER_EVAL_NONFINITE, SOLVER_EVAL_INTERRUPTED } SolverEval;

typedef struct {
    /* F, its gradient (n) and SOLVER_AUX values of the caller's at the point. */
    SolverEval (*fg)(void *ctx, double *f, float *g, double aux[SOLVER_AUX]);
    /* hv (n) = H(x_k) v, with the point holding x_k (newton). */
    SolverEval (*hv)(void *ctx, const float *v, float *hv);
    /* m (n) = newton's preconditioner at x_k (solver_preconditioner of H(x_k)'s diagonal),
     * with the point holding x_k; NULL: none (the identity). */
    SolverEval (*diag)(void *ctx, float *m);
    void *ctx;
} SolverOps;

typedef enum {
    SOLVER_CONTINUE,    /* an iteration ended, not converged */
    SOLVER_CONVERGED_G, /* max |g| <= tol */
    SOLVER_CONVERGED_F, /* the objective's relative decrease <= ftol */
    SOLVER_STALLED,     /* no lower objective along the search direction (line search or
                           trust region exhausted): the objective's working precision */
    SOLVER_INTERRUPTED, /* an evaluation was interrupted: the iteration was abandoned */
    SOLVER_DIVERGED     /* F is not finite at x_k */
} SolverStatus;

typedef struct {
    SolverSettings set;
    size_t n;
    float *point;      /* (n) the caller's: x_k between iterations, trial points within */
    /* state (solver_state) */
    float *g;          /* (n) gradient at x_k */
    double f;          /* F(x_k) */
    double aux[SOLVER_AUX];
    double gg_best;    /* the lowest ||g||^2 of any iterate so far (flat steps must beat it) */
    int64_t have;      /* 1 when f, g, aux hold x_k's values */
    int64_t iter;      /* iterations ended */
    float *S, *Y;      /* lbfgs: (history, n) ring of pairs */
    int64_t count, head; /* lbfgs: pairs held; slot of the next one */
    double delta;      /* newton: trust radius (in the norm of M) */
    float *m;          /* newton: (n) the preconditioner M at x_k */
    int64_t m_have;    /* newton: 1 when m holds x_k's */
    uint64_t xk_version; /* changes whenever x_k does (not state: counts within a process); the
                            caller may cache what depends on x_k alone under it (H's curvature) */
    /* what the last iteration did */
    double step;       /* lbfgs: accepted step length; newton: ||s|| of the last trial */
    int evals, products; /* its evaluations and Hessian-vector products */
    /* scratch */
    float *x, *g_new;   /* (n) */
    double *d;          /* (n) lbfgs only: the search direction */
    float *g_lo;        /* (n) lbfgs only */
    float *vf, *hvf;    /* (n) newton only: CG's direction (each product's vector), H of it */
    float *q, *r;       /* (n) newton only: CG's step and residual */
    double *alpha;                      /* (history) */
} Solver;

Status solver_init(Solver *s, const SolverSettings *set, size_t n, float *point);
void solver_free(Solver *s);

/* One iteration (the first evaluates F at the point first). The status says whether the
 * run should stop and why; solver_grad_norm and s->f, s->aux describe x_k after it. On
 * SOLVER_INTERRUPTED and SOLVER_DIVERGED the state is unchanged and the point holds x_k. */
SolverStatus solver_iterate(Solver *s, const SolverOps *ops);

/* lbfgs: out (n) = H v, the inverse-Hessian estimate of the pairs held (the two-loop
 * recursion; the identity scaled by s.y / y.y of the newest pair). Satisfies the secant
 * condition H y = s for the newest pair. Uses the solver's scratch. */
void solver_lbfgs_apply(Solver *s, const float *v, double *out);

/* max |g| at x_k (NAN before the first evaluation). */
double solver_grad_norm(const Solver *s);

/* The state a checkpoint must carry, as views of s's buffers: kind "lbfgs" (arrays "grad",
 * "s", "y"; scalars f, have, iter, aux0, aux1, gg_best, count, head) or "newton" ("grad",
 * "precond"; f, have, iter, aux0, aux1, gg_best, delta, precond_have). x_k is the caller's point (the checkpoint's model). Local. */
void solver_state(Solver *s, StateList *out);

/* The L2 penalty (lambda / 2) sum x_j^2 over `nseg` ranges [off, off + len) of the
 * parameters (a model's weights, not its intercepts). */
#define SOLVER_MAX_SEGMENTS 32
typedef struct {
    double lambda;
    size_t nseg;
    size_t off[SOLVER_MAX_SEGMENTS], len[SOLVER_MAX_SEGMENTS];
} SolverPenalty;

/* The objective's gradient from a reduction's sums: g_j = sums_j / weight + lambda x_j on
 * the penalised ranges (sums_j / weight elsewhere), each rounded to float once; returns the
 * penalty at x. In a fixed order: the same bits wherever the inputs are. (For a
 * Hessian-vector product x is the vector: H v = sums / weight + lambda v.) */
double solver_objective_grad(const SolverPenalty *p, double weight, const float *x,
                             const float *sums, size_t n, float *g);

/* newton's diagonal preconditioner from a reduction's sums of the loss's diagonal (sums_j =
 * sum_i hd_i x_ij^2, loss_curvature_diag): M_j = (1 - 0.01) lambda + 0.01 H_jj with
 * H_jj = sums_j / weight + lambda on the penalised ranges (sums_j / weight elsewhere), as
 * LIBLINEAR mixes the identity (its penalty's curvature) with the diagonal; positive. */
void solver_preconditioner(const SolverPenalty *p, double weight, const float *sums, size_t n,
                           float *m);

#endif
