/* stream_csr: see stream_csr.h. */
#include "stream_csr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "h5io.h"
#include "log.h"
#include "strutil.h"

/* Planned rows closer than this many bytes (the non-zeros and targets between them) are read
 * in one range; the gap is read and dropped. */
#define GAP_BYTES ((size_t)4 << 10)
/* Bytes per non-zero in the block: the index as read (int64), as held (int32), the value. */
#define BLOCK_NNZ_BYTES (sizeof(int64_t) + sizeof(int32_t) + sizeof(float))

struct StreamCsr {
    H5File *f; /* a serial open, for the stream's life */
    DatasetInfo info;
    size_t lo, hi, m; /* global rows [lo, hi), m of them */
    char xp[600], pind[700], pdata[700], pptr[700], py[700];
    size_t kt;        /* target floats per row (dense targets), 0 for class ids */
    bool has_y;
    size_t io_bytes;
    int64_t *ip;      /* indptr[lo .. hi] as stored (m + 1), after the scan */
    size_t longest;   /* the most non-zeros in one held row */
    /* the block: consecutive rows staged (scan, sequential reads, planned ranges) */
    CsrRows blk;
    int64_t *i64;     /* (blk.cap_nnz) indices as read */
    int32_t *by;      /* (blk.cap_rows) class ids */
    float *bt;        /* (blk.cap_rows * kt) dense targets */
    size_t k;         /* labels must stay below (0: unchecked) */
    bool probs, scanned;
    /* training windows */
    bool planned;
    Sampler plan;
    size_t win_rows, win_nnz, win_steps; /* win_steps: the fewest whole steps it holds */
    uint32_t *wrows;  /* (win_rows + max_local) sorted rows of the window */
    CsrRows w;        /* their rows, in that order */
    int32_t *wy;
    float *wt;
    bool w_valid;
    uint64_t w_epoch;
    size_t w_t0, w_t1;
    uint32_t *pos;    /* (max_local) */
    /* figures */
    double bytes_read, bytes_needed, io_s;
    char err[XT_PATH_MAX + 1200];
};

static size_t row_nnz(const StreamCsr *s, size_t r)
{
    return (size_t)(s->ip[r + 1] - s->ip[r]);
}

static size_t target_bytes(const StreamCsr *s)
{
    return !s->has_y ? 0 : s->kt ? s->kt * sizeof(float) : sizeof(int32_t);
}

Status stream_csr_open(StreamCsr **out, const DatasetInfo *info, size_t lo, size_t hi,
                       size_t io_bytes, char *why, size_t whylen)
{
    *out = NULL;
    why[0] = '\0';
    if (info->has_y && info->target == TARGET_CLASS && info->y_labels == LABELS_STRINGS) {
        snprintf(why, whylen, "its class labels are strings, which are read into memory only; "
                 "store them as class ids (`xentrain convert h5` does) or as categories");
        return XT_ERR_USAGE;
    }
    StreamCsr *s = calloc(1, sizeof *s);
    if (!s) return XT_ERR_RUNTIME;
    s->info = *info;
    s->lo = lo;
    s->hi = hi;
    s->m = hi - lo;
    s->io_bytes = io_bytes;
    s->has_y = info->has_y;
    s->kt = info->target == TARGET_DENSE ? info->k_dense : 0;
    dataset_object_path(info, info->x_name, s->xp, sizeof s->xp);
    const char *sep = strcmp(s->xp, "/") ? "/" : "";
    snprintf(s->pind, sizeof s->pind, "%s%sindices", s->xp, sep);
    snprintf(s->pdata, sizeof s->pdata, "%s%sdata", s->xp, sep);
    snprintf(s->pptr, sizeof s->pptr, "%s%sindptr", s->xp, sep);
    if (s->has_y) dataset_y_path(info, s->py, sizeof s->py);
    Status st = h5io_open_read(info->file, NULL, &s->f);
    if (st != XT_OK) {
        snprintf(why, whylen, "cannot open the file");
        stream_csr_close(s);
        return st;
    }
    *out = s;
    return XT_OK;
}

void stream_csr_close(StreamCsr *s)
{
    if (!s) return;
    if (s->f) h5io_close(&s->f);
    free(s->ip);
    csr_free(&s->blk);
    free(s->i64);
    free(s->by);
    free(s->bt);
    if (s->planned) sampler_free(&s->plan);
    free(s->wrows);
    csr_free(&s->w);
    free(s->wy);
    free(s->wt);
    free(s->pos);
    free(s);
}

