#include "dataset_csr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Column indices are read in blocks of this many (an int64 buffer beside the int32 rows). */
#define CSR_BLOCK ((size_t)1 << 20)

static void member(char *out, size_t len, const char *xp, const char *name)
{
    snprintf(out, len, "%s/%s", strcmp(xp, "/") ? xp : "", name);
}

static bool attr_is(H5File *f, const char *xp, const char *name, const char *want)
{
    char v[64] = "";
    if (!h5io_attr_exists(f, xp, name)) return false;
    if (h5io_attr_read_str(f, xp, name, v, sizeof v) != XT_OK) return false;
    return !strcmp(v, want);
}

bool dataset_csr_is_sparse(H5File *f, const char *xp)
{
    return h5io_attr_exists(f, xp, "encoding-type") || h5io_attr_exists(f, xp, "h5sparse_format") ||
           h5io_attr_exists(f, xp, "format");
}

/* The layout's shape attribute: (N, D), both > 0. */
static Status read_shape(H5File *f, const char *xp, size_t *n, size_t *d, char *err,
                         size_t errlen)
{
    bool h5ad = attr_is(f, xp, "encoding-type", "csr_matrix");
    bool h5sparse = attr_is(f, xp, "format", "csr") || attr_is(f, xp, "h5sparse_format", "csr");
    if (attr_is(f, xp, "encoding-type", "csc_matrix") || attr_is(f, xp, "format", "csc") ||
        attr_is(f, xp, "h5sparse_format", "csc")) {
        snprintf(err, errlen, "%s is a CSC (column-compressed) matrix; xentrain reads rows: "
                 "store it as CSR (scipy: X.tocsr(); AnnData: adata.X = adata.X.tocsr())", xp);
        return XT_ERR_USAGE;
    }
    if (!h5ad && !h5sparse) {
        snprintf(err, errlen, "%s is a group without encoding-type = csr_matrix (AnnData) or "
                 "format = csr (h5sparse): X must be an (N, D) dataset or a CSR group", xp);
        return XT_ERR_USAGE;
    }
    const char *name = h5ad ? "shape" : "h5sparse_shape";
    int64_t shape[2] = {0, 0};
    size_t got = 0;
    if (!h5io_attr_exists(f, xp, name) ||
        h5io_attr_read_i64s(f, xp, name, shape, 2, &got) != XT_OK || got != 2 || shape[0] <= 0 ||
        shape[1] <= 0) {
        snprintf(err, errlen, "%s: attribute %s must hold the matrix's (N, D), both > 0 "
                 "(got %zu value(s): %" PRId64 ", %" PRId64 ")", xp, name, got, shape[0],
                 shape[1]);
        return XT_ERR_USAGE;
    }
    if (shape[1] > INT32_MAX) {
        snprintf(err, errlen, "%s: D = %" PRId64 " features; column indices up to 2^31 - 1 are "
                 "supported", xp, shape[1]);
        return XT_ERR_USAGE;
    }
    *n = (size_t)shape[0];
    *d = (size_t)shape[1];
    return XT_OK;
}

/* data, indices, indptr: present, 1-D, of usable types and consistent lengths. */
static Status probe_members(H5File *f, const char *xp, size_t n, H5ioInfo *di, char *err,
                            size_t errlen)
{
    static const char *names[3] = {"data", "indices", "indptr"};
    H5ioInfo in[3];
    char p[700];
    for (int i = 0; i < 3; i++) {
        member(p, sizeof p, xp, names[i]);
        if (!h5io_exists(f, p) || h5io_info(f, p, &in[i]) != XT_OK) {
            snprintf(err, errlen, "%s: no dataset '%s' (a CSR group holds data, indices and "
                     "indptr)", xp, names[i]);
            return XT_ERR_USAGE;
        }
        bool integer = in[i].cls == H5IO_CLASS_INT || in[i].cls == H5IO_CLASS_UINT;
        if (in[i].rank != 1 || (i > 0 && !integer) || in[i].cls == H5IO_CLASS_OTHER) {
            snprintf(err, errlen, "%s: expected a 1-D %s dataset, got %d-D %s", p,
                     i > 0 ? "integer" : "numeric", in[i].rank, in[i].type_name);
            return XT_ERR_USAGE;
        }
    }
    if (in[0].dims[0] != in[1].dims[0] || in[2].dims[0] != n + 1) {
        snprintf(err, errlen, "%s: data has %zu values, indices %zu and indptr %zu; expected "
                 "data and indices of equal length (nnz) and indptr of N + 1 = %zu", xp,
                 in[0].dims[0], in[1].dims[0], in[2].dims[0], n + 1);
        return XT_ERR_USAGE;
    }
    *di = in[0];
    snprintf(di->type_name, sizeof di->type_name, "CSR %.12s/%.12s", in[0].type_name,
             in[2].type_name);
    return XT_OK;
}

