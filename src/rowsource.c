#include "rowsource.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"
#include "linalg.h"
#include "log.h"
#include "strutil.h"
#include "sysmem.h"

/* Rows per block when a statistic reads the whole source. */
#define ROWSOURCE_BLOCK_ROWS 1024

/* The two ways rows are held. Every function of the interface dispatches through these. */
struct RowSourceOps {
    void (*gather)(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out);
    void (*read)(const RowSource *s, size_t lo, size_t m, RowBatch *out);
    void (*read_batch)(const RowSource *s, size_t lo, size_t m, RowBatch *out);
    void (*prefetch)(const RowSource *s, const uint32_t *rows, size_t m);
    void (*begin_step)(RowSource *s, uint64_t epoch, size_t t);
    Status (*batch_alloc)(const RowSource *s, size_t cap, RowBatch *b);
};

static Status dense_batch_alloc(const RowSource *s, size_t cap, RowBatch *b)
{
    b->X = linalg_alloc((cap ? cap : 1) * s->d * sizeof *b->X);
    b->in = model_input_dense(b->X);
    return b->X ? XT_OK : XT_ERR_RUNTIME;
}

static Status csr_batch_alloc(const RowSource *s, size_t cap, RowBatch *b)
{
    Status st = csr_init_batch(&b->csr, cap, csr_max_nnz(&s->ds->csr, cap), s->d);
    b->in = model_input_csr(&b->csr);
    return st;
}

static void copy_targets(const RowSource *s, size_t row, size_t i, RowBatch *out)
{
    const Dataset *ds = s->ds;
    if (s->target == TARGET_DENSE) {
        if (out->t)
            memcpy(out->t + i * s->k_dense, ds->t + row * s->k_dense, s->k_dense * sizeof(float));
    } else if (out->y) {
        out->y[i] = ds->y[row];
    }
}

static void memory_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    dataset_gather_rows(out->X, s->ds, rows, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, rows[i], i, out);
}

static void memory_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    dataset_read_rows(out->X, s->ds, lo, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, lo + i, i, out);
}

static void memory_prefetch(const RowSource *s, const uint32_t *rows, size_t m)
{
    dataset_prefetch_rows(s->ds, rows, m);
}

static void memory_begin_step(RowSource *s, uint64_t epoch, size_t t)
{
    (void)s;
    (void)epoch;
    (void)t;
}

static void stream_src_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    stream_gather(s->stream, rows, m, out->X, out->y, out->t, s->shift, s->mul);
}

static void stream_src_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    stream_read(s->stream, lo, m, out->X, out->y, out->t, s->shift, s->mul);
}

static void stream_src_prefetch(const RowSource *s, const uint32_t *rows, size_t m)
{
    (void)s; /* the reader thread reads ahead */
    (void)rows;
    (void)m;
}

static void stream_src_begin_step(RowSource *s, uint64_t epoch, size_t t)
{
    stream_begin_step(s->stream, epoch, t);
}

/* A CSR Dataset: batches gathered as CSR, or densified; read blocks always dense. */
static void csr_src_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    csr_gather(&out->csr, &s->ds->csr, rows, m, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, rows[i], i, out);
}

static void csr_src_gather_dense(const RowSource *s, const uint32_t *rows, size_t m,
                                 RowBatch *out)
{
    csr_densify_affine(out->X, &s->ds->csr, rows, 0, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, rows[i], i, out);
}

static void csr_src_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    csr_densify_affine(out->X, &s->ds->csr, NULL, lo, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, lo + i, i, out);
}

static void csr_src_read_csr(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    csr_slice(&out->csr, &s->ds->csr, lo, m, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, lo + i, i, out);
}

static void csr_src_prefetch(const RowSource *s, const uint32_t *rows, size_t m)
{
    (void)s;
    (void)rows;
    (void)m;
}

/* A streamed CSR split (stream_csr.h): batches CSR, or densified; read blocks dense. */
static void csr_stream_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    stream_csr_gather(s->cstream, rows, m, &out->csr, out->y, out->t, s->mul);
}

