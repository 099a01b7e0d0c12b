/* reduce_sparse: the step's reduction for sparse (CSR) data, exchanging only the touched
 * columns of the first layer's weights when that moves fewer bytes (see reduce.h).
 *
 * With CSR rows a step's gradient of W_1 (H, D) is zero in every column j whose feature
 * occurs in none of the rank's rows: with 128 rows of 15 non-zeros, a few thousand columns
 * of D = 100,000. The micro-batches add up in one float buffer as in the sum implementation
 * (whose step calls this one uses: its state begins with a FloatSums). At finish:
 *
 *   1. this rank's touched columns: those with a non-zero in its W_1 gradient (a column whose
 *      gradient is all zeros adds nothing, whether its feature occurred or not);
 *   2. the ranks' counts, allgathered: every rank knows the exchange's size and takes the
 *      same decision: SPARSE when a rank receives fewer bytes than a ring allreduce of the
 *      whole buffer moves, 4 c (H + 1) < 2 (P - 1) / P * 4 n, c the columns over all ranks;
 *      else DENSE, the sum implementation's allreduce of everything;
 *   3. SPARSE: one in-place allgatherv of records (column index, its H values) into a buffer
 *      of the dense gradient's size at most, one allreduce of the rest (the other layers, the
 *      intercepts, the step's totals and flags), then this rank zeroes its own columns and
 *      every rank adds the records in rank order: the sum in a fixed order, the same bits on
 *      every rank (but not the bits of the dense allreduce, whose order is MPI's).
 *
 * The update stays dense (optim.h): for plain SGD without decay the untouched columns would
 * not move, but momentum, Adam and weight decay move every parameter each step. Never
 * sharded, never through the shared window, never in the reproducible mode (plan.c).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"
#include "log.h"
#include "reduce_impl.h"

typedef struct {
    FloatSums f;        /* first: the sum implementation's step calls use it */
    size_t w0, H, D;    /* W_1 is g[w0 + o D + j], o < H, j < D */
    size_t nrest;       /* the rest: parameters outside W_1, then the slots */
    float *rest;        /* (nrest) packed for its allreduce */
    uint8_t *touched;   /* (D) */
    float *rec;         /* records (index bits, H values), every rank's, at most cap floats */
    size_t cap;         /* floats in rec */
    uint64_t *counts;   /* (P) columns per rank this step */
    size_t *bytes, *displs; /* (P) the allgatherv's */
    uint64_t steps_sparse, steps_dense;
    double cols_sum;    /* columns exchanged over the sparse steps */
} Sparse;

static Sparse *sp(const Reduce *r) { return r->impl; }

static size_t sparse_buffer_elems(size_t n) { return n + N_SLOTS; }

static void sparse_free(Sparse *s)
{
    if (!s) return;
    float_sums_close(&s->f);
    free(s->rest);
    free(s->touched);
    free(s->rec);
    free(s->counts);
    free(s->bytes);
    free(s->displs);
    free(s);
}

static Status sparse_open(Reduce *r, const ReduceSpec *spec, char *why, size_t len)
{
    const ModelShape *sh = spec->shape;
    XT_ASSERT(r->lo == 0 && r->hi == r->n); /* never sliced; MPI (plan.c) */
    Sparse *s = calloc(1, sizeof *s);
    Status st = s ? float_sums_open(&s->f, r->n, NULL) : XT_ERR_RUNTIME;
    if (st == XT_OK) {
        s->w0 = sh->w_off[0];
        s->H = sh->sizes[1];
        s->D = sh->sizes[0];
        s->nrest = r->n - s->H * s->D + N_SLOTS;
        s->cap = s->H * s->D + s->D; /* the largest exchange the rule lets through */
        s->rest = malloc(s->nrest * sizeof *s->rest);
        s->touched = calloc(s->D ? s->D : 1, 1);
        s->rec = linalg_alloc(s->cap * sizeof *s->rec);
        s->counts = malloc((size_t)r->P * sizeof *s->counts);
        s->bytes = malloc((size_t)r->P * sizeof *s->bytes);
        s->displs = malloc((size_t)r->P * sizeof *s->displs);
        if (!s->rest || !s->touched || !s->rec || !s->counts || !s->bytes || !s->displs)
            st = XT_ERR_RUNTIME;
    }
    if (st != XT_OK) {
        sparse_free(s);
        snprintf(why, len, "two buffers of %zu floats for the sparse exchange", r->n + N_SLOTS);
        return st;
    }
    r->impl = s;
    return XT_OK;
}

static void sparse_close(Reduce *r)
{
    sparse_free(sp(r));
    r->impl = NULL;
}

/* This rank's touched columns, as records at rec (index bits, then the column's H values).
 * Returns how many. */
static size_t pack_columns(Sparse *s, float *rec)
{
    const float *W = s->f.g + s->w0;
    memset(s->touched, 0, s->D);
    for (size_t o = 0; o < s->H; o++)
        for (size_t j = 0; j < s->D; j++) s->touched[j] |= W[o * s->D + j] != 0.0f;
    size_t c = 0;
    for (size_t j = 0; j < s->D; j++) {
        if (!s->touched[j]) continue;
        if (rec) {
            float *out = rec + c * (s->H + 1);
            uint32_t idx = (uint32_t)j;
            memcpy(out, &idx, sizeof idx); /* bits, not a float value: D may exceed 2^24 */
            for (size_t o = 0; o < s->H; o++) out[1 + o] = W[o * s->D + j];
        }
        c++;
    }
    return c;
}

