/* dataset: see dataset.h. Speaks HDF5 only through h5io.
 *
 * Messages: with a Comm every rank opens the same file and sees the same layout, so
 * layout faults are printed by rank 0 alone (log_error0); faults in the rows a rank
 * reads (NaN, labels out of range, memory) are printed by that rank (log_error).
 */
#include "dataset.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "dataset_csr.h"
#include "h5io.h"
#include "fsutil.h"
#include "log.h"
#include "strutil.h"
#include "sysmem.h"

/* Rows per read block: about this many bytes of float32 output per H5Dread. */
#define DATASET_BLOCK_BYTES ((size_t)16 << 20)

/* ---- spec ----------------------------------------------------------------------- */

Status dataset_parse_spec(const char *spec, char *file, size_t file_len, char *group,
                          size_t group_len, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!spec || !spec[0]) {
        snprintf(err, errlen, "empty data spec (expected FILE.h5 or FILE.h5:/GROUP)");
        return XT_ERR_USAGE;
    }
    /* Split on the LAST ":/": file names may contain ':' but group names rarely do. */
    const char *sep = NULL;
    for (const char *p = strstr(spec, ":/"); p; p = strstr(p + 1, ":/")) sep = p;
    size_t flen = sep ? (size_t)(sep - spec) : strlen(spec);
    const char *g = sep ? sep + 1 : "/train";
    const char *query = sep ? strchr(g, '?') : NULL; /* "?X=data&y=labels": names */
    size_t glen = query ? (size_t)(query - g) : strlen(g);
    while (glen > 1 && g[glen - 1] == '/') glen--; /* "/val/" -> "/val" */
    if (flen == 0) {
        snprintf(err, errlen, "'%s': no file name before ':/' (expected FILE.h5:/GROUP)", spec);
        return XT_ERR_USAGE;
    }
    if (flen >= file_len || glen >= group_len) {
        snprintf(err, errlen, "'%.40s...': file name or group longer than %zu or %zu bytes",
                 spec, file_len - 1, group_len - 1);
        return XT_ERR_USAGE;
    }
    memcpy(file, spec, flen);
    file[flen] = '\0';
    memcpy(group, g, glen);
    group[glen] = '\0';
    return XT_OK;
}

/* The dataset names of a spec's "?X=NAME&y=NAME" (default X and y). */
static Status parse_names(const char *spec, DatasetInfo *info, char *err, size_t errlen)
{
    snprintf(info->x_name, sizeof info->x_name, "X");
    snprintf(info->y_name, sizeof info->y_name, "y");
    const char *sep = NULL;
    for (const char *p = strstr(spec, ":/"); p; p = strstr(p + 1, ":/")) sep = p;
    const char *q = sep ? strchr(sep, '?') : NULL;
    while (q && *q) {
        q++;
        size_t len = strcspn(q, "&");
        char *dst = !strncmp(q, "X=", 2) ? info->x_name : !strncmp(q, "y=", 2) ? info->y_name : NULL;
        if (!dst || len <= 2 || len - 2 >= sizeof info->x_name) {
            snprintf(err, errlen, "'%s': after '?' the spec takes X=NAME and y=NAME, joined by "
                     "'&', each a name in the group or a path (e.g. f.h5:/train?X=data&y=labels, "
                     "f.h5ad:/?X=X&y=obs/cell_type), got '%.*s'", spec, (int)len, q);
            return XT_ERR_USAGE;
        }
        snprintf(dst, sizeof info->x_name, "%.*s", (int)(len - 2), q + 2);
        q += len;
    }
    return XT_OK;
}

bool dataset_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return strcmp(a, b) == 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* "f.h5:test" names no file, but "f.h5" exists: the slash is missing. */
static bool missing_slash(const char *file, char *hint, size_t len)
{
    const char *colon = strrchr(file, ':');
    if (!colon || colon == file || fsutil_exists(file)) return false;
    char prefix[XT_PATH_MAX];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(colon - file), file);
    if (!fsutil_exists(prefix)) return false;
    snprintf(hint, len, "%s:/%s", prefix, colon + 1);
    return true;
}

/* ---- probe ---------------------------------------------------------------------- */