Status dataset_csr_probe(H5File *f, const char *xp, DatasetInfo *info, char *err,
                         size_t errlen)
{
    size_t n = 0, d = 0;
    H5ioInfo di;
    Status st = read_shape(f, xp, &n, &d, err, errlen);
    if (st == XT_OK) st = probe_members(f, xp, n, &di, err, errlen);
    if (st != XT_OK) return st;
    char p[700];
    member(p, sizeof p, xp, "indptr");
    int64_t first = -1, last = -1;
    if (h5io_read_rows_i64(f, p, 0, 1, &first) != XT_OK ||
        h5io_read_rows_i64(f, p, n, 1, &last) != XT_OK) {
        snprintf(err, errlen, "%s: cannot read its first and last values", p);
        return XT_ERR_USAGE;
    }
    if (first != 0 || last != (int64_t)di.dims[0]) {
        snprintf(err, errlen, "%s: indptr[0] = %" PRId64 " and indptr[N = %zu] = %" PRId64
                 "; expected 0 and nnz = %zu (the length of data and indices)", p, first, n,
                 last, di.dims[0]);
        return XT_ERR_USAGE;
    }
    info->x_csr = true;
    info->n = n;
    info->d = d;
    info->x_nnz = di.dims[0];
    info->x_object = di.object_id;
    snprintf(info->x_type, sizeof info->x_type, "%s", di.type_name);
    return XT_OK;
}