static void csr_stream_gather_dense(const RowSource *s, const uint32_t *rows, size_t m,
                                    RowBatch *out)
{
    stream_csr_gather_dense(s->cstream, rows, m, out->X, out->y, out->t, s->shift, s->mul);
}

static void csr_stream_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    stream_csr_read_dense(s->cstream, lo, m, out->X, out->y, out->t, s->shift, s->mul);
}

static void csr_stream_read_csr(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    stream_csr_read(s->cstream, lo, m, &out->csr, out->y, out->t, s->mul);
}

static void csr_stream_begin_step(RowSource *s, uint64_t epoch, size_t t)
{
    stream_csr_begin_step(s->cstream, epoch, t);
}

static Status csr_stream_batch_alloc(const RowSource *s, size_t cap, RowBatch *b)
{
    Status st = csr_init_batch(&b->csr, cap, stream_csr_max_nnz(s->cstream, cap), s->d);
    b->in = model_input_csr(&b->csr);
    return st;
}

static const RowSourceOps MEMORY_OPS = {memory_gather, memory_read, memory_read,
                                        memory_prefetch, memory_begin_step, dense_batch_alloc};
static const RowSourceOps STREAM_OPS = {stream_src_gather, stream_src_read, stream_src_read,
                                        stream_src_prefetch, stream_src_begin_step,
                                        dense_batch_alloc};
static const RowSourceOps CSR_OPS = {csr_src_gather, csr_src_read, csr_src_read_csr,
                                     csr_src_prefetch, memory_begin_step, csr_batch_alloc};
static const RowSourceOps CSR_DENSE_OPS = {csr_src_gather_dense, csr_src_read, csr_src_read,
                                           csr_src_prefetch, memory_begin_step,
                                           dense_batch_alloc};
static const RowSourceOps CSR_STREAM_OPS = {csr_stream_gather, csr_stream_read,
                                            csr_stream_read_csr, csr_src_prefetch,
                                            csr_stream_begin_step, csr_stream_batch_alloc};
static const RowSourceOps CSR_STREAM_DENSE_OPS = {csr_stream_gather_dense, csr_stream_read,
                                                  csr_stream_read, csr_src_prefetch,
                                                  csr_stream_begin_step, dense_batch_alloc};

void rowsource_init(RowSource *s, Dataset *ds)
{
    *s = (RowSource){.ops = ds->info.x_csr ? &CSR_DENSE_OPS : &MEMORY_OPS,
                     .n = ds->hi - ds->lo,
                     .d = ds->info.d,
                     .target = ds->info.target,
                     .k_dense = ds->info.k_dense,
                     .ds = ds};
}

void rowsource_free(RowSource *s)
{
    stream_close(s->stream);
    s->stream = NULL;
    stream_csr_close(s->cstream);
    s->cstream = NULL;
}

void rowsource_set_normalization(RowSource *s, const float *shift, const float *mul)
{
    if (!shift) return;
    if (s->stream || s->ds->X8 || s->ds->info.x_csr) { /* normalised as rows are handed out */
        s->shift = shift;
        s->mul = mul;
        for (size_t j = 0; j < s->d && !s->centred; j++) s->centred = shift[j] != 0.0f;
        /* CSR rows shifted (a standardised model on CSR data) are dense: the dense path */
        if (s->centred && s->ops == &CSR_OPS) s->ops = &CSR_DENSE_OPS;
        if (s->centred && s->ops == &CSR_STREAM_OPS) s->ops = &CSR_STREAM_DENSE_OPS;
    } else {
        dataset_apply_affine(s->ds, shift, mul);
    }
}

Status rowsource_batch_alloc(const RowSource *s, size_t cap, RowBatch *b)
{
    return s->ops->batch_alloc(s, cap, b);
}

void rowsource_batch_free(RowBatch *b)
{
    free(b->X);
    b->X = NULL;
    csr_free(&b->csr);
    b->in = (ModelInput){0};
}

void rowsource_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    s->ops->gather(s, rows, m, out);
}

