#include "rowsource.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"
#include "log.h"
#include "strutil.h"
#include "sysmem.h"

/* Rows per block when a statistic reads the whole source. */
#define ROWSOURCE_BLOCK_ROWS 1024

void rowsource_init(RowSource *s, Dataset *ds)
{
    *s = (RowSource){.n = ds->hi - ds->lo,
                     .d = ds->info.d,
                     .target = ds->info.target,
                     .k_dense = ds->info.k_dense,
                     .ds = ds};
}

void rowsource_free(RowSource *s)
{
    stream_close(s->stream);
    s->stream = NULL;
}

void rowsource_set_normalization(RowSource *s, const float *shift, const float *mul)
{
    if (!shift) return;
    if (s->stream || s->ds->X8) {
        s->shift = shift;
        s->mul = mul;
    } else {
        dataset_apply_affine(s->ds, shift, mul);
    }
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

void rowsource_gather(const RowSource *s, const uint32_t *rows, size_t m, RowBatch *out)
{
    if (s->stream) {
        stream_gather(s->stream, rows, m, out->X, out->y, out->t, s->shift, s->mul);
        return;
    }
    dataset_gather_rows(out->X, s->ds, rows, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, rows[i], i, out);
}

void rowsource_read(const RowSource *s, size_t lo, size_t m, RowBatch *out)
{
    XT_ASSERT(lo + m <= s->n);
    if (s->stream) {
        stream_read(s->stream, lo, m, out->X, out->y, out->t, s->shift, s->mul);
        return;
    }
    dataset_read_rows(out->X, s->ds, lo, m, s->shift, s->mul);
    for (size_t i = 0; i < m; i++) copy_targets(s, lo + i, i, out);
}

void rowsource_prefetch(const RowSource *s, const uint32_t *rows, size_t m)
{
    if (!s->stream) dataset_prefetch_rows(s->ds, rows, m);
}

void rowsource_begin_step(RowSource *s, uint64_t epoch, size_t t)
{
    if (s->stream) stream_begin_step(s->stream, epoch, t);
}

/* ---- memory or stream -------------------------------------------------------------------- */

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
    /* the reader's buffers: a small share of the budget, 4 KiB to 4 MiB */
    double io = o->budget > 0 ? o->budget / 32 : 4194304.0;
    io = io < 4096.0 ? 4096.0 : io > 4194304.0 ? 4194304.0 : io;
    Status rc = stream_open(&st, info, lo, hi, o->compact, (size_t)io, why, sizeof why);
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
    s->stream = st;
    return XT_OK;
}

Status rowsource_open(RowSource *s, Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi,
                      size_t k, const SourceOptions *o, const Comm *comm, bool *streamed)
{
    *s = (RowSource){0};
    double need = (double)(hi - lo) * dataset_row_bytes(info, o->compact) +
                  (double)(hi - lo) * (double)o->extra_per_row;
    int32_t big = o->budget > 0 && need > o->budget;
    if (comm) comm_allreduce_max_i32(comm, &big, 1);
    *streamed = o->mode == STREAM_TRUE || (o->mode == STREAM_AUTO && big);
    if (!*streamed && big) { /* data.stream = false and a rank over the budget: all refuse */
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
        st = open_stream(s, ds, info, lo, hi, k, o);
        return comm ? comm_agree(comm, st) : st;
    }
    st = (o->compact ? dataset_load_compact : dataset_load)(ds, info, lo, hi, k, comm);
    if (st == XT_OK && o->probs) st = dataset_check_distributions(ds);
    if (comm) st = comm_agree(comm, st);
    if (st == XT_OK) rowsource_init(s, ds);
    else dataset_free(ds);
    return st;
}

/* Calls fn on every block of rows as they come out. */
static Status for_blocks(const RowSource *s, void (*fn)(const float *X, size_t m, size_t d,
                                                       void *acc), void *acc)
{
    size_t rows = s->n < ROWSOURCE_BLOCK_ROWS ? s->n : ROWSOURCE_BLOCK_ROWS;
    if (s->stream && stream_block_rows(s->stream) < rows) /* within the stream's budget */
        rows = stream_block_rows(s->stream);
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

static void add_absmax(const float *X, size_t m, size_t d, void *acc)
{
    double *mx = acc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double a = fabs((double)X[i * d + j]);
            if (a > mx[j]) mx[j] = a;
        }
}

Status rowsource_feature_absmax(const RowSource *s, double *mx)
{
    for (size_t j = 0; j < s->d; j++) mx[j] = 0.0;
    return for_blocks(s, add_absmax, mx);
}

typedef struct {
    const double *center;
    const int *e;
    int64_t *out;
} FixedSums;

static void add_fixed(const float *X, size_t m, size_t d, void *acc)
{
    FixedSums *a = acc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < d; j++) {
            double v = (double)X[i * d + j];
            if (a->center) {
                v -= a->center[j];
                v *= v;
            }
            a->out[j] += exact_fixed(v, a->e[j]);
        }
}

Status rowsource_feature_fixed_sums(const RowSource *s, const double *center, const int *e,
                                    int64_t *out)
{
    for (size_t j = 0; j < s->d; j++) out[j] = 0;
    FixedSums a = {center, e, out};
    return for_blocks(s, add_fixed, &a);
}
