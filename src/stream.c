#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "comm.h"
#include "h5io.h"
#include "log.h"

/* Contiguous reads: neighbouring rows closer than this many bytes are read in one pread
 * (the gap is read and dropped); one pread reads at most io_bytes (stream_open). The scan
 * reads blocks of io_bytes of rows too. */
#define GAP_BYTES ((size_t)4 << 10)
/* Cold data (not kept by the page cache): rows announced to the kernel ahead of the reads. */
#define ADVISE_BYTES ((size_t)16 << 20)
/* The first window after a (re)start holds this many steps; each next one at most twice
 * the rows of the one before, up to the full window. */
#define RAMP_STEPS 4
/* A chunk row larger than this is refused: it is decoded whole. */
#define MAX_CHUNK_ROW_BYTES ((size_t)256 << 20)

typedef enum { MEM_U8, MEM_F32, MEM_I32 } MemType;

/* One dataset of the split: its layout and the type rows take in memory. */
typedef struct {
    H5ioLayout lay;
    MemType mem;
    size_t mem_esize;
    char path[600];               /* "/train/X" */
    char name[XT_PATH_MAX + 600]; /* "file.h5:/train/X", for messages */
} Array;

/* A decoded chunk row of one array: rows [i * chunk_rows, ...) at full width, stored type. */
typedef struct {
    unsigned char *buf;
    size_t row; /* which chunk row is held; SIZE_MAX = none */
} ChunkRow;

/* A reader's buffers and counters: one for the main thread, one for the helper. */
typedef struct {
    unsigned char *raw, *tmp1, *tmp2; /* a run or a stored chunk; two decode buffers */
    size_t raw_cap, tmp1_cap, tmp2_cap;
    ChunkRow crow[2]; /* X, y */
    double bytes_read, io_s;
    bool drop_cache; /* tell the kernel the bytes read are not needed again */
    const atomic_bool *cancel; /* the reader thread's: stop reading when set */
    char err[XT_PATH_MAX + 800];
} Reader;

typedef enum { WIN_FREE, WIN_FILLING, WIN_READY } WinState;

typedef struct {
    WinState state;
    uint64_t epoch;
    size_t t0, t1, n;  /* steps [t0, t1) of epoch; n rows */
    uint32_t *rows;    /* sorted, relative to the opened range */
    unsigned char *x, *y; /* n rows in memory types */
    bool failed;
    bool changed; /* a row failed the scan's checks: the file changed (err says where) */
} Window;

struct Stream {
    int fd;
    size_t io_bytes;
    DatasetInfo info;
    size_t lo, hi;
    Array x, y;
    bool has_y;
    Reader main_rd, help_rd;
    unsigned char *bx, *by; /* the block buffer of sequential reads */
    size_t bcap;
    /* planned windows */
    bool planned, started;
    atomic_bool quit; /* the reader thread is to stop (it also cuts a window's reads short) */
    Sampler plan;
    uint64_t end_epoch; /* no window is read for this epoch or later */
    size_t ramp_rows;   /* the next window's size: from RAMP_STEPS steps up to window_rows */
    size_t window_rows;
    Window win[2];
    int cur; /* the window the trainer reads, or -1 */
    size_t k;   /* labels later rows must stay below: the classes the scan checked them
                   against, or (classes not known yet) one past the largest label it saw */
    bool probs; /* the scan checked probability rows */
    bool scanned; /* rows read later are checked as the scan checked them */
    uint64_t next_epoch;
    size_t next_t;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t *pos;
    double wait_s, needed;
};

/* ---- converting stored elements --------------------------------------------------- */

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

/* Element e of raw as a uint64 of its bits, in host order. */
static inline uint64_t load_bits(const unsigned char *p, size_t esize, bool swap)
{
    unsigned char b[8] = {0};
    if (swap)
        for (size_t i = 0; i < esize; i++) b[i] = p[esize - 1 - i];
    else
        memcpy(b, p, esize);
    switch (esize) {
    case 1: return b[0];
    case 2: { uint16_t v; memcpy(&v, b, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, b, 4); return v; }
    default: { uint64_t v; memcpy(&v, b, 8); return v; }
    }
}

/* Integer bits of esize bytes as a signed value (two's complement). */
static inline int64_t sign_extend(uint64_t b, size_t esize)
{
    return esize == 1 ? (int8_t)b : esize == 2 ? (int16_t)b : esize == 4 ? (int32_t)b : (int64_t)b;
}