/* ---- sizes ------------------------------------------------------------------------------ */

/* The block: io_bytes of non-zeros and of rows, no more than the held rows have, and at
 * least the longest row. */
static size_t block_nnz_at(const StreamCsr *s, size_t io_bytes)
{
    size_t z = io_bytes / BLOCK_NNZ_BYTES, total = stream_csr_nnz(s);
    if (z > total) z = total;
    return z > s->longest ? z : s->longest > 0 ? s->longest : 1;
}

static size_t block_rows_at(const StreamCsr *s, size_t io_bytes)
{
    size_t r = io_bytes / (sizeof(size_t) + target_bytes(s));
    if (r > s->m) r = s->m;
    return r > 0 ? r : 1;
}

size_t stream_csr_fixed_bytes_at(const StreamCsr *s, size_t io_bytes)
{
    size_t rows = block_rows_at(s, io_bytes);
    return (s->m + 1) * sizeof(int64_t) + block_nnz_at(s, io_bytes) * BLOCK_NNZ_BYTES +
           (rows + 1) * sizeof(size_t) + rows * target_bytes(s);
}

size_t stream_csr_fixed_bytes(const StreamCsr *s)
{
    return stream_csr_fixed_bytes_at(s, s->io_bytes);
}

size_t stream_csr_window_row_bytes(const StreamCsr *s)
{
    return sizeof(uint32_t) + sizeof(size_t) + target_bytes(s);
}

size_t stream_csr_block_rows(const StreamCsr *s)
{
    size_t r = s->io_bytes / ((s->info.d ? s->info.d : 1) * sizeof(float));
    return r > 0 ? r : 1;
}

size_t stream_csr_nnz(const StreamCsr *s)
{
    return s->ip ? (size_t)(s->ip[s->m] - s->ip[0]) : 0;
}

size_t stream_csr_max_nnz(const StreamCsr *s, size_t rows)
{
    CsrRows view = {.m = s->m, .d = s->info.d};
    size_t *ptr = malloc((s->m + 1) * sizeof *ptr);
    if (!ptr) return stream_csr_nnz(s); /* the bound that needs no memory */
    for (size_t i = 0; i <= s->m; i++) ptr[i] = (size_t)(s->ip[i] - s->ip[0]);
    view.indptr = ptr;
    size_t most = csr_max_nnz(&view, rows);
    free(ptr);
    return most;
}

/* ---- staging consecutive rows ----------------------------------------------------------- */

/* The local row that holds global non-zero k (k within the held rows). */
static size_t row_of(const StreamCsr *s, int64_t k)
{
    size_t lo = 0, hi = s->m; /* the last row i with ip[i] <= k */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ip[mid] <= k) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* The column indices of global non-zeros [a, a + n) into out (int32), read as int64 through
 * the block's buffer and range-checked as the in-memory load does. */
static Status read_indices(StreamCsr *s, int64_t a, size_t n, int32_t *out)
{
    const size_t cap = s->blk.cap_nnz, d = s->info.d;
    for (size_t k0 = 0; k0 < n; k0 += cap) {
        size_t b = n - k0 < cap ? n - k0 : cap;
        Status st = h5io_read_rows_i64(s->f, s->pind, (size_t)a + k0, b, s->i64);
        if (st != XT_OK) return st;
        for (size_t k = 0; k < b; k++) {
            int64_t v = s->i64[k];
            if (v >= 0 && (uint64_t)v < d) {
                out[k0 + k] = (int32_t)v;
                continue;
            }
            snprintf(s->err, sizeof s->err, "%s:%s: row %zu: column index %" PRId64 " is "
                     "outside [0, %zu) (D = %zu)", s->info.file, s->pind,
                     s->lo + row_of(s, a + (int64_t)(k0 + k)), v, d, d);
            return XT_ERR_USAGE;
        }
    }
    return XT_OK;
}

