/* h5io: see h5io.h. The only file that includes hdf5.h.
 *
 * Conventions inside this file: every HDF5 call is checked; every function keeps its
 * handles in locals initialised to H5I_INVALID_HID and closes them under one cleanup:
 * label; a failure is logged once, here, as "FILE:OBJECT: what failed (HDF5: reason)",
 * where the reason is the innermost message of HDF5's error stack (its automatic
 * printing is turned off once, in h5_init).
 *
 * Who prints: for a file opened with a Comm, every rank sees the same metadata, so
 * failures of metadata queries (open, info, attributes) are printed by rank 0 only
 * (log_error0) and the caller agrees on the status; failures of row reads depend on the
 * rows a rank reads and are printed by that rank (log_error).
 */
#include "h5io.h"

#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h> /* the Open MPI flavour: includes mpi.h */

#include "log.h"

#define H5IO_PATH_MAX 4160 /* config.h XT_PATH_MAX (4096) and a file name */
/* Longer paths are opened with the POSIX driver on every rank, even with a Comm: Open MPI
 * 4.1's OMPIO formats "<path>.locktest.<rank>" into a 256-byte buffer when it opens a file
 * (sharedfp/lockedfile, still so upstream) and aborts with "buffer overflow detected" from
 * about 245 bytes. Reading rows is independent I/O either way (measured: equally fast). */
#define H5IO_MPIIO_PATH_MAX 200
#define H5IO_CHUNK_BYTES ((size_t)1 << 20) /* target size of one chunk when compressing */

struct H5File {
    hid_t fid;
    bool parallel;   /* opened with a Comm: every rank holds it */
    bool mpio;       /* ... through the MPI-IO driver (not for long paths: H5IO_MPIIO_PATH_MAX) */
    bool writable;
    bool atomic;     /* created by h5io_create_atomic: lives at tmp until commit */
    char path[H5IO_PATH_MAX]; /* the name users know (the final name for atomic files) */
    char tmp[H5IO_PATH_MAX + 32];
};

void h5io_describe(char *buf, size_t len)
{
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    snprintf(buf, len, "HDF5 %u.%u.%u (built with %d.%d.%d, %s)", maj, min, rel, H5_VERS_MAJOR,
             H5_VERS_MINOR, H5_VERS_RELEASE,
#ifdef H5_HAVE_PARALLEL
             "parallel"
#else
             "serial"
#endif
    );
}

/* ---- library start and end --------------------------------------------------------- */

/* Set when an H5Fclose failed (its flush failed: a full disk, a quota). HDF5 1.10.8 then
 * keeps the half-closed file in its ID table and its library shutdown dereferences it
 * (HDFFV-11052, fixed in 1.14): a segfault in MPI_Finalize instead of our exit code. */
static bool g_close_failed;

void h5io_init(void)
{
    /* Before MPI_Init: a library started while MPI is up hangs its shutdown on
     * MPI_COMM_SELF, run by MPI_Finalize; started before, it ends only when asked
     * (h5io_shutdown) or at exit (atexit, which H5dont_atexit turns off). */
    H5dont_atexit();
    H5open();
}

void h5io_shutdown(void)
{
    /* After a failed close the library cannot shut down without crashing; the process is
     * about to exit, which releases its files anyway. */
    if (!g_close_failed) H5close();
}

/* ---- error plumbing ------------------------------------------------------------- */

static void h5_init(void)
{
    static bool done = false;
    if (done) return;
    /* Turn off HDF5's automatic error stack printing once: we report errors ourselves. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = true;
}

static herr_t walk_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    char *buf = data;
    if (n == 0 && e->desc && e->desc[0]) snprintf(buf, 256, "%s", e->desc);
    return 0;
}

/* The innermost HDF5 error message of the current stack, or "" when there is none. A
 * failed system call's message ("file write failed: time = <ctime with its newline>, ...,
 * error message = 'No space left on device', ...") is cut to its verb and the system's
 * words: one line, the part a user acts on. */
static void h5_reason(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, buf);
    const char *what = strstr(buf, "error message = '"), *colon = strchr(buf, ':');
    if (what && colon && colon < what) {
        char sys[128];
        what += strlen("error message = '");
        size_t n = strcspn(what, "'");
        snprintf(sys, sizeof sys, "%.*s", (int)(n < sizeof sys ? n : sizeof sys - 1), what);
        snprintf(buf + (colon - buf), 256 - (size_t)(colon - buf), ": %s", sys);
    }
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

/* Logs "FILE[:OBJ]: message[ (HDF5: reason)]". `uniform` says every rank sees the same
 * failure (metadata of a file opened with a Comm): then rank 0 alone prints. */
static void h5_fail(const H5File *f, const char *path, const char *obj, bool with_reason,
                    bool uniform, const char *fmt, ...) XT_PRINTF(6, 7);
static void h5_fail(const H5File *f, const char *path, const char *obj, bool with_reason,
                    bool uniform, const char *fmt, ...)
{
    char reason[256] = "";
    if (with_reason) h5_reason(reason);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *file = f ? f->path : path;
    bool once = uniform && f && f->parallel;
    char where[H5IO_PATH_MAX + 320];
    if (obj && obj[0])
        snprintf(where, sizeof where, "%s:%s", file, obj);
    else
        snprintf(where, sizeof where, "%s", file);
    if (once) {
        if (reason[0]) log_error0("%s: %s (HDF5: %s)", where, msg, reason);
        else log_error0("%s: %s", where, msg);
    } else {
        if (reason[0]) log_error("%s: %s (HDF5: %s)", where, msg, reason);
        else log_error("%s: %s", where, msg);
    }
}

/* Metadata failure on f (printed once for parallel files). */
#define META_FAIL(f, obj, ...) h5_fail((f), NULL, (obj), true, true, __VA_ARGS__)
/* Failure tied to this rank's rows. */
#define LOCAL_FAIL(f, obj, ...) h5_fail((f), NULL, (obj), true, false, __VA_ARGS__)

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0) fn(*id);
    *id = H5I_INVALID_HID;
}

static void close_dset(hid_t *id) { close_id(id, H5Dclose); }
static void close_space(hid_t *id) { close_id(id, H5Sclose); }
static void close_type(hid_t *id) { close_id(id, H5Tclose); }
static void close_plist(hid_t *id) { close_id(id, H5Pclose); }
static void close_attr(hid_t *id) { close_id(id, H5Aclose); }

/* ---- files ---------------------------------------------------------------------- */

static Status file_alloc(const char *path, H5File **out)
{
    *out = NULL;
    if (strlen(path) >= H5IO_PATH_MAX) {
        log_error("%.60s...: path longer than %d bytes", path, H5IO_PATH_MAX - 1);
        return XT_ERR_USAGE;
    }
    H5File *f = calloc(1, sizeof *f);
    if (!f) {
        log_error("%s: out of memory", path);
        return XT_ERR_RUNTIME;
    }
    f->fid = H5I_INVALID_HID;
    snprintf(f->path, sizeof f->path, "%s", path);
    *out = f;
    return XT_OK;
}

