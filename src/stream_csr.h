/* stream_csr: the rows of a CSR split (docs/sparse.md) read from the file as they are needed,
 * for sparse data larger than the memory a rank may use (data.stream, data.memory_budget).
 *
 * What is held: the rank's slice of `indptr` (8 bytes per row, as stored), one block of
 * consecutive rows (the scan, sequential reads, and the staging of planned reads; its size
 * comes from the budget: io_bytes, at least the longest row), and, for training, one window
 * of the rows of the coming steps (CSR, sorted by row, with their targets). Nothing else: the
 * non-zeros and the targets stay in the file.
 *
 * How rows are read: with HDF5 hyperslab reads of `indices`, `data` and the targets (h5io),
 * on the calling thread (Debian's parallel HDF5 is not thread-safe; there is no read-ahead
 * thread). Consecutive rows are one range of `indices`/`data`; planned rows (a window) are
 * sorted and coalesced into ranges, neighbours closer than a few KiB read in one range (the gap
 * is read and dropped). Every staged range is checked again as at open (a row that no longer
 * passes means the file changed during the run: the job ends with the row named).
 *
 * The rows come out exactly as dataset_csr_load gives them: the same HDF5 conversions (data
 * as float32, indices as int64 narrowed after the range check), columns sorted by
 * csr_check_rows, values times mul[column] by the same float expression as csr_gather. So a
 * streamed run is bit-identical to an in-memory one.
 *
 * Sequential blocks (stream_csr_read, stream_csr_read_dense): statistics, validation, eval,
 * predict, a full-batch solver's passes. Planned windows (stream_csr_plan, _begin_step,
 * _gather): SGD training; the permutations are a pure function of (seed, epoch, virtual
 * shard), so a copy of the sampler enumerates the rows of the steps ahead.
 *
 * Errors: the checks at open are logged (file, dataset, global row) and returned; a read or
 * check failing after them (the file changed, the disk failed) ends the job (comm_abort).
 * Local everywhere (a serial HDF5 open per rank).
 */
#ifndef XT_STREAM_CSR_H
#define XT_STREAM_CSR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csr.h"
#include "dataset.h"
#include "error.h"
#include "shard.h"
#include "stream.h"

typedef struct StreamCsr StreamCsr;

/* Opens rows [lo, hi) of a CSR split (info->x_csr) for streaming; io_bytes sizes the block.
 * XT_ERR_USAGE with the reason in why (not logged) when the split cannot be streamed (string
 * class labels: convert them to ids, e.g. with `xentrain convert h5`). Local. */
Status stream_csr_open(StreamCsr **out, const DatasetInfo *info, size_t lo, size_t hi,
                       size_t io_bytes, char *why, size_t whylen);
void stream_csr_close(StreamCsr *s); /* NULL is fine */

/* Reads the indptr slice (held from now on) and every row once, by blocks, with the checks
 * of the in-memory load (dataset_csr_load, dataset_check_rows): indptr non-decreasing within
 * [0, nnz], column indices in [0, D), finite values, unsorted columns sorted, a duplicate
 * column refused; labels in [0, k) when k > 0 (category code -1 refused), targets in [0, 1],
 * probability rows when probs. The same messages (file, dataset, global row). Fills ds (info,
 * lo, hi, label range, class and feature names) but no rows. Local. */
Status stream_csr_scan(StreamCsr *s, Dataset *ds, size_t k, bool probs);

/* The most non-zeros any `rows` of the held rows have (the sum of the longest). Local. */
size_t stream_csr_max_nnz(const StreamCsr *s, size_t rows);
/* Non-zeros of the held rows. */
size_t stream_csr_nnz(const StreamCsr *s);
/* Bytes the stream holds besides a window: the indptr slice and the block (after the scan);
 * _at: had it been opened with reads of io_bytes. */
size_t stream_csr_fixed_bytes(const StreamCsr *s);
size_t stream_csr_fixed_bytes_at(const StreamCsr *s, size_t io_bytes);
/* A window's bytes per row (its index, indptr entry, targets) and per non-zero. */
size_t stream_csr_window_row_bytes(const StreamCsr *s);
#define STREAM_CSR_NNZ_BYTES (sizeof(int32_t) + sizeof(float))
/* Rows of D floats that fit the block (dense reads of statistics). */
size_t stream_csr_block_rows(const StreamCsr *s);

/* out <- rows [lo, lo + m) (relative to the opened range) as CSR, values times mul[column]
 * when mul != NULL; targets into y or t when not NULL. out must have room (cap_rows >= m,
 * cap_nnz >= their non-zeros: asserted). Local. */
void stream_csr_read(StreamCsr *s, size_t lo, size_t m, CsrRows *out, int32_t *y, float *t,
                     const float *mul);
/* The same as dense rows X (m, D), x' = (x - shift) * mul as csr_densify_affine. */
void stream_csr_read_dense(StreamCsr *s, size_t lo, size_t m, float *X, int32_t *y, float *t,
                           const float *shift, const float *mul);
/* mx[j] = max(mx[j], max |x_j|) over the held rows as stored (csr_column_absmax). Local. */
void stream_csr_column_absmax(StreamCsr *s, double *mx);
/* csr_sq_norm_sum over the held rows with mul applied. Local. */
bool stream_csr_sq_norm_sum(StreamCsr *s, const float *mul, int64_t acc[2]);

/* Training: windows of up to window_rows rows and window_nnz non-zeros of consecutive steps
 * planned from a copy of `sampler` (window_rows >= sampler->max_local, window_nnz >= the
 * non-zeros of its max_local longest rows). XT_ERR_RUNTIME when out of memory. Local. */
Status stream_csr_plan(StreamCsr *s, const Sampler *sampler, size_t window_rows,
                       size_t window_nnz);
/* Makes the rows of step t of `epoch` (0-based) available, reading the window that starts
 * there when the current one does not hold it. Local. */
void stream_csr_begin_step(StreamCsr *s, uint64_t epoch, size_t t);
/* As stream_csr_read, for rows[i] (relative to the opened range) of the current step. */
void stream_csr_gather(StreamCsr *s, const uint32_t *rows, size_t m, CsrRows *out, int32_t *y,
                       float *t, const float *mul);
void stream_csr_gather_dense(StreamCsr *s, const uint32_t *rows, size_t m, float *X, int32_t *y,
                             float *t, const float *shift, const float *mul);

/* What the stream read: bytes staged from the file and bytes of rows handed out (in memory
 * terms: 8 per non-zero, the targets), seconds reading (all of it waited for: no read-ahead
 * thread), the window's size. */
void stream_csr_stats(const StreamCsr *s, StreamStats *out);
/* "CSR: indptr slice of N rows held (8 bytes a row), ...", for banners. */
void stream_csr_describe(const StreamCsr *s, char *buf, size_t len);

#endif
