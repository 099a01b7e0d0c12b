/* xt_h5fixture: HDF5 fixtures the product never writes, for tests of the readers' error
 * paths. Test code only: it speaks HDF5 directly (src/ keeps hdf5.h in h5io.c). */
#ifndef XT_H5FIXTURE_H
#define XT_H5FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Adds to the existing file `path` (closed) a 1-D dataset `dset` of n elements of a type
 * xentrain cannot read as data: kind "string" (variable-length UTF-8), "compound"
 * ({int32 a; float32 b}) or "enum" (RED, GREEN, BLUE: not a bool). Missing groups are created. */
Status xt_h5_write_unsupported(const char *path, const char *dset, const char *kind, size_t n);

/* The storage of a 2-D (or 1-D: cols = 0) dataset, as other tools write it. */
typedef struct {
    const char *type;        /* "u8", "i16", "i32", "f32", "f64", "f64be" (big-endian) */
    size_t chunk_rows, chunk_cols; /* 0: contiguous */
    int gzip;                /* deflate level, 0: none (chunked only) */
    bool shuffle;            /* the shuffle filter before deflate */
} XtH5Layout;

/* Adds to the existing file `path` (closed) the dataset `dset` of rows x cols values
 * (cols = 0: a 1-D dataset of rows values) given as doubles, converted to the layout's type
 * by HDF5, stored in that layout. Missing groups are created. */
Status xt_h5_write_matrix(const char *path, const char *dset, const double *v, size_t rows,
                          size_t cols, const XtH5Layout *lay);

#endif