/* Read-only opens must work where file locking is unavailable (Lustre without flock,
 * some NFS mounts): turn it off on the access list. HDF5 1.10.7+ has
 * H5Pset_file_locking (verified in the 1.10.8 headers and library); the environment
 * variable HDF5_USE_FILE_LOCKING still overrides it, as HDF5 documents. Older versions
 * only read the environment variable, so set it unless the user did. */
static Status fapl_no_locking(hid_t fapl)
{
#if H5_VERSION_GE(1, 10, 7)
    if (H5Pset_file_locking(fapl, 0, 1) < 0) return XT_ERR_RUNTIME;
#else
    (void)fapl;
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 0);
#endif
    return XT_OK;
}

/* With a Comm: the worst status over the ranks, and who reports. Rank 0 printed already
 * when it failed (messages are uniform); when rank 0 succeeded but another rank failed,
 * that rank prints its own message with its rank. */
static Status agree_open(const Comm *comm, Status local, const char *msg)
{
    bool say = local != XT_OK && msg[0]; /* "" = logged already */
    if (!comm) {
        if (say) log_error("%s", msg);
        return local;
    }
    int rank0_status = (int)local;
    comm_bcast(comm, &rank0_status, sizeof rank0_status, 0);
    if (say && comm_rank(comm) == 0) log_error0("%s", msg);
    else if (say && rank0_status == XT_OK) log_error("%s", msg);
    return comm_agree(comm, local);
}

Status h5io_open_read(const char *path, const Comm *comm, H5File **out)
{
    h5_init();
    *out = NULL;
    H5File *f = NULL;
    hid_t fapl = H5I_INVALID_HID;
    char msg[H5IO_PATH_MAX + 512] = "";
    Status st = file_alloc(path, &f);
    if (st == XT_OK) {
        /* A plain stat first gives the clearest message for the commonest mistake. */
        struct stat sb;
        if (stat(path, &sb) != 0) {
            snprintf(msg, sizeof msg, "%s: cannot open: %s", path, strerror(errno));
            st = XT_ERR_USAGE;
        } else if (S_ISDIR(sb.st_mode)) {
            snprintf(msg, sizeof msg, "%s: is a directory, not an HDF5 file", path);
            st = XT_ERR_USAGE;
        }
    }
    /* Every rank reaches H5Fopen (collective with the MPI-IO driver) or none does. */
    st = agree_open(comm, st, msg);
    if (st != XT_OK) goto cleanup;

    fapl = H5Pcreate(H5P_FILE_ACCESS);
    st = fapl < 0 ? XT_ERR_RUNTIME : fapl_no_locking(fapl);
    f->mpio = comm != NULL && strlen(path) <= H5IO_MPIIO_PATH_MAX;
    if (st == XT_OK && f->mpio) {
        MPI_Comm mc = *(const MPI_Comm *)comm_native(comm);
        if (H5Pset_fapl_mpio(fapl, mc, MPI_INFO_NULL) < 0) st = XT_ERR_RUNTIME;
    }
    if (st != XT_OK) {
        snprintf(msg, sizeof msg, "%s: cannot set up the file access properties", path);
    } else {
        f->fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        if (f->fid < 0) {
            char reason[256];
            h5_reason(reason);
            if (H5Fis_hdf5(path) <= 0)
                snprintf(msg, sizeof msg,
                         "%s: not an HDF5 file, or a truncated or corrupt one (HDF5: %s)", path,
                         reason);
            else
                snprintf(msg, sizeof msg,
                         "%s: cannot open as HDF5 (truncated or corrupt?) (HDF5: %s)", path,
                         reason);
            st = XT_ERR_USAGE;
        }
    }
    /* H5Fopen fails the same way on every rank for a bad file; a rank that opened when
     * another did not still has to close below. */
    st = agree_open(comm, st, msg);
    f->parallel = comm != NULL;
    if (st == XT_OK) {
        *out = f;
        f = NULL;
    }
cleanup:
    close_plist(&fapl);
    if (f) {
        if (f->fid >= 0) H5Fclose(f->fid);
        free(f);
    }
    return st;
}

static Status create_at(const char *path, const char *actual, H5File *f)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    Status st = XT_OK;
    if (fapl < 0) {
        h5_fail(NULL, path, NULL, true, false, "cannot create a file access property list");
        return XT_ERR_RUNTIME;
    }
    /* Writers keep HDF5's default locking: a reader on a shared file system may not
     * have it, but a writer that races another writer should fail. */
    /* a temporary name is unique (fsutil_temp_name): never truncate another's file */
    f->fid = H5Fcreate(actual, f->atomic ? H5F_ACC_EXCL : H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f->fid < 0) {
        h5_fail(NULL, actual, NULL, true, false, "cannot create the file");
        if (f->atomic) unlink(actual); /* a full disk leaves a partial file: never ours to keep */
        st = XT_ERR_RUNTIME;
    }
    f->writable = true;
    close_plist(&fapl);
    return st;
}

Status h5io_create(const char *path, H5File **out)
{
    h5_init();
    H5File *f = NULL;
    Status st = file_alloc(path, &f);
    if (st == XT_OK) st = create_at(path, path, f);
    if (st != XT_OK) {
        free(f);
        f = NULL;
    }
    *out = f;
    return st;
}

Status h5io_create_atomic(const char *path, H5File **out)
{
    h5_init();
    H5File *f = NULL;
    Status st = file_alloc(path, &f);
    if (st == XT_OK) st = fsutil_temp_name(f->tmp, sizeof f->tmp, path);
    if (st == XT_OK) {
        f->atomic = true;
        st = create_at(path, f->tmp, f);
    }
    if (st != XT_OK && f) {
        free(f);
        f = NULL;
    }
    *out = f;
    return st;
}

/* Flushes and closes the HDF5 handle. A leftover open object is a bug in this file. */
static Status file_close_handle(H5File *f)
{
    Status st = XT_OK;
    if (f->fid < 0) return st;
    ssize_t left = H5Fget_obj_count(f->fid, H5F_OBJ_ALL | H5F_OBJ_LOCAL);
    XT_ASSERT(left == 1); /* only the file itself */
    if (f->writable && H5Fflush(f->fid, H5F_SCOPE_LOCAL) < 0) {
        LOCAL_FAIL(f, NULL, "cannot flush");
        st = XT_ERR_RUNTIME;
    }
    if (H5Fclose(f->fid) < 0) {
        g_close_failed = true;
        if (st == XT_OK) LOCAL_FAIL(f, NULL, "cannot close");
        st = XT_ERR_RUNTIME;
    }
    f->fid = H5I_INVALID_HID;
    return st;
}

