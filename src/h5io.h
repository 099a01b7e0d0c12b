/* h5io: the thin layer over HDF5. The only file that includes hdf5.h.
 *
 * dataset.c, model_io.c, convert.c and gen.c speak HDF5 through this API, so error
 * handling (HDF5's automatic error stack printing is turned off once, every id is
 * checked and closed) lives in one place. Every failure is logged here with the file
 * name and the object path, then returned as a Status.
 *
 * Files opened for reading with a Comm use the MPI-IO driver (parallel HDF5), except
 * paths longer than 200 bytes (the POSIX driver on every rank: Open MPI 4.1's MPI-IO
 * overflows a buffer on long names); with comm == NULL they use the default POSIX driver. Read-only opens disable HDF5 file
 * locking, which fails on some parallel file systems.
 *
 * Objects are named by absolute paths inside the file ("/train/X").
 *
 * Who prints under MPI: for a file opened with a Comm every rank sees the same
 * metadata, so failures of opens, info and attribute reads are printed by rank 0 only
 * (the callers agree on the status); failures of row reads are printed by the rank
 * that read the rows. Apart from h5io_open_read and h5io_close, every function is
 * Local: metadata and rows are read independently.
 */
#ifndef XT_H5IO_H
#define XT_H5IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "error.h"

typedef struct H5File H5File;

typedef enum {
    H5IO_CLASS_INT,
    H5IO_CLASS_UINT,
    H5IO_CLASS_FLOAT,
    H5IO_CLASS_OTHER /* string, compound, enum, ...: unsupported for data */
} H5ioClass;

/* Storage types for writing. */
typedef enum { H5IO_U8, H5IO_I32, H5IO_I64, H5IO_F32, H5IO_F64 } H5ioType;

typedef struct {
    int rank;             /* number of dimensions */
    size_t dims[4];       /* the first `rank` are valid */
    H5ioClass cls;
    size_t type_size;     /* bytes per element on disk */
    char type_name[32];   /* e.g. "uint8", "float32", "string" for messages */
    uint64_t object_id;   /* the dataset's address in its file: equal for two names (hard or
                             soft links) of one dataset; 0 when unknown */
    size_t chunk_rows;    /* rows per chunk when chunked; 0 otherwise */
} H5ioInfo;

/* The library's start and end, for a program: h5io_init before MPI_Init (and before any
 * other h5io call), h5io_shutdown before MPI_Finalize. Without them HDF5 starts at its
 * first call and shuts down inside MPI_Finalize, where HDF5 1.10.8 crashes after a file
 * failed to close (a full disk: HDFFV-11052); with them a failed close is reported and
 * the process ends with its own exit code. Local. */
void h5io_init(void);
void h5io_shutdown(void);

/* "HDF5 1.10.8 (built with 1.10.8, parallel)": the library this process runs with and
 * the headers it was built with. Local. */
void h5io_describe(char *buf, size_t len);

/* Open for reading. Local when comm == NULL; Collective over comm otherwise (every
 * rank must call it; on failure each rank returns the error). */
Status h5io_open_read(const char *path, const Comm *comm, H5File **out);
/* Create (truncate) for writing, serial POSIX driver. Local. */
Status h5io_create(const char *path, H5File **out);
/* Create for atomic replacement: writes go to a temporary name of its own beside PATH
 * (fsutil_temp_name: "PATH.tmp.<random>", created exclusively); h5io_commit flushes,
 * closes, fsyncs and renames it to PATH (then fsyncs the directory), so PATH is either
 * the old file or the complete new one. h5io_close on such a file discards the temporary.
 * Local. */
Status h5io_create_atomic(const char *path, H5File **out);
Status h5io_commit(H5File **f);
/* Flush and close; sets *f to NULL; safe on NULL. Returns a failure to flush. With a
 * Comm the close is collective (parallel HDF5 closes files collectively). */
Status h5io_close(H5File **f);
const char *h5io_path(const H5File *f);

bool h5io_exists(H5File *f, const char *obj);   /* group or dataset, any depth */
bool h5io_is_group(H5File *f, const char *obj);
Status h5io_create_group(H5File *f, const char *group); /* creates parents too */
/* dst's new object dst_obj <- a copy of src's object src_obj (a group with everything in
 * it, attributes included), by HDF5 (H5Ocopy: a dataset's values move through a small
 * buffer, never all at once). Local; errors name both. */
Status h5io_copy(H5File *src, const char *src_obj, H5File *dst, const char *dst_obj);
Status h5io_info(H5File *f, const char *dset, H5ioInfo *info);
/* The names of a group's members (datasets and groups), in name order, as a malloc'd
 * array of malloc'd strings (free with h5io_strs_free). Local. */
Status h5io_list(H5File *f, const char *group, char ***names, size_t *n);

/* Read rows [row0, row0+nrows) of a 1-D or 2-D dataset (all columns), converting to
 * the memory type. Uses a hyperslab: only those rows are read. Independent I/O when the
 * file was opened with a Comm. Local (no collective inside). Integer destinations refuse
 * values that do not convert exactly (instead of HDF5's clamping); float destinations
 * follow IEEE rules (float64 beyond float32's range becomes +-Inf). */
