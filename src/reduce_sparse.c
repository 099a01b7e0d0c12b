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
 * The update stays dense (optim.h): momentum, Adam and weight decay move every parameter
 * each step. Never sharded, never through the shared window, never in the reproducible mode
 * (plan.c).
 *
 * TOUCHED, the same exchange for plain SGD (optim_is_plain: no momentum, weight decay or
 * clipping), where an element whose gradient is zero does not move, so nothing of a step
 * needs the untouched columns of W_1 (with 100,000 columns, 60 outputs and 64 rows of 15
 * non-zeros per rank, 6 million weights against about 60,000 touched):
 *
 *   - the columns come from the micro-batches' rows (note: the CSR indices), not from a
 *     read of the gradient, each given a run of H floats in order of appearance: column
 *     j's gradient is packed at the start of W_1's part of the buffer, in run pos[j]
 *     (backward adds it there: ModelInput.w1_pos), so that a step's gradient costs the
 *     memory of its columns, not of W_1 (the buffer's pages are the system's zero pages,
 *     resident once written: linalg_alloc_zeros);
 *   - the buffer is kept zero elsewhere: begin zeroes what the last step wrote (its runs
 *     and the parameters outside W_1), and every backward accumulates into it, where the
 *     sum implementation's first backward zeroes all of W_1;
 *   - the exchange is the records above (none at P = 1), after which the runs are dealt
 *     again to the union of the ranks' columns in rank order (the same on every rank); or
 *     the allreduce when the rule says so: the runs are first moved to their columns'
 *     places (all of W_1's pages resident from then on), the whole buffer is zeroed next
 *     step and the update is dense;
 *   - the update visits the union's columns, each from its run, and the parameters outside
 *     W_1 with optim_step_run, optim_step's expression: every other element would not
 *     have moved.
 *
 * The trainer keeps W_1 by column for this step (model.h's w1_by_column, chosen with it):
 * a column's H weights, gradients and records are then one contiguous run for the kernels
 * (csr.h), the zeroing, the exchange and the update, where (H, D) row-major spreads them
 * over H cache lines D floats apart.
 *
 * At P = 1 and 2 the sums are those of the sum implementation bit for bit (0 + x is x, and
 * two floats add the same in either order), hence the same parameters; from P = 3 the
 * records' rank order and MPI's order may round differently.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"
#include "linalg.h"
#include "log.h"
#include "reduce_impl.h"

typedef struct {
    FloatSums f;        /* first: the sum implementation's step calls use it */
    size_t w0, H, D;    /* W_1 is g[w0 + o so + j sj], o < H, j < D: (H, D) row-major */
    size_t so, sj;      /* (so = D, sj = 1), or by column (1, H) (model.h's w1_by_column) */
    size_t nrest;       /* the rest: parameters outside W_1, then the slots */
    float *rest;        /* (nrest) packed for its allreduce */
    uint8_t *mark;      /* (D) this step's columns of this rank */
    uint32_t *own;      /* (D) them, listed: nown */
    size_t nown;
    uint32_t *pos;      /* (D) touched only: where a column of the step sits in the packed
                           gradient (its run, H floats at g + w0 + pos H), else CSR_NO_SLOT */
    uint32_t *uni;      /* (D) touched only: the step's columns over all ranks, in run order */
    size_t nuni;
    bool all_dirty;     /* touched only: the step took the allreduce, every element may be set */
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
    free(s->mark);
    free(s->own);
    free(s->pos);
    free(s->uni);
    linalg_free_zeros(s->rec, s->cap * sizeof *s->rec);
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
        s->so = sh->w1_by_column ? 1 : s->D;
        s->sj = sh->w1_by_column ? s->H : 1;
        s->nrest = r->n - s->H * s->D + N_SLOTS;
        s->cap = s->H * s->D + s->D; /* the largest exchange the rule lets through */
        s->rest = malloc(s->nrest * sizeof *s->rest);
        s->mark = calloc(s->D ? s->D : 1, 1);
        s->own = malloc((s->D ? s->D : 1) * sizeof *s->own);
        s->rec = linalg_alloc_zeros(s->cap * sizeof *s->rec); /* resident as far as used */
        s->counts = malloc((size_t)r->P * sizeof *s->counts);
        s->bytes = malloc((size_t)r->P * sizeof *s->bytes);
        s->displs = malloc((size_t)r->P * sizeof *s->displs);
        if (!s->rest || !s->mark || !s->own || !s->rec || !s->counts || !s->bytes || !s->displs)
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

/* This rank's touched columns into s->own: those with a non-zero in its W_1 gradient (one
 * read of W_1's gradient, (H, D): W_1 is kept by column for touched only). */
static void scan_columns(Sparse *s)
{
    const float *W = s->f.g + s->w0;
    XT_ASSERT(s->sj == 1);
    memset(s->mark, 0, s->D);
    for (size_t o = 0; o < s->H; o++)
        for (size_t j = 0; j < s->D; j++) s->mark[j] |= W[o * s->D + j] != 0.0f;
    s->nown = 0;
    for (size_t j = 0; j < s->D; j++)
        if (s->mark[j]) s->own[s->nown++] = (uint32_t)j;
}

/* Where column j's gradient sits in W_1's part of the buffer: element o at
 * W[o so + at(j) sj], at(j) = j, or its run pos[j] (touched: the gradient kept packed). */
static size_t at(const Sparse *s, uint32_t j) { return s->pos ? s->pos[j] : j; }

/* s->own's columns as records at rec: the index bits, then the column's H values. */
static void pack_own(const Sparse *s, float *rec)
{
    const float *W = s->f.g + s->w0;
    for (size_t c = 0; c < s->nown; c++) {
        float *out = rec + c * (s->H + 1);
        uint32_t j = s->own[c];
        memcpy(out, &j, sizeof j); /* bits, not a float value: D may exceed 2^24 */
        for (size_t o = 0; o < s->H; o++) out[1 + o] = W[o * s->so + at(s, j) * s->sj];
    }
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

/* SPARSE: the records allgathered, the rest allreduced, W_1's sums rebuilt in rank order
 * (touched: their columns listed in s->uni). */
static void exchange(Reduce *r, Sparse *s)
{
    const size_t rl = s->H + 1;
    size_t off = 0;
    for (int q = 0; q < r->P; q++) {
        s->displs[q] = off * sizeof(float);
        s->bytes[q] = (size_t)s->counts[q] * rl * sizeof(float);
        off += (size_t)s->counts[q] * rl;
    }
    pack_own(s, s->rec + s->displs[r->rank] / sizeof(float));
    comm_allgatherv_inplace(r->comm, s->rec, s->bytes, s->displs);
    move_rest(s, r->n, true);
    comm_allreduce_sum_float(r->comm, s->rest, s->nrest);
    move_rest(s, r->n, false);
    float *W = s->f.g + s->w0;
    for (size_t c = 0; c < s->nown; c++) /* this rank's columns start from zero again */
        for (size_t o = 0; o < s->H; o++) W[o * s->so + at(s, s->own[c]) * s->sj] = 0.0f;
    if (s->pos) /* touched: the runs dealt again, to the union's columns in rank order */
        for (size_t c = 0; c < s->nown; c++) s->pos[s->own[c]] = CSR_NO_SLOT;
    for (size_t c = 0; c < off / rl; c++) {
        const float *in = s->rec + c * rl;
        uint32_t j;
        memcpy(&j, in, sizeof j);
        if (s->pos && s->pos[j] == CSR_NO_SLOT) {
            s->pos[j] = (uint32_t)s->nuni;
            s->uni[s->nuni++] = j;
        }
        for (size_t o = 0; o < s->H; o++) W[o * s->so + at(s, j) * s->sj] += in[1 + o];
    }
}

/* touched, before the allreduce of everything: the runs back to their columns' places (the
 * records' buffer as scratch). */
static void unpack(Sparse *s)
{
    float *W = s->f.g + s->w0;
    const size_t H = s->H, bytes = s->nown * H * sizeof *W;
    memcpy(s->rec, W, bytes);
    memset(W, 0, bytes);
    for (size_t c = 0; c < s->nown; c++) memcpy(W + s->own[c] * H, s->rec + c * H, H * sizeof *W);
}

/* The ranks' column counts, then the exchange when a rank receives fewer words than a
 * ring allreduce of the buffer moves, else the allreduce. Returns true for the exchange. */
static bool exchange_or_allreduce(Reduce *r, Sparse *s)
{
    uint64_t mine = (uint64_t)s->nown, all = 0;
    comm_allgather(r->comm, &mine, s->counts, sizeof mine);
    for (int q = 0; q < r->P; q++) all += s->counts[q];
    double sparse_words = (double)all * (double)(s->H + 1);
    double dense_words = 2.0 * (r->P - 1) / r->P * (double)(r->n + N_SLOTS);
    if (r->P > 1 && sparse_words < dense_words && all * (s->H + 1) <= s->cap) {
        exchange(r, s);
        s->steps_sparse++;
        s->cols_sum += (double)all;
        return true;
    }
    if (s->pos) unpack(s);
    r->cross(r, s->f.g, N_SLOTS, COMM_F32);
    s->steps_dense++;
    return false;
}

static const float *sparse_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    Sparse *s = sp(r);
    FloatSums *f = &s->f;
    if (f->written == 0) memset(f->g, 0, r->n * sizeof *f->g); /* no rows here */
    float_sums_seal(f, r->n, reduce_signalled(r));
    double t0 = comm_wtime();
    scan_columns(s);
    double t1 = comm_wtime();
    exchange_or_allreduce(r, s);
    t->work_s = t1 - t0;
    t->comm_s = comm_wtime() - t1;
    float_sums_totals(f, r->n, tot);
    return tot->nonfinite ? NULL : f->g;
}

/* Rank 0 after any step: the steps and the mean columns of the sparse ones, for the run's
 * closing line. */
static bool report_due(const Reduce *r, uint64_t *steps, double *cols)
{
    const Sparse *s = sp(r);
    *steps = s->steps_sparse + s->steps_dense;
    *cols = s->steps_sparse ? s->cols_sum / (double)s->steps_sparse : 0.0;
    return r->rank == 0 && *steps > 0;
}

static void sparse_report(const Reduce *r)
{
    const Sparse *s = sp(r);
    uint64_t steps;
    double cols;
    if (!report_due(r, &steps, &cols)) return;
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
    const Sparse *s = r->ops == &REDUCE_SPARSE || r->ops == &REDUCE_TOUCHED ? sp(r) : NULL;
    *sparse_steps = s ? s->steps_sparse : 0;
    *dense_steps = s ? s->steps_dense : 0;
}

const ReduceOps REDUCE_SPARSE = {.name = "sparse", .buffer_elems = sparse_buffer_elems,
                                 .open = sparse_open, .close = sparse_close,
                                 .begin = sum_op_begin, .add = sum_op_add,
                                 .partial = sum_op_partial, .hooks = sum_op_hooks,
                                 .done = sum_op_done, .finish = sparse_finish,
                                 .report = sparse_report};

/* ---- touched ------------------------------------------------------------------------------ */

static Status touched_open(Reduce *r, const ReduceSpec *spec, char *why, size_t len)
{
    XT_ASSERT(optim_is_plain(spec->oset) && spec->shape->w1_by_column);
    Status st = sparse_open(r, spec, why, len);
    if (st != XT_OK) return st;
    Sparse *s = sp(r);
    s->pos = malloc((s->D ? s->D : 1) * sizeof *s->pos);
    s->uni = malloc((s->D ? s->D : 1) * sizeof *s->uni);
    if (!s->pos || !s->uni) {
        snprintf(why, len, "the touched columns' lists (%zu columns)", s->D);
        return XT_ERR_RUNTIME; /* reduce_open closes it */
    }
    for (size_t j = 0; j < s->D; j++) s->pos[j] = CSR_NO_SLOT;
    return XT_OK;
}

/* The parameters outside W_1 and the slots: [0, w0) and [w0 + H D, n + N_SLOTS). */
static void zero_rest(Sparse *s, size_t n)
{
    float *g = s->f.g;
    size_t end = s->w0 + s->H * s->D;
    memset(g, 0, s->w0 * sizeof *g);
    memset(g + end, 0, (n + N_SLOTS - end) * sizeof *g);
}

/* The buffer back to zeros where the last step wrote (its runs, or everything after an
 * allreduce); no columns placed yet. */
static void touched_begin(Reduce *r)
{
    Sparse *s = sp(r);
    if (s->all_dirty) {
        memset(s->f.g, 0, (r->n + N_SLOTS) * sizeof *s->f.g);
    } else {
        memset(s->f.g + s->w0, 0, s->nuni * s->H * sizeof *s->f.g);
        zero_rest(s, r->n);
    }
    for (size_t c = 0; c < s->nuni; c++) s->pos[s->uni[c]] = CSR_NO_SLOT;
    for (size_t c = 0; c < s->nown; c++) s->pos[s->own[c]] = CSR_NO_SLOT;
    s->nuni = s->nown = 0;
    s->all_dirty = false;
    float_sums_begin(&s->f);
}

/* The micro-batch's columns each get a run, in order of appearance; its backward adds W_1's
 * gradient there (in->w1_pos). */
static void touched_note(Reduce *r, size_t part, ModelInput *in)
{
    (void)part;
    Sparse *s = sp(r);
    XT_ASSERT(in->csr); /* plan.c chooses this implementation for CSR batches only */
    const int32_t *col = in->csr->indices;
    for (size_t k = 0; k < csr_nnz(in->csr); k++) {
        uint32_t j = (uint32_t)col[k];
        if (s->pos[j] == CSR_NO_SLOT) {
            s->pos[j] = (uint32_t)s->nown;
            s->own[s->nown++] = j;
        }
    }
    in->w1_pos = s->pos;
}

/* Every backward adds: the buffer is zero outside what this step writes. */
static float *touched_partial(Reduce *r, size_t part, bool *accumulate)
{
    (void)part;
    *accumulate = true;
    return sp(r)->f.g;
}

static const float *touched_finish(Reduce *r, StepTotals *tot, ReduceTimes *t)
{
    Sparse *s = sp(r);
    float_sums_seal(&s->f, r->n, reduce_signalled(r));
    double t0 = comm_wtime();
    if (r->P == 1) {
        memcpy(s->uni, s->own, s->nown * sizeof *s->uni);
        s->nuni = s->nown;
        s->steps_sparse++;
        s->cols_sum += (double)s->nown;
    } else {
        s->all_dirty = !exchange_or_allreduce(r, s);
    }
    t->work_s = 0.0;
    t->comm_s = comm_wtime() - t0;
    float_sums_totals(&s->f, r->n, tot);
    return tot->nonfinite ? NULL : s->f.g;
}

/* The union's columns of W_1 (each a run of H parameters, W_1 kept by column, from its run
 * of the packed gradient) and the parameters outside W_1 (optim_step_run), or all of them
 * after an allreduce (optim_step: the same values, as every other gradient is zero). */
static double touched_update(Reduce *r, const float *grads, float grad_scale, double lr)
{
    Sparse *s = sp(r);
    const Optim *o = &r->optim;
    if (s->all_dirty) {
        optim_step(&r->optim, r->params, grads, grad_scale, lr);
        return r->after_update(r);
    }
    float *W = r->params + s->w0;
    const float *G = grads + s->w0;
    for (size_t u = 0; u < s->nuni; u++)
        optim_step_run(o, W + s->uni[u] * s->H, G + u * s->H, s->H, grad_scale, lr);
    const size_t end = s->w0 + s->H * s->D;
    optim_step_run(o, r->params, grads, s->w0, grad_scale, lr);
    optim_step_run(o, r->params + end, grads + end, r->n - end, grad_scale, lr);
    return r->after_update(r);
}

static void touched_report(const Reduce *r)
{
    const Sparse *s = sp(r);
    uint64_t steps;
    double cols;
    if (!report_due(r, &steps, &cols)) return;
    log_info("touched  plain SGD updated only the touched columns of W_1 in %llu of %llu steps: "
             "%.0f of %zu columns (%.1f%%) per step on average%s",
             (unsigned long long)s->steps_sparse, (unsigned long long)steps, cols, s->D,
             100.0 * cols / (double)(s->D ? s->D : 1),
             s->steps_dense ? "; the others took the allreduce and a dense update" : "");
}

const ReduceOps REDUCE_TOUCHED = {.name = "touched", .buffer_elems = sparse_buffer_elems,
                                  .open = touched_open, .close = sparse_close,
                                  .begin = touched_begin, .add = sum_op_add,
                                  .partial = touched_partial, .hooks = sum_op_hooks,
                                  .done = sum_op_done, .finish = touched_finish,
                                  .report = touched_report, .note = touched_note,
                                  .update = touched_update};