Status h5io_close(H5File **fp)
{
    if (!fp || !*fp) return XT_OK;
    H5File *f = *fp;
    Status st = file_close_handle(f);
    if (f->atomic) unlink(f->tmp); /* never committed: the old file stays in place */
    free(f);
    *fp = NULL;
    return st;
}

Status h5io_commit(H5File **fp)
{
    XT_ASSERT(fp && *fp && (*fp)->atomic);
    H5File *f = *fp;
    Status st = file_close_handle(f);
    if (st == XT_OK) st = fsutil_commit(f->tmp, f->path); /* removes tmp on failure */
    else unlink(f->tmp);
    free(f);
    *fp = NULL;
    return st;
}

const char *h5io_path(const H5File *f) { return f->path; }

/* ---- objects -------------------------------------------------------------------- */

bool h5io_exists(H5File *f, const char *obj)
{
    if (!obj || obj[0] != '/') return false;
    if (obj[1] == '\0') return true; /* the root group */
    /* H5Lexists fails on a missing intermediate group: test each prefix in turn. */
    char buf[512];
    size_t len = strlen(obj);
    if (len >= sizeof buf) return false;
    memcpy(buf, obj, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(f->fid, buf, H5P_DEFAULT);
        buf[i] = keep;
        if (e <= 0) return false;
    }
    return H5Oexists_by_name(f->fid, obj, H5P_DEFAULT) > 0;
}

bool h5io_is_group(H5File *f, const char *obj)
{
    if (!h5io_exists(f, obj)) return false;
    hid_t o = H5Oopen(f->fid, obj, H5P_DEFAULT);
    bool group = o >= 0 && H5Iget_type(o) == H5I_GROUP;
    if (o >= 0) H5Oclose(o);
    return group;
}

Status h5io_create_group(H5File *f, const char *group)
{
    if (h5io_exists(f, group)) return XT_OK;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
    hid_t g = H5I_INVALID_HID;
    Status st = XT_OK;
    if (lcpl < 0 || gcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_obj_track_times(gcpl, 0) < 0) {
        LOCAL_FAIL(f, group, "cannot set up link creation properties");
        st = XT_ERR_RUNTIME;
        goto cleanup;
    }
    g = H5Gcreate2(f->fid, group, lcpl, gcpl, H5P_DEFAULT);
    if (g < 0) {
        LOCAL_FAIL(f, group, "cannot create the group");
        st = XT_ERR_RUNTIME;
    }
cleanup:
    close_id(&g, H5Gclose);
    close_plist(&gcpl);
    close_plist(&lcpl);
    return st;
}

Status h5io_copy(H5File *src, const char *src_obj, H5File *dst, const char *dst_obj)
{
    if (H5Ocopy(src->fid, src_obj, dst->fid, dst_obj, H5P_DEFAULT, H5P_DEFAULT) >= 0)
        return XT_OK;
    char what[H5IO_PATH_MAX + 64];
    snprintf(what, sizeof what, "cannot copy %s:%s here", src->path, src_obj);
    LOCAL_FAIL(dst, dst_obj, "%s", what);
    return XT_ERR_RUNTIME;
}

typedef struct {
    char **names;
    size_t n, cap;
    bool failed;
} NameList;

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    NameList *l = data;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        char **p = realloc(l->names, cap * sizeof *p);
        if (!p) {
            l->failed = true;
            return -1;
        }
        l->names = p;
        l->cap = cap;
    }
    l->names[l->n] = strdup(name);
    if (!l->names[l->n]) {
        l->failed = true;
        return -1;
    }
    l->n++;
    return 0;
}

Status h5io_list(H5File *f, const char *group, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    NameList l = {0};
    hid_t g = H5Gopen2(f->fid, group, H5P_DEFAULT);
    Status st = XT_OK;
    if (g < 0 || H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &l) < 0) {
        META_FAIL(f, group, "cannot list the group%s", l.failed ? " (out of memory)" : "");
        h5io_strs_free(l.names, l.n);
        st = XT_ERR_USAGE;
    } else {
        *names = l.names;
        *n = l.n;
    }
    close_id(&g, H5Gclose);
    return st;
}

/* Whether t is h5py's and numpy's bool: an enum of an integer with exactly the members
 * FALSE = 0 and TRUE = 1 (HDF5 converts it to numbers). */
static bool is_bool_enum(hid_t t)
{
    if (H5Tget_class(t) != H5T_ENUM || H5Tget_nmembers(t) != 2) return false;
    bool ok = true;
    for (unsigned i = 0; i < 2 && ok; i++) {
        char *m = H5Tget_member_name(t, i);
        unsigned char raw[16] = {0}; /* the member's value in the base type's bytes */
        size_t size = H5Tget_size(t), nonzero = 0, top = 0;
        ok = m && size <= sizeof raw && H5Tget_member_value(t, i, raw) >= 0;
        for (size_t b = 0; ok && b < size; b++) {
            nonzero += raw[b] != 0;
            if (raw[b] > top) top = raw[b];
        }
        /* 0 has no non-zero byte; 1 has one byte 1, whatever the byte order */
        bool zero = nonzero == 0, one = nonzero == 1 && top == 1;
        ok = ok && ((!strcmp(m, "FALSE") && zero) || (!strcmp(m, "TRUE") && one));
        H5free_memory(m);
    }
    return ok;
}

/* Class and readable name of an HDF5 type. */
static void type_describe(hid_t t, H5ioClass *cls, char *name, size_t len)
{
    size_t size = H5Tget_size(t);
    size_t bits = size * 8;
    *cls = H5IO_CLASS_OTHER;
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        if (H5Tget_sign(t) == H5T_SGN_NONE) {
            *cls = H5IO_CLASS_UINT;
            snprintf(name, len, "uint%zu", bits);
        } else {
            *cls = H5IO_CLASS_INT;
            snprintf(name, len, "int%zu", bits);
        }
        break;
    case H5T_FLOAT:
        *cls = H5IO_CLASS_FLOAT;
        snprintf(name, len, "float%zu", bits);
        break;
    case H5T_STRING: snprintf(name, len, "string"); break;
    case H5T_COMPOUND: snprintf(name, len, "compound"); break;
    case H5T_ENUM:
        snprintf(name, len, "%s", is_bool_enum(t) ? "bool" : "enum");
        if (is_bool_enum(t)) *cls = H5IO_CLASS_UINT;
        break;
    case H5T_BITFIELD: snprintf(name, len, "bitfield"); break;
    case H5T_OPAQUE: snprintf(name, len, "opaque"); break;
    case H5T_REFERENCE: snprintf(name, len, "reference"); break;
    case H5T_VLEN: snprintf(name, len, "vlen"); break;
    case H5T_ARRAY: snprintf(name, len, "array"); break;
    case H5T_TIME: snprintf(name, len, "time"); break;
    default: snprintf(name, len, "unknown"); break;
    }
}

