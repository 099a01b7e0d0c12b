/* reduce_exact: the reproducible mode's reduction, the same bits at any P (train.reproducible;
 * see reduce.h and exact.h).
 *
 * Each micro-batch of the step plan is a set of rows that does not depend on P (a group's
 * rows, or a piece of them), so its partial gradient and totals are the same numbers on
 * whichever rank computes them. Its gradient goes into a partial buffer of its own; its
 * totals are rounded to integer limbs at once. At finish: the blocks' largest exponents
 * (MAX over ranks), the partials rounded to integers with them, ONE integer SUM (r->cross:
 * allreduce or reduce-scatter, MPI or shared memory; integers add exactly in any order),
 * back to floats for this rank's slice.
 */
#include <stdio.h>
#include <stdlib.h>

#include "exact.h"
#include "linalg.h"
#include "reduce_impl.h"

/* The int32 slots after the exact gradient sums: sums of doubles as limbs; flags as counts. */
enum {
    XS_LOSS = 0,
    XS_WEIGHT = XS_LOSS + EXACT_LIMBS,
    XS_CORRECT = XS_WEIGHT + EXACT_LIMBS,
    XS_DECISIONS = XS_CORRECT + EXACT_LIMBS,
    XS_NONFINITE = XS_DECISIONS + EXACT_LIMBS, /* micro-batches with a NaN or Inf */
    XS_SIGNAL,                                 /* ranks that caught a signal */
    N_XSLOTS
};

typedef struct {
    ExactGrad x;
    int32_t *own;    /* the integer sums when allocated here (else the transport's window) */
} Exact;

static Exact *ex(const Reduce *r) { return r->impl; }

static size_t exact_buffer_elems(size_t n) { return n + N_XSLOTS; }

static Status exact_open(Reduce *r, const ReduceSpec *spec, char *why, size_t len)
{
    Exact *e = calloc(1, sizeof *e);
    int32_t *acc = e ? comm_path_buffer(r->path) : NULL;
    if (e && !acc) acc = e->own = linalg_alloc((r->n + N_XSLOTS) * sizeof *acc);
    Status st = acc ? exact_grad_init(&e->x, r->n, spec->terms, spec->parts, acc, N_XSLOTS)
                    : XT_ERR_RUNTIME;
    if (st != XT_OK) {
        snprintf(why, len, "the reproducible mode's %zu partial gradients (%.1f MiB: one per "
                 "local micro-batch); lower train.micro_batches or use more ranks", spec->parts,
                 (double)spec->parts * (double)r->n * 4.0 / 1048576.0);
        if (e) free(e->own);
        free(e);
        return st;
    }
    r->impl = e;
    return XT_OK;
}

static void exact_close(Reduce *r)
{
    exact_grad_free(&ex(r)->x);
    free(ex(r)->own);
    free(r->impl);
    r->impl = NULL;
}

static void exact_begin(Reduce *r) { exact_grad_begin(&ex(r)->x); }

/* The totals of one micro-batch, rounded to limbs once, added exactly. */
static void exact_add(Reduce *r, size_t part, const StepSums *s)
{
    (void)part;
    int32_t *xs = exact_grad_slots(&ex(r)->x), limbs[EXACT_LIMBS];
    const double vals[] = {s->loss, s->weight, s->correct, s->decisions};
    const int at[] = {XS_LOSS, XS_WEIGHT, XS_CORRECT, XS_DECISIONS};
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        ok = exact_limbs_encode(vals[i], limbs) && ok;
        exact_limbs_add(xs + at[i], limbs);
    }
    if (!ok) xs[XS_NONFINITE]++;
}

static float *exact_partial(Reduce *r, size_t part, bool *accumulate)
{
    XT_ASSERT(part == ex(r)->x.used); /* the plan numbers a step's partials 0, 1, .. */
    *accumulate = false;
    return exact_grad_next(&ex(r)->x);
}

static const BackwardHooks *exact_hooks(Reduce *r, bool last)
{
    (void)r;
    (void)last;
    return NULL;
}

static void exact_done(Reduce *r, size_t part)
{
    (void)part;
    if (!exact_grad_measure(&ex(r)->x)) exact_grad_slots(&ex(r)->x)[XS_NONFINITE]++;
}

static const float *exact_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    ExactGrad *x = &ex(r)->x;
    int32_t *xs = exact_grad_slots(x);
    xs[XS_SIGNAL] = reduce_signalled(r) ? 1 : 0;
    double t0 = comm_wtime();
    comm_allreduce_max_i32(r->comm, x->mx, x->nblocks);
    double t1 = comm_wtime();
    exact_grad_convert(x);
    double t2 = comm_wtime();
    r->cross(r, x->acc, N_XSLOTS, COMM_I32);
    double t3 = comm_wtime();
    *tot = (StepTotals){.sums = {.loss = exact_limbs_decode(xs + XS_LOSS),
                                 .weight = exact_limbs_decode(xs + XS_WEIGHT),
                                 .correct = exact_limbs_decode(xs + XS_CORRECT),
                                 .decisions = exact_limbs_decode(xs + XS_DECISIONS)},
                        .nonfinite = xs[XS_NONFINITE] != 0,
                        .signal = xs[XS_SIGNAL] != 0};
    const float *grads = tot->nonfinite ? NULL : exact_grad_finish(x, r->lo, r->hi);
    t->comm_s = (t1 - t0) + (t3 - t2);
    t->work_s = (t2 - t1) + (comm_wtime() - t3);
    return grads;
}

static void exact_report(const Reduce *r) { (void)r; }

const ReduceOps REDUCE_EXACT = {.name = "exact", .buffer_elems = exact_buffer_elems,
                                .open = exact_open, .close = exact_close, .begin = exact_begin,
                                .add = exact_add, .partial = exact_partial, .hooks = exact_hooks,
                                .done = exact_done, .finish = exact_finish,
                                .report = exact_report};