/* The parameters outside W_1 and the slots, to or from s->rest. */
static void move_rest(Sparse *s, size_t n, bool out)
{
    float *g = s->f.g, *w1_end = g + s->w0 + s->H * s->D;
    size_t before = s->w0, after = n + N_SLOTS - (s->w0 + s->H * s->D);
    if (out) {
        memcpy(s->rest, g, before * sizeof *g);
        memcpy(s->rest + before, w1_end, after * sizeof *g);
    } else {
        memcpy(g, s->rest, before * sizeof *g);
        memcpy(w1_end, s->rest + before, after * sizeof *g);
    }
}

/* SPARSE: the records allgathered, the rest allreduced, W_1's sums rebuilt in rank order. */
static void exchange(Reduce *r, Sparse *s, size_t mine)
{
    const size_t rl = s->H + 1;
    size_t off = 0;
    for (int q = 0; q < r->P; q++) {
        s->displs[q] = off * sizeof(float);
        s->bytes[q] = (size_t)s->counts[q] * rl * sizeof(float);
        off += (size_t)s->counts[q] * rl;
    }
    float *own = s->rec + s->displs[r->rank] / sizeof(float);
    pack_columns(s, own);
    comm_allgatherv_inplace(r->comm, s->rec, s->bytes, s->displs);
    move_rest(s, r->n, true);
    comm_allreduce_sum_float(r->comm, s->rest, s->nrest);
    move_rest(s, r->n, false);
    float *W = s->f.g + s->w0;
    for (size_t c = 0; c < mine; c++) { /* this rank's columns start from zero again */
        uint32_t j;
        memcpy(&j, own + c * rl, sizeof j);
        for (size_t o = 0; o < s->H; o++) W[o * s->D + j] = 0.0f;
    }
    for (size_t c = 0; c < off / rl; c++) {
        const float *in = s->rec + c * rl;
        uint32_t j;
        memcpy(&j, in, sizeof j);
        for (size_t o = 0; o < s->H; o++) W[o * s->D + j] += in[1 + o];
    }
}

static const float *sparse_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    Sparse *s = sp(r);
    FloatSums *f = &s->f;
    if (f->written == 0) memset(f->g, 0, r->n * sizeof *f->g); /* no rows here */
    float_sums_seal(f, r->n, reduce_signalled(r));
    double t0 = comm_wtime();
    uint64_t mine = (uint64_t)pack_columns(s, NULL), all = 0;
    double t1 = comm_wtime();
    comm_allgather(r->comm, &mine, s->counts, sizeof mine);
    for (int q = 0; q < r->P; q++) all += s->counts[q];
    /* words a rank receives: the records against a ring allreduce of the buffer */
    double sparse_words = (double)all * (double)(s->H + 1);
    double dense_words = 2.0 * (r->P - 1) / r->P * (double)(r->n + N_SLOTS);
    if (r->P > 1 && sparse_words < dense_words && all * (s->H + 1) <= s->cap) {
        exchange(r, s, (size_t)mine);
        s->steps_sparse++;
        s->cols_sum += (double)all;
    } else {
        r->cross(r, f->g, N_SLOTS, COMM_F32);
        s->steps_dense++;
    }
    t->work_s = t1 - t0;
    t->comm_s = comm_wtime() - t1;
    float_sums_totals(f, r->n, tot);
    return tot->nonfinite ? NULL : f->g;
}

static void sparse_report(const Reduce *r)
{
    const Sparse *s = sp(r);
    uint64_t steps = s->steps_sparse + s->steps_dense;
    if (r->rank != 0 || steps == 0) return;
    double cols = s->steps_sparse ? s->cols_sum / (double)s->steps_sparse : 0.0;
    log_info("exchange the sparse exchange served %llu of %llu steps: %.0f columns of W_1 "
             "(%.1f%% of %zu) per step on average, %.3g MB received per rank against %.3g MB "
             "for the dense allreduce",
             (unsigned long long)s->steps_sparse, (unsigned long long)steps, cols,
             100.0 * cols / (double)(s->D ? s->D : 1), s->D,
             cols * (double)(s->H + 1) * 4.0 / 1e6,
             2.0 * (r->P - 1) / r->P * (double)(r->n + N_SLOTS) * 4.0 / 1e6);
}

void reduce_sparse_counts(const Reduce *r, uint64_t *sparse_steps, uint64_t *dense_steps)
{
    const Sparse *s = r->ops == &REDUCE_SPARSE ? sp(r) : NULL;
    *sparse_steps = s ? s->steps_sparse : 0;
    *dense_steps = s ? s->steps_dense : 0;
}

const ReduceOps REDUCE_SPARSE = {.name = "sparse", .buffer_elems = sparse_buffer_elems,
                                 .open = sparse_open, .close = sparse_close,
                                 .begin = sum_op_begin, .add = sum_op_add,
                                 .partial = sum_op_partial, .hooks = sum_op_hooks,
                                 .done = sum_op_done, .finish = sparse_finish,
                                 .report = sparse_report};