/* Opens a dataset, failing with a message that says whether it is missing or is not a
 * dataset. */
static hid_t dset_open(H5File *f, const char *dset)
{
    if (!h5io_exists(f, dset)) {
        h5_fail(f, NULL, dset, false, true, "no such dataset");
        return H5I_INVALID_HID;
    }
    hid_t d = H5Dopen2(f->fid, dset, H5P_DEFAULT);
    if (d < 0) META_FAIL(f, dset, "cannot open as a dataset (a group?)");
    return d;
}

Status h5io_info(H5File *f, const char *dset, H5ioInfo *info)
{
    memset(info, 0, sizeof *info);
    Status st = XT_ERR_USAGE;
    hid_t d = dset_open(f, dset), space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    if (d < 0) goto cleanup;
    space = H5Dget_space(d);
    type = H5Dget_type(d);
    if (space < 0 || type < 0) {
        META_FAIL(f, dset, "cannot read the dataspace or type (corrupt file?)");
        goto cleanup;
    }
    int ndims = H5Sget_simple_extent_ndims(space);
    if (ndims < 0) {
        META_FAIL(f, dset, "cannot read the dataspace (corrupt file?)");
        goto cleanup;
    }
    hsize_t dims[H5S_MAX_RANK];
    if (ndims > 0 && H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        META_FAIL(f, dset, "cannot read the dimensions (corrupt file?)");
        goto cleanup;
    }
    info->rank = ndims;
    for (int i = 0; i < ndims && i < 4; i++) info->dims[i] = (size_t)dims[i];
    info->type_size = H5Tget_size(type);
    type_describe(type, &info->cls, info->type_name, sizeof info->type_name);
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t cd[H5S_MAX_RANK];
    if (dcpl >= 0 && ndims > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
        H5Pget_chunk(dcpl, ndims, cd) == ndims)
        info->chunk_rows = (size_t)cd[0];
    close_plist(&dcpl);
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t oi;
    if (H5Oget_info3(d, &oi, H5O_INFO_BASIC) >= 0)
        memcpy(&info->object_id, &oi.token, sizeof info->object_id);
#else
    H5O_info_t oi;
    if (H5Oget_info2(d, &oi, H5O_INFO_BASIC) >= 0) info->object_id = (uint64_t)oi.addr;
#endif
    st = XT_OK;
cleanup:
    close_type(&type);
    close_space(&space);
    close_dset(&d);
    return st;
}

/* ---- row reads ------------------------------------------------------------------ */

/* Integer destinations: refuse values that do not fit instead of HDF5's default of
 * clamping (a label 2^40 must not become 2^31-1 silently). */
static H5T_conv_ret_t conv_refuse(H5T_conv_except_t except, hid_t src, hid_t dst, void *sbuf,
                                  void *dbuf, void *data)
{
    (void)except; (void)src; (void)dst; (void)sbuf; (void)dbuf;
    *(int *)data = 1;
    return H5T_CONV_ABORT;
}

/* The file and memory dataspaces of rows [row0, row0 + nrows) (all columns) of an open 1-D
 * or 2-D dataset, for row reads and writes. *none: nothing to transfer (XT_OK, no spaces).
 * XT_ERR_USAGE for a dataset of another rank or rows outside it. */
static Status select_rows(H5File *f, const char *dset, hid_t d, size_t row0, size_t nrows,
                          hid_t *fspace, hid_t *mspace, bool *none)
{
    *none = false;
    *fspace = H5Dget_space(d);
    int ndims = *fspace < 0 ? -1 : H5Sget_simple_extent_ndims(*fspace);
    hsize_t dims[2] = {0, 1};
    if (ndims != 1 && ndims != 2) {
        META_FAIL(f, dset, "expected a 1-D or 2-D dataset for row reads and writes, got %d-D",
                  ndims);
        return XT_ERR_USAGE;
    }
    if (H5Sget_simple_extent_dims(*fspace, dims, NULL) < 0) {
        META_FAIL(f, dset, "cannot read the dimensions");
        return XT_ERR_RUNTIME;
    }
    if (row0 > dims[0] || nrows > dims[0] - row0) {
        LOCAL_FAIL(f, dset, "rows [%zu, %zu) are outside the dataset's %llu rows", row0,
                   row0 + nrows, (unsigned long long)dims[0]);
        return XT_ERR_USAGE;
    }
    if (nrows == 0 || (ndims == 2 && dims[1] == 0)) {
        *none = true;
        return XT_OK;
    }
    hsize_t start[2] = {row0, 0}, count[2] = {nrows, ndims == 2 ? dims[1] : 1};
    *mspace = H5Screate_simple(ndims, count, NULL);
    if (*mspace < 0 || H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        LOCAL_FAIL(f, dset, "cannot select rows [%zu, %zu)", row0, row0 + nrows);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

static Status read_rows(H5File *f, const char *dset, size_t row0, size_t nrows, hid_t memtype,
                        bool integer_dst, const char *mem_name, void *out)
{
    Status st = XT_ERR_RUNTIME;
    hid_t d = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hid_t dxpl = H5I_INVALID_HID;
    int overflow = 0;
    bool none = false;
    d = dset_open(f, dset);
    if (d < 0) {
        st = XT_ERR_USAGE;
        goto cleanup;
    }
    st = select_rows(f, dset, d, row0, nrows, &fspace, &mspace, &none);
    if (st != XT_OK || none) goto cleanup;
    st = XT_ERR_RUNTIME;
    dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0) {
        LOCAL_FAIL(f, dset, "cannot create a transfer property list");
        goto cleanup;
    }
    if (f->mpio) {
        /* INDEPENDENT, not collective: ranks read different numbers of rows (some none)
         * and at different times, and HDF5 1.10 falls back to independent I/O anyway
         * whenever a type conversion is needed (uint8 -> float32 here), so asking for
         * collective I/O would only add a synchronisation point. */
        if (H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_INDEPENDENT) < 0) {
            LOCAL_FAIL(f, dset, "cannot set independent MPI-IO transfers");
            goto cleanup;
        }
    }
    if (integer_dst && H5Pset_type_conv_cb(dxpl, conv_refuse, &overflow) < 0) {
        LOCAL_FAIL(f, dset, "cannot set the conversion callback");
        goto cleanup;
    }
    if (H5Dread(d, memtype, mspace, fspace, dxpl, out) < 0) {
        hid_t ft = overflow ? H5Dget_type(d) : H5I_INVALID_HID;
        bool int_src = ft >= 0 && H5Tget_class(ft) == H5T_INTEGER;
        close_type(&ft);
        if (overflow && int_src)
            LOCAL_FAIL(f, dset, "rows [%zu, %zu): integers outside %s's range%s", row0,
                       row0 + nrows, mem_name,
                       strstr(mem_name, "int32") ? " (class ids go up to 2^31 - 1: relabel them "
                                                   "0..K-1, as `xentrain convert h5` does, "
                                                   "keeping the originals as label_values)" : "");
        else if (overflow)
            LOCAL_FAIL(f, dset, "rows [%zu, %zu): values do not convert exactly to %s%s", row0,
                       row0 + nrows, mem_name,
                       strstr(mem_name, "int") ? " (class ids must be whole numbers; "
                                                 "probability or multi-hot targets go in an "
                                                 "(N,K) float y)" : "");
        else
            LOCAL_FAIL(f, dset, "cannot read rows [%zu, %zu) as %s (truncated or corrupt file?)",
                       row0, row0 + nrows, mem_name);
        st = XT_ERR_USAGE; /* bad contents, not a failing disk, in every case seen */
        goto cleanup;
    }
    st = XT_OK;
cleanup:
    close_plist(&dxpl);
    close_space(&mspace);
    close_space(&fspace);
    close_dset(&d);
    return st;
}