/* Float bits (float32 or float64) as a double. */
static inline double float_value(uint64_t bits, size_t esize)
{
    if (esize == 4) {
        float f;
        uint32_t u = (uint32_t)bits;
        memcpy(&f, &u, 4);
        return f;
    }
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

/* The element as float32 by C casts, the conversion HDF5 applies on read. */
static inline float to_f32(const H5ioLayout *l, uint64_t bits)
{
    switch (l->cls) {
    case H5IO_CLASS_FLOAT: return (float)float_value(bits, l->esize);
    case H5IO_CLASS_INT: return (float)sign_extend(bits, l->esize);
    default: return (float)bits;
    }
}

/* Converts count stored elements to the array's memory type. Returns the index of an
 * element that has no exact int32 value (MEM_I32: integers out of range, floats that are
 * not whole numbers), or SIZE_MAX. */
static size_t convert(const Array *a, const unsigned char *raw, size_t count, unsigned char *out)
{
    const H5ioLayout *l = &a->lay;
    const bool swap = l->big_endian != host_big_endian();
    const size_t es = l->esize;
    if (a->mem == MEM_U8 || (a->mem == MEM_F32 && l->cls == H5IO_CLASS_FLOAT && es == 4 && !swap)) {
        memcpy(out, raw, count * es);
        return SIZE_MAX;
    }
    if (a->mem == MEM_F32) {
        float *o = (float *)(void *)out;
        if (l->cls == H5IO_CLASS_UINT && es == 1) {
            for (size_t i = 0; i < count; i++) o[i] = (float)raw[i];
        } else {
            for (size_t i = 0; i < count; i++) o[i] = to_f32(l, load_bits(raw + i * es, es, swap));
        }
        return SIZE_MAX;
    }
    int32_t *o = (int32_t *)(void *)out;
    for (size_t i = 0; i < count; i++) {
        uint64_t b = load_bits(raw + i * es, es, swap);
        int64_t v;
        if (l->cls == H5IO_CLASS_FLOAT) { /* class ids stored as whole-number floats */
            double d = float_value(b, es);
            if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int64_t)d) return i;
            v = (int64_t)d;
        } else if (l->cls == H5IO_CLASS_INT) {
            v = sign_extend(b, es);
        } else {
            if (b > (uint64_t)INT32_MAX) return i;
            v = (int64_t)b;
        }
        if (v < INT32_MIN || v > INT32_MAX) return i;
        o[i] = (int32_t)v;
    }
    return SIZE_MAX;
}

/* ---- reading raw bytes ---------------------------------------------------------------- */

static bool grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    unsigned char *p = realloc(*buf, need);
    if (!p) return false;
    *buf = p;
    *cap = need;
    return true;
}

static bool pread_all(int fd, unsigned char *buf, size_t len, uint64_t off, Reader *rd,
                      const Array *a)
{
    size_t done = 0;
    while (done < len) {
        ssize_t got = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            snprintf(rd->err, sizeof rd->err, "%s: cannot read %zu bytes at offset %llu: %s",
                     a->name, len, (unsigned long long)(off + done),
                     got < 0 ? strerror(errno) : "the file is shorter (truncated?)");
            return false;
        }
        done += (size_t)got;
    }
    rd->bytes_read += (double)len;
    /* Rows that will not stay cached until the next epoch: dropping them at once keeps the
     * page cache (charged to a job's memory cgroup) from pressing on the job's memory. */
    if (rd->drop_cache) (void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
    return true;
}

/* Undoes the shuffle filter: byte b of element e was stored at b * n + e. */
static void unshuffle(const unsigned char *in, size_t bytes, size_t esize, unsigned char *out)
{
    size_t n = bytes / esize;
    for (size_t b = 0; b < esize; b++)
        for (size_t e = 0; e < n; e++) out[e * esize + b] = in[b * n + e];
    memcpy(out + n * esize, in + n * esize, bytes - n * esize);
}

/* Reads and decodes chunk (ci, cj) of a into rd->tmp1 (chunk_rows x chunk_cols elements). */
static bool read_chunk(int fd, const Array *a, size_t ci, size_t cj, Reader *rd)
{
    const H5ioLayout *l = &a->lay;
    size_t k = ci * l->grid_cols + cj, full = l->chunk_rows * l->chunk_cols * l->esize;
    size_t stored = (size_t)l->chunk_bytes[k];
    if (!grow(&rd->raw, &rd->raw_cap, stored) || !grow(&rd->tmp1, &rd->tmp1_cap, full) ||
        !grow(&rd->tmp2, &rd->tmp2_cap, full)) {
        snprintf(rd->err, sizeof rd->err, "%s: out of memory for a chunk of %zu bytes", a->name,
                 full);
        return false;
    }
    if (!pread_all(fd, rd->raw, stored, l->chunk_offset[k], rd, a)) return false;
    unsigned char *cur = rd->raw;
    size_t len = stored;
    for (int f = l->n_filters - 1; f >= 0; f--) {
        if (l->chunk_mask[k] & (1u << f)) continue; /* this filter was skipped for the chunk */
        unsigned char *dst = cur == rd->tmp1 ? rd->tmp2 : rd->tmp1;
        if (l->filter[f] == H5IO_FILTER_DEFLATE) {
            uLongf out = (uLongf)full;
            if (uncompress(dst, &out, cur, (uLong)len) != Z_OK || out != full) {
                snprintf(rd->err, sizeof rd->err, "%s: chunk at row %zu, column %zu does not "
                         "inflate to %zu bytes (corrupt file?)", a->name, ci * l->chunk_rows,
                         cj * l->chunk_cols, full);
                return false;
            }
            len = full;
        } else {
            if (len != full) break; /* reported below */
            unshuffle(cur, len, l->esize, dst);
        }
        cur = dst;
    }
    if (len != full) {
        snprintf(rd->err, sizeof rd->err, "%s: chunk at row %zu, column %zu holds %zu bytes, "
                 "not %zu (corrupt file?)", a->name, ci * l->chunk_rows, cj * l->chunk_cols, len,
                 full);
        return false;
    }
    if (cur != rd->tmp1) memcpy(rd->tmp1, cur, full);
    return true;
}