void rowsource_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    XT_ASSERT(lo + m <= s->n);
    s->ops->read(s, lo, m, out);
}

void rowsource_read_batch(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    XT_ASSERT(lo + m <= s->n);
    s->ops->read_batch(s, lo, m, out);
}

void rowsource_prefetch(const RowSource *s, const uint32_t *rows, size_t m)
{
    s->ops->prefetch(s, rows, m);
}

void rowsource_begin_step(RowSource *s, uint64_t epoch, size_t t)
{
    s->ops->begin_step(s, epoch, t);
}

/* The read size a stream gets from a budget: a small share of it, 4 KiB to 4 MiB. */
static size_t stream_io_bytes(double budget)
{
    double io = budget > 0 ? budget / 32 : 4194304.0;
    return (size_t)(io < 4096.0 ? 4096.0 : io > 4194304.0 ? 4194304.0 : io);
}

/* The smallest budget that holds one step in each of two windows besides the stream's own
 * buffers, which grow with the budget (their reads take a share of it). */
static double stream_sufficient_budget(const Stream *st, size_t local, size_t max_local)
{
    double steps = 2.0 * (double)max_local * (double)stream_row_bytes(st);
    double b = steps + (double)stream_fixed_bytes_at(st, local, stream_io_bytes(0.0));
    for (int i = 0; i < 64; i++) { /* the buffers' share of b is under a quarter: converges */
        double next = steps + (double)stream_fixed_bytes_at(st, local, stream_io_bytes(b));
        if (next <= b) break;
        b = next;
    }
    return ceil(b / 1024.0) * 1024.0;
}

/* The smallest budget (from below: the stream's block grows with the budget) that holds
 * `need` bytes besides a streamed CSR source's indptr slice and block. */
static double csr_sufficient_budget(const StreamCsr *c, double need)
{
    double b = need + (double)stream_csr_fixed_bytes_at(c, stream_io_bytes(1.0));
    for (int i = 0; i < 64; i++) {
        double next = need + (double)stream_csr_fixed_bytes_at(c, stream_io_bytes(b));
        if (next <= b) break;
        b = next;
    }
    return ceil(b / 1024.0) * 1024.0;
}

static void csr_refuse(const StreamCsr *c, double budget, double need, const char *what,
                       char *err, size_t errlen)
{
    char hb[32], hn[32];
    double enough = csr_sufficient_budget(c, need);
    strutil_human_bytes(budget, hb, sizeof hb);
    strutil_human_bytes(enough, hn, sizeof hn);
    snprintf(err, errlen, "data.memory_budget: %s per rank is too small to stream the training "
             "rows (CSR): %s, the indptr slice (8 bytes a row) and a read block need "
             "data.memory_budget = %.0f (%s) or more; or use more ranks", hb, what, enough, hn);
}

/* A streamed CSR source's window: one step at least, else the budget's share of the steps
 * to come in the proportions of the largest step (rows, non-zeros), or every row. */
static Status plan_csr_windows(RowSource *s, const Sampler *sp, double budget, double *bytes,
                               char *err, size_t errlen)
{
    StreamCsr *c = s->cstream;
    size_t local = sp->row_hi - sp->row_lo, ml = sp->max_local > 0 ? sp->max_local : 1;
    size_t total = stream_csr_nnz(c), step_nnz = stream_csr_max_nnz(c, ml);
    double row = (double)stream_csr_window_row_bytes(c), nz = (double)STREAM_CSR_NNZ_BYTES;
    /* the trainer's sampler and the window's copy (4 bytes a row each), a step's positions
     * and the window's room for a step being enumerated */
    double index = 2.0 * (double)local * sizeof(uint32_t) + 2.0 * (double)ml * sizeof(uint32_t);
    double step = (double)ml * row + (double)step_nnz * nz;
    double fixed = index + (double)stream_csr_fixed_bytes(c);
    double room = budget > 0 ? budget - fixed : INFINITY;
    if (room < step) {
        char what[200];
        snprintf(what, sizeof what, "one step of %zu rows (up to %zu non-zeros) in the window",
                 ml, step_nnz);
        csr_refuse(c, budget, step + index, what, err, errlen);
        return XT_ERR_USAGE;
    }
    size_t wr = local > ml ? local : ml, wz = total > step_nnz ? total : step_nnz;
    if (room < (double)wr * row + (double)wz * nz) {
        double f = room / step;
        wr = (size_t)((double)ml * f);
        wz = (size_t)((double)step_nnz * f);
        wr = wr < ml ? ml : wr > local ? (local > ml ? local : ml) : wr;
        wz = wz < step_nnz ? step_nnz : wz > total ? (total > step_nnz ? total : step_nnz) : wz;
    }
    *bytes = fixed + (double)wr * row + (double)wz * nz;
    return stream_csr_plan(c, sp, wr, wz);
}