/* The local row that holds non-zero k (indptr (m + 1), from 0). */
static size_t row_of(const size_t *indptr, size_t m, size_t k)
{
    size_t lo = 0, hi = m; /* the last row i with indptr[i] <= k */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (indptr[mid] <= k) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* indptr[lo .. hi] of the file, made local (from 0) in c->indptr; *base: indptr[lo]. */
static Status load_indptr(Dataset *ds, H5File *f, const char *xp, size_t *base)
{
    const DatasetInfo *in = &ds->info;
    size_t m = ds->hi - ds->lo;
    char p[700];
    member(p, sizeof p, xp, "indptr");
    int64_t *ip = malloc((m + 1) * sizeof *ip);
    if (!ip) return XT_ERR_RUNTIME;
    Status st = h5io_read_rows_i64(f, p, ds->lo, m + 1, ip);
    for (size_t i = 0; st == XT_OK && i <= m; i++) {
        bool bad = ip[i] < 0 || (uint64_t)ip[i] > in->x_nnz || (i > 0 && ip[i] < ip[i - 1]);
        if (!bad) continue;
        log_error("%s:%s: indptr[%zu] = %" PRId64 " %s: indptr must be non-decreasing from 0 "
                  "to nnz = %zu (row %zu)", in->file, p, ds->lo + i, ip[i],
                  i > 0 && ip[i] < ip[i - 1] ? "is less than the row before it" : "is out of range",
                  in->x_nnz, ds->lo + (i > 0 ? i - 1 : 0));
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        *base = (size_t)ip[0];
        st = csr_init(&ds->csr, m, (size_t)(ip[m] - ip[0]), in->d);
        if (st != XT_OK)
            log_error("%s:%s: out of memory for rows [%zu, %zu) (%" PRId64 " non-zeros)",
                      in->file, xp, ds->lo, ds->hi, ip[m] - ip[0]);
    }
    for (size_t i = 0; st == XT_OK && i <= m; i++) ds->csr.indptr[i] = (size_t)(ip[i] - ip[0]);
    if (st == XT_OK) ds->csr.m = m;
    free(ip);
    return st;
}

/* The rows' column indices, in blocks, narrowed to int32 (an index outside [0, D) named). */
static Status load_indices(Dataset *ds, H5File *f, const char *xp, size_t base)
{
    const DatasetInfo *in = &ds->info;
    CsrRows *c = &ds->csr;
    size_t nnz = csr_nnz(c), block = nnz < CSR_BLOCK ? nnz : CSR_BLOCK;
    char p[700];
    member(p, sizeof p, xp, "indices");
    int64_t *buf = malloc((block ? block : 1) * sizeof *buf);
    Status st = buf ? XT_OK : XT_ERR_RUNTIME;
    for (size_t k0 = 0; st == XT_OK && k0 < nnz; k0 += block) {
        size_t b = nnz - k0 < block ? nnz - k0 : block;
        st = h5io_read_rows_i64(f, p, base + k0, b, buf);
        for (size_t k = 0; st == XT_OK && k < b; k++) {
            if (buf[k] >= 0 && (uint64_t)buf[k] < in->d) {
                c->indices[k0 + k] = (int32_t)buf[k];
                continue;
            }
            log_error("%s:%s: row %zu: column index %" PRId64 " is outside [0, %zu) (D = %zu)",
                      in->file, p, ds->lo + row_of(c->indptr, c->m, k0 + k), buf[k], in->d,
                      in->d);
            st = XT_ERR_USAGE;
        }
    }
    free(buf);
    return st;
}

Status dataset_csr_load(Dataset *ds, H5File *f, const char *xp)
{
    size_t base = 0;
    char p[700], err[512];
    Status st = load_indptr(ds, f, xp, &base);
    if (st == XT_OK) st = load_indices(ds, f, xp, base);
    member(p, sizeof p, xp, "data");
    if (st == XT_OK && csr_nnz(&ds->csr) > 0)
        st = h5io_read_rows_float(f, p, base, csr_nnz(&ds->csr), ds->csr.values);
    if (st == XT_OK && (st = csr_check_rows(&ds->csr, ds->lo, err, sizeof err)) != XT_OK)
        log_error("%s:%s: %s", ds->info.file, xp, err);
    return st;
}

Status dataset_csr_write(H5File *f, const char *xp, const CsrRows *c, const size_t *rows,
                         size_t n, int gzip_level)
{
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = rows ? rows[i] : i;
        nnz += c->indptr[r + 1] - c->indptr[r];
    }
    int64_t *ip = malloc((n + 1) * sizeof *ip);
    int32_t *ix = malloc((nnz ? nnz : 1) * sizeof *ix);
    float *v = malloc((nnz ? nnz : 1) * sizeof *v);
    Status st = ip && ix && v ? XT_OK : XT_ERR_RUNTIME;
    if (st != XT_OK) log_error("%s:%s: out of memory writing %zu rows", h5io_path(f), xp, n);
    for (size_t i = 0, at = 0; st == XT_OK && i < n; i++) {
        size_t r = rows ? rows[i] : i, a = c->indptr[r], len = c->indptr[r + 1] - a;
        ip[i] = (int64_t)at;
        memcpy(ix + at, c->indices + a, len * sizeof *ix);
        memcpy(v + at, c->values + a, len * sizeof *v);
        at += len;
        ip[i + 1] = (int64_t)at;
    }
    if (n == 0 && ip) ip[0] = 0;
    char p[700];
    size_t dn[1] = {n + 1}, dz[1] = {nnz};
    int gz = nnz ? gzip_level : 0;
    int64_t shape[2] = {(int64_t)n, (int64_t)c->d};
    member(p, sizeof p, xp, "indptr");
    if (st == XT_OK) st = h5io_write(f, p, H5IO_I64, 1, dn, ip, gzip_level);
    member(p, sizeof p, xp, "indices");
    if (st == XT_OK) st = h5io_write(f, p, H5IO_I32, 1, dz, ix, gz);
    member(p, sizeof p, xp, "data");
    if (st == XT_OK) st = h5io_write(f, p, H5IO_F32, 1, dz, v, gz);
    if (st == XT_OK) st = h5io_attr_write_str(f, xp, "encoding-type", "csr_matrix");
    if (st == XT_OK) st = h5io_attr_write_str(f, xp, "encoding-version", "0.1.0");
    if (st == XT_OK) st = h5io_attr_write_i64s(f, xp, "shape", shape, 2);
    free(ip);
    free(ix);
    free(v);
    return st;
}