/* Makes chunk row ci of a (all its column chunks, at full row width) the cached one. */
static bool load_chunk_row(int fd, const Array *a, size_t ci, Reader *rd, ChunkRow *cr)
{
    if (cr->row == ci) return true;
    const H5ioLayout *l = &a->lay;
    size_t row_bytes = l->cols * l->esize;
    size_t rows = l->rows - ci * l->chunk_rows < l->chunk_rows ? l->rows - ci * l->chunk_rows
                                                              : l->chunk_rows;
    cr->row = SIZE_MAX;
    for (size_t cj = 0; cj < l->grid_cols; cj++) {
        if (!read_chunk(fd, a, ci, cj, rd)) return false;
        size_t c0 = cj * l->chunk_cols;
        size_t w = (l->cols - c0 < l->chunk_cols ? l->cols - c0 : l->chunk_cols) * l->esize;
        for (size_t r = 0; r < rows; r++)
            memcpy(cr->buf + r * row_bytes + c0 * l->esize,
                   rd->tmp1 + r * l->chunk_cols * l->esize, w);
    }
    cr->row = ci;
    return true;
}

/* Row i of a list: rows[i] when given, else first + i (relative to the opened range). */
static inline size_t row_at(const uint32_t *rows, size_t first, size_t i)
{
    return rows ? rows[i] : first + i;
}

/* Converts global row `row`'s stored bytes into out. */
static bool convert_row(const Array *a, const unsigned char *raw, size_t row, unsigned char *out,
                        Reader *rd)
{
    size_t bad = convert(a, raw, a->lay.cols, out);
    if (bad == SIZE_MAX) return true;
    snprintf(rd->err, sizeof rd->err, "%s: the value at row %zu, column %zu does not convert "
             "exactly to int32 (class ids must be whole numbers)", a->name, row, bad);
    return false;
}

/* Contiguous data: the run that starts at rows[i] takes the following rows while the gaps
 * stay under GAP_BYTES and the run under io_bytes. Returns the end (exclusive) and the
 * run's last global row in *last. */
static size_t run_end(const Stream *s, const uint32_t *rows, size_t first, size_t n, size_t i,
                      size_t row_bytes, size_t *last)
{
    size_t g0 = s->lo + row_at(rows, first, i), g_last = g0, j = i + 1;
    for (; j < n; j++) {
        size_t g = s->lo + row_at(rows, first, j);
        if ((g - g_last - 1) * row_bytes > GAP_BYTES || (g - g0 + 1) * row_bytes > s->io_bytes)
            break;
        g_last = g;
    }
    *last = g_last;
    return j;
}

/* out <- n rows of a (sorted ascending, distinct; relative to the range starting at global
 * row `base`), converted to the memory type. Coalesced preads for contiguous data, whole
 * chunk rows for chunked data. Returns false with rd->err set. */
static bool read_rows(const Stream *s, const Array *a, const uint32_t *rows, size_t first,
                      size_t n, unsigned char *out, Reader *rd, ChunkRow *cr)
{
    const H5ioLayout *l = &a->lay;
    const size_t row_bytes = l->cols * l->esize, out_row = l->cols * a->mem_esize;
    const size_t base = s->lo;
    double t0 = comm_wtime();
    bool ok = true;
    size_t ahead = 0; /* rows up to here have been announced to the kernel (cold data) */
    for (size_t i = 0; ok && i < n;) {
        if (rd->cancel && atomic_load_explicit(rd->cancel, memory_order_relaxed)) {
            snprintf(rd->err, sizeof rd->err, "%s: reading stopped", a->name); /* unused */
            ok = false;
            break;
        }
        size_t g0 = base + row_at(rows, first, i), j = i + 1;
        if (l->chunked) { /* the rows of one chunk row from its decoded copy */
            size_t ci = g0 / l->chunk_rows, q = i;
            ok = load_chunk_row(s->fd, a, ci, rd, cr);
            for (; ok && q < n; q++) {
                size_t g = base + row_at(rows, first, q);
                if (g / l->chunk_rows != ci) break;
                ok = convert_row(a, cr->buf + (g - ci * l->chunk_rows) * row_bytes, g,
                                 out + q * out_row, rd);
            }
            i = q;
            continue;
        }
        /* Cold data: keep the kernel reading ADVISE_BYTES of rows ahead of us, so the disk
         * sees many requests at once rather than one pread at a time. */
        while (rd->drop_cache && ahead < n &&
               (ahead <= i ||
                (base + row_at(rows, first, ahead) - g0) * row_bytes < ADVISE_BYTES)) {
            size_t a0 = base + row_at(rows, first, ahead), a1;
            ahead = run_end(s, rows, first, n, ahead, row_bytes, &a1);
            (void)posix_fadvise(s->fd, (off_t)(l->offset + (uint64_t)a0 * row_bytes),
                                (off_t)((a1 - a0 + 1) * row_bytes), POSIX_FADV_WILLNEED);
        }
        size_t g_last;
        j = run_end(s, rows, first, n, i, row_bytes, &g_last);
        size_t len = (g_last - g0 + 1) * row_bytes;
        if (!grow(&rd->raw, &rd->raw_cap, len)) {
            snprintf(rd->err, sizeof rd->err, "%s: out of memory for a read of %zu bytes",
                     a->name, len);
            ok = false;
            break;
        }
        ok = pread_all(s->fd, rd->raw, len, l->offset + (uint64_t)g0 * row_bytes, rd, a);
        for (size_t q = i; ok && q < j; q++) {
            size_t g = base + row_at(rows, first, q);
            ok = convert_row(a, rd->raw + (g - g0) * row_bytes, g, out + q * out_row, rd);
        }
        i = j;
    }
    rd->io_s += comm_wtime() - t0;
    return ok;
}