/* "(100, 3, 2) float32" */
static void shape_str(const H5ioInfo *in, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    int shown = in->rank < 4 ? in->rank : 4;
    for (int i = 0; i < shown && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", i ? ", " : "", in->dims[i]);
    if (used < len)
        snprintf(buf + used, len - used, "%s%s) %s", in->rank > 4 ? ", ..." : "",
                 in->rank == 1 ? "," : "", in->type_name);
}

/* Layout errors: the same on every rank, so rank 0 prints when there is a Comm. */
static void probe_fail(const Comm *comm, const char *fmt, ...) XT_PRINTF(2, 3);
static void probe_fail(const Comm *comm, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (comm) log_error0("%s", msg);
    else log_error("%s", msg);
}

static void join(char *out, size_t len, const char *group, const char *name)
{
    if (name[0] == '/') snprintf(out, len, "%s", name); /* a path from the file's root */
    else snprintf(out, len, "%s%s%s", group, strcmp(group, "/") ? "/" : "", name);
}

void dataset_object_path(const DatasetInfo *info, const char *name, char *out, size_t len)
{
    join(out, len, info->group, name);
}

void dataset_y_path(const DatasetInfo *info, char *out, size_t len)
{
    char yp[600];
    join(yp, sizeof yp, info->group, info->y_name);
    snprintf(out, len, "%s%s", yp, info->y_labels == LABELS_CODES ? "/codes" : "");
}

/* ---- labels stored as strings or categories --------------------------------------------- */

static int cmp_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every string of dataset `path` to *all (n of them, cap). */
static Status add_strings(H5File *f, const char *path, char ***all, size_t *n, size_t *cap)
{
    H5ioInfo in;
    char **v = NULL;
    if (h5io_info(f, path, &in) != XT_OK) return XT_ERR_USAGE;
    Status st = h5io_read_rows_strs(f, path, 0, in.dims[0], &v);
    for (size_t i = 0; st == XT_OK && i < in.dims[0]; i++) {
        if (*n == *cap) {
            char **g = realloc(*all, (*cap = *cap ? 2 * *cap : 1024) * sizeof *g);
            if (!g) {
                st = XT_ERR_RUNTIME;
                break;
            }
            *all = g;
        }
        (*all)[(*n)++] = v[i];
        v[i] = NULL;
    }
    h5io_strs_free(v, in.dims[0]);
    return st;
}

/* The class list of string labels: the class_names attribute (its order), else the sorted
 * distinct strings of y in the split's group and in its sibling groups (a file's /train,
 * /val and /test then agree on the ids). */
static Status string_classes(H5File *f, const DatasetInfo *info, char ***out, size_t *k)
{
    const char *owner = h5io_attr_exists(f, info->group, "class_names") ? info->group
                        : h5io_attr_exists(f, "/", "class_names") ? "/" : NULL;
    if (owner) return h5io_attr_read_strs(f, owner, "class_names", out, k);
    char parent[256], **groups = NULL, **all = NULL, path[900], yp[600];
    size_t ng = 0, n = 0, cap = 0;
    const char *slash = strrchr(info->group, '/');
    snprintf(parent, sizeof parent, "%.*s", slash && slash != info->group ? (int)(slash - info->group) : 1,
             info->group);
    join(yp, sizeof yp, info->group, info->y_name);
    Status st = add_strings(f, yp, &all, &n, &cap);
    bool siblings = info->y_name[0] != '/' && strcmp(info->group, "/") &&
                    h5io_list(f, parent, &groups, &ng) == XT_OK;
    for (size_t i = 0; st == XT_OK && siblings && i < ng; i++) {
        snprintf(path, sizeof path, "%s%s%s/%s", strcmp(parent, "/") ? parent : "", "/",
                 groups[i], info->y_name);
        H5ioInfo in;
        if (!strcmp(path, yp) || !h5io_exists(f, path) || h5io_is_group(f, path)) continue;
        if (h5io_info(f, path, &in) == XT_OK && !strcmp(in.type_name, "string") && in.rank == 1)
            st = add_strings(f, path, &all, &n, &cap);
    }
    if (siblings) h5io_strs_free(groups, ng);
    size_t u = 0;
    if (st == XT_OK) qsort(all, n, sizeof *all, cmp_text);
    for (size_t i = 0; st == XT_OK && i < n; i++) {
        if (u > 0 && !strcmp(all[i], all[u - 1])) free(all[i]);
        else all[u++] = all[i];
    }
    if (st != XT_OK) h5io_strs_free(all, n);
    *out = st == XT_OK ? all : NULL;
    *k = st == XT_OK ? u : 0;
    return st;
}

/* ids[i] = the index of texts[i] in classes (k of them); refuses a text not there. */
static Status map_strings(const DatasetInfo *in, char **texts, size_t n, char **classes, size_t k,
                          size_t row0, int32_t *ids)
{
    size_t *order = malloc((k ? k : 1) * sizeof *order);
    if (!order) return XT_ERR_RUNTIME;
    for (size_t c = 0; c < k; c++) order[c] = c; /* sorted by name, for bsearch */
    for (size_t a = 1; a < k; a++)
        for (size_t b = a; b > 0 && strcmp(classes[order[b - 1]], classes[order[b]]) > 0; b--) {
            size_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    Status st = XT_OK;
    for (size_t i = 0; i < n && st == XT_OK; i++) {
        size_t lo = 0, hi = k;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(classes[order[mid]], texts[i]) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo < k && !strcmp(classes[order[lo]], texts[i])) {
            ids[i] = (int32_t)order[lo];
            continue;
        }
        log_error("%s:%s/%s: label '%.60s' at row %zu is not one of the %zu class_names", in->file,
                  in->group, in->y_name, texts[i], row0 + i, k);
        st = XT_ERR_USAGE;
    }
    free(order);
    return st;
}

/* Class ids of rows [lo, lo + n) of string labels. */
static Status read_string_labels(H5File *f, const DatasetInfo *in, size_t lo, size_t n, int32_t *y)
{
    char yp[600], **texts = NULL, **classes = NULL;
    size_t k = 0;
    join(yp, sizeof yp, in->group, in->y_name);
    Status st = string_classes(f, in, &classes, &k);
    if (st == XT_OK) st = h5io_read_rows_strs(f, yp, lo, n, &texts);
    if (st == XT_OK) st = map_strings(in, texts, n, classes, k, lo, y);
    h5io_strs_free(texts, texts ? n : 0);
    h5io_strs_free(classes, k);
    return st;
}

/* How the file stores the labels at yp (LABELS_*) and how many classes it declares. */
static Status probe_labels(H5File *f, DatasetInfo *info, const char *yp, const Comm *comm)
{
    char p[700];
    H5ioInfo in;
    info->k_declared = 0;
    if (info->y_labels == LABELS_CODES) {
        snprintf(p, sizeof p, "%s/categories", yp);
        if (h5io_info(f, p, &in) != XT_OK) return XT_ERR_USAGE;
        if (strcmp(in.type_name, "string") || in.rank != 1) {
            probe_fail(comm, "%s:%s: expected 1-D strings, got %s", info->file, p, in.type_name);
            return XT_ERR_USAGE;
        }
        info->k_declared = in.dims[0];
        return XT_OK;
    }
    if (info->y_labels == LABELS_STRINGS) {
        char **classes = NULL;
        Status st = string_classes(f, info, &classes, &info->k_declared);
        h5io_strs_free(classes, info->k_declared);
        return st;
    }
    const char *attr = h5io_attr_exists(f, info->group, "label_values") ? "label_values"
                       : "class_names";
    const char *owner = h5io_attr_exists(f, info->group, attr) ? info->group
                        : h5io_attr_exists(f, "/", attr) ? "/" : NULL;
    char **v = NULL;
    Status st = owner ? h5io_attr_read_strs(f, owner, attr, &v, &info->k_declared) : XT_OK;
    h5io_strs_free(v, info->k_declared);
    return st;
}

/* "(it holds: a, b, c)" for a message about a missing dataset. */
static void members_text(H5File *f, const char *group, char *buf, size_t len)
{
    char **names = NULL;
    size_t n = 0, used = 0;
    buf[0] = '\0';
    if (h5io_list(f, group, &names, &n) != XT_OK) return;
    used = (size_t)snprintf(buf, len, "it holds:");
    for (size_t i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s %s", i ? "," : "", names[i]);
    if (n == 0 && used < len) snprintf(buf + used, len - used, " nothing");
    h5io_strs_free(names, n);
}

/* "; did you mean /val?" when a member of group is close to name: within 2 edits, or one
 * starts the other ("validation" and "val"). */
static void nearest_member(H5File *f, const char *group, const char *name, char *buf, size_t len)
{
    char **names = NULL;
    size_t n = 0, best = 3;
    buf[0] = '\0';
    if (h5io_list(f, group, &names, &n) != XT_OK) return;
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(names[i]), b = strlen(name), m = a < b ? a : b;
        size_t d = m >= 3 && !strncasecmp(names[i], name, m) ? 0 : strutil_edit_distance(names[i], name);
        if (d < best) {
            best = d;
            snprintf(buf, len, "; did you mean %s%s%s?", strcmp(group, "/") ? group : "",
                     "/", names[i]);
        }
    }
    h5io_strs_free(names, n);
}

/* X: 2-D (N, D) numbers. `n_y` is y's length when known (0 otherwise), for the hint that
 * X is stored transposed. */
static Status probe_x(H5File *f, const DatasetInfo *info, const char *xp, size_t n_y,
                      const Comm *comm, H5ioInfo *xi)
{
    char xs[96];
    if (h5io_info(f, xp, xi) != XT_OK) return XT_ERR_USAGE;
    shape_str(xi, xs, sizeof xs);
    if (xi->cls == H5IO_CLASS_OTHER) {
        probe_fail(comm, "%s:%s: expected an integer or float type, got %s", info->file, xp, xs);
        return XT_ERR_USAGE;
    }
    if (xi->rank != 2) {
        probe_fail(comm, "%s:%s: expected 2-D features (N, D), got %s", info->file, xp, xs);
        return XT_ERR_USAGE;
    }
    if (n_y > 0 && xi->dims[0] != n_y && xi->dims[1] == n_y) {
        probe_fail(comm, "%s:%s: X looks transposed: it is %s but y has %zu rows; store X as "
                   "(N, D), one row per sample (numpy: X.T)", info->file, xp, xs, n_y);
        return XT_ERR_USAGE;
    }
    if (xi->dims[0] == 0) {
        probe_fail(comm, "%s:%s: empty split: X is %s, expected N > 0 rows", info->file,
                   info->group, xs);
        return XT_ERR_USAGE;
    }
    if (xi->dims[1] == 0) {
        probe_fail(comm, "%s:%s: expected D > 0 features, got %s", info->file, xp, xs);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* y: (N,) or (N,1) class ids (integer, bool, or floats that are whole numbers: checked
 * as rows are read), or (N, K >= 2) floats in [0, 1]. */
static Status probe_y(H5File *f, DatasetInfo *info, const char *yp, size_t n, const Comm *comm)
{
    H5ioInfo yi;
    char ys[96];
    if (h5io_info(f, yp, &yi) != XT_OK) return XT_ERR_USAGE;
    shape_str(&yi, ys, sizeof ys);
    bool strings = !strcmp(yi.type_name, "string") && info->y_labels != LABELS_CODES;
    bool numeric = yi.cls != H5IO_CLASS_OTHER || strings;
    bool column = yi.rank == 1 || (yi.rank == 2 && yi.dims[1] == 1 && !strings);
    bool is_class = numeric && column && yi.dims[0] == n;
    if (is_class && strings) info->y_labels = LABELS_STRINGS;
    bool is_dense = yi.rank == 2 && yi.dims[0] == n && yi.dims[1] > 1 &&
                    yi.cls == H5IO_CLASS_FLOAT;
    if (!is_class && !is_dense) {
        probe_fail(comm, "%s:%s: expected (N,) class ids (integer, bool or whole-number floats; "
                   "(N, 1) also works) or (N, K) floats in [0, 1], with N = %zu as X, got %s",
                   info->file, yp, n, ys);
        return XT_ERR_USAGE;
    }
    info->has_y = true;
    info->target = is_class ? TARGET_CLASS : TARGET_DENSE;
    info->k_dense = is_dense ? yi.dims[1] : 0;
    snprintf(info->y_type, sizeof info->y_type, "%s%s", ys,
             is_class && yi.cls == H5IO_CLASS_FLOAT ? ": whole numbers read as class ids"
             : is_class && !strcmp(yi.type_name, "bool") ? ": read as class ids 0/1"
             : info->y_labels == LABELS_STRINGS ? ": class names (ids in sorted order)"
             : info->y_labels == LABELS_CODES ? ": category codes (the categories name them)"
                                              : "");
    return XT_OK;
}

/* X's facts into info: a 2-D dataset (probe_x), or a CSR group (dataset_csr.h). */
static Status probe_features(H5File *f, DatasetInfo *info, const char *xp, size_t n_y,
                             const Comm *comm)
{
    if (h5io_is_group(f, xp)) {
        char err[1024];
        Status st = dataset_csr_probe(f, xp, info, err, sizeof err);
        if (st != XT_OK) probe_fail(comm, "%s:%s", info->file, err);
        if (st == XT_OK && n_y > 0 && n_y != info->n) {
            probe_fail(comm, "%s:%s: the CSR matrix has N = %zu rows but y has %zu", info->file,
                       xp, info->n, n_y);
            st = XT_ERR_USAGE;
        }
        return st;
    }
    H5ioInfo xi;
    Status st = probe_x(f, info, xp, n_y, comm, &xi);
    if (st != XT_OK) return st;
    info->n = xi.dims[0];
    info->d = xi.dims[1];
    info->x_object = xi.object_id;
    snprintf(info->x_type, sizeof info->x_type, "%s", xi.type_name);
    info->x_u8 = xi.cls == H5IO_CLASS_UINT && xi.type_size == 1;
    info->x_chunk_rows = xi.chunk_rows;
    return XT_OK;
}

static Status probe_layout(H5File *f, const Comm *comm, bool need_y, DatasetInfo *info)
{
    char xp[600], yp[600], holds[256];
    const char *file = info->file, *group = info->group;
    join(xp, sizeof xp, group, info->x_name);
    join(yp, sizeof yp, group, info->y_name);
    if (!h5io_exists(f, group)) {
        char parent[256], near[300] = "";
        const char *slash = strrchr(group, '/');
        snprintf(parent, sizeof parent, "%.*s", slash && slash != group ? (int)(slash - group) : 1,
                 group);
        while (strcmp(parent, "/") && !h5io_exists(f, parent)) { /* the deepest that exists */
            char *cut = strrchr(parent, '/');
            if (cut == parent) cut[1] = '\0';
            else *cut = '\0';
        }
        char missing[256]; /* the first component that does not exist */
        const char *rest = group + strlen(parent) + (strcmp(parent, "/") ? 1 : 0);
        snprintf(missing, sizeof missing, "%.*s", (int)strcspn(rest, "/"), rest);
        members_text(f, parent, holds, sizeof holds);
        nearest_member(f, parent, missing, near, sizeof near);
        probe_fail(comm, "%s: no group '%s' (in %s, %s%s); a split is named FILE.h5:/GROUP",
                   file, group, strcmp(parent, "/") ? parent : "the file", holds, near);
        return XT_ERR_USAGE;
    }
    bool has_y = h5io_exists(f, yp);
    if (!h5io_exists(f, xp) || (need_y && !has_y)) {
        members_text(f, group, holds, sizeof holds);
        probe_fail(comm, "%s:%s: no dataset '%s' (%s). A split holds X (N, D) and y (N,) or "
                   "(N, K); other names go in the spec: %s:%s?X=NAME&y=NAME", file, group,
                   h5io_exists(f, xp) ? info->y_name : info->x_name, holds, file, group);
        return XT_ERR_USAGE;
    }
    H5ioInfo yi = {0};
    char ids[700];
    if (has_y && h5io_is_group(f, yp)) { /* AnnData's categorical column: codes, categories */
        snprintf(ids, sizeof ids, "%s/codes", yp);
        char cats[700];
        snprintf(cats, sizeof cats, "%s/categories", yp);
        if (!h5io_exists(f, ids) || !h5io_exists(f, cats)) {
            members_text(f, yp, holds, sizeof holds);
            probe_fail(comm, "%s:%s: a group (%s), not labels: y may be a dataset or a group "
                       "with codes and categories (AnnData's categorical columns)", file, yp,
                       holds);
            return XT_ERR_USAGE;
        }
        info->y_labels = LABELS_CODES;
    } else {
        snprintf(ids, sizeof ids, "%s", yp);
    }
    if (has_y && h5io_info(f, ids, &yi) != XT_OK) return XT_ERR_USAGE;
    Status st = probe_features(f, info, xp, has_y ? yi.dims[0] : 0, comm);
    if (st == XT_OK && has_y) st = probe_y(f, info, ids, info->n, comm);
    if (st == XT_OK && has_y && info->target == TARGET_CLASS) st = probe_labels(f, info, yp, comm);
    if (st != XT_OK) return st;
    info->x_scale = 0.0;
    if (h5io_attr_exists(f, xp, "scale")) {
        double s = 0.0;
        if (h5io_attr_read_f64(f, xp, "scale", &s) != XT_OK) return XT_ERR_USAGE;
        if (!(isfinite(s) && s > 0.0)) {
            probe_fail(comm, "%s:%s: attribute scale = %g, expected a finite number > 0", file,
                       xp, s);
            return XT_ERR_USAGE;
        }
        info->x_scale = s;
    }
    return XT_OK;
}

Status dataset_probe(const char *spec, const Comm *comm, bool need_y, DatasetInfo *info)
{
    memset(info, 0, sizeof *info);
    char err[512];
    H5File *f = NULL;
    Status st = dataset_parse_spec(spec, info->file, sizeof info->file, info->group,
                                   sizeof info->group, err, sizeof err);
    if (st == XT_OK) st = parse_names(spec, info, err, sizeof err);
    char hint[XT_PATH_MAX + 8];
    info->group_given = spec && strstr(spec, ":/") != NULL;
    if (st != XT_OK) {
        probe_fail(comm, "%s", err);
    } else if (missing_slash(info->file, hint, sizeof hint)) {
        probe_fail(comm, "'%s': no such file; did you mean %s? (a split is FILE.h5:/GROUP)",
                   spec, hint);
        st = XT_ERR_USAGE;
    } else {
        /* Collective with a Comm: same spec on every rank, so all ranks get here. */
        st = h5io_open_read(info->file, comm, &f);
    }
    if (st == XT_OK) st = probe_layout(f, comm, need_y, info);
    if (f) st = xt_status_merge(st, h5io_close(&f));
    if (comm) st = comm_agree(comm, st);
    return st;
}

/* ---- load ----------------------------------------------------------------------- */

double dataset_row_bytes(const DatasetInfo *info, bool compact)
{
    double row = (double)info->d * (compact && info->x_u8 ? 1.0 : (double)sizeof(float));
    if (info->x_csr) /* the average row: its non-zeros (column and value), its indptr */
        row = (double)info->x_nnz / (double)info->n * (double)(sizeof(int32_t) + sizeof(float)) +
              (double)sizeof(size_t);
    if (info->has_y)
        row += info->target == TARGET_CLASS ? (double)sizeof(int32_t)
                                            : (double)info->k_dense * sizeof(float);
    return row;
}

static Status load_check_memory(const DatasetInfo *info, size_t lo, size_t hi, bool compact,
                                double extra_per_row, const Comm *comm)
{
    size_t rows = hi - lo;
    double row_bytes = extra_per_row + dataset_row_bytes(info, compact);
    double need = (double)rows * row_bytes;
    SysMem mem;
    sysmem_read("", &mem);
    double avail = mem.bytes;
    int local = comm ? comm_local_size(comm) : 1;
    double per_rank = avail / (double)(local > 0 ? local : 1);
    /* Nothing known (0): only the size_t limit applies. */
    bool fits = (avail <= 0.0 || need <= per_rank) && need < (double)SIZE_MAX / 2;
    if (fits) return XT_OK;
    char hneed[32], havail[32], source[1300];
    strutil_human_bytes(need, hneed, sizeof hneed);
    strutil_human_bytes(per_rank, havail, sizeof havail);
    sysmem_describe(&mem, source, sizeof source);
    log_error("%s:%s: rows [%zu, %zu) need about %s (%zu rows x %.0f bytes) but "
              "each of this node's %d rank(s) may use %s (%s); use more ranks (or "
              "nodes) so each shard fits, or stream the rows from the file (data.stream = "
              "auto or true, with a data.memory_budget below that)", info->file, info->group,
              lo, hi, hneed, rows,
              row_bytes, local, havail, source);
    return XT_ERR_USAGE;
}

static Status read_class_names(H5File *f, Dataset *ds);

/* Class ids of rows [lo, lo + n): integers, string labels mapped to their ids, or category
 * codes (a missing code, -1, refused). */
static Status read_class_ids(H5File *f, const DatasetInfo *in, size_t lo, size_t n, int32_t *y)
{
    if (n == 0) return XT_OK;
    if (in->y_labels == LABELS_STRINGS) return read_string_labels(f, in, lo, n, y);
    char ids[700];
    dataset_y_path(in, ids, sizeof ids);
    Status st = h5io_read_rows_i32(f, ids, lo, n, y);
    for (size_t i = 0; st == XT_OK && in->y_labels == LABELS_CODES && i < n; i++)
        if (y[i] < 0) {
            log_error("%s:%s: row %zu has no category (code %d: a missing value); drop such "
                      "rows, or give them a category", in->file, ids, lo + i, (int)y[i]);
            st = XT_ERR_USAGE;
        }
    return st;
}

#define DATASET_LABEL_BLOCK ((size_t)1 << 20) /* class ids per read when scanning a split */

/* Calls fn on the class ids of rows [lo, hi), a block at a time, from a serial open. */
static Status scan_class_ids(const DatasetInfo *in, size_t lo, size_t hi,
                             Status (*fn)(const int32_t *y, size_t row0, size_t n, void *ctx),
                             void *ctx)
{
    H5File *f = NULL;
    int32_t *y = malloc((hi - lo < DATASET_LABEL_BLOCK ? hi - lo : DATASET_LABEL_BLOCK) * sizeof *y + 1);
    Status st = y ? h5io_open_read(in->file, NULL, &f) : XT_ERR_RUNTIME;
    for (size_t r0 = lo; st == XT_OK && r0 < hi; r0 += DATASET_LABEL_BLOCK) {
        size_t m = hi - r0 < DATASET_LABEL_BLOCK ? hi - r0 : DATASET_LABEL_BLOCK;
        st = read_class_ids(f, in, r0, m, y);
        if (st == XT_OK) st = fn(y, r0, m, ctx);
    }
    if (f) st = xt_status_merge(st, h5io_close(&f));
    free(y);
    return st;
}

typedef struct {
    const DatasetInfo *in;
    size_t k;
    double *counts;
} LabelScan;

static Status check_block(const int32_t *y, size_t row0, size_t n, void *ctx)
{
    const LabelScan *c = ctx;
    for (size_t i = 0; i < n; i++) {
        if (y[i] >= 0 && (size_t)y[i] < c->k) continue;
        char yp[700];
        dataset_y_path(c->in, yp, sizeof yp);
        log_error("%s:%s: label %d at row %zu is outside [0, %zu): the model has K = %zu "
                  "classes (from the training split); is this split from the same data set?%s",
                  c->in->file, yp, (int)y[i], row0 + i, c->k, c->k,
                  y[i] == -1 ? " Labels -1/+1: `xentrain convert h5` maps them to 0/1" : "");
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

Status dataset_check_labels(const DatasetInfo *info, size_t k, const Comm *comm)
{
    Status st = XT_OK;
    LabelScan c = {.in = info, .k = k};
    bool mine = !comm || comm_rank(comm) == 0;
    if (mine && info->has_y && info->target == TARGET_CLASS && k > 0)
        st = scan_class_ids(info, 0, info->n, check_block, &c);
    return comm ? comm_agree(comm, st) : st;
}

static Status count_block(const int32_t *y, size_t row0, size_t n, void *ctx)
{
    const LabelScan *c = ctx;
    (void)row0;
    for (size_t i = 0; i < n; i++)
        if (y[i] >= 0 && (size_t)y[i] < c->k) c->counts[y[i]] += 1.0;
    return XT_OK;
}

Status dataset_count_classes(const Dataset *ds, size_t k, double *counts)
{
    for (size_t c = 0; c < k; c++) counts[c] = 0.0;
    LabelScan c = {.in = &ds->info, .k = k, .counts = counts};
    if (ds->y) return count_block(ds->y, ds->lo, ds->hi - ds->lo, &c);
    return ds->hi > ds->lo ? scan_class_ids(&ds->info, ds->lo, ds->hi, count_block, &c) : XT_OK;
}

Status dataset_balanced_weights(const Dataset *ds, size_t K, long ignore, const Comm *comm,
                                float **weights)
{
    *weights = NULL;
    double *counts = calloc(K ? K : 1, sizeof *counts);
    float *w = malloc((K ? K : 1) * sizeof *w);
    Status st = counts && w ? XT_OK : XT_ERR_RUNTIME;
    if (st == XT_OK && ds->info.target != TARGET_CLASS) {
        log_error0("loss.class_weights = balanced needs class ids; %s:%s has (N, K) targets "
                   "(give the weights as numbers)", ds->info.file, ds->info.group);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) st = dataset_count_classes(ds, K, counts);
    st = comm_agree(comm, st);
    if (st == XT_OK) {
        char err[400];
        comm_allreduce_sum_double(comm, counts, K);
        st = loss_balanced_weights(counts, K, ignore, w, err, sizeof err); /* same everywhere */
        if (st != XT_OK) log_error0("%s:%s: %s", ds->info.file, ds->info.group, err);
    }
    if (st == XT_OK && comm_rank(comm) == 0) {
        char line[1024];
        size_t u = 0;
        double n = 0.0;
        for (size_t c = 0; c < K; c++) n += (long)c == ignore ? 0.0 : counts[c];
        for (size_t c = 0; c < K && u + 40 < sizeof line; c++)
            u += (size_t)snprintf(line + u, sizeof line - u, "%s%.6g", c ? "," : "", (double)w[c]);
        log_info("loss     loss.class_weights = balanced: n / (K * count) over the %.0f training "
                 "rows: %s%s", n, line, u + 40 >= sizeof line ? ",..." : "");
    }
    free(counts);
    if (st == XT_OK) *weights = w;
    else free(w);
    return st;
}

static Status load_rows(Dataset *ds, H5File *f, size_t k, bool compact)
{
    const DatasetInfo *in = &ds->info;
    size_t rows = ds->hi - ds->lo, d = in->d;
    size_t kd = in->k_dense;
    char xp[600], yp[600];
    join(xp, sizeof xp, in->group, in->x_name);
    join(yp, sizeof yp, in->group, in->y_name);

    if (rows > 0) {
        if (in->x_csr) { /* dataset_csr_load allocates */
        } else if (compact) ds->X8 = malloc(rows * d);
        else ds->X = malloc(rows * d * sizeof *ds->X);
        if (!in->has_y) { /* features only (predict) */
        } else if (in->target == TARGET_CLASS) {
            ds->y = malloc(rows * sizeof *ds->y);
        } else {
            ds->t = malloc(rows * kd * sizeof *ds->t);
        }
        if (!(ds->X || ds->X8 || in->x_csr) || (in->has_y && !ds->y && !ds->t)) {
            log_error("%s:%s: out of memory for rows [%zu, %zu) (%zu x %zu values)", in->file,
                      in->group, ds->lo, ds->hi, rows, d);
            return XT_ERR_RUNTIME;
        }
    }
    /* X in blocks: HDF5 converts straight into the output, a block at a time, so no
     * second full-size copy (e.g. of uint8 pixels) ever exists. Compact: the bytes as
     * stored (uint8 cannot be NaN). */
    size_t block = DATASET_BLOCK_BYTES / (d * sizeof(float));
    if (block == 0) block = 1;
    size_t xrows = in->x_csr ? 0 : rows; /* a CSR X has no dense blocks */
    if (in->x_csr) {
        Status st = dataset_csr_load(ds, f, xp);
        if (st != XT_OK) return st;
    }
    for (size_t r0 = 0; compact && r0 < xrows; r0 += block) {
        size_t m = rows - r0 < block ? rows - r0 : block;
        Status st = h5io_read_rows_u8(f, xp, ds->lo + r0, m, ds->X8 + r0 * d);
        if (st != XT_OK) return st;
    }
    for (size_t r0 = 0; !compact && r0 < xrows; r0 += block) {
        size_t m = rows - r0 < block ? rows - r0 : block;
        float *x = ds->X + r0 * d;
        Status st = h5io_read_rows_float(f, xp, ds->lo + r0, m, x);
        if (st != XT_OK) return st;
    }
    Status st = XT_OK;
    if (!in->has_y) {
        /* nothing to read */
    } else if (in->target == TARGET_CLASS) {
        st = read_class_ids(f, in, ds->lo, rows, ds->y);
    } else {
        st = h5io_read_rows_float(f, yp, ds->lo, rows, ds->t);
    }
    if (st == XT_OK) st = dataset_check_rows(ds, k);
    if (st == XT_OK) st = read_class_names(f, ds);
    return st;
}

Status dataset_check_rows(Dataset *ds, size_t k)
{
    const DatasetInfo *in = &ds->info;
    size_t rows = ds->hi - ds->lo, d = in->d, kd = in->k_dense;
    char xp[600], yp[600];
    join(xp, sizeof xp, in->group, in->x_name);
    join(yp, sizeof yp, in->group, in->y_name);
    for (size_t i = 0; ds->X && i < rows * d; i++) {
        const float *x = ds->X;
        if (isfinite(x[i])) continue;
        log_error("%s:%s: non-finite value %s at row %zu, column %zu (counting from 0; "
                  "values beyond +-3.4e38 overflow float32)", in->file, xp,
                  isnan(x[i]) ? "NaN" : (x[i] > 0 ? "+Inf" : "-Inf"), ds->lo + i / d, i % d);
        return XT_ERR_USAGE;
    }
    for (size_t i = 0; ds->y && i < rows; i++) {
        int32_t v = ds->y[i];
        if (v < 0) {
            log_error("%s:%s: label %" PRId32 " at row %zu: class ids are 0..K-1%s", in->file, yp,
                      v, ds->lo + i,
                      in->y_labels == LABELS_CODES ? " (a category code of -1 is a missing value: "
                                                     "drop such rows, or give them a category)"
                      : v == -1 ? "; labels -1/+1 (two classes, as LIBSVM writes them) are mapped "
                                "to 0/1 by `xentrain convert h5` (or y = (y + 1) / 2)"
                              : "; relabel from 0 (`xentrain convert h5` maps labels to 0..K-1 "
                                "and keeps the originals as label_values)");
            return XT_ERR_USAGE;
        }
        if (k > 0 && (size_t)v >= k) {
            log_error("%s:%s: label %" PRId32 " at row %zu is outside [0, %zu) "
                      "(K = %zu classes)", in->file, yp, v, ds->lo + i, k, k);
            return XT_ERR_USAGE;
        }
        if (i == 0 || v < ds->label_min) ds->label_min = v;
        if (i == 0 || v > ds->label_max) ds->label_max = v;
    }
    for (size_t i = 0; ds->t && i < rows * kd; i++) {
        float v = ds->t[i];
        if (v >= 0.0f && v <= 1.0f) continue; /* also rejects NaN */
        log_error("%s:%s: target %g at row %zu, column %zu is outside [0, 1]", in->file, yp,
                  (double)v, ds->lo + i / kd, i % kd);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* class_names: the categories or the string labels' classes, else the attribute on the
 * group first, then on the file root; label_values on the group. */
static Status read_class_names(H5File *f, Dataset *ds)
{
    const DatasetInfo *in = &ds->info;
    char p[700];
    Status st = XT_OK;
    if (in->has_y && in->y_labels == LABELS_CODES) {
        join(p, sizeof p, in->group, in->y_name);
        strncat(p, "/categories", sizeof p - strlen(p) - 1);
        H5ioInfo ci;
        st = h5io_info(f, p, &ci);
        if (st == XT_OK) st = h5io_read_rows_strs(f, p, 0, ci.dims[0], &ds->class_names);
        if (st == XT_OK) ds->n_class_names = ci.dims[0];
    } else if (in->has_y && in->y_labels == LABELS_STRINGS) {
        st = string_classes(f, in, &ds->class_names, &ds->n_class_names);
    } else {
        const char *owner = h5io_attr_exists(f, in->group, "class_names") ? in->group
                            : h5io_attr_exists(f, "/", "class_names") ? "/" : NULL;
        if (owner)
            st = h5io_attr_read_strs(f, owner, "class_names", &ds->class_names, &ds->n_class_names);
    }
    if (st == XT_OK && h5io_attr_exists(f, in->group, "label_values"))
        st = h5io_attr_read_strs(f, in->group, "label_values", &ds->label_values,
                                 &ds->n_label_values);
    if (st == XT_OK && h5io_attr_exists(f, "/", "feature_names"))
        st = h5io_attr_read_strs(f, "/", "feature_names", &ds->feature_names,
                                 &ds->n_feature_names);
    if (st == XT_OK && ds->feature_names && ds->n_feature_names != in->d) { /* not X's */
        h5io_strs_free(ds->feature_names, ds->n_feature_names);
        ds->feature_names = NULL;
        ds->n_feature_names = 0;
    }
    return st;
}

Status dataset_read_class_names(Dataset *ds)
{
    H5File *f = NULL;
    Status st = h5io_open_read(ds->info.file, NULL, &f);
    if (st == XT_OK) st = read_class_names(f, ds);
    if (f) st = xt_status_merge(st, h5io_close(&f));
    return st;
}

static Status load(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi, size_t k,
                   bool compact, const Comm *comm)
{
    XT_ASSERT(lo <= hi && hi <= info->n);
    dataset_begin(ds, info, lo, hi);
    H5File *f = NULL;
    Status st = load_check_memory(info, lo, hi, compact, 0.0, comm);
    /* With a Comm the open and close are collective: agree before opening so no rank
     * waits in H5Fopen for one that gave up. */
    if (comm) st = comm_agree(comm, st);
    if (st == XT_OK) st = h5io_open_read(info->file, comm, &f);
    if (st == XT_OK) st = load_rows(ds, f, k, compact); /* independent reads, local checks */
    if (f) st = xt_status_merge(st, h5io_close(&f));
    if (st != XT_OK) dataset_free(ds);
    return st;
}

void dataset_begin(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi)
{
    memset(ds, 0, sizeof *ds);
    ds->info = *info;
    ds->lo = lo;
    ds->hi = hi;
    ds->label_min = 0;
    ds->label_max = -1;
}

Status dataset_load(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi, size_t k,
                    const Comm *comm)
{
    return load(ds, info, lo, hi, k, false, comm);
}

Status dataset_load_compact(Dataset *ds, const DatasetInfo *info, size_t lo, size_t hi, size_t k,
                            const Comm *comm)
{
    return load(ds, info, lo, hi, k, info->x_u8, comm);
}


Status dataset_check_distributions(const Dataset *ds)
{
    const DatasetInfo *in = &ds->info;
    size_t rows = ds->hi - ds->lo, K = in->k_dense;
    for (size_t i = 0; in->target == TARGET_DENSE && i < rows; i++) {
        double sum = 0.0;
        for (size_t k = 0; k < K; k++) sum += (double)ds->t[i * K + k];
        if (fabs(sum - 1.0) <= DATASET_SUM_TOLERANCE) continue;
        log_error("%s:%s/y: row %zu sums to %g, not 1: a softmax head needs probability rows "
                  "(soft targets). Rows with several 1s are multi-label targets: use "
                  "model.type = multilabel, or mlp with model.head = sigmoid", in->file,
                  in->group, ds->lo + i, sum);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

void dataset_free(Dataset *ds)
{
    if (!ds) return;
    free(ds->X);
    free(ds->X8);
    free(ds->y);
    free(ds->t);
    csr_free(&ds->csr);
    h5io_strs_free(ds->class_names, ds->n_class_names);
    h5io_strs_free(ds->label_values, ds->n_label_values);
    h5io_strs_free(ds->feature_names, ds->n_feature_names);
    ds->label_values = NULL;
    ds->n_label_values = 0;
    ds->feature_names = NULL;
    ds->n_feature_names = 0;
    ds->X = NULL;
    ds->X8 = NULL;
    ds->y = NULL;
    ds->t = NULL;
    ds->class_names = NULL;
    ds->n_class_names = 0;
    ds->lo = ds->hi = 0;
    ds->label_min = 0;
    ds->label_max = -1;
}

/* ---- normalisation and rows out ------------------------------------------------- */

void dataset_apply_affine(Dataset *ds, const float *shift, const float *mul)
{
    XT_ASSERT(!ds->X8); /* compact rows are scaled as they are gathered */
    size_t d = ds->info.d, rows = ds->hi - ds->lo;
    for (size_t i = 0; i < rows; i++) {
        float *x = ds->X + i * d;
        for (size_t j = 0; j < d; j++) x[j] = (x[j] - shift[j]) * mul[j];
    }
}

/* out (d) = local row `row`, as float, normalised when sh != NULL. */
static inline void row_out(float *restrict o, const Dataset *ds, size_t row,
                           const float *restrict sh, const float *restrict mu)
{
    const size_t d = ds->info.d;
    if (ds->X8) {
        const uint8_t *restrict x = ds->X8 + row * d;
        if (sh)
            for (size_t j = 0; j < d; j++) o[j] = ((float)x[j] - sh[j]) * mu[j];
        else
            for (size_t j = 0; j < d; j++) o[j] = (float)x[j];
    } else {
        const float *restrict x = ds->X + row * d;
        if (sh)
            for (size_t j = 0; j < d; j++) o[j] = (x[j] - sh[j]) * mu[j];
        else
            memcpy(o, x, d * sizeof *o);
    }
}

void dataset_gather_rows(float *out, const Dataset *ds, const uint32_t *rows, size_t m,
                         const float *shift, const float *mul)
{
    for (size_t i = 0; i < m; i++) row_out(out + i * ds->info.d, ds, rows[i], shift, mul);
}

void dataset_read_rows(float *out, const Dataset *ds, size_t lo, size_t m, const float *shift,
                       const float *mul)
{
    for (size_t i = 0; i < m; i++) row_out(out + i * ds->info.d, ds, lo + i, shift, mul);
}

void dataset_prefetch_rows(const Dataset *ds, const uint32_t *rows, size_t m)
{
    const size_t d = ds->info.d;
    const size_t bytes = ds->X8 ? d : d * sizeof(float);
    for (size_t i = 0; i < m; i++) {
        const char *p = ds->X8 ? (const char *)(ds->X8 + (size_t)rows[i] * d)
                               : (const char *)(ds->X + (size_t)rows[i] * d);
        for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 3);
    }
}

/* ---- writing ---------------------------------------------------------------------- */

/* Copies the selected rows of an array of `width` bytes per row into a new buffer. */
static void *select_rows(const void *src, size_t width, const size_t *rows, size_t n)
{
    char *out = malloc(n * width);
    for (size_t i = 0; out && i < n; i++)
        memcpy(out + i * width, (const char *)src + rows[i] * width, width);
    return out;
}

Status dataset_write_split(H5File *f, const char *group, const DatasetRows *r, int gzip_level)
{
    if (r->n == 0) return XT_OK;
    XT_ASSERT(!(r->y && r->t)); /* neither: X only (rows to predict) */
    size_t xw = r->d * (r->x_u8 ? 1 : sizeof(float));
    size_t yw = r->t ? r->k * sizeof(float) : sizeof(int32_t);
    const void *X = r->X, *Y = r->t ? (const void *)r->t : (const void *)r->y;
    void *xsel = NULL, *ysel = NULL;
    Status st = XT_OK;
    bool has_y = r->y || r->t;
    if (r->rows) { /* CSR rows are selected as they are written */
        X = xsel = r->csr ? NULL : select_rows(r->X, xw, r->rows, r->n);
        Y = ysel = has_y ? select_rows(Y, yw, r->rows, r->n) : NULL;
        if ((!xsel && !r->csr) || (has_y && !ysel)) {
            log_error("%s:%s: out of memory writing %zu rows", h5io_path(f), group, r->n);
            st = XT_ERR_RUNTIME;
        }
    }
    char xp[600], yp[600];
    join(xp, sizeof xp, group, "X");
    join(yp, sizeof yp, group, "y");
    size_t xd[2] = {r->n, r->d}, yd[2] = {r->n, r->k};
    if (st == XT_OK) st = h5io_create_group(f, group);
    if (st == XT_OK)
        st = r->csr ? dataset_csr_write(f, xp, r->csr, r->rows, r->n, gzip_level)
                    : h5io_write(f, xp, r->x_u8 ? H5IO_U8 : H5IO_F32, 2, xd, X, gzip_level);
    if (st == XT_OK && has_y)
        st = r->t ? h5io_write(f, yp, H5IO_F32, 2, yd, Y, gzip_level)
                  : h5io_write(f, yp, H5IO_I32, 1, yd, Y, gzip_level);
    if (st == XT_OK && r->scale > 0.0) st = h5io_attr_write_f64(f, xp, "scale", r->scale);
    free(xsel);
    free(ysel);
    return st;
}

Status dataset_create_split(H5File *f, const char *group, size_t n, size_t d, bool x_u8,
                            bool dense, size_t k, int gzip_level)
{
    if (n == 0) return XT_OK;
    char xp[600], yp[600];
    join(xp, sizeof xp, group, "X");
    join(yp, sizeof yp, group, "y");
    size_t xd[2] = {n, d}, yd[2] = {n, k};
    Status st = h5io_create_group(f, group);
    if (st == XT_OK) st = h5io_create_dataset(f, xp, x_u8 ? H5IO_U8 : H5IO_F32, 2, xd, gzip_level);
    if (st == XT_OK)
        st = dense ? h5io_create_dataset(f, yp, H5IO_F32, 2, yd, gzip_level)
                   : h5io_create_dataset(f, yp, H5IO_I32, 1, yd, gzip_level);
    return st;
}

Status dataset_write_rows(H5File *f, const char *group, size_t row0, const DatasetRows *r)
{
    XT_ASSERT(!r->rows && (r->y != NULL) != (r->t != NULL));
    if (r->n == 0) return XT_OK;
    char xp[600], yp[600];
    join(xp, sizeof xp, group, "X");
    join(yp, sizeof yp, group, "y");
    Status st = h5io_write_rows(f, xp, r->x_u8 ? H5IO_U8 : H5IO_F32, row0, r->n, r->X);
    if (st == XT_OK)
        st = r->t ? h5io_write_rows(f, yp, H5IO_F32, row0, r->n, r->t)
                  : h5io_write_rows(f, yp, H5IO_I32, row0, r->n, r->y);
    return st;
}

bool dataset_row_valid(const Dataset *ds, size_t i, size_t k, bool probs, char *why, size_t len)
{
    const DatasetInfo *in = &ds->info;
    const size_t d = in->d, kd = in->k_dense;
    for (size_t j = 0; ds->X && j < d; j++) {
        float v = ds->X[i * d + j];
        if (isfinite(v)) continue;
        snprintf(why, len, "holds %s in X column %zu", isnan(v) ? "NaN" : "an infinite value", j);
        return false;
    }
    if (ds->y && k > 0 && (ds->y[i] < 0 || (size_t)ds->y[i] >= k)) {
        snprintf(why, len, "has label %" PRId32 ", outside [0, %zu)", ds->y[i], k);
        return false;
    }
    double sum = 0.0;
    for (size_t j = 0; ds->t && j < kd; j++) {
        float v = ds->t[i * kd + j];
        sum += (double)v;
        if (v >= 0.0f && v <= 1.0f) continue;
        snprintf(why, len, "has target %g in column %zu, outside [0, 1]", (double)v, j);
        return false;
    }
    if (ds->t && probs && in->target == TARGET_DENSE && fabs(sum - 1.0) > DATASET_SUM_TOLERANCE) {
        snprintf(why, len, "has targets summing to %g, not 1", sum);
        return false;
    }
    return true;
}

/* ---- fingerprint --------------------------------------------------------------------- */

#define PRINT_RUNS 16
#define PRINT_ROWS 4

/* CRC-32 of rows [r0, r0 + m) of dset as stored. */
static Status crc_rows(H5File *f, const char *dset, size_t row_bytes, size_t r0, size_t m,
                       uLong *crc)
{
    unsigned char *buf = malloc(m * row_bytes > 0 ? m * row_bytes : 1);
    if (!buf) {
        log_error("%s:%s: out of memory for the fingerprint's rows", h5io_path(f), dset);
        return XT_ERR_RUNTIME;
    }
    Status st = h5io_read_rows_raw(f, dset, r0, m, buf);
    if (st == XT_OK) *crc = crc32(*crc, buf, (uInt)(m * row_bytes));
    free(buf);
    return st;
}

/* The same for a string dataset (labels as h5py and AnnData write them): the texts with
 * their terminating NULs, whether stored with variable or fixed length. */
static Status crc_text_rows(H5File *f, const char *dset, size_t r0, size_t m, uLong *crc)
{
    char **v = NULL;
    Status st = h5io_read_rows_strs(f, dset, r0, m, &v);
    for (size_t i = 0; st == XT_OK && i < m; i++)
        *crc = crc32(*crc, (const Bytef *)v[i], (uInt)(strlen(v[i]) + 1));
    h5io_strs_free(v, v ? m : 0);
    return st;
}

/* A CSR X: the same evenly spaced runs over each of its arrays (indptr, indices, data). */
static Status crc_csr(H5File *f, const char *xp, uLong *crc)
{
    static const char *const parts[] = {"indptr", "indices", "data"};
    Status st = XT_OK;
    for (size_t k = 0; st == XT_OK && k < sizeof parts / sizeof *parts; k++) {
        char p[760];
        snprintf(p, sizeof p, "%s/%s", xp, parts[k]);
        H5ioInfo ii = {0};
        st = h5io_info(f, p, &ii);
        size_t len = st == XT_OK && ii.rank == 1 ? (size_t)ii.dims[0] : 0;
        for (int i = 0; st == XT_OK && len > 0 && i < PRINT_RUNS; i++) {
            size_t r0 = (size_t)i * (len - 1) / (PRINT_RUNS - 1);
            size_t m = len - r0 < PRINT_ROWS ? len - r0 : PRINT_ROWS;
            st = crc_rows(f, p, ii.type_size, r0, m, crc);
        }
    }
    return st;
}

Status dataset_fingerprint(const DatasetInfo *info, DataPrint *fp)
{
    *fp = (DataPrint){.rows = (int64_t)info->n, .cols = (int64_t)info->d};
    struct stat sb;
    if (stat(info->file, &sb) == 0) {
        fp->file_bytes = (int64_t)sb.st_size;
        fp->mtime = (int64_t)sb.st_mtime;
    }
    char xp[700], yp[700];
    dataset_object_path(info, info->x_name, xp, sizeof xp);
    dataset_y_path(info, yp, sizeof yp); /* the class ids' codes for AnnData's categories */
    bool texts = info->y_labels == LABELS_STRINGS;
    H5File *f = NULL;
    Status st = h5io_open_read(info->file, NULL, &f);
    H5ioInfo xi = {0}, yi = {0};
    uLong crc = crc32(0L, Z_NULL, 0);
    if (st == XT_OK && info->x_csr) st = crc_csr(f, xp, &crc); /* X's runs, then y's below */
    else if (st == XT_OK) st = h5io_info(f, xp, &xi);
    if (st == XT_OK && info->has_y) st = h5io_info(f, yp, &yi);
    size_t xrow = xi.type_size * (xi.rank > 1 ? xi.dims[1] : 1);
    size_t yrow = yi.type_size * (yi.rank > 1 ? yi.dims[1] : 1);
    for (int i = 0; st == XT_OK && info->n > 0 && i < PRINT_RUNS; i++) {
        size_t r0 = (size_t)i * (info->n - 1) / (PRINT_RUNS - 1);
        size_t m = info->n - r0 < PRINT_ROWS ? info->n - r0 : PRINT_ROWS;
        if (!info->x_csr) st = crc_rows(f, xp, xrow, r0, m, &crc);
        if (st == XT_OK && info->has_y)
            st = texts ? crc_text_rows(f, yp, r0, m, &crc) : crc_rows(f, yp, yrow, r0, m, &crc);
    }
    fp->crc = (int64_t)crc;
    if (f) st = xt_status_merge(st, h5io_close(&f));
    return st;
}

bool dataset_fingerprint_match(const DataPrint *saved, const DataPrint *now, const char *spec,
                               const char *where)
{
    if (saved->rows == now->rows && saved->cols == now->cols && saved->crc == now->crc)
        return true;
    char then[64] = "?", later[64] = "?";
    time_t a = (time_t)saved->mtime, b = (time_t)now->mtime;
    struct tm tm;
    if (saved->mtime && localtime_r(&a, &tm)) strftime(then, sizeof then, "%Y-%m-%d %H:%M:%S", &tm);
    if (now->mtime && localtime_r(&b, &tm)) strftime(later, sizeof later, "%Y-%m-%d %H:%M:%S", &tm);
    log_error0("data.train = %s is not the data %s was trained on: it has %lld x %lld rows and "
               "content fingerprint %08llx, the checkpoint's data had %lld x %lld and %08llx "
               "(file %lld bytes, modified %s; now %lld bytes, modified %s). Resuming would "
               "continue on other data: restore the original file, or start over with "
               "train.resume = never (or another run.dir)", spec, where, (long long)now->rows,
               (long long)now->cols, (unsigned long long)now->crc, (long long)saved->rows,
               (long long)saved->cols, (unsigned long long)saved->crc,
               (long long)saved->file_bytes, then, (long long)now->file_bytes, later);
    return false;
}
