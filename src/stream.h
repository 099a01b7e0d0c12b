/* stream: the rows of an HDF5 split read straight from the file, for data larger than the
 * memory a rank may use (data.stream, data.memory_budget).
 *
 * At open (main thread) HDF5 tells where X's and y's raw rows lie in the file (h5io_layout:
 * one contiguous run, or a grid of chunks with deflate/shuffle filters); from then on rows
 * are read with pread() and, for chunks, inflated with zlib and converted to the memory
 * type here. No HDF5 or MPI call is made off the main thread (Debian's parallel HDF5 is
 * not thread-safe and MPI runs FUNNELED), so a helper thread can read ahead.
 *
 * Two ways to read:
 *   - sequential blocks (stream_read): statistics, validation, eval, predict, the scan of
 *     every value at open; synchronous, one block buffer;
 *   - planned windows (stream_plan, stream_begin_step, stream_gather): training. The
 *     permutations are a pure function of (seed, epoch, virtual shard), so a helper thread
 *     with its own Sampler enumerates the rows of the coming steps, sorts them, reads them
 *     in coalesced runs (contiguous) or whole chunks (chunked) into one of two windows of
 *     consecutive steps, while the trainer computes on the other. The rows come out exactly
 *     as the in-memory source gives them (same conversion, same normalisation expression),
 *     so a streamed run is bit-identical to an in-memory one.
 *
 * Memory: two windows of window_rows rows each (X in its memory type plus targets and a
 * 4-byte index per row), the helper's permutation (4 bytes per local row), one decoded
 * chunk row and one compressed chunk per reader (helper and main), one block buffer.
 * stream_fixed_bytes and stream_row_bytes give the figures the budget is split by.
 */
#ifndef XT_STREAM_H
#define XT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "error.h"
#include "shard.h"

typedef struct Stream Stream;

/* Opens rows [lo, hi) of the split for streaming (keep X as uint8 when compact and X is
 * uint8); a contiguous read and a scan block take at most io_bytes (at least one row). Reads the layouts with HDF5 and checks them against HDF5's own read of the
 * first and last rows. XT_ERR_USAGE with the reason in why (not logged) when the split
 * cannot be streamed (layout, filter, type). Local (serial HDF5 open). */
Status stream_open(Stream **out, const DatasetInfo *info, size_t lo, size_t hi, bool compact,
                   size_t io_bytes, char *why, size_t whylen);
void stream_close(Stream *s); /* stops the helper thread; NULL is fine */

/* drop = true: every read is followed by POSIX_FADV_DONTNEED on its bytes (for files the
 * page cache cannot keep from one epoch to the next). Local. */
void stream_set_drop_cache(Stream *s, bool drop);

/* Bytes per row in a window (features in the memory type, targets, index), and the bytes
 * the stream needs besides its windows (decode buffers, block buffer, the helper's
 * permutation of `local_rows` rows). Local. */
size_t stream_row_bytes(const Stream *s);
size_t stream_fixed_bytes(const Stream *s, size_t local_rows);
/* The same had the stream been opened with reads of io_bytes (what another budget gives). */
size_t stream_fixed_bytes_at(const Stream *s, size_t local_rows, size_t io_bytes);
/* Rows per block that sequential readers should ask for (io_bytes of float rows). */
size_t stream_block_rows(const Stream *s);

/* Reads every row once and checks it as dataset_load does (finite X, labels in [0, k) when
 * k > 0, targets in [0, 1], probability rows when probs); fills ds (info, lo, hi, label
 * range, class names) but no row arrays. Errors are logged, naming file, dataset and row.
 * Local. */
Status stream_scan(Stream *s, Dataset *ds, size_t k, bool probs);

/* out <- rows [lo, lo + m) (relative to the opened range), as float with
 * x' = (x - shift) * mul when shift != NULL, targets when out asks for them. Synchronous;
 * aborts the job on a read error (the file changed or the disk failed after the scan).
 * Local. */
void stream_read(Stream *s, size_t lo, size_t m, float *X, int32_t *y, float *t,
                 const float *shift, const float *mul);

/* Training: from now on step rows come from windows of consecutive steps planned from a
 * copy of `sampler` (the same seed, shards, batch and shuffle) read ahead by a helper
 * thread; window_rows rows per window (>= sampler->max_local); nothing is read for epoch
 * end_epoch (0-based) or later. XT_ERR_RUNTIME when out of memory. Local. */
Status stream_plan(Stream *s, const Sampler *sampler, size_t window_rows, uint64_t end_epoch);
/* Makes the rows of step t of `epoch` (0-based, as sampler_begin_epoch) available, waiting
 * for the helper when it is behind. Local. */
void stream_begin_step(Stream *s, uint64_t epoch, size_t t);
/* As stream_read, for rows[i] (relative to the opened range) of the current step. */
void stream_gather(Stream *s, const uint32_t *rows, size_t m, float *X, int32_t *y, float *t,
                   const float *shift, const float *mul);

/* Stops the reader thread (at the end of training; a later stream_begin_step would start it
 * again). Local. */
void stream_stop(Stream *s);

/* What the stream did (the reader's figures are final once stream_stop returned): bytes read from the file, bytes of rows delivered, seconds the
 * readers spent reading, seconds the trainer waited for the helper. */
typedef struct {
    double bytes_read, bytes_needed, io_s, wait_s;
    size_t window_steps, window_rows;
    bool on_trainer;   /* read on the trainer's own thread (streamed CSR): nothing hidden */
} StreamStats;
void stream_stats(const Stream *s, StreamStats *out);
/* "contiguous" or "chunked (R x C rows x columns, deflate+shuffle)", for banners. */
void stream_describe(const Stream *s, char *buf, size_t len);

#endif