static bool read_both(const Stream *s, const uint32_t *rows, size_t first, size_t n,
                      unsigned char *x, unsigned char *y, Reader *rd)
{
    return read_rows(s, &s->x, rows, first, n, x, rd, &rd->crow[0]) &&
           (!s->has_y || !y || read_rows(s, &s->y, rows, first, n, y, rd, &rd->crow[1]));
}

/* ---- open, scan, sequential reads ------------------------------------------------------ */

static Status reader_init(Reader *rd, const Stream *s)
{
    memset(rd, 0, sizeof *rd);
    const Array *arr[2] = {&s->x, &s->y};
    for (int i = 0; i < 2; i++) {
        rd->crow[i].row = SIZE_MAX;
        const H5ioLayout *l = &arr[i]->lay;
        if (!l->chunked || (i == 1 && !s->has_y)) continue;
        rd->crow[i].buf = malloc(l->chunk_rows * l->cols * l->esize);
        if (!rd->crow[i].buf) return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

static void reader_free(Reader *rd)
{
    free(rd->raw);
    free(rd->tmp1);
    free(rd->tmp2);
    free(rd->crow[0].buf);
    free(rd->crow[1].buf);
}

static Status array_open(H5File *f, const DatasetInfo *info, const char *dset_name, MemType mem,
                         Array *a, char *why, size_t whylen)
{
    char *path = a->path;
    dataset_object_path(info, dset_name, a->path, sizeof a->path);
    snprintf(a->name, sizeof a->name, "%s:%s", info->file, path);
    a->mem = mem;
    a->mem_esize = mem == MEM_U8 ? 1 : 4;
    char r[300];
    if (h5io_layout(f, path, &a->lay, r, sizeof r) != XT_OK) {
        snprintf(why, whylen, "%s: %s", path, r);
        return XT_ERR_USAGE;
    }
    if (a->lay.chunked && a->lay.chunk_rows * a->lay.cols * a->lay.esize > MAX_CHUNK_ROW_BYTES) {
        snprintf(why, whylen, "%s: a row of chunks holds %zu rows x %zu values, more than the "
                 "%zu MiB the streaming reader decodes at once; rewrite it with fewer rows per "
                 "chunk", path, a->lay.chunk_rows, a->lay.cols, MAX_CHUNK_ROW_BYTES >> 20);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* The reader must see exactly what HDF5 sees: the raw bytes of the first and last rows. */
static Status verify(Stream *s, H5File *f, const Array *a, char *why, size_t whylen)
{
    const H5ioLayout *l = &a->lay;
    const char *path = a->path;
    size_t row_bytes = l->cols * l->esize, n = s->hi - s->lo;
    if (n == 0) return XT_OK;
    unsigned char *want = malloc(row_bytes), *got = malloc(row_bytes);
    Status st = want && got ? XT_OK : XT_ERR_RUNTIME;
    Reader *rd = &s->main_rd;
    ChunkRow *cr = &rd->crow[a == &s->x ? 0 : 1];
    size_t probe[2] = {0, n - 1};
    for (int i = 0; i < 2 && st == XT_OK; i++) {
        size_t row = probe[i];
        if (h5io_read_rows_raw(f, path, s->lo + row, 1, want) != XT_OK) {
            snprintf(why, whylen, "%s: HDF5 cannot read row %zu", path, s->lo + row);
            st = XT_ERR_USAGE;
            break;
        }
        /* read the row's stored bytes through our own path, without conversion */
        bool ok;
        if (l->chunked) {
            size_t g = s->lo + row, ci = g / l->chunk_rows;
            cr->row = SIZE_MAX;
            ok = load_chunk_row(s->fd, a, ci, rd, cr);
            if (ok) memcpy(got, cr->buf + (g - ci * l->chunk_rows) * row_bytes, row_bytes);
            cr->row = SIZE_MAX;
        } else {
            ok = pread_all(s->fd, got, row_bytes, l->offset + (uint64_t)(s->lo + row) * row_bytes,
                           rd, a);
        }
        if (!ok) {
            snprintf(why, whylen, "%s", rd->err);
            st = XT_ERR_USAGE;
        } else if (memcmp(want, got, row_bytes) != 0) {
            snprintf(why, whylen, "%s: the bytes at the offsets HDF5 reports differ from HDF5's "
                     "own read of row %zu (a layout the streaming reader does not understand)",
                     path, s->lo + row);
            st = XT_ERR_USAGE;
        }
    }
    free(want);
    free(got);
    return st;
}

Status stream_open(Stream **out, const DatasetInfo *info, size_t lo, size_t hi, bool compact,
                   size_t io_bytes, char *why, size_t whylen)
{
    *out = NULL;
    why[0] = '\0';
    Stream *s = calloc(1, sizeof *s);
    if (!s) return XT_ERR_RUNTIME;
    s->fd = -1;
    s->io_bytes = io_bytes;
    s->info = *info;
    s->lo = lo;
    s->hi = hi;
    s->cur = -1;
    s->has_y = info->has_y;
    H5File *f = NULL;
    Status st = h5io_open_read(info->file, NULL, &f);
    if (st != XT_OK) snprintf(why, whylen, "cannot open the file");
    if (st == XT_OK)
        st = array_open(f, info, info->x_name, compact && info->x_u8 ? MEM_U8 : MEM_F32, &s->x,
                        why, whylen);
    char yids[700]; /* y, or y/codes for categories */
    dataset_y_path(info, yids, sizeof yids);
    if (st == XT_OK && s->has_y)
        st = array_open(f, info, yids, info->target == TARGET_CLASS ? MEM_I32 : MEM_F32, &s->y,
                        why, whylen);
    if (st == XT_OK) {
        s->fd = open(info->file, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) {
            snprintf(why, whylen, "cannot open it for direct reads: %s", strerror(errno));
            st = XT_ERR_USAGE;
        }
    }
    if (st == XT_OK &&
        (reader_init(&s->main_rd, s) != XT_OK || reader_init(&s->help_rd, s) != XT_OK)) {
        snprintf(why, whylen, "out of memory for the decode buffers");
        st = XT_ERR_RUNTIME;
    }
    if (st == XT_OK) st = verify(s, f, &s->x, why, whylen);
    if (st == XT_OK && s->has_y) st = verify(s, f, &s->y, why, whylen);
    if (f) h5io_close(&f);
    s->main_rd.bytes_read = 0.0; /* the verification reads are not the run's */
    if (st != XT_OK) {
        stream_close(s);
        return st;
    }
    *out = s;
    return XT_OK;
}

void stream_set_drop_cache(Stream *s, bool drop)
{
    s->main_rd.drop_cache = s->help_rd.drop_cache = drop;
}

size_t stream_row_bytes(const Stream *s)
{
    size_t b = s->x.lay.cols * s->x.mem_esize + sizeof(uint32_t);
    if (s->has_y) b += s->y.lay.cols * s->y.mem_esize;
    return b;
}

static size_t block_rows_at(const Stream *s, size_t io_bytes)
{
    size_t r = io_bytes / (s->x.lay.cols * sizeof(float));
    return r ? r : 1;
}

size_t stream_block_rows(const Stream *s) { return block_rows_at(s, s->io_bytes); }

size_t stream_fixed_bytes_at(const Stream *s, size_t local_rows, size_t io_bytes)
{
    /* the helper's permutation, the two readers' run buffers, a sequential block in the
     * memory types and as the float rows handed out */
    size_t b = local_rows * sizeof(uint32_t) + 2 * io_bytes +
               block_rows_at(s, io_bytes) * (stream_row_bytes(s) + s->x.lay.cols * sizeof(float));
    const Array *arr[2] = {&s->x, &s->y};
    for (int i = 0; i < 2; i++) {
        const H5ioLayout *l = &arr[i]->lay;
        if (!l->chunked || (i == 1 && !s->has_y)) continue;
        /* per reader: a chunk row, a stored chunk and two decode buffers */
        size_t chunk = l->chunk_rows * l->chunk_cols * l->esize;
        b += 2 * (l->chunk_rows * l->cols * l->esize + 3 * chunk);
    }
    return b;
}

size_t stream_fixed_bytes(const Stream *s, size_t local_rows)
{
    return stream_fixed_bytes_at(s, local_rows, s->io_bytes);
}

static bool block_reserve(Stream *s, size_t m)
{
    if (m <= s->bcap) return true;
    size_t xb = s->x.lay.cols * s->x.mem_esize, yb = s->has_y ? s->y.lay.cols * 4 : 0;
    unsigned char *x = realloc(s->bx, m * xb), *y = yb ? realloc(s->by, m * yb) : NULL;
    if (x) s->bx = x;
    if (y) s->by = y;
    if (!x || (yb && !y)) return false;
    s->bcap = m;
    return true;
}

/* Rows read after the start-up scan must pass its checks: a row that does not means the
 * file changed under the run (in place, regenerated, truncated). 0 rows or the index of
 * the first bad one plus one; why is set. */
static size_t first_invalid(const Stream *s, const Dataset *v, size_t n, char *why, size_t len)
{
    if (!s->scanned) return 0;
    for (size_t i = 0; i < n; i++)
        if (!dataset_row_valid(v, i, s->k, s->probs, why, len)) return i + 1;
    return 0;
}

/* The file changed during the run: an input error, the same on a resume (exit 2). */
_Noreturn static void data_changed(const char *msg)
{
    log_error("%s", msg);
    comm_abort(NULL, XT_ERR_USAGE);
}

_Noreturn static void read_failed(const char *msg)
{
    log_error("%s; the data could be read when the run started: was the file changed, or is "
              "the disk failing?", msg);
    comm_abort(NULL, XT_ERR_RUNTIME);
}

/* A Dataset view of rows in memory types, for dataset_gather_rows and the checks. */
static Dataset view_of(const Stream *s, size_t lo, size_t n, unsigned char *x, unsigned char *y)
{
    Dataset v = {.info = s->info, .lo = lo, .hi = lo + n};
    if (s->x.mem == MEM_U8) v.X8 = x;
    else v.X = (float *)(void *)x;
    if (s->has_y && s->info.target == TARGET_CLASS) v.y = (int32_t *)(void *)y;
    else if (s->has_y) v.t = (float *)(void *)y;
    return v;
}

Status stream_scan(Stream *s, Dataset *ds, size_t k, bool probs)
{
    dataset_begin(ds, &s->info, s->lo, s->hi);
    size_t n = s->hi - s->lo, rows = stream_block_rows(s);
    if (!block_reserve(s, rows < n ? rows : n)) {
        log_error("%s: out of memory for the scan's block of %zu rows", s->x.name, rows);
        return XT_ERR_RUNTIME;
    }
    for (size_t r0 = 0; r0 < n; r0 += rows) {
        size_t m = n - r0 < rows ? n - r0 : rows;
        if (!read_both(s, NULL, r0, m, s->bx, s->by, &s->main_rd)) {
            log_error("%s", s->main_rd.err);
            return XT_ERR_USAGE;
        }
        Dataset v = view_of(s, s->lo + r0, m, s->bx, s->by);
        Status st = dataset_check_rows(&v, k);
        if (st == XT_OK && probs) st = dataset_check_distributions(&v);
        if (st != XT_OK) return st;
        if (v.label_min > v.label_max) continue; /* no labels in the block */
        bool first = ds->label_min > ds->label_max;
        if (first || v.label_min < ds->label_min) ds->label_min = v.label_min;
        if (first || v.label_max > ds->label_max) ds->label_max = v.label_max;
    }
    s->k = k > 0 ? k : ds->label_max >= 0 ? (size_t)ds->label_max + 1 : 0;
    s->probs = probs;
    s->scanned = true;
    return dataset_read_class_names(ds);
}

static void rows_out(const Stream *s, const Dataset *v, const uint32_t *pos, size_t first,
                     size_t m, float *X, int32_t *y, float *t, const float *shift,
                     const float *mul)
{
    if (pos) dataset_gather_rows(X, v, pos, m, shift, mul);
    else dataset_read_rows(X, v, first, m, shift, mul);
    if (!s->has_y) return;
    const size_t K = s->y.lay.cols;
    for (size_t i = 0; i < m; i++) {
        size_t r = pos ? pos[i] : first + i;
        if (y && v->y) y[i] = v->y[r];
        if (t && v->t) memcpy(t + i * K, v->t + r * K, K * sizeof *t);
    }
}

void stream_read(Stream *s, size_t lo, size_t m, float *X, int32_t *y, float *t,
                 const float *shift, const float *mul)
{
    XT_ASSERT(lo + m <= s->hi - s->lo);
    if (!block_reserve(s, m)) read_failed("out of memory for a block of rows");
    if (!read_both(s, NULL, lo, m, s->bx, (y || t) ? s->by : NULL, &s->main_rd))
        read_failed(s->main_rd.err);
    Dataset v = view_of(s, 0, m, s->bx, s->by);
    char why[160], msg[XT_PATH_MAX + 800];
    Dataset c = v; /* the targets were not read when not asked for */
    if (!y && !t) c.y = NULL, c.t = NULL;
    size_t bad = first_invalid(s, &c, m, why, sizeof why);
    if (bad) {
        snprintf(msg, sizeof msg, "%s:%s: row %zu %s, but the start-up scan found every row "
                 "valid: the file was changed during the run (stop whatever rewrites it; the "
                 "checkpoint resumes the run)", s->info.file, s->info.group,
                 s->lo + lo + bad - 1, why);
        data_changed(msg);
    }
    rows_out(s, &v, NULL, 0, m, X, y, t, shift, mul);
}

/* ---- planned windows --------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Helper thread: the rows of steps [t0, ...) of epoch into w, as many steps as fit. */
static void fill_window(Stream *s, Window *w)
{
    Sampler *p = &s->plan;
    sampler_begin_epoch(p, w->epoch);
    size_t n = 0, t = w->t0;
    while (t < p->T && (t == w->t0 || n + p->max_local <= s->ramp_rows))
        n += sampler_step_rows(p, t++, w->rows + n);
    /* A window holds at most twice the rows of the one before (at least RAMP_STEPS steps):
     * after a (re)start and after an epoch's short last window, the next one is read while
     * the trainer computes on one about half its size, so training rarely waits. */
    size_t next = 2 * n > RAMP_STEPS * p->max_local ? 2 * n : RAMP_STEPS * p->max_local;
    s->ramp_rows = next < s->window_rows ? next : s->window_rows;
    w->t1 = t;
    w->n = n;
    qsort(w->rows, n, sizeof *w->rows, cmp_u32);
    w->failed = !read_both(s, w->rows, 0, n, w->x, w->y, &s->help_rd);
    w->changed = false;
    char why[160];
    Dataset v = view_of(s, 0, n, w->x, w->y);
    size_t bad = w->failed ? 0 : first_invalid(s, &v, n, why, sizeof why);
    if (bad) { /* checked here, off the trainer's path; reported by stream_begin_step */
        snprintf(s->help_rd.err, sizeof s->help_rd.err,
                 "%s:%s: row %zu (read for epoch %llu) %s, but the start-up scan found every "
                 "row valid: the file was changed during the run (stop whatever rewrites it; "
                 "the checkpoint resumes the run)", s->info.file, s->info.group,
                 s->lo + w->rows[bad - 1], (unsigned long long)w->epoch + 1, why);
        w->failed = w->changed = true;
    }
}

static void *helper_main(void *arg)
{
    Stream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        Window *w = NULL;
        while (!atomic_load(&s->quit)) {
            for (int i = 0; i < 2 && !w && s->next_epoch < s->end_epoch; i++)
                if (s->win[i].state == WIN_FREE) w = &s->win[i];
            if (w) break;
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (atomic_load(&s->quit)) break;
        w->state = WIN_FILLING;
        w->epoch = s->next_epoch;
        w->t0 = s->next_t;
        pthread_mutex_unlock(&s->mu);
        fill_window(s, w);
        pthread_mutex_lock(&s->mu);
        s->next_t = w->t1;
        if (s->next_t >= s->plan.T) {
            s->next_t = 0;
            s->next_epoch++;
        }
        w->state = WIN_READY;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

Status stream_plan(Stream *s, const Sampler *sampler, size_t window_rows, uint64_t end_epoch)
{
    XT_ASSERT(!s->planned && window_rows >= sampler->max_local);
    char err[256];
    if (sampler_clone(&s->plan, sampler, err, sizeof err) != XT_OK) {
        log_error("%s", err);
        return XT_ERR_RUNTIME;
    }
    s->window_rows = window_rows;
    s->end_epoch = end_epoch;
    size_t xb = s->x.lay.cols * s->x.mem_esize, yb = s->has_y ? s->y.lay.cols * 4 : 0;
    for (int i = 0; i < 2; i++) {
        Window *w = &s->win[i];
        w->rows = malloc(window_rows * sizeof *w->rows);
        w->x = malloc(window_rows * xb);
        w->y = yb ? malloc(window_rows * yb) : NULL;
        if (!w->rows || !w->x || (yb && !w->y)) {
            log_error("%s: out of memory for the stream's windows (2 x %zu rows)", s->x.name,
                      window_rows);
            return XT_ERR_RUNTIME;
        }
    }
    s->pos = malloc((sampler->max_local ? sampler->max_local : 1) * sizeof *s->pos);
    if (!s->pos) return XT_ERR_RUNTIME;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->quit, false);
    s->help_rd.cancel = &s->quit; /* a stop (end of training, a signal) need not wait for a
                                     whole window's reads */
    s->planned = true;
    return XT_OK;
}

/* Stops the helper after the window it is filling (lock held on entry and exit). */
static void helper_stop(Stream *s)
{
    if (!s->started) return;
    atomic_store(&s->quit, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_lock(&s->mu);
    s->started = false;
    atomic_store(&s->quit, false);
}

void stream_begin_step(Stream *s, uint64_t epoch, size_t t)
{
    XT_ASSERT(s->planned);
    if (s->cur >= 0) {
        const Window *w = &s->win[s->cur];
        if (w->epoch == epoch && t >= w->t0 && t < w->t1) return;
    }
    double t0 = comm_wtime();
    pthread_mutex_lock(&s->mu);
    if (s->cur >= 0) { /* done with it: the reader may refill it now */
        s->win[s->cur].state = WIN_FREE;
        pthread_cond_broadcast(&s->cv);
    }
    s->cur = -1;
    for (;;) {
        for (int i = 0; i < 2 && s->cur < 0; i++) {
            Window *w = &s->win[i];
            if (w->state != WIN_READY) continue;
            if (w->epoch == epoch && t >= w->t0 && t < w->t1) s->cur = i;
            else if (w->epoch < epoch || (w->epoch == epoch && w->t1 <= t)) {
                w->state = WIN_FREE; /* passed: steps only go forwards */
                pthread_cond_broadcast(&s->cv);
            }
        }
        if (s->cur >= 0) break;
        /* Windows come in order from where the helper started; when the step is not on
         * its way (the first step, a resume, a step behind), restart it there. */
        bool coming = s->started && s->next_epoch == epoch && s->next_t == t;
        for (int i = 0; i < 2; i++) {
            const Window *w = &s->win[i];
            if (w->state == WIN_FILLING && w->epoch == epoch && w->t0 <= t) coming = true;
        }
        if (!coming) {
            helper_stop(s);
            s->win[0].state = s->win[1].state = WIN_FREE;
            s->next_epoch = epoch;
            s->next_t = t;
            s->ramp_rows = RAMP_STEPS * s->plan.max_local < s->window_rows
                               ? RAMP_STEPS * s->plan.max_local : s->window_rows;
            if (pthread_create(&s->th, NULL, helper_main, s) != 0) {
                pthread_mutex_unlock(&s->mu);
                read_failed("cannot start the stream's reader thread");
            }
            s->started = true;
        }
        pthread_cond_broadcast(&s->cv);
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    s->wait_s += comm_wtime() - t0;
    if (s->win[s->cur].changed) data_changed(s->help_rd.err);
    if (s->win[s->cur].failed) read_failed(s->help_rd.err);
}

void stream_gather(Stream *s, const uint32_t *rows, size_t m, float *X, int32_t *y, float *t,
                   const float *shift, const float *mul)
{
    XT_ASSERT(s->cur >= 0 && m <= s->plan.max_local);
    const Window *w = &s->win[s->cur];
    for (size_t i = 0; i < m; i++) {
        const uint32_t *p = bsearch(&rows[i], w->rows, w->n, sizeof *w->rows, cmp_u32);
        XT_ASSERT(p); /* the row belongs to a step of this window */
        s->pos[i] = (uint32_t)(p - w->rows);
    }
    Dataset v = view_of(s, 0, w->n, w->x, w->y);
    rows_out(s, &v, s->pos, 0, m, X, y, t, shift, mul);
    s->needed += (double)m * (double)(s->x.lay.cols * s->x.lay.esize +
                                      (s->has_y ? s->y.lay.cols * s->y.lay.esize : 0));
}

void stream_stop(Stream *s)
{
    if (!s->planned) return;
    pthread_mutex_lock(&s->mu);
    helper_stop(s);
    pthread_mutex_unlock(&s->mu);
}

void stream_stats(const Stream *s, StreamStats *out)
{
    *out = (StreamStats){.bytes_read = s->help_rd.bytes_read,
                         .bytes_needed = s->needed,
                         .io_s = s->help_rd.io_s,
                         .wait_s = s->wait_s,
                         .window_rows = s->window_rows};
    if (s->planned && s->plan.max_local > 0) out->window_steps = s->window_rows / s->plan.max_local;
}

void stream_describe(const Stream *s, char *buf, size_t len)
{
    const H5ioLayout *l = &s->x.lay;
    char f[64] = "";
    for (int i = 0; i < l->n_filters; i++)
        snprintf(f + strlen(f), sizeof f - strlen(f), "%s%s", i ? "+" : ", ",
                 l->filter[i] == H5IO_FILTER_DEFLATE ? "deflate" : "shuffle");
    /* the page-cache policy is a guess from the node's memory: say it */
    const char *cache = s->help_rd.drop_cache
                            ? "; the rows exceed the node's usable memory, so reads are announced "
                              "ahead and dropped from the page cache after use"
                            : "";
    if (l->chunked)
        snprintf(buf, len, "chunked X (%zu x %zu per chunk%s)%s", l->chunk_rows, l->chunk_cols, f,
                 cache);
    else
        snprintf(buf, len, "contiguous X, %s%s", l->big_endian ? "big-endian" : "little-endian",
                 cache);
}

void stream_close(Stream *s)
{
    if (!s) return;
    if (s->planned) {
        stream_stop(s);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        for (int i = 0; i < 2; i++) {
            free(s->win[i].rows);
            free(s->win[i].x);
            free(s->win[i].y);
        }
        sampler_free(&s->plan);
        free(s->pos);
    }
    reader_free(&s->main_rd);
    reader_free(&s->help_rd);
    h5io_layout_free(&s->x.lay);
    h5io_layout_free(&s->y.lay);
    free(s->bx);
    free(s->by);
    if (s->fd >= 0) close(s->fd);
    free(s);
}
