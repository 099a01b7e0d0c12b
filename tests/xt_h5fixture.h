/* xt_h5fixture: HDF5 fixtures the product never writes, for tests of the readers' error
 * paths. Test code only: it speaks HDF5 directly (src/ keeps hdf5.h in h5io.c). */
#ifndef XT_H5FIXTURE_H
#define XT_H5FIXTURE_H

#include <stddef.h>

#include "error.h"

/* Adds to the existing file `path` (closed) a 1-D dataset `dset` of n elements of a type
 * xentrain cannot read as data: kind "string" (variable-length UTF-8), "compound"
 * ({int32 a; float32 b}) or "enum" (RED, GREEN, BLUE: not a bool). Missing groups are created. */
Status xt_h5_write_unsupported(const char *path, const char *dset, const char *kind, size_t n);

#endif
