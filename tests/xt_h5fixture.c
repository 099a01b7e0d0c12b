#include "xt_h5fixture.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

typedef struct {
    int32_t a;
    float b;
} Pair;

/* The type and n elements of data of that kind. */
static hid_t make_type(const char *kind, size_t n, void **buf)
{
    hid_t t = H5I_INVALID_HID;
    *buf = NULL;
    if (!strcmp(kind, "string")) {
        t = H5Tcopy(H5T_C_S1);
        if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
        const char **v = calloc(n ? n : 1, sizeof *v);
        for (size_t i = 0; v && i < n; i++) v[i] = "text";
        *buf = v;
    } else if (!strcmp(kind, "compound")) {
        t = H5Tcreate(H5T_COMPOUND, sizeof(Pair));
        if (t >= 0 && (H5Tinsert(t, "a", offsetof(Pair, a), H5T_NATIVE_INT32) < 0 ||
                       H5Tinsert(t, "b", offsetof(Pair, b), H5T_NATIVE_FLOAT) < 0)) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
        *buf = calloc(n ? n : 1, sizeof(Pair));
    } else if (!strcmp(kind, "enum")) { /* not a bool (FALSE/TRUE enums read as 0/1) */
        int8_t v[3] = {0, 1, 2};
        const char *names[3] = {"RED", "GREEN", "BLUE"};
        t = H5Tenum_create(H5T_NATIVE_INT8);
        for (int i = 0; i < 3 && t >= 0; i++)
            if (H5Tenum_insert(t, names[i], &v[i]) < 0) {
                H5Tclose(t);
                return H5I_INVALID_HID;
            }
        *buf = calloc(n ? n : 1, 1);
    }
    return t;
}

Status xt_h5_write_unsupported(const char *path, const char *dset, const char *kind, size_t n)
{
    void *buf = NULL;
    hsize_t dims[1] = {n};
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t t = make_type(kind, n, &buf);
    hid_t space = H5Screate_simple(1, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t d = H5I_INVALID_HID;
    if (f >= 0 && t >= 0 && buf && space >= 0 && lcpl >= 0 &&
        H5Pset_create_intermediate_group(lcpl, 1) >= 0)
        d = H5Dcreate2(f, dset, t, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    Status st = d >= 0 && (n == 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0)
                    ? XT_OK
                    : XT_ERR_RUNTIME;
    free(buf);
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    if (t >= 0) H5Tclose(t);
    if (f >= 0 && H5Fclose(f) < 0) st = XT_ERR_RUNTIME;
    return st;
}

static hid_t file_type(const char *t)
{
    if (!strcmp(t, "u8")) return H5T_STD_U8LE;
    if (!strcmp(t, "i16")) return H5T_STD_I16LE;
    if (!strcmp(t, "i32")) return H5T_STD_I32LE;
    if (!strcmp(t, "f32")) return H5T_IEEE_F32LE;
    if (!strcmp(t, "f64be")) return H5T_IEEE_F64BE;
    return H5T_IEEE_F64LE;
}

static hid_t create_plist(const XtH5Layout *lay, int rank, size_t cols)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || lay->chunk_rows == 0) return dcpl;
    hsize_t chunk[2] = {lay->chunk_rows, lay->chunk_cols ? lay->chunk_cols : cols};
    bool ok = H5Pset_chunk(dcpl, rank, chunk) >= 0;
    if (ok && lay->shuffle) ok = H5Pset_shuffle(dcpl) >= 0;
    if (ok && lay->gzip > 0) ok = H5Pset_deflate(dcpl, (unsigned)lay->gzip) >= 0;
    if (ok) return dcpl;
    H5Pclose(dcpl);
    return H5I_INVALID_HID;
}

Status xt_h5_write_matrix(const char *path, const char *dset, const double *v, size_t rows,
                          size_t cols, const XtH5Layout *lay)
{
    int rank = cols > 0 ? 2 : 1;
    hsize_t dims[2] = {rows, cols};
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t space = H5Screate_simple(rank, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t dcpl = create_plist(lay, rank, cols), d = H5I_INVALID_HID;
    if (f >= 0 && space >= 0 && lcpl >= 0 && dcpl >= 0 &&
        H5Pset_create_intermediate_group(lcpl, 1) >= 0)
        d = H5Dcreate2(f, dset, file_type(lay->type), space, lcpl, dcpl, H5P_DEFAULT);
    Status st = d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0
                    ? XT_OK
                    : XT_ERR_RUNTIME;
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (space >= 0) H5Sclose(space);
    if (f >= 0 && H5Fclose(f) < 0) st = XT_ERR_RUNTIME;
    return st;
}