Status h5io_read_rows_float(H5File *f, const char *dset, size_t row0, size_t nrows, float *out)
{
    return read_rows(f, dset, row0, nrows, H5T_NATIVE_FLOAT, false, "float32", out);
}

Status h5io_read_rows_f64(H5File *f, const char *dset, size_t row0, size_t nrows, double *out)
{
    return read_rows(f, dset, row0, nrows, H5T_NATIVE_DOUBLE, false, "float64", out);
}

Status h5io_read_rows_i32(H5File *f, const char *dset, size_t row0, size_t nrows, int32_t *out)
{
    return read_rows(f, dset, row0, nrows, H5T_NATIVE_INT32, true, "int32", out);
}

Status h5io_read_rows_i64(H5File *f, const char *dset, size_t row0, size_t nrows, int64_t *out)
{
    return read_rows(f, dset, row0, nrows, H5T_NATIVE_INT64, true, "int64", out);
}

Status h5io_read_rows_u8(H5File *f, const char *dset, size_t row0, size_t nrows, uint8_t *out)
{
    return read_rows(f, dset, row0, nrows, H5T_NATIVE_UINT8, true, "uint8", out);
}

/* Copies n strings of a variable- or fixed-length string buffer into malloc'd texts. */
static Status copy_strs(char **out, char **vl, const char *fixed, size_t len, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(vl ? (vl[i] ? vl[i] : "") : fixed + i * (len + 1))))
            return XT_ERR_RUNTIME;
    return XT_OK;
}

Status h5io_read_rows_strs(H5File *f, const char *dset, size_t row0, size_t nrows, char ***out)
{
    *out = NULL;
    Status st = XT_ERR_USAGE;
    hid_t d = dset_open(f, dset), t = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    char **strs = calloc(nrows ? nrows : 1, sizeof *strs), **vl = NULL, *fixed = NULL;
    bool none = false;
    if (d < 0 || !strs) goto cleanup;
    t = H5Dget_type(d);
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        LOCAL_FAIL(f, dset, "expected strings");
        goto cleanup;
    }
    st = select_rows(f, dset, d, row0, nrows, &fspace, &mspace, &none);
    if (st != XT_OK || none) goto done;
    st = XT_ERR_RUNTIME;
    htri_t is_vlen = H5Tis_variable_str(t);
    size_t len = H5Tget_size(t);
    mt = H5Tcopy(H5T_C_S1);
    if (is_vlen < 0 || mt < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
        H5Tset_size(mt, is_vlen > 0 ? H5T_VARIABLE : len + 1) < 0 ||
        (is_vlen == 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0)) {
        LOCAL_FAIL(f, dset, "cannot set up the string type");
        goto cleanup;
    }
    if (is_vlen > 0) vl = calloc(nrows, sizeof *vl);
    else fixed = calloc(nrows, len + 1);
    if ((!vl && !fixed) || H5Dread(d, mt, mspace, fspace, H5P_DEFAULT, vl ? (void *)vl : fixed) < 0) {
        LOCAL_FAIL(f, dset, "cannot read rows [%zu, %zu) as strings", row0, row0 + nrows);
        st = XT_ERR_USAGE;
        goto cleanup;
    }
    st = copy_strs(strs, vl, fixed, len, nrows);
    if (vl) H5Dvlen_reclaim(mt, mspace, H5P_DEFAULT, vl);
    if (st != XT_OK) {
        log_error("%s:%s: out of memory for %zu strings", f->path, dset, nrows);
        goto cleanup;
    }
done:
    if (st == XT_OK) {
        *out = strs;
        strs = NULL;
    }
cleanup:
    h5io_strs_free(strs, nrows);
    free(vl);
    free(fixed);
    close_space(&mspace);
    close_space(&fspace);
    close_type(&mt);
    close_type(&t);
    close_dset(&d);
    return st;
}

Status h5io_read_rows_raw(H5File *f, const char *dset, size_t row0, size_t nrows, void *out)
{
    hid_t d = dset_open(f, dset);
    if (d < 0) return XT_ERR_USAGE;
    hid_t type = H5Dget_type(d);
    close_dset(&d);
    if (type < 0) {
        META_FAIL(f, dset, "cannot read the type");
        return XT_ERR_RUNTIME;
    }
    Status st = read_rows(f, dset, row0, nrows, type, false, "its stored type", out);
    close_type(&type);
    return st;
}

/* ---- raw layout, for direct readers ---------------------------------------------- */

void h5io_layout_free(H5ioLayout *l)
{
    free(l->chunk_offset);
    free(l->chunk_bytes);
    free(l->chunk_mask);
    l->chunk_offset = l->chunk_bytes = NULL;
    l->chunk_mask = NULL;
}

/* The filter pipeline of a chunked dataset: only deflate and shuffle can be undone
 * without HDF5. */
static bool layout_filters(hid_t dcpl, H5ioLayout *l, char *why, size_t whylen)
{
    int n = H5Pget_nfilters(dcpl);
    if (n < 0 || n > H5IO_MAX_FILTERS) {
        snprintf(why, whylen, "cannot read its filter pipeline");
        return false;
    }
    for (int i = 0; i < n; i++) {
        unsigned flags = 0, cfg = 0;
        size_t nelem = 0;
        char name[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, sizeof name,
                                         name, &cfg);
        if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE) {
            snprintf(why, whylen, "its filter %d (%s) cannot be undone by the streaming reader, "
                     "which knows deflate (gzip) and shuffle; rewrite it with e.g. `h5repack "
                     "-f GZIP=4`", (int)id, name[0] ? name : "unnamed");
            return false;
        }
        l->filter[l->n_filters++] = (int)id;
    }
    return true;
}

/* The chunk grid's addresses. HDF5 before 1.14.4 reports chunk addresses without the
 * user block (HDF5 issue #3003); callers verify the first rows against HDF5's own read. */
