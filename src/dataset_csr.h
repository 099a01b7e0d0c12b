/* dataset_csr: a split whose X is a CSR group, the layouts AnnData (h5ad) and scipy/h5sparse
 * write (docs/sparse.md). Private to the dataset module (dataset.c calls it from its probe and
 * its load); the rows' in-memory form and checks are csr.h's.
 *
 *   AnnData:  group attributes encoding-type = "csr_matrix", encoding-version, shape (N, D)
 *   h5sparse: group attributes format = "csr", h5sparse_shape (N, D)
 *   both:     datasets data (nnz), indices (nnz), indptr (N + 1); indices and indptr any
 *             integer type (int32, int64), data any integer or float type
 * A rank reads only its rows: indptr[lo .. hi], then indices and data over
 * [indptr[lo], indptr[hi]). Local (reads are independent).
 */
#ifndef XT_DATASET_CSR_H
#define XT_DATASET_CSR_H

#include <stdbool.h>
#include <stddef.h>

#include "dataset.h"
#include "h5io.h"

/* Whether the group xp says it holds a sparse matrix (either layout's attribute). */
bool dataset_csr_is_sparse(H5File *f, const char *xp);

/* Checks the group xp's layout and fills info's n, d, x_nnz, x_csr, x_type and x_object:
 * the attributes, the three datasets (1-D, integer indices and indptr, numeric data, equal
 * data and indices lengths, indptr of N + 1), D < 2^31, indptr[0] = 0 and indptr[N] = nnz.
 * XT_ERR_USAGE with the file, the object and the fix in err. */
Status dataset_csr_probe(H5File *f, const char *xp, DatasetInfo *info, char *err,
                         size_t errlen);

/* Rows [ds->lo, ds->hi) of the group xp into ds->csr, checked (csr_check_rows; indptr
 * within [0, nnz]; column indices that do not fit int32 named with their row). Logs the
 * failure with the file, the dataset and the global row. */
Status dataset_csr_load(Dataset *ds, H5File *f, const char *xp);

/* Writes rows[i] (i < n; rows NULL: the first n) of c as the CSR group xp in AnnData's
 * layout: indptr int64, indices int32, data float32 (deflated at gzip_level as h5io_write),
 * encoding-type = csr_matrix, encoding-version = 0.1.0, shape = (n, d). Local. */
Status dataset_csr_write(H5File *f, const char *xp, const CsrRows *c, const size_t *rows,
                         size_t n, int gzip_level);

#endif