Status rowsource_plan_passes(RowSource *s, double budget, double *bytes, char *err,
                             size_t errlen)
{
    if (s->cstream) {
        *bytes = (double)stream_csr_fixed_bytes(s->cstream);
        if (budget <= 0 || *bytes <= budget) return XT_OK;
        csr_refuse(s->cstream, budget, 0.0, "rows read in order a micro-batch at a time", err,
                   errlen);
        return XT_ERR_USAGE;
    }
    *bytes = s->stream ? (double)stream_fixed_bytes(s->stream, 0)
                       : (double)s->n * dataset_row_bytes(&s->ds->info, s->ds->X8 != NULL);
    return XT_OK;
}

Status rowsource_plan_training(RowSource *s, const Sampler *sp, double budget, uint64_t epochs,
                               double *bytes, char *err, size_t errlen)
{
    if (s->cstream) return plan_csr_windows(s, sp, budget, bytes, err, errlen);
    size_t local = sp->row_hi - sp->row_lo;
    if (!s->stream) {
        *bytes = (double)local * dataset_row_bytes(&s->ds->info, s->ds->X8 != NULL);
        return XT_OK;
    }
    size_t row = stream_row_bytes(s->stream);
    double fixed = (double)stream_fixed_bytes(s->stream, local) + (double)local * sizeof(uint32_t);
    double wr = budget > 0 ? (budget - fixed) / (2.0 * (double)row) : (double)local;
    if (wr > (double)local) wr = (double)local;
    if (wr < (double)sp->max_local) {
        char hb[32], hn[32];
        strutil_human_bytes(budget, hb, sizeof hb);
        double enough = stream_sufficient_budget(s->stream, local, sp->max_local) +
                        (double)local * sizeof(uint32_t);
        strutil_human_bytes(enough, hn, sizeof hn);
        snprintf(err, errlen, "data.memory_budget: %s per rank is too small to stream the "
                 "training rows: one step of %zu rows in each of two windows plus the reader's "
                 "buffers needs data.memory_budget = %.0f (%s) or more; or lower "
                 "train.batch_size, or use more ranks", hb, sp->max_local, enough, hn);
        return XT_ERR_USAGE;
    }
    *bytes = fixed + 2.0 * wr * (double)row;
    return stream_plan(s->stream, sp, (size_t)wr, epochs);
}

void rowsource_describe(const RowSource *s, char *buf, size_t len)
{
    if (s->cstream) {
        char how[700];
        stream_csr_describe(s->cstream, how, sizeof how);
        snprintf(buf, len, "streamed from the file (%s)", how);
        return;
    }
    if (!s->stream) {
        snprintf(buf, len, "in memory");
        return;
    }
    char how[600];
    StreamStats ss;
    stream_stats(s->stream, &ss);
    stream_describe(s->stream, how, sizeof how);
    if (ss.window_rows == 0) snprintf(buf, len, "streamed from the file in blocks (%s)", how);
    else
        snprintf(buf, len, "streaming from the file (%s): two windows of %zu rows (about %zu "
                 "steps each) read ahead", how, ss.window_rows, ss.window_steps);
}

void rowsource_stream_stats(RowSource *s, StreamStats *out)
{
    *out = (StreamStats){0};
    if (s->cstream) stream_csr_stats(s->cstream, out);
    if (!s->stream) return;
    stream_stop(s->stream); /* its counters are final */
    stream_stats(s->stream, out);
}