/* Targets of local rows [r0, r0 + n) into y (class ids) or t (dense). */
static Status read_targets(StreamCsr *s, size_t r0, size_t n, int32_t *y, float *t)
{
    if (!s->has_y || n == 0 || (!y && !t)) return XT_OK;
    if (s->kt) return t ? h5io_read_rows_float(s->f, s->py, s->lo + r0, n, t) : XT_OK;
    if (!y) return XT_OK;
    Status st = h5io_read_rows_i32(s->f, s->py, s->lo + r0, n, y);
    for (size_t i = 0; st == XT_OK && s->info.y_labels == LABELS_CODES && i < n; i++) {
        if (y[i] >= 0) continue;
        snprintf(s->err, sizeof s->err, "%s:%s: row %zu has no category (code %d: a missing "
                 "value); drop such rows, or give them a category", s->info.file, s->py,
                 s->lo + r0 + i, (int)y[i]);
        st = XT_ERR_USAGE;
    }
    return st;
}

/* Local rows [r0, r1) read into out (room checked by the caller): indptr from 0, indices,
 * values, checked and sorted (csr_check_rows). XT_ERR_USAGE with s->err set for bad rows;
 * a failed read is logged by h5io (s->err empty). */
static Status read_rows_into(StreamCsr *s, size_t r0, size_t r1, CsrRows *out)
{
    size_t n = r1 - r0, nnz = (size_t)(s->ip[r1] - s->ip[r0]);
    double t0 = comm_wtime();
    s->err[0] = '\0';
    out->m = n;
    out->d = s->info.d;
    for (size_t i = 0; i <= n; i++) out->indptr[i] = (size_t)(s->ip[r0 + i] - s->ip[r0]);
    Status st = read_indices(s, s->ip[r0], nnz, out->indices);
    if (st == XT_OK && nnz > 0)
        st = h5io_read_rows_float(s->f, s->pdata, (size_t)s->ip[r0], nnz, out->values);
    char e[512];
    if (st == XT_OK && (st = csr_check_rows(out, s->lo + r0, e, sizeof e)) != XT_OK)
        snprintf(s->err, sizeof s->err, "%s:%s: %s", s->info.file, s->xp, e);
    s->io_s += comm_wtime() - t0;
    s->bytes_read += (double)nnz * (double)STREAM_CSR_NNZ_BYTES;
    return st;
}

/* Local rows [r0, r1) staged in the block with their targets (when asked). */
static Status stage(StreamCsr *s, size_t r0, size_t r1, bool targets)
{
    XT_ASSERT(r1 - r0 <= s->blk.cap_rows && (size_t)(s->ip[r1] - s->ip[r0]) <= s->blk.cap_nnz);
    Status st = read_rows_into(s, r0, r1, &s->blk);
    if (st == XT_OK && targets) st = read_targets(s, r0, r1 - r0, s->by, s->bt);
    if (targets) s->bytes_read += (double)((r1 - r0) * target_bytes(s));
    return st;
}

/* The end of the block of consecutive rows that starts at r0 (at most r_end): as many rows
 * as the block holds, at least one. */
static size_t block_end(const StreamCsr *s, size_t r0, size_t r_end)
{
    size_t r1 = r0 + 1;
    while (r1 < r_end && r1 - r0 < s->blk.cap_rows &&
           (size_t)(s->ip[r1 + 1] - s->ip[r0]) <= s->blk.cap_nnz)
        r1++;
    return r1;
}

/* A Dataset view of targets of local rows [r0, r0 + n), for dataset.h's checks. */
static Dataset targets_view(const StreamCsr *s, size_t r0, size_t n, int32_t *y, float *t)
{
    Dataset v = {.info = s->info, .lo = s->lo + r0, .hi = s->lo + r0 + n, .label_max = -1};
    if (s->has_y && !s->kt) v.y = y;
    if (s->has_y && s->kt) v.t = t;
    return v;
}

/* The file changed during the run (a row read now fails the scan's checks): an input error. */
_Noreturn static void data_changed(const StreamCsr *s, const char *what)
{
    log_error("%s, but the start-up scan found every row valid: the file was changed during "
              "the run (stop whatever rewrites it; the checkpoint resumes the run)", what);
    (void)s;
    comm_abort(NULL, XT_ERR_USAGE);
}

/* A read after the scan failed: the disk or the file, not the configuration. */
_Noreturn static void read_failed(const StreamCsr *s)
{
    log_error("%s:%s: reading rows failed; the data could be read when the run started: was "
              "the file changed, or is the disk failing?", s->info.file, s->xp);
    comm_abort(NULL, XT_ERR_RUNTIME);
}

