/* convert h5: one split of an existing HDF5 file (X and class labels in any layout
 * dataset.h reads: integers of any type, strings, AnnData's categories) into /train, /val
 * and /test, stratified on request. Labels become class ids 0..K-1 (-1/+1 becomes 0/1,
 * 1..K becomes 0..K-1, ids beyond int32 are mapped) with the originals kept as
 * label_values; X keeps its type when uint8 and its scale; feature_names, class_names and
 * label_values of the source are kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_common.h"
#include "dataset.h"
#include "h5io.h"
#include "log.h"

typedef struct {
    const char *input; /* FILE.h5[:/GROUP][?X=..&y=..] */
} H5Options;

static H5Options g_h5;
static char **g_names; /* the source's class_names (when the labels are ids), for the write */
static size_t g_n_names;

static size_t h5_options(OptSpec *specs, OutOptions *out)
{
    (void)out;
    g_h5 = (H5Options){0};
    const OptSpec mine[] = {
        {.name = "input", OPT_STRING, &g_h5.input, "F.h5[:/G]",
         "the split to divide (FILE.h5:/GROUP, default /train;\nother names: "
         "f.h5ad:/?X=X&y=obs/cell_type)", .required = true},
    };
    memcpy(specs, mine, sizeof mine);
    return sizeof mine / sizeof mine[0];
}

static void h5_release(void)
{
    h5io_strs_free(g_names, g_n_names);
    g_names = NULL;
    g_n_names = 0;
}

/* Integer labels of any type (read as float64: exact to 2^53) into ids 0..K-1; a source
 * whose ids are kept and that names their label_values keeps those. */
static Status h5_id_labels(const DatasetInfo *in, const Dataset *ds, int32_t *y, LabelMap *m)
{
    double *v = malloc((in->n ? in->n : 1) * sizeof *v);
    H5File *f = NULL;
    char yp[700];
    dataset_y_path(in, yp, sizeof yp);
    Status st = v ? h5io_open_read(in->file, NULL, &f) : XT_ERR_RUNTIME;
    if (st == XT_OK) st = h5io_read_rows_f64(f, yp, 0, in->n, v);
    if (f) st = xt_status_merge(st, h5io_close(&f));
    if (st == XT_OK) st = convert_labels_from_numbers(in->file, v, in->n, true, y, m);
    free(v);
    if (st != XT_OK || m->remapped || !ds->label_values || ds->n_label_values < m->k) return st;
    m->values = calloc(m->k ? m->k : 1, sizeof *m->values);
    for (size_t c = 0; m->values && c < m->k; c++)
        if (!(m->values[c] = strdup(ds->label_values[c]))) st = XT_ERR_RUNTIME;
    m->remapped = st == XT_OK && m->values; /* written as label_values */
    return m->values ? st : XT_ERR_RUNTIME;
}

/* String or categorical labels: the ids dataset.h gave them, named by the classes. */
static Status h5_named_labels(const Dataset *ds, int32_t *y, LabelMap *m, size_t n)
{
    memcpy(y, ds->y, n * sizeof *y);
    m->values = calloc(ds->n_class_names ? ds->n_class_names : 1, sizeof *m->values);
    if (!m->values) return XT_ERR_RUNTIME;
    for (size_t c = 0; c < ds->n_class_names; c++, m->k++)
        if (!(m->values[c] = strdup(ds->class_names[c]))) return XT_ERR_RUNTIME;
    m->names = m->remapped = true;
    return XT_OK;
}

/* The source's feature_names (root), when they name D features. */
static char **h5_feature_names(const DatasetInfo *in)
{
    H5File *f = NULL;
    char **v = NULL;
    size_t n = 0;
    if (h5io_open_read(in->file, NULL, &f) == XT_OK && h5io_attr_exists(f, "/", "feature_names"))
        (void)h5io_attr_read_strs(f, "/", "feature_names", &v, &n);
    h5io_close(&f);
    if (v && n == in->d) return v;
    h5io_strs_free(v, n);
    return NULL;
}

static Status h5_read(OutOptions *out, ConvertTable *t, LabelMap *m)
{
    (void)out;
    DatasetInfo info, xi;
    Dataset ds = {0};
    Status st = dataset_probe(g_h5.input, NULL, true, &info);
    if (st == XT_OK && info.target != TARGET_CLASS) {
        log_error("convert h5: %s: y is (N, %zu) targets; convert h5 splits class labels (N,)",
                  g_h5.input, info.k_dense);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK && info.x_csr) { /* ConvertTable rows are dense */
        log_error("convert h5: %s: X is a CSR matrix (%s); convert h5 writes dense X: train on "
                  "the file as it is (CSR splits are read directly, docs/sparse.md)", g_h5.input,
                  info.x_type);
        st = XT_ERR_USAGE;
    }
    bool ids = info.y_labels == LABELS_IDS;
    xi = info;
    xi.has_y = !ids; /* integer labels are read apart, before any range check */
    if (st == XT_OK) st = dataset_load_compact(&ds, &xi, 0, info.n, 0, NULL);
    int32_t *y = st == XT_OK ? malloc((info.n + 1) * sizeof *y) : NULL;
    if (st == XT_OK && !y) st = XT_ERR_RUNTIME;
    if (st == XT_OK) st = ids ? h5_id_labels(&info, &ds, y, m) : h5_named_labels(&ds, y, m, info.n);
    if (st == XT_OK && ids && ds.class_names && ds.n_class_names == m->k) {
        g_names = ds.class_names; /* kept for the output's class_names */
        g_n_names = ds.n_class_names;
        ds.class_names = NULL;
        ds.n_class_names = 0;
    }
    *t = (ConvertTable){.X = ds.X8 ? (void *)ds.X8 : (void *)ds.X, .x_u8 = ds.X8 != NULL,
                        .n = info.n, .d = info.d, .y = y, .scale = info.x_scale,
                        .class_names = g_names};
    ds.X = NULL;
    ds.X8 = NULL;
    if (st == XT_OK) t->feature_names = h5_feature_names(&info);
    if (st == XT_OK)
        log_info("convert h5: %s: %zu rows, D = %zu (X %s), labels %s", g_h5.input, info.n,
                 info.d, info.x_type, info.y_type);
    dataset_free(&ds);
    return st;
}

const ConvertReader convert_h5_reader = {
    .name = "h5",
    .synopsis = "--input F.h5[:/GROUP] [options] --out F.h5",
    .about = "Splits one group of an HDF5 file (X (N, D) and y (N,): integers, strings or\n"
             "AnnData's codes and categories) into /train, /val and /test. Labels become\n"
             "class ids 0..K-1 (-1/+1 become 0/1; the originals are kept as label_values;\n"
             "strings and categories as class_names); uint8 X stays uint8; X's scale and the\n"
             "file's feature_names are kept.",
    .options = h5_options,
    .read = h5_read,
    .release = h5_release};