/* ---- memory or stream -------------------------------------------------------------------- */

RowHolding rowsource_holding(StreamMode mode, double need_max, double budget)
{
    bool big = budget > 0 && need_max > budget;
    if (mode == STREAM_TRUE || (mode == STREAM_AUTO && big)) return HOLD_STREAM;
    return big ? HOLD_REFUSED : HOLD_MEMORY;
}

double rowsource_budget(double configured, int local_ranks, char *why, size_t whylen)
{
    if (configured > 0) {
        snprintf(why, whylen, "data.memory_budget");
        return configured;
    }
    SysMem mem;
    sysmem_read("", &mem);
    if (mem.bytes <= 0) {
        snprintf(why, whylen, "no limit: the usable memory is unknown");
        return 0.0;
    }
    char src[1300];
    sysmem_describe(&mem, src, sizeof src);
    int local = local_ranks > 0 ? local_ranks : 1;
    snprintf(why, whylen, "%.0f%% of %s, over %d rank(s) on this node",
             100.0 * DEFAULT_BUDGET_SHARE, src, local);
    return DEFAULT_BUDGET_SHARE * mem.bytes / (double)local;
}

static Status open_stream(RowSource *s, Dataset *ds, const DatasetInfo *info, size_t lo,
                          size_t hi, size_t k, const SourceOptions *o)
{
    char why[XT_PATH_MAX + 1200];
    Stream *st = NULL;
    Status rc = stream_open(&st, info, lo, hi, o->compact, stream_io_bytes(o->budget), why,
                            sizeof why);
    if (rc != XT_OK) {
        log_error("%s: %s:%s cannot be streamed: %s%s", o->what, info->file, info->group, why,
                  o->mode == STREAM_AUTO ? " (and its rows do not fit data.memory_budget)" : "");
        return rc;
    }
    /* rows that the usable memory could not cache either: drop them from the page cache as
     * they are read */
    SysMem mem;
    sysmem_read("", &mem);
    double rows = (double)(hi - lo) * dataset_row_bytes(info, o->compact);
    stream_set_drop_cache(st, mem.bytes > 0 && rows * (double)o->local_ranks > mem.bytes);
    rc = stream_scan(st, ds, k, o->probs);
    if (rc != XT_OK) {
        stream_close(st);
        dataset_free(ds);
        return rc;
    }
    rowsource_init(s, ds);
    s->ops = &STREAM_OPS;
    s->stream = st;
    return XT_OK;
}

static Status open_csr_stream(RowSource *s, Dataset *ds, const DatasetInfo *info, size_t lo,
                              size_t hi, size_t k, const SourceOptions *o)
{
    char why[XT_PATH_MAX + 1200];
    StreamCsr *st = NULL;
    Status rc = stream_csr_open(&st, info, lo, hi, stream_io_bytes(o->budget), why, sizeof why);
    if (rc != XT_OK) {
        log_error("%s: %s:%s cannot be streamed: %s%s", o->what, info->file, info->group, why,
                  o->mode == STREAM_AUTO ? " (and its rows do not fit data.memory_budget)" : "");
        return rc;
    }
    rc = stream_csr_scan(st, ds, k, o->probs);
    if (rc != XT_OK) {
        stream_csr_close(st);
        dataset_free(ds);
        return rc;
    }
    rowsource_init(s, ds);
    s->ops = o->csr_batches ? &CSR_STREAM_OPS : &CSR_STREAM_DENSE_OPS;
    s->cstream = st;
    return XT_OK;
}