/* After the scan: a read's status, ending the job when it failed. */
static void after_scan(const StreamCsr *s, Status st)
{
    if (st == XT_OK) return;
    if (s->err[0]) data_changed(s, s->err);
    read_failed(s);
}

/* Targets of n rows re-checked as the scan checked them (after the scan). */
static void recheck_targets(StreamCsr *s, size_t r0, size_t n, int32_t *y, float *t)
{
    Dataset v = targets_view(s, r0, n, y, t);
    char why[200];
    for (size_t i = 0; i < n; i++) {
        if (dataset_row_valid(&v, i, s->k, s->probs, why, sizeof why)) continue;
        snprintf(s->err, sizeof s->err, "%s:%s: row %zu %s", s->info.file, s->py, v.lo + i, why);
        data_changed(s, s->err);
    }
}

/* ---- the scan ---------------------------------------------------------------------------- */

/* indptr[lo .. hi] read and held, checked as dataset_csr_load checks it (every bad entry
 * named). */
static Status read_indptr(StreamCsr *s)
{
    const DatasetInfo *in = &s->info;
    s->ip = malloc((s->m + 1) * sizeof *s->ip);
    if (!s->ip) {
        log_error("%s:%s: out of memory for the indptr of rows [%zu, %zu)", in->file, s->pptr,
                  s->lo, s->hi);
        return XT_ERR_RUNTIME;
    }
    Status st = h5io_read_rows_i64(s->f, s->pptr, s->lo, s->m + 1, s->ip);
    for (size_t i = 0; st == XT_OK && i <= s->m; i++) {
        const int64_t *ip = s->ip;
        bool bad = ip[i] < 0 || (uint64_t)ip[i] > in->x_nnz || (i > 0 && ip[i] < ip[i - 1]);
        if (!bad) continue;
        log_error("%s:%s: indptr[%zu] = %" PRId64 " %s: indptr must be non-decreasing from 0 "
                  "to nnz = %zu (row %zu)", in->file, s->pptr, s->lo + i, ip[i],
                  i > 0 && ip[i] < ip[i - 1] ? "is less than the row before it" : "is out of range",
                  in->x_nnz, s->lo + (i > 0 ? i - 1 : 0));
        st = XT_ERR_USAGE;
    }
    for (size_t i = 0; st == XT_OK && i < s->m; i++)
        if (row_nnz(s, i) > s->longest) s->longest = row_nnz(s, i);
    return st;
}

/* The block, sized by io_bytes and the longest row. */
static Status block_alloc(StreamCsr *s)
{
    size_t rows = block_rows_at(s, s->io_bytes), nnz = block_nnz_at(s, s->io_bytes);
    Status st = csr_init(&s->blk, rows, nnz, s->info.d);
    s->i64 = malloc(nnz * sizeof *s->i64);
    if (s->has_y && !s->kt) s->by = malloc(rows * sizeof *s->by);
    if (s->has_y && s->kt) s->bt = malloc(rows * s->kt * sizeof *s->bt);
    if (st == XT_OK && s->i64 && (!s->has_y || s->by || s->bt)) return XT_OK;
    log_error("%s:%s: out of memory for the stream's block of %zu rows and %zu non-zeros",
              s->info.file, s->xp, rows, nnz);
    return XT_ERR_RUNTIME;
}

/* One block of the scan: its rows and targets checked, the label range widened. */
static Status scan_block(StreamCsr *s, size_t r0, size_t r1, Dataset *ds, size_t k, bool probs)
{
    Status st = stage(s, r0, r1, true);
    if (st != XT_OK) {
        if (s->err[0]) log_error("%s", s->err);
        return st;
    }
    Dataset v = targets_view(s, r0, r1 - r0, s->by, s->bt);
    st = dataset_check_rows(&v, k);
    if (st == XT_OK && probs && v.t) st = dataset_check_distributions(&v);
    if (st != XT_OK || v.label_min > v.label_max) return st;
    bool first = ds->label_min > ds->label_max;
    if (first || v.label_min < ds->label_min) ds->label_min = v.label_min;
    if (first || v.label_max > ds->label_max) ds->label_max = v.label_max;
    return XT_OK;
}