Status h5io_read_rows_float(H5File *f, const char *dset, size_t row0, size_t nrows, float *out);
Status h5io_read_rows_i32(H5File *f, const char *dset, size_t row0, size_t nrows, int32_t *out);
/* int64: CSR's indptr and indices (any integer type that fits). */
Status h5io_read_rows_i64(H5File *f, const char *dset, size_t row0, size_t nrows, int64_t *out);
/* float64: integers up to 2^53 exactly (labels of any integer type, before relabelling). */
Status h5io_read_rows_f64(H5File *f, const char *dset, size_t row0, size_t nrows, double *out);
Status h5io_read_rows_u8(H5File *f, const char *dset, size_t row0, size_t nrows, uint8_t *out);

/* Rows [row0, row0 + nrows) of a 1-D string dataset (variable- or fixed-length, as h5py
 * and AnnData write them) as a malloc'd array of nrows malloc'd texts (h5io_strs_free).
 * Local. */
Status h5io_read_rows_strs(H5File *f, const char *dset, size_t row0, size_t nrows, char ***out);

/* Reads rows [row0, row0 + nrows) in the dataset's own stored type (no conversion): the
 * bytes a direct reader must find at the layout's offsets (h5io_layout). Local. */
Status h5io_read_rows_raw(H5File *f, const char *dset, size_t row0, size_t nrows, void *out);

/* Where the raw rows of a 1-D or 2-D dataset lie in its file, for a reader that bypasses
 * HDF5 (stream.h: a helper thread may not call HDF5). Contiguous: one run of bytes at
 * `offset`. Chunked: a grid of chunks, each at chunk_offset[i] (chunk_bytes[i] stored
 * bytes, filters applied in pipeline order except those set in chunk_mask[i]), row-major
 * over (grid_rows, grid_cols). Only the filters a direct reader can undo are accepted:
 * deflate and shuffle. */
#define H5IO_MAX_FILTERS 8
enum { H5IO_FILTER_DEFLATE = 1, H5IO_FILTER_SHUFFLE = 2 }; /* HDF5's filter ids */
typedef struct {
    H5ioClass cls;
    size_t esize;             /* bytes per element */
    bool big_endian;
    size_t rows, cols;        /* 1-D: cols = 1 */
    bool chunked;
    uint64_t offset;          /* contiguous: file offset of element (0, 0) */
    size_t chunk_rows, chunk_cols, grid_rows, grid_cols;
    int n_filters;
    int filter[H5IO_MAX_FILTERS]; /* pipeline order (applied when writing) */
    uint64_t *chunk_offset;   /* grid_rows * grid_cols entries; malloc'd */
    uint64_t *chunk_bytes;
    uint32_t *chunk_mask;
} H5ioLayout;

/* Fills *l for dset. XT_ERR_USAGE with a reason in why (not logged) when the rows cannot
 * be read directly: compact, virtual or external storage, unwritten data or chunks, a
 * filter other than deflate and shuffle, a type that is not a plain integer or float.
 * Local; free with h5io_layout_free. */
Status h5io_layout(H5File *f, const char *dset, H5ioLayout *l, char *why, size_t whylen);
void h5io_layout_free(H5ioLayout *l);

/* Write a whole dataset of `rank` dims from memory of the given type (stored as the
 * same type). gzip_level 0 = contiguous; 1..9 = chunked (about 1 MiB of rows per chunk,
 * all other dims whole) and deflated. Missing parent groups are created. Local. */
Status h5io_write(H5File *f, const char *dset, H5ioType type, int rank, const size_t *dims,
                  const void *data, int gzip_level);
/* Creates the dataset as h5io_write does but writes no data: unwritten elements read
 * as 0, and a chunked (gzip_level > 0) dataset takes no space until written. Local. */
Status h5io_create_dataset(H5File *f, const char *dset, H5ioType type, int rank,
                           const size_t *dims, int gzip_level);

/* Writes rows [row0, row0 + nrows) of an existing 1-D or 2-D dataset (all columns) from
 * memory of the given type. Local. */
Status h5io_write_rows(H5File *f, const char *dset, H5ioType type, size_t row0, size_t nrows,
                       const void *data);

/* Attributes on a group or dataset (obj = path). Strings are variable-length UTF-8. */
Status h5io_attr_write_i64(H5File *f, const char *obj, const char *name, int64_t v);
Status h5io_attr_write_f64(H5File *f, const char *obj, const char *name, double v);
Status h5io_attr_write_str(H5File *f, const char *obj, const char *name, const char *v);
Status h5io_attr_write_i64s(H5File *f, const char *obj, const char *name, const int64_t *v,
                            size_t n);
/* n strings, written as a 1-D variable-length string attribute. */
Status h5io_attr_write_strs(H5File *f, const char *obj, const char *name,
                            const char *const *v, size_t n);
bool h5io_attr_exists(H5File *f, const char *obj, const char *name);
Status h5io_attr_read_i64(H5File *f, const char *obj, const char *name, int64_t *v);
Status h5io_attr_read_f64(H5File *f, const char *obj, const char *name, double *v);
/* Reads a string attribute into buf (truncated to len-1, always NUL-terminated). */
Status h5io_attr_read_str(H5File *f, const char *obj, const char *name, char *buf, size_t len);
/* Reads up to cap values; *n gets the attribute's length (may exceed cap: then fail). */
Status h5io_attr_read_i64s(H5File *f, const char *obj, const char *name, int64_t *v, size_t cap,
                           size_t *n);
/* Reads a string-array attribute: *out is a malloc'd array of *n malloc'd strings;
 * free with h5io_strs_free. */
Status h5io_attr_read_strs(H5File *f, const char *obj, const char *name, char ***out, size_t *n);
void h5io_strs_free(char **v, size_t n);

#endif