Status rowsource_open(RowSource *s, Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi,
                      size_t k, const SourceOptions *o, const Comm *comm, bool *streamed)
{
    *s = (RowSource){0};
    double need = (double)(hi - lo) * dataset_row_bytes(info, o->compact) +
                  (double)(hi - lo) * (double)o->extra_per_row;
    double need_max = need;
    if (comm) comm_allreduce_max_double(comm, &need_max, 1);
    RowHolding h = rowsource_holding(o->mode, need_max, o->budget);
    *streamed = h == HOLD_STREAM;
    if (h == HOLD_REFUSED) { /* data.stream = false and a rank over the budget: all refuse */
        if (need > o->budget) {
            char hneed[32], hbudget[32];
            strutil_human_bytes(need, hneed, sizeof hneed);
            strutil_human_bytes(o->budget, hbudget, sizeof hbudget);
            log_error("%s: %s:%s rows [%zu, %zu) need about %s in memory, more than this rank's "
                      "data.memory_budget of %s, and data.stream = false: set data.stream = auto "
                      "(or true) to stream them from the file, raise data.memory_budget, or use "
                      "more ranks (or nodes)", o->what, info->file, info->group, lo, hi, hneed,
                      hbudget);
        }
        return XT_ERR_USAGE;
    }
    Status st;
    if (*streamed) {
        st = (info->x_csr ? open_csr_stream : open_stream)(s, ds, info, lo, hi, k, o);
        return comm ? comm_agree(comm, st) : st;
    }
    st = (o->compact ? dataset_load_compact : dataset_load)(ds, info, lo, hi, k, comm);
    if (st == XT_OK && o->probs) st = dataset_check_distributions(ds);
    if (comm) st = comm_agree(comm, st);
    if (st == XT_OK) rowsource_init(s, ds);
    else dataset_free(ds);
    if (st == XT_OK && info->x_csr && o->csr_batches) s->ops = &CSR_OPS;
    return st;
}

/* Calls fn on every block of rows as they come out (float32 rows held in memory as they
 * are, without a copy). */
static Status for_blocks(const RowSource *s, void (*fn)(const float *X, size_t m, size_t d,
                                                       void *acc), void *acc)
{
    if (!s->stream && s->ds->X && !s->ds->X8 && !s->shift) {
        for (size_t lo = 0; lo < s->n; lo += ROWSOURCE_BLOCK_ROWS) {
            size_t m = s->n - lo < ROWSOURCE_BLOCK_ROWS ? s->n - lo : ROWSOURCE_BLOCK_ROWS;
            fn(s->ds->X + lo * s->d, m, s->d, acc);
        }
        return XT_OK;
    }
    size_t rows = s->n < ROWSOURCE_BLOCK_ROWS ? s->n : ROWSOURCE_BLOCK_ROWS;
    if (s->stream && stream_block_rows(s->stream) < rows) /* within the stream's budget */
        rows = stream_block_rows(s->stream);
    if (s->cstream && stream_csr_block_rows(s->cstream) < rows)
        rows = stream_csr_block_rows(s->cstream);
    float *X = malloc((rows ? rows : 1) * s->d * sizeof *X);
    if (!X) return XT_ERR_RUNTIME;
    RowBatch b = {.X = X};
    for (size_t lo = 0; lo < s->n; lo += rows) {
        size_t m = s->n - lo < rows ? s->n - lo : rows;
        rowsource_read(s, lo, m, &b);
        fn(X, m, s->d, acc);
    }
    free(X);
    return XT_OK;
}

typedef struct {
    double *sum, *sumsq;
} Sums;

static void add_sums(const float *X, size_t m, size_t d, void *acc)
{
    Sums *a = acc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double v = (double)X[i * d + j];
            a->sum[j] += v;
            a->sumsq[j] += v * v;
        }
}

Status rowsource_feature_sums(const RowSource *s, double *sum, double *sumsq)
{
    for (size_t j = 0; j < s->d; j++) sum[j] = sumsq[j] = 0.0;
    Sums a = {sum, sumsq};
    return for_blocks(s, add_sums, &a);
}

/* max |x| per column in float (exact: |x| of a float is a float), a loop the compiler
 * vectorises; NaN never wins the comparison (the data checks refuse it elsewhere). */
static void add_absmax(const float *X, size_t m, size_t d, void *acc)
{
    float *mx = acc;
    for (size_t i = 0; i < m; i++) {
        const float *x = X + i * d;
        for (size_t j = 0; j < d; j++) {
            float a = fabsf(x[j]);
            mx[j] = a > mx[j] ? a : mx[j];
        }
    }
}

