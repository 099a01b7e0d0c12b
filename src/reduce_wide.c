/* reduce_wide: a full-batch solver's reduction, in double (see reduce.h).
 *
 * The solvers (solver.h) decide from objective values: a line search compares F at nearby
 * points and stops at a relative decrease of 1e-9 and below, which float sums (about 1e-7)
 * cannot resolve. So the micro-batches' gradients add up in a float buffer as in the sum
 * implementation (backward writes floats), and at finish the gradient sums and the totals
 * are widened to doubles and allreduced in ONE double allreduce (the plan's path: MPI, or the
 * node's shared memory, 28 times faster than Open MPI 4.1.4's allreduce of 48 MB on the
 * development machine, bench/reduce.c; the doubles are written straight into this rank's
 * segment of the window, so nothing is copied in or out); the gradient comes back as
 * floats, the totals as doubles. Never sharded (plan.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"
#include "reduce_impl.h"

enum { WS_LOSS, WS_WEIGHT, WS_NONFINITE, WS_SIGNAL, WS_CORRECT, WS_DECISIONS, N_WSLOTS };

typedef struct {
    float *g;         /* (n) the micro-batches' gradient sums */
    double *wide;     /* (n + N_WSLOTS) what crosses ranks: this rank's segment of the node's
                         shared window when the path has one (no copy in or out), else wide_own */
    double *wide_own;
    StepSums acc;     /* this rank's totals of the pass so far */
    size_t written;   /* micro-batches whose gradient is in g */
} Wide;

static Wide *wide(const Reduce *r) { return r->impl; }

static size_t wide_buffer_elems(size_t n) { return 2 * (n + N_WSLOTS); }

static Status wide_open(Reduce *r, const ReduceSpec *spec, char *why, size_t len)
{
    (void)spec;
    XT_ASSERT(r->lo == 0 && r->hi == r->n); /* never sliced */
    Wide *w = calloc(1, sizeof *w);
    if (w) {
        w->g = linalg_alloc((r->n > 0 ? r->n : 1) * sizeof *w->g);
        w->wide = comm_path_buffer(r->path); /* wide_buffer_elems floats: room for the doubles */
        if (!w->wide) w->wide = w->wide_own = malloc((r->n + N_WSLOTS) * sizeof *w->wide);
    }
    if (!w || !w->g || !w->wide) {
        snprintf(why, len, "%zu doubles of gradient sums", r->n + N_WSLOTS);
        if (w) {
            free(w->g);
            free(w->wide_own);
        }
        free(w);
        return XT_ERR_RUNTIME;
    }
    r->impl = w;
    return XT_OK;
}

static void wide_close(Reduce *r)
{
    free(wide(r)->g);
    free(wide(r)->wide_own);
    free(r->impl);
    r->impl = NULL;
}

static void wide_begin(Reduce *r)
{
    wide(r)->acc = (StepSums){0};
    wide(r)->written = 0;
}

static void wide_add(Reduce *r, size_t part, const StepSums *s)
{
    (void)part; /* the micro-batches add up in one buffer */
    StepSums *a = &wide(r)->acc;
    a->loss += s->loss;
    a->weight += s->weight;
    a->correct += s->correct;
    a->decisions += s->decisions;
}

static float *wide_partial(Reduce *r, size_t part, bool *accumulate)
{
    (void)part;
    *accumulate = wide(r)->written > 0;
    return wide(r)->g;
}

static const BackwardHooks *wide_hooks(Reduce *r, bool last)
{
    (void)r;
    (void)last;
    return NULL;
}

static void wide_done(Reduce *r, size_t part)
{
    (void)part;
    wide(r)->written++;
}

static const float *wide_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    Wide *w = wide(r);
    const size_t n = r->n;
    double *x = w->wide, *slot = w->wide + n;
    for (size_t i = 0; i < n; i++) x[i] = w->written > 0 ? (double)w->g[i] : 0.0;
    slot[WS_LOSS] = w->acc.loss;
    slot[WS_WEIGHT] = w->acc.weight;
    slot[WS_NONFINITE] = isfinite(w->acc.loss) ? 0.0 : 1.0;
    slot[WS_SIGNAL] = reduce_signalled(r) ? 1.0 : 0.0;
    slot[WS_CORRECT] = w->acc.correct;
    slot[WS_DECISIONS] = w->acc.decisions;
    double t0 = comm_wtime();
    comm_path_allreduce(r->path, w->wide, n + N_WSLOTS, COMM_F64);
    t->comm_s = comm_wtime() - t0;
    *tot = (StepTotals){.sums = {.loss = slot[WS_LOSS], .weight = slot[WS_WEIGHT],
                                 .correct = slot[WS_CORRECT], .decisions = slot[WS_DECISIONS]},
                        .nonfinite = slot[WS_NONFINITE] != 0.0 || !isfinite(slot[WS_LOSS]),
                        .signal = slot[WS_SIGNAL] != 0.0};
    if (tot->nonfinite) return NULL;
    for (size_t i = 0; i < n; i++) w->g[i] = (float)x[i];
    return w->g;
}

static void wide_report(const Reduce *r) { (void)r; }

const ReduceOps REDUCE_WIDE = {.name = "wide", .buffer_elems = wide_buffer_elems,
                               .open = wide_open, .close = wide_close, .begin = wide_begin,
                               .add = wide_add, .partial = wide_partial, .hooks = wide_hooks,
                               .done = wide_done, .finish = wide_finish, .report = wide_report};