static bool layout_chunks(H5File *f, hid_t d, H5ioLayout *l, int ndims, char *why, size_t whylen)
{
    haddr_t base = 0;
#if !H5_VERSION_GE(1, 14, 4)
    hid_t fcpl = H5Fget_create_plist(f->fid);
    hsize_t ub = 0;
    if (fcpl >= 0 && H5Pget_userblock(fcpl, &ub) >= 0) base = (haddr_t)ub;
    close_plist(&fcpl);
#else
    (void)f;
#endif
    size_t n = l->grid_rows * l->grid_cols;
    l->chunk_offset = malloc((n ? n : 1) * sizeof *l->chunk_offset);
    l->chunk_bytes = malloc((n ? n : 1) * sizeof *l->chunk_bytes);
    l->chunk_mask = malloc((n ? n : 1) * sizeof *l->chunk_mask);
    if (!l->chunk_offset || !l->chunk_bytes || !l->chunk_mask) {
        snprintf(why, whylen, "out of memory for its table of %zu chunks", n);
        return false;
    }
    for (size_t i = 0; i < l->grid_rows; i++)
        for (size_t j = 0; j < l->grid_cols; j++) {
            hsize_t at[2] = {(hsize_t)(i * l->chunk_rows), (hsize_t)(j * l->chunk_cols)};
            unsigned mask = 0;
            haddr_t addr = HADDR_UNDEF;
            hsize_t bytes = 0;
            (void)ndims;
            if (H5Dget_chunk_info_by_coord(d, at, &mask, &addr, &bytes) < 0 ||
                addr == HADDR_UNDEF || bytes == 0) {
                snprintf(why, whylen, "its chunk at row %zu, column %zu was never written (or "
                         "cannot be located)", i * l->chunk_rows, j * l->chunk_cols);
                return false;
            }
            size_t k = i * l->grid_cols + j;
            l->chunk_offset[k] = (uint64_t)(addr + base);
            l->chunk_bytes[k] = (uint64_t)bytes;
            l->chunk_mask[k] = mask;
        }
    return true;
}

Status h5io_layout(H5File *f, const char *dset, H5ioLayout *l, char *why, size_t whylen)
{
    memset(l, 0, sizeof *l);
    why[0] = '\0';
    H5ioInfo info;
    Status st = h5io_info(f, dset, &info);
    if (st != XT_OK) {
        snprintf(why, whylen, "cannot read its metadata");
        return st;
    }
    hid_t d = dset_open(f, dset), type = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    bool ok = d >= 0 && (type = H5Dget_type(d)) >= 0 && (dcpl = H5Dget_create_plist(d)) >= 0;
    if (!ok) snprintf(why, whylen, "cannot read its type or creation properties");
    if (ok && (info.rank < 1 || info.rank > 2)) {
        snprintf(why, whylen, "it is %d-D", info.rank);
        ok = false;
    }
    H5T_class_t tc = ok ? H5Tget_class(type) : H5T_NO_CLASS;
    if (ok && tc != H5T_INTEGER && tc != H5T_FLOAT &&
        !(tc == H5T_ENUM && info.cls == H5IO_CLASS_UINT)) {
        snprintf(why, whylen, "its type %s is not a plain integer or float", info.type_name);
        ok = false;
    }
    if (ok && tc == H5T_FLOAT && info.type_size != 4 && info.type_size != 8) {
        snprintf(why, whylen, "its type %s is not float32 or float64", info.type_name);
        ok = false;
    }
    if (ok) {
        hid_t base = tc == H5T_ENUM ? H5Tget_super(type) : H5Tcopy(type);
        l->big_endian = H5Tget_order(base) == H5T_ORDER_BE;
        close_type(&base);
        l->cls = info.cls;
        l->esize = info.type_size;
        l->rows = info.dims[0];
        l->cols = info.rank == 2 ? info.dims[1] : 1;
        if (l->esize != 1 && l->esize != 2 && l->esize != 4 && l->esize != 8) {
            snprintf(why, whylen, "its elements are %zu bytes", l->esize);
            ok = false;
        }
    }
    H5D_layout_t lay = ok ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    if (ok && lay == H5D_CONTIGUOUS) {
        haddr_t a = H5Dget_offset(d);
        if (H5Pget_external_count(dcpl) > 0) {
            snprintf(why, whylen, "its data live in external files");
            ok = false;
        } else if (a == HADDR_UNDEF) {
            snprintf(why, whylen, "its data were never written");
            ok = false;
        }
        l->offset = (uint64_t)a;
    } else if (ok && lay == H5D_CHUNKED) {
        hsize_t cd[2] = {1, 1};
        l->chunked = true;
        if (H5Pget_chunk(dcpl, info.rank, cd) != info.rank || cd[0] == 0 || cd[1] == 0) {
            snprintf(why, whylen, "cannot read its chunk shape");
            ok = false;
        }
        l->chunk_rows = (size_t)cd[0];
        l->chunk_cols = info.rank == 2 ? (size_t)cd[1] : 1;
        l->grid_rows = (l->rows + l->chunk_rows - 1) / l->chunk_rows;
        l->grid_cols = (l->cols + l->chunk_cols - 1) / l->chunk_cols;
        ok = ok && layout_filters(dcpl, l, why, whylen) &&
             layout_chunks(f, d, l, info.rank, why, whylen);
    } else if (ok) {
        snprintf(why, whylen, "its storage is %s", lay == H5D_COMPACT ? "compact"
                                                   : lay == H5D_VIRTUAL ? "virtual"
                                                                        : "of an unknown kind");
        ok = false;
    }
    close_plist(&dcpl);
    close_type(&type);
    close_dset(&d);
    if (ok) return XT_OK;
    h5io_layout_free(l);
    return XT_ERR_USAGE;
}

/* ---- writes --------------------------------------------------------------------- */

static hid_t file_type(H5ioType t)
{
    switch (t) {
    case H5IO_U8: return H5T_STD_U8LE;
    case H5IO_I32: return H5T_STD_I32LE;
    case H5IO_I64: return H5T_STD_I64LE;
    case H5IO_F32: return H5T_IEEE_F32LE;
    case H5IO_F64: return H5T_IEEE_F64LE;
    }
    return H5I_INVALID_HID;
}

static hid_t mem_type(H5ioType t)
{
    switch (t) {
    case H5IO_U8: return H5T_NATIVE_UINT8;
    case H5IO_I32: return H5T_NATIVE_INT32;
    case H5IO_I64: return H5T_NATIVE_INT64;
    case H5IO_F32: return H5T_NATIVE_FLOAT;
    case H5IO_F64: return H5T_NATIVE_DOUBLE;
    }
    return H5I_INVALID_HID;
}

static size_t type_bytes(H5ioType t)
{
    switch (t) {
    case H5IO_U8: return 1;
    case H5IO_I32: case H5IO_F32: return 4;
    case H5IO_I64: case H5IO_F64: return 8;
    }
    return 1;
}