/* Compact rows held in memory (uint8: the values themselves) are summed as bytes. */
static bool held_as_bytes(const RowSource *s)
{
    return !s->stream && s->ds->X8 && !s->shift;
}

static void absmax_bytes(const RowSource *s, double *mx)
{
    const size_t d = s->d;
    uint8_t *restrict m8 = calloc(d ? d : 1, 1);
    if (m8) {
        for (size_t i = 0; i < s->n; i++) {
            const uint8_t *restrict x = s->ds->X8 + i * d; /* bytes alias anything: restrict */
            for (size_t j = 0; j < d; j++) m8[j] = x[j] > m8[j] ? x[j] : m8[j];
        }
    }
    for (size_t j = 0; j < d; j++) mx[j] = m8 ? (double)m8[j] : 255.0;
    free(m8);
}

typedef struct {
    int64_t *acc;
    bool ok;
} SqNorms;

static void add_sq_norms(const float *X, size_t m, size_t d, void *arg)
{
    SqNorms *a = arg;
    for (size_t i = 0; i < m && a->ok; i++) {
        double q = 0.0;
        for (size_t j = 0; j < d; j++) q += (double)X[i * d + j] * (double)X[i * d + j];
        a->ok = exact_units_add(a->acc, q);
    }
}

Status rowsource_sq_norm_sum(const RowSource *s, int64_t acc[2], bool *ok)
{
    if (!s->stream && s->ds->info.x_csr && !s->centred) { /* the non-zeros, never dense */
        *ok = s->cstream ? stream_csr_sq_norm_sum(s->cstream, s->mul, acc)
                         : csr_sq_norm_sum(&s->ds->csr, s->mul, acc);
        return XT_OK;
    }
    SqNorms a = {acc, true};
    Status st = for_blocks(s, add_sq_norms, &a);
    *ok = a.ok;
    return st;
}

Status rowsource_feature_absmax(const RowSource *s, double *mx)
{
    if (held_as_bytes(s)) {
        absmax_bytes(s, mx);
        return XT_OK;
    }
    if (!s->stream && s->ds->info.x_csr && !s->mul) { /* the non-zeros, never a dense block */
        for (size_t j = 0; j < s->d; j++) mx[j] = 0.0;
        if (s->cstream) stream_csr_column_absmax(s->cstream, mx);
        else csr_column_absmax(&s->ds->csr, mx);
        return XT_OK;
    }
    float *f = calloc(s->d ? s->d : 1, sizeof *f);
    if (!f) return XT_ERR_RUNTIME;
    Status st = for_blocks(s, add_absmax, f);
    for (size_t j = 0; j < s->d; j++) mx[j] = (double)f[j];
    free(f);
    return st;
}

/* One pass of exact moments (exact.h): q = rint(x 2^e) with |q| <= 2^24, so q^2 < 2^49 and
 * the sums of MOMENT_ROWS rows are exact in double (below 2^53), a loop without dependences
 * between columns that the compiler vectorises; every MOMENT_ROWS rows they move, exactly,
 * into the int64 and 128-bit totals. */
#define MOMENT_ROWS 16
/* 1.5 x 2^52: (y + R) - R is y rounded to the nearest integer (ties to even) for |y| < 2^51,
 * in the default rounding mode, with double evaluated as double */
#define ROUND_MAGIC 6755399441055744.0
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the moments' rounding needs double arithmetic evaluated in double (FLT_EVAL_METHOD 0)"
#endif

typedef struct {
    const double *scale; /* 2^e[j] */
    double *b1, *b2;     /* this group of rows */
    int64_t *s1;
    exact_u128 *s2;
} Moments;

