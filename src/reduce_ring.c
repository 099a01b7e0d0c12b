/* reduce_ring: float sums reduced layer by layer while backward runs (comm.overlap; see
 * reduce.h).
 *
 * The buffer and slots are reduce_sum.c's. The step's last backward is hooked: as soon as a
 * layer's gradients are final (layers L .. 1), they join the pending bucket, and a bucket of
 * at least REDUCE_BUCKET_MIN bytes starts a non-blocking ring allreduce (comm_ring_sum);
 * between pieces of the remaining products backward calls progress, which moves the rings
 * on. The slots, known once the last loss is computed, ride in the first bucket, so they are
 * written before that backward starts. A rank without rows starts the same buckets at
 * finish. Overlap is for slow links with one rank per node (plan.c); it reduces whole layers,
 * so it takes the place of a sharded update.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reduce_impl.h"

typedef struct {
    FloatSums f;
    CommRing *ring;
    ModelShape shape; /* a copy: the caller's need not outlive the reduction */
    BackwardHooks hooks;
    size_t pend_end;  /* gradients [.., pend_end) not yet queued */
    int next_layer;   /* the next layer whose bucket is due (L .. 1; 0: all queued) */
    double wait_s;    /* seconds the steps waited for the rings after backward */
} RingSums;

static RingSums *ring_of(const Reduce *r) { return r->impl; }

int reduce_ring_buckets(const ModelShape *s, size_t *smallest)
{
    size_t end = s->n_params + N_SLOTS;
    int k = 0;
    *smallest = SIZE_MAX;
    for (int l = s->n_layers; l >= 1; l--) {
        size_t bytes = (end - s->w_off[l - 1]) * sizeof(float);
        if (bytes < REDUCE_BUCKET_MIN && l > 1) continue;
        k++;
        if (bytes < *smallest) *smallest = bytes;
        end = s->w_off[l - 1];
    }
    return k;
}

/* Backward announces layer l: it joins the pending bucket, which starts when big enough. */
static void layer_done(void *ctx, int layer)
{
    Reduce *r = ctx;
    RingSums *g = ring_of(r);
    XT_ASSERT(layer == g->next_layer);
    const size_t lo = g->shape.w_off[layer - 1];
    g->next_layer = layer - 1;
    if ((g->pend_end - lo) * sizeof(float) < REDUCE_BUCKET_MIN && layer > 1) return;
    comm_ring_sum(g->ring, g->f.g + lo, g->pend_end - lo);
    g->pend_end = lo;
}

static void progress(void *ctx)
{
    const Reduce *r = ctx;
    comm_ring_progress(ring_of(r)->ring);
}

static size_t ring_buffer_elems(size_t n) { return n + N_SLOTS; }

static Status ring_open_impl(Reduce *r, const ReduceSpec *spec, char *why, size_t len)
{
    RingSums *g = calloc(1, sizeof *g);
    Status st = comm_agree(r->comm, g ? float_sums_open(&g->f, r->n, NULL) : XT_ERR_RUNTIME);
    if (st == XT_OK) st = comm_ring_open(r->comm, r->n + N_SLOTS, &g->ring, why, len);
    else snprintf(why, len, "out of memory for the gradient buffer");
    if (st != XT_OK) {
        if (g) float_sums_close(&g->f);
        free(g);
        return st;
    }
    g->shape = *spec->shape;
    g->hooks = (BackwardHooks){.layer_done = layer_done, .progress = progress, .ctx = r};
    r->impl = g;
    return XT_OK;
}

static void ring_close_impl(Reduce *r)
{
    RingSums *g = ring_of(r);
    comm_ring_close(&g->ring);
    float_sums_close(&g->f);
    free(g);
    r->impl = NULL;
}

static void ring_begin(Reduce *r)
{
    RingSums *g = ring_of(r);
    float_sums_begin(&g->f);
    g->pend_end = r->n + N_SLOTS;
    g->next_layer = g->shape.n_layers;
}

static void ring_add(Reduce *r, size_t part, const StepSums *s)
{
    (void)part; /* the micro-batches add up in one buffer */
    float_sums_add(&ring_of(r)->f, s);
}

static float *ring_partial(Reduce *r, size_t part, bool *accumulate)
{
    (void)part;
    *accumulate = ring_of(r)->f.written > 0;
    return ring_of(r)->f.g;
}

/* The last backward is hooked: its totals are complete, so the slots go out first. */
static const BackwardHooks *ring_hooks(Reduce *r, bool last)
{
    if (!last) return NULL;
    RingSums *g = ring_of(r);
    float_sums_seal(&g->f, r->n, reduce_signalled(r));
    return &g->hooks;
}

static void ring_done(Reduce *r, size_t part)
{
    (void)part;
    ring_of(r)->f.written++;
}

static const float *ring_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    RingSums *g = ring_of(r);
    if (g->f.written == 0) memset(g->f.g, 0, r->n * sizeof *g->f.g);
    if (!g->f.sealed) float_sums_seal(&g->f, r->n, reduce_signalled(r));
    while (g->next_layer > 0) layer_done(r, g->next_layer); /* a rank without rows */
    double t0 = comm_wtime();
    comm_ring_wait(g->ring);
    t->comm_s = comm_wtime() - t0;
    g->wait_s += t->comm_s;
    float_sums_totals(&g->f, r->n, tot);
    return tot->nonfinite ? NULL : g->f.g;
}

/* How much of the reduction backward hid (rank 0's own figures). */
static void ring_report(const Reduce *r)
{
    if (r->rank != 0) return;
    const RingSums *g = ring_of(r);
    double busy = comm_ring_inflight(g->ring), wait = g->wait_s;
    double hidden = busy > 0 ? 1.0 - wait / busy : 0.0;
    if (hidden < 0) hidden = 0.0;
    log_info("overlap totals: inflight_s=%.3f exposed_s=%.3f hidden=%.3f", busy, wait, hidden);
    log_info("overlap: the ring allreduces were in flight for %.2f s; the steps waited %.2f s "
             "for them after backward (%.0f%% of that time hidden behind backward)", busy, wait,
             100.0 * hidden);
}

const ReduceOps REDUCE_RING = {.name = "ring", .buffer_elems = ring_buffer_elems,
                               .open = ring_open_impl, .close = ring_close_impl,
                               .begin = ring_begin, .add = ring_add, .partial = ring_partial,
                               .hooks = ring_hooks, .done = ring_done, .finish = ring_finish,
                               .report = ring_report};