Status stream_csr_scan(StreamCsr *s, Dataset *ds, size_t k, bool probs)
{
    dataset_begin(ds, &s->info, s->lo, s->hi);
    Status st = read_indptr(s);
    if (st == XT_OK) st = block_alloc(s);
    for (size_t r0 = 0; st == XT_OK && r0 < s->m;) {
        size_t r1 = block_end(s, r0, s->m);
        st = scan_block(s, r0, r1, ds, k, probs);
        r0 = r1;
    }
    if (st != XT_OK) return st;
    s->k = k > 0 ? k : ds->label_max >= 0 ? (size_t)ds->label_max + 1 : 0;
    s->probs = probs;
    s->scanned = true;
    s->bytes_read = s->io_s = 0.0; /* the scan's reads are not training's */
    return dataset_read_class_names(ds);
}

/* ---- sequential reads --------------------------------------------------------------------- */

static void scale_values(CsrRows *c, const float *mul)
{
    if (!mul) return;
    size_t nnz = csr_nnz(c);
    for (size_t k = 0; k < nnz; k++) c->values[k] = c->values[k] * mul[c->indices[k]];
}

void stream_csr_read(StreamCsr *s, size_t lo, size_t m, CsrRows *out, int32_t *y, float *t,
                     const float *mul)
{
    XT_ASSERT(s->scanned && lo + m <= s->m && m <= out->cap_rows &&
              (size_t)(s->ip[lo + m] - s->ip[lo]) <= out->cap_nnz);
    Status st = read_rows_into(s, lo, lo + m, out);
    if (st == XT_OK) st = read_targets(s, lo, m, y, t);
    after_scan(s, st);
    recheck_targets(s, lo, m, y, t);
    scale_values(out, mul);
    s->bytes_needed += (double)(csr_nnz(out) * STREAM_CSR_NNZ_BYTES + m * target_bytes(s));
}

void stream_csr_read_dense(StreamCsr *s, size_t lo, size_t m, float *X, int32_t *y, float *t,
                           const float *shift, const float *mul)
{
    XT_ASSERT(s->scanned && lo + m <= s->m);
    const size_t d = s->info.d;
    for (size_t r0 = lo; r0 < lo + m;) {
        size_t r1 = block_end(s, r0, lo + m), n = r1 - r0, i0 = r0 - lo;
        bool targets = y || t;
        after_scan(s, stage(s, r0, r1, targets));
        if (targets) recheck_targets(s, r0, n, s->by, s->bt);
        csr_densify_affine(X + i0 * d, &s->blk, NULL, 0, n, shift, mul);
        if (y && s->by) memcpy(y + i0, s->by, n * sizeof *y);
        if (t && s->bt) memcpy(t + i0 * s->kt, s->bt, n * s->kt * sizeof *t);
        s->bytes_needed += (double)(csr_nnz(&s->blk) * STREAM_CSR_NNZ_BYTES);
        r0 = r1;
    }
}

void stream_csr_column_absmax(StreamCsr *s, double *mx)
{
    XT_ASSERT(s->scanned);
    for (size_t r0 = 0; r0 < s->m;) {
        size_t r1 = block_end(s, r0, s->m);
        after_scan(s, stage(s, r0, r1, false));
        csr_column_absmax(&s->blk, mx);
        r0 = r1;
    }
}

bool stream_csr_sq_norm_sum(StreamCsr *s, const float *mul, int64_t acc[2])
{
    XT_ASSERT(s->scanned);
    bool ok = true;
    for (size_t r0 = 0; r0 < s->m;) {
        size_t r1 = block_end(s, r0, s->m);
        after_scan(s, stage(s, r0, r1, false));
        ok = ok && csr_sq_norm_sum(&s->blk, mul, acc);
        r0 = r1;
    }
    return ok;
}

/* ---- planned windows ---------------------------------------------------------------------- */