/* Creates the dataset (and missing parent groups); returns its id or a negative id. */
static hid_t dset_create(H5File *f, const char *dset, H5ioType type, int rank,
                         const size_t *dims, int gzip_level)
{
    XT_ASSERT(rank >= 1 && rank <= 4 && gzip_level >= 0 && gzip_level <= 9);
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, lcpl = H5I_INVALID_HID;
    hid_t d = H5I_INVALID_HID;
    hsize_t hd[4], chunk[4];
    bool any_zero = false;
    size_t row_bytes = type_bytes(type);
    for (int i = 0; i < rank; i++) {
        hd[i] = dims[i];
        chunk[i] = dims[i];
        any_zero |= dims[i] == 0;
        if (i > 0) row_bytes *= dims[i] ? dims[i] : 1;
    }
    space = H5Screate_simple(rank, hd, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    /* No modification times in object headers: same input, same bytes (gen's promise). */
    if (space < 0 || dcpl < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0) {
        LOCAL_FAIL(f, dset, "cannot set up the dataset's properties");
        goto cleanup;
    }
    /* Chunks need non-zero sizes: an empty dataset is stored contiguous. */
    if (gzip_level > 0 && !any_zero) {
        size_t rows = H5IO_CHUNK_BYTES / row_bytes;
        if (rows < 1) rows = 1;
        if (rows > dims[0]) rows = dims[0];
        chunk[0] = rows;
        if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_deflate(dcpl, (unsigned)gzip_level) < 0) {
            LOCAL_FAIL(f, dset, "cannot set chunking and compression");
            goto cleanup;
        }
    }
    d = H5Dcreate2(f->fid, dset, file_type(type), space, lcpl, dcpl, H5P_DEFAULT);
    if (d < 0) LOCAL_FAIL(f, dset, "cannot create the dataset");
cleanup:
    close_plist(&lcpl);
    close_plist(&dcpl);
    close_space(&space);
    return d;
}

Status h5io_create_dataset(H5File *f, const char *dset, H5ioType type, int rank,
                           const size_t *dims, int gzip_level)
{
    hid_t d = dset_create(f, dset, type, rank, dims, gzip_level);
    if (d < 0) return XT_ERR_RUNTIME;
    close_dset(&d);
    return XT_OK;
}

Status h5io_write(H5File *f, const char *dset, H5ioType type, int rank, const size_t *dims,
                  const void *data, int gzip_level)
{
    hid_t d = dset_create(f, dset, type, rank, dims, gzip_level);
    if (d < 0) return XT_ERR_RUNTIME;
    Status st = XT_OK;
    size_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    if (total > 0 && H5Dwrite(d, mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        LOCAL_FAIL(f, dset, "cannot write the data (disk full?)");
        st = XT_ERR_RUNTIME;
    }
    close_dset(&d);
    return st;
}

Status h5io_write_rows(H5File *f, const char *dset, H5ioType type, size_t row0, size_t nrows,
                       const void *data)
{
    Status st = XT_ERR_RUNTIME;
    hid_t d = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    bool none = false;
    d = dset_open(f, dset);
    if (d < 0) goto cleanup;
    st = select_rows(f, dset, d, row0, nrows, &fspace, &mspace, &none);
    if (st != XT_OK || none) goto cleanup;
    st = XT_ERR_RUNTIME;
    if (H5Dwrite(d, mem_type(type), mspace, fspace, H5P_DEFAULT, data) < 0) {
        LOCAL_FAIL(f, dset, "cannot write rows [%zu, %zu) (disk full?)", row0, row0 + nrows);
        goto cleanup;
    }
    st = XT_OK;
cleanup:
    close_space(&mspace);
    close_space(&fspace);
    close_dset(&d);
    return st;
}

/* ---- attributes ----------------------------------------------------------------- */

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Writes (replacing) attribute `name` on obj from memory of type mtype. */
static Status attr_write(H5File *f, const char *obj, const char *name, hid_t ftype, hid_t mtype,
                         hid_t space, const void *buf)
{
    Status st = XT_ERR_RUNTIME;
    hid_t a = H5I_INVALID_HID;
    if (ftype < 0 || mtype < 0 || space < 0) {
        LOCAL_FAIL(f, obj, "attribute %s: cannot set up its type or dataspace", name);
        goto cleanup;
    }
    htri_t ex = H5Aexists_by_name(f->fid, obj, name, H5P_DEFAULT);
    if (ex < 0) {
        LOCAL_FAIL(f, obj, "attribute %s: no such object", name);
        goto cleanup;
    }
    if (ex > 0 && H5Adelete_by_name(f->fid, obj, name, H5P_DEFAULT) < 0) {
        LOCAL_FAIL(f, obj, "attribute %s: cannot replace it", name);
        goto cleanup;
    }
    a = H5Acreate_by_name(f->fid, obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, mtype, buf) < 0) {
        LOCAL_FAIL(f, obj, "attribute %s: cannot write it", name);
        goto cleanup;
    }
    st = XT_OK;
cleanup:
    close_attr(&a);
    return st;
}

Status h5io_attr_write_i64(H5File *f, const char *obj, const char *name, int64_t v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    Status st = attr_write(f, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, s, &v);
    close_space(&s);
    return st;
}

Status h5io_attr_write_f64(H5File *f, const char *obj, const char *name, double v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    Status st = attr_write(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, s, &v);
    close_space(&s);
    return st;
}

Status h5io_attr_write_str(H5File *f, const char *obj, const char *name, const char *v)
{
    hid_t s = H5Screate(H5S_SCALAR), t = vlen_str_type();
    Status st = attr_write(f, obj, name, t, t, s, &v);
    close_type(&t);
    close_space(&s);
    return st;
}