static void add_moment_rows(const float *X, size_t m, size_t d, Moments *a)
{
    double *restrict b1 = a->b1, *restrict b2 = a->b2;
    const double *restrict scale = a->scale;
    for (size_t j = 0; j < d; j++) b1[j] = b2[j] = 0.0;
    for (size_t i = 0; i < m; i++) {
        const float *restrict x = X + i * d;
        for (size_t j = 0; j < d; j++) {
            double q = ((double)x[j] * scale[j] + ROUND_MAGIC) - ROUND_MAGIC;
            b1[j] += q;
            b2[j] += q * q;
        }
    }
    for (size_t j = 0; j < d; j++) {
        a->s1[j] += (int64_t)b1[j];
        a->s2[j] += (exact_u128)(uint64_t)b2[j];
    }
}

static void add_moments(const float *X, size_t m, size_t d, void *acc)
{
    for (size_t i = 0; i < m; i += MOMENT_ROWS)
        add_moment_rows(X + i * d, m - i < MOMENT_ROWS ? m - i : MOMENT_ROWS, d, acc);
}

/* Bytes v: on a grid 2^e >= 1 (max v <= 255 < 2^8, so e >= 16), q = v 2^e exactly, so S1 and
 * S2 are the integer sums of v and v^2 shifted; those add in 32 bits for BYTE_ROWS rows
 * (255^2 x 65536 < 2^32), a loop the compiler vectorises, then in 64. */
#define BYTE_ROWS 65536
static Status moments_bytes(const RowSource *s, const int *e, int64_t *s1, exact_u128 *s2)
{
    const size_t d = s->d ? s->d : 1;
    uint32_t *restrict b = malloc(2 * d * sizeof *b);
    uint64_t *a = calloc(2 * d, sizeof *a);
    Status st = b && a ? XT_OK : XT_ERR_RUNTIME;
    for (size_t lo = 0; st == XT_OK && lo < s->n; lo += BYTE_ROWS) {
        size_t hi = s->n - lo < BYTE_ROWS ? s->n : lo + BYTE_ROWS;
        memset(b, 0, 2 * d * sizeof *b);
        for (size_t i = lo; i < hi; i++) {
            const uint8_t *restrict x = s->ds->X8 + i * s->d;
            for (size_t j = 0; j < s->d; j++) {
                b[j] += x[j];
                b[d + j] += (uint32_t)x[j] * x[j];
            }
        }
        for (size_t j = 0; j < 2 * d; j++) a[j] += b[j];
    }
    for (size_t j = 0; st == XT_OK && j < s->d; j++) {
        XT_ASSERT(e[j] >= 0 && e[j] <= EXACT_GRID_BITS);
        s1[j] = (int64_t)(a[j] << e[j]);
        s2[j] = (exact_u128)a[d + j] << (2 * e[j]);
    }
    free(b);
    free(a);
    return st;
}

Status rowsource_feature_moments(const RowSource *s, const int *e, int64_t *s1, int64_t *s2)
{
    if (held_as_bytes(s)) {
        exact_u128 *q2 = calloc(s->d ? s->d : 1, sizeof *q2);
        Status st = q2 ? moments_bytes(s, e, s1, q2) : XT_ERR_RUNTIME;
        for (size_t j = 0; st == XT_OK && j < s->d; j++)
            exact_q2_to_limbs(q2[j], s2 + j * EXACT_Q2_LIMBS);
        free(q2);
        return st;
    }
    const size_t d = s->d ? s->d : 1;
    double *scale = malloc(d * sizeof *scale), *b = malloc(2 * d * sizeof *b);
    exact_u128 *q2 = calloc(d, sizeof *q2);
    Status st = scale && b && q2 ? XT_OK : XT_ERR_RUNTIME;
    if (st == XT_OK) {
        for (size_t j = 0; j < s->d; j++) {
            scale[j] = ldexp(1.0, e[j]);
            s1[j] = 0;
        }
        Moments a = {scale, b, b + d, s1, q2};
        st = for_blocks(s, add_moments, &a);
    }
    for (size_t j = 0; st == XT_OK && j < s->d; j++)
        exact_q2_to_limbs(q2[j], s2 + j * EXACT_Q2_LIMBS);
    free(scale);
    free(b);
    free(q2);
    return st;
}