Status stream_csr_plan(StreamCsr *s, const Sampler *sampler, size_t window_rows,
                       size_t window_nnz)
{
    XT_ASSERT(s->scanned && !s->planned && window_rows >= sampler->max_local);
    char err[256];
    if (sampler_clone(&s->plan, sampler, err, sizeof err) != XT_OK) {
        log_error("%s", err);
        return XT_ERR_RUNTIME;
    }
    s->planned = true;
    s->win_rows = window_rows;
    s->win_nnz = window_nnz;
    size_t ml = sampler->max_local ? sampler->max_local : 1, step_nnz = stream_csr_max_nnz(s, ml);
    s->win_steps = window_rows / ml;
    if (step_nnz > 0 && window_nnz / step_nnz < s->win_steps) s->win_steps = window_nnz / step_nnz;
    s->wrows = malloc((window_rows + ml) * sizeof *s->wrows);
    s->pos = malloc(ml * sizeof *s->pos);
    Status st = csr_init(&s->w, window_rows, window_nnz, s->info.d);
    if (s->has_y && !s->kt) s->wy = malloc(window_rows * sizeof *s->wy);
    if (s->has_y && s->kt) s->wt = malloc(window_rows * s->kt * sizeof *s->wt);
    if (st == XT_OK && s->wrows && s->pos && (!s->has_y || s->wy || s->wt)) return XT_OK;
    log_error("%s:%s: out of memory for the stream's window (%zu rows, %zu non-zeros)",
              s->info.file, s->xp, window_rows, window_nnz);
    return XT_ERR_RUNTIME;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The rows of steps [t, ...) of the plan's current epoch into wrows, as many whole steps as
 * the window holds (at least one). Returns how many rows; *t1 the first step left out. */
static size_t enumerate_steps(StreamCsr *s, size_t t, size_t *t1)
{
    const Sampler *p = &s->plan;
    size_t n = 0, nnz = 0, u = t;
    while (u < p->T) {
        size_t k = sampler_step_rows(p, u, s->wrows + n), z = 0;
        for (size_t i = n; i < n + k; i++) z += row_nnz(s, s->wrows[i]);
        if (u > t && (n + k > s->win_rows || nnz + z > s->win_nnz)) break;
        n += k;
        nnz += z;
        u++;
    }
    XT_ASSERT(n <= s->win_rows && nnz <= s->win_nnz); /* the plan made room for any step */
    *t1 = u;
    return n;
}

/* The end (exclusive, an index into wrows) of the range that starts at wrows[i]: the rows
 * that follow while the gaps stay under GAP_BYTES and the range fits the block. */
static size_t range_end(const StreamCsr *s, size_t i, size_t n)
{
    const uint32_t *w = s->wrows;
    size_t j = i + 1, r0 = w[i];
    for (; j < n; j++) {
        size_t prev_end = (size_t)w[j - 1] + 1, r = w[j];
        size_t gap = (size_t)(s->ip[r] - s->ip[prev_end]) * STREAM_CSR_NNZ_BYTES +
                     (r - prev_end) * (sizeof(size_t) + target_bytes(s));
        if (gap > GAP_BYTES || r + 1 - r0 > s->blk.cap_rows ||
            (size_t)(s->ip[r + 1] - s->ip[r0]) > s->blk.cap_nnz)
            break;
    }
    return j;
}

/* Appends staged row b of the block (with its targets) to the window. */
static void window_append(StreamCsr *s, size_t b)
{
    CsrRows *w = &s->w;
    size_t a = s->blk.indptr[b], len = s->blk.indptr[b + 1] - a, at = w->indptr[w->m];
    memcpy(w->indices + at, s->blk.indices + a, len * sizeof *w->indices);
    memcpy(w->values + at, s->blk.values + a, len * sizeof *w->values);
    if (s->wy) s->wy[w->m] = s->by[b];
    if (s->wt) memcpy(s->wt + w->m * s->kt, s->bt + b * s->kt, s->kt * sizeof *s->wt);
    w->m++;
    w->indptr[w->m] = at + len;
}

static void fill_window(StreamCsr *s, uint64_t epoch, size_t t)
{
    sampler_begin_epoch(&s->plan, epoch);
    size_t t1, n = enumerate_steps(s, t, &t1);
    qsort(s->wrows, n, sizeof *s->wrows, cmp_u32);
    s->w.m = 0;
    s->w.indptr[0] = 0;
    for (size_t i = 0; i < n;) {
        size_t j = range_end(s, i, n), r0 = s->wrows[i], r1 = (size_t)s->wrows[j - 1] + 1;
        after_scan(s, stage(s, r0, r1, true));
        recheck_targets(s, r0, r1 - r0, s->by, s->bt);
        for (size_t q = i; q < j; q++) window_append(s, s->wrows[q] - r0);
        i = j;
    }
    s->w_valid = true;
    s->w_epoch = epoch;
    s->w_t0 = t;
    s->w_t1 = t1;
}

void stream_csr_begin_step(StreamCsr *s, uint64_t epoch, size_t t)
{
    XT_ASSERT(s->planned);
    if (s->w_valid && s->w_epoch == epoch && t >= s->w_t0 && t < s->w_t1) return;
    fill_window(s, epoch, t);
}

/* pos[i] = where rows[i] is in the window. */
static void window_positions(StreamCsr *s, const uint32_t *rows, size_t m)
{
    XT_ASSERT(s->w_valid && m <= s->plan.max_local);
    for (size_t i = 0; i < m; i++) {
        const uint32_t *p = bsearch(&rows[i], s->wrows, s->w.m, sizeof *s->wrows, cmp_u32);
        XT_ASSERT(p); /* the row belongs to a step of this window */
        s->pos[i] = (uint32_t)(p - s->wrows);
    }
}

static void window_targets(StreamCsr *s, size_t m, int32_t *y, float *t)
{
    for (size_t i = 0; i < m; i++) {
        if (y && s->wy) y[i] = s->wy[s->pos[i]];
        if (t && s->wt) memcpy(t + i * s->kt, s->wt + s->pos[i] * s->kt, s->kt * sizeof *t);
    }
}

void stream_csr_gather(StreamCsr *s, const uint32_t *rows, size_t m, CsrRows *out, int32_t *y,
                       float *t, const float *mul)
{
    window_positions(s, rows, m);
    csr_gather(out, &s->w, s->pos, m, mul);
    window_targets(s, m, y, t);
    s->bytes_needed += (double)(csr_nnz(out) * STREAM_CSR_NNZ_BYTES + m * target_bytes(s));
}

void stream_csr_gather_dense(StreamCsr *s, const uint32_t *rows, size_t m, float *X, int32_t *y,
                             float *t, const float *shift, const float *mul)
{
    window_positions(s, rows, m);
    csr_densify_affine(X, &s->w, s->pos, 0, m, shift, mul);
    window_targets(s, m, y, t);
    for (size_t i = 0; i < m; i++)
        s->bytes_needed += (double)((s->w.indptr[s->pos[i] + 1] - s->w.indptr[s->pos[i]]) *
                                    STREAM_CSR_NNZ_BYTES + target_bytes(s));
}

/* ---- figures ------------------------------------------------------------------------------ */

void stream_csr_stats(const StreamCsr *s, StreamStats *out)
{
    *out = (StreamStats){.bytes_read = s->bytes_read,
                         .bytes_needed = s->bytes_needed,
                         .io_s = s->io_s,
                         .wait_s = s->io_s, /* read on the trainer's thread */
                         .window_rows = s->win_rows,
                         .on_trainer = true};
    out->window_steps = s->win_steps;
}

void stream_csr_describe(const StreamCsr *s, char *buf, size_t len)
{
    char ip[32], blk[32];
    strutil_human_bytes((double)((s->m + 1) * sizeof(int64_t)), ip, sizeof ip);
    strutil_human_bytes((double)(stream_csr_fixed_bytes(s) - (s->m + 1) * sizeof(int64_t)), blk,
                        sizeof blk);
    int u = snprintf(buf, len, "CSR: the indptr slice of %zu rows held (%s, 8 bytes a row) and "
                     "a block of up to %zu rows / %zu non-zeros (%s); rows read with HDF5 "
                     "hyperslabs of indices and data", s->m, ip, s->blk.cap_rows,
                     s->blk.cap_nnz, blk);
    if (!s->planned || u < 0 || (size_t)u >= len) return;
    char hw[32];
    strutil_human_bytes((double)(s->win_rows * stream_csr_window_row_bytes(s) +
                                 s->win_nnz * STREAM_CSR_NNZ_BYTES), hw, sizeof hw);
    char steps[64];
    if (s->win_rows >= s->m && s->win_nnz >= stream_csr_nnz(s))
        snprintf(steps, sizeof steps, "every held row: an epoch's steps");
    else
        snprintf(steps, sizeof steps, "at least %zu whole step(s)", s->win_steps);
    snprintf(buf + u, len - (size_t)u, "; one window of up to %zu rows and %zu non-zeros (%s, "
             "%s) of the coming steps, sorted and read in coalesced ranges (gaps under %zu KiB "
             "read through)", s->win_rows, s->win_nnz, hw, steps, GAP_BYTES >> 10);
}