Status h5io_attr_write_i64s(H5File *f, const char *obj, const char *name, const int64_t *v,
                            size_t n)
{
    hsize_t dims[1] = {n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    Status st = attr_write(f, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, s, v);
    close_space(&s);
    return st;
}

Status h5io_attr_write_strs(H5File *f, const char *obj, const char *name,
                            const char *const *v, size_t n)
{
    hsize_t dims[1] = {n};
    hid_t s = H5Screate_simple(1, dims, NULL), t = vlen_str_type();
    Status st = attr_write(f, obj, name, t, t, s, v);
    close_type(&t);
    close_space(&s);
    return st;
}

bool h5io_attr_exists(H5File *f, const char *obj, const char *name)
{
    if (!h5io_exists(f, obj)) return false;
    return H5Aexists_by_name(f->fid, obj, name, H5P_DEFAULT) > 0;
}

/* Opens an attribute and reports its class and element count. */
static hid_t attr_open(H5File *f, const char *obj, const char *name, H5T_class_t *cls,
                       size_t *npoints, hid_t *type_out)
{
    *type_out = H5I_INVALID_HID;
    if (!h5io_attr_exists(f, obj, name)) {
        h5_fail(f, NULL, obj, false, true, "no attribute '%s'", name);
        return H5I_INVALID_HID;
    }
    hid_t a = H5Aopen_by_name(f->fid, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t s = a < 0 ? H5I_INVALID_HID : H5Aget_space(a);
    hid_t t = a < 0 ? H5I_INVALID_HID : H5Aget_type(a);
    hssize_t np = s < 0 ? -1 : H5Sget_simple_extent_npoints(s);
    int nd = s < 0 ? -1 : H5Sget_simple_extent_ndims(s);
    close_space(&s);
    if (a < 0 || t < 0 || np < 0 || nd < 0 || nd > 1) {
        META_FAIL(f, obj, "attribute %s: cannot read it, or it is not a scalar or 1-D", name);
        close_type(&t);
        close_attr(&a);
        return H5I_INVALID_HID;
    }
    *cls = H5Tget_class(t);
    *npoints = (size_t)np;
    *type_out = t;
    return a;
}

/* Reads a numeric attribute into v (cap values of mtype): exactly one value when
 * scalar, else up to cap (*n gets the count, which may exceed cap: then fail). Integer
 * attributes only, unless allow_float. */
static Status attr_read_numbers(H5File *f, const char *obj, const char *name, hid_t mtype,
                                bool allow_float, bool scalar, void *v, size_t cap, size_t *n)
{
    H5T_class_t cls;
    size_t np = 0;
    hid_t t = H5I_INVALID_HID;
    hid_t a = attr_open(f, obj, name, &cls, &np, &t);
    Status st = XT_ERR_USAGE;
    *n = np;
    if (a < 0) goto cleanup;
    bool class_ok = cls == H5T_INTEGER || (allow_float && cls == H5T_FLOAT);
    if (scalar && (np != 1 || !class_ok)) {
        H5ioClass c;
        char tn[32];
        type_describe(t, &c, tn, sizeof tn);
        h5_fail(f, NULL, obj, false, true, "attribute %s: expected one %s, got %zu %s value(s)",
                name, allow_float ? "number" : "integer", np, tn);
        goto cleanup;
    }
    if (!class_ok) {
        h5_fail(f, NULL, obj, false, true, "attribute %s: expected integers", name);
        goto cleanup;
    }
    if (np > cap) {
        h5_fail(f, NULL, obj, false, true, "attribute %s: %zu values, more than the %zu expected",
                name, np, cap);
        goto cleanup;
    }
    if (np > 0 && H5Aread(a, mtype, v) < 0) {
        META_FAIL(f, obj, "attribute %s: cannot read it", name);
        goto cleanup;
    }
    st = XT_OK;
cleanup:
    close_type(&t);
    close_attr(&a);
    return st;
}

Status h5io_attr_read_i64(H5File *f, const char *obj, const char *name, int64_t *v)
{
    size_t n;
    return attr_read_numbers(f, obj, name, H5T_NATIVE_INT64, false, true, v, 1, &n);
}

Status h5io_attr_read_f64(H5File *f, const char *obj, const char *name, double *v)
{
    size_t n;
    return attr_read_numbers(f, obj, name, H5T_NATIVE_DOUBLE, true, true, v, 1, &n);
}

Status h5io_attr_read_i64s(H5File *f, const char *obj, const char *name, int64_t *v, size_t cap,
                           size_t *n)
{
    return attr_read_numbers(f, obj, name, H5T_NATIVE_INT64, false, false, v, cap, n);
}

void h5io_strs_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Reads every string of a string attribute (variable-length or fixed-length, scalar or
 * 1-D) into malloc'd copies. */
static Status attr_read_all_strs(H5File *f, const char *obj, const char *name, char ***out,
                                 size_t *n)
{
    *out = NULL;
    *n = 0;
    H5T_class_t cls;
    size_t np = 0;
    hid_t t = H5I_INVALID_HID, mt = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hid_t a = attr_open(f, obj, name, &cls, &np, &t);
    Status st = XT_ERR_USAGE;
    char **strs = NULL, **vl = NULL, *fixed = NULL;
    if (a < 0) goto cleanup;
    if (cls != H5T_STRING) {
        h5_fail(f, NULL, obj, false, true, "attribute %s: expected strings", name);
        goto cleanup;
    }
    st = XT_ERR_RUNTIME;
    strs = calloc(np ? np : 1, sizeof *strs);
    htri_t is_vlen = H5Tis_variable_str(t);
    mt = H5Tcopy(H5T_C_S1);
    space = H5Aget_space(a);
    if (!strs || is_vlen < 0 || mt < 0 || space < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) {
        META_FAIL(f, obj, "attribute %s: cannot set up the string type", name);
        goto cleanup;
    }
    if (is_vlen > 0) {
        vl = calloc(np ? np : 1, sizeof *vl);
        if (!vl || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, vl) < 0) {
            META_FAIL(f, obj, "attribute %s: cannot read it", name);
            goto cleanup;
        }
        for (size_t i = 0; i < np; i++) strs[i] = strdup(vl[i] ? vl[i] : "");
        H5Dvlen_reclaim(mt, space, H5P_DEFAULT, vl);
    } else {
        size_t len = H5Tget_size(t);
        fixed = calloc(np ? np : 1, len + 1);
        if (!fixed || H5Tset_size(mt, len + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Aread(a, mt, fixed) < 0) {
            META_FAIL(f, obj, "attribute %s: cannot read it", name);
            goto cleanup;
        }
        for (size_t i = 0; i < np; i++) strs[i] = strdup(fixed + i * (len + 1));
    }
    for (size_t i = 0; i < np; i++)
        if (!strs[i]) {
            log_error("%s:%s: attribute %s: out of memory", f->path, obj, name);
            goto cleanup;
        }
    *out = strs;
    *n = np;
    strs = NULL;
    st = XT_OK;
cleanup:
    h5io_strs_free(strs, np);
    free(vl);
    free(fixed);
    close_space(&space);
    close_type(&mt);
    close_type(&t);
    close_attr(&a);
    return st;
}

Status h5io_attr_read_str(H5File *f, const char *obj, const char *name, char *buf, size_t len)
{
    char **v = NULL;
    size_t n = 0;
    Status st = attr_read_all_strs(f, obj, name, &v, &n);
    if (st == XT_OK && n != 1) {
        h5_fail(f, NULL, obj, false, true, "attribute %s: expected one string, got %zu", name, n);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK && len > 0) snprintf(buf, len, "%s", v[0]);
    h5io_strs_free(v, n);
    return st;
}

Status h5io_attr_read_strs(H5File *f, const char *obj, const char *name, char ***out, size_t *n)
{
    return attr_read_all_strs(f, obj, name, out, n);
}
