/* reduce_sum: float gradient sums in one buffer, reduced after backward (see reduce.h).
 *
 * Every micro-batch's backward adds into the same buffer; its totals add up in doubles. At
 * finish the totals become the buffer's slots and one collective (r->cross: allreduce, or
 * reduce-scatter for a sharded update) sums everything, through MPI or the node's shared
 * memory. The sum of floats depends on the order the transport adds them in: the same bits
 * at a fixed P and transport, not across them (the exact implementation is for that).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"
#include "reduce_impl.h"

/* ---- the float buffer and its slots (shared with reduce_ring.c) ------------------------- */

Status float_sums_open(FloatSums *f, size_t n, void *window)
{
    *f = (FloatSums){0};
    size_t bytes = (n + N_SLOTS) * sizeof(float);
    if (window) {
        memset(window, 0, bytes);
        f->g = window;
        return XT_OK;
    }
    f->own = linalg_alloc_zeros(bytes);
    if (!f->own) return XT_ERR_RUNTIME;
    f->own_bytes = bytes;
    f->g = f->own;
    return XT_OK;
}

void float_sums_close(FloatSums *f)
{
    linalg_free_zeros(f->own, f->own_bytes);
    *f = (FloatSums){0};
}

void float_sums_begin(FloatSums *f)
{
    f->acc = (StepSums){0};
    f->written = 0;
    f->sealed = false;
}

void float_sums_add(FloatSums *f, const StepSums *s)
{
    f->acc.loss += s->loss;
    f->acc.weight += s->weight;
    f->acc.correct += s->correct;
    f->acc.decisions += s->decisions;
}

void float_sums_seal(FloatSums *f, size_t n, bool signal)
{
    float *g = f->g;
    g[n + SLOT_LOSS] = (float)f->acc.loss;
    g[n + SLOT_WEIGHT] = (float)f->acc.weight;
    g[n + SLOT_NONFINITE] = isfinite(f->acc.loss) ? 0.0f : 1.0f;
    g[n + SLOT_SIGNAL] = signal ? 1.0f : 0.0f;
    g[n + SLOT_CORRECT] = (float)f->acc.correct;
    g[n + SLOT_DECISIONS] = (float)f->acc.decisions;
    f->sealed = true;
}

void float_sums_totals(const FloatSums *f, size_t n, StepTotals *tot)
{
    const float *slot = f->g + n;
    *tot = (StepTotals){.sums = {.loss = slot[SLOT_LOSS], .weight = slot[SLOT_WEIGHT],
                                 .correct = slot[SLOT_CORRECT],
                                 .decisions = slot[SLOT_DECISIONS]},
                        .nonfinite = slot[SLOT_NONFINITE] != 0.0f || !isfinite(slot[SLOT_LOSS]),
                        .signal = slot[SLOT_SIGNAL] != 0.0f};
}

/* ---- the implementation ---------------------------------------------------------------- */

/* r->impl is a FloatSums, or a struct that begins with one (reduce_sparse.c). */
static FloatSums *sums(const Reduce *r) { return r->impl; }

static size_t sum_buffer_elems(size_t n) { return n + N_SLOTS; }

static Status sum_open(Reduce *r, const ReduceSpec *spec, char *why, size_t len)
{
    (void)spec;
    FloatSums *f = calloc(1, sizeof *f);
    Status st = f ? float_sums_open(f, r->n, comm_path_buffer(r->path)) : XT_ERR_RUNTIME;
    if (st != XT_OK) {
        free(f);
        snprintf(why, len, "%zu floats of gradient sums", r->n + N_SLOTS);
        return st;
    }
    r->impl = f;
    return XT_OK;
}

static void sum_close(Reduce *r)
{
    float_sums_close(sums(r));
    free(r->impl);
    r->impl = NULL;
}

void sum_op_begin(Reduce *r) { float_sums_begin(sums(r)); }

void sum_op_add(Reduce *r, size_t part, const StepSums *s)
{
    (void)part; /* the micro-batches add up in one buffer */
    float_sums_add(sums(r), s);
}

float *sum_op_partial(Reduce *r, size_t part, bool *accumulate)
{
    (void)part;
    *accumulate = sums(r)->written > 0;
    return sums(r)->g;
}

const BackwardHooks *sum_op_hooks(Reduce *r, bool last)
{
    (void)r;
    (void)last;
    return NULL;
}

void sum_op_done(Reduce *r, size_t part)
{
    (void)part;
    sums(r)->written++;
}

static const float *sum_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    FloatSums *f = sums(r);
    if (f->written == 0) memset(f->g, 0, r->n * sizeof *f->g); /* no rows here: adds nothing */
    float_sums_seal(f, r->n, reduce_signalled(r));
    double t0 = comm_wtime();
    r->cross(r, f->g, N_SLOTS, COMM_F32);
    t->comm_s = comm_wtime() - t0;
    float_sums_totals(f, r->n, tot);
    return tot->nonfinite ? NULL : f->g;
}

static void sum_report(const Reduce *r) { (void)r; }

const ReduceOps REDUCE_SUM = {.name = "sum", .buffer_elems = sum_buffer_elems, .open = sum_open,
                              .close = sum_close, .begin = sum_op_begin, .add = sum_op_add,
                              .partial = sum_op_partial, .hooks = sum_op_hooks,
                              .done = sum_op_done,
                              .finish = sum_finish, .report = sum_report};
