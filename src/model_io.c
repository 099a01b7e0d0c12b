#include "model_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "h5io.h"
#include "log.h"

#define CRC_ATTR "crc32"

/* zlib's CRC-32 of n float32 values as little-endian IEEE bytes (the bytes on any host),
 * continuing crc (crc32(0L, Z_NULL, 0) to start). */
static uLong crc_floats_from(uLong crc, const float *x, size_t n)
{
    const uint16_t one = 1;
    bool little = *(const unsigned char *)&one == 1;
    unsigned char buf[4096];
    for (size_t i = 0; i < n;) {
        size_t m = n - i;
        if (little) { /* the memory is the bytes: in pieces that fit zlib's uInt */
            if (m > ((size_t)1 << 28)) m = (size_t)1 << 28;
            crc = crc32(crc, (const Bytef *)(x + i), (uInt)(4 * m));
        } else {
            if (m > sizeof buf / 4) m = sizeof buf / 4;
            for (size_t j = 0; j < m; j++) {
                uint32_t u;
                memcpy(&u, x + i + j, 4);
                for (int b = 0; b < 4; b++) buf[4 * j + (size_t)b] = (unsigned char)(u >> (8 * b));
            }
            crc = crc32(crc, buf, (uInt)(4 * m));
        }
        i += m;
    }
    return crc;
}

static uint32_t crc_floats(const float *x, size_t n)
{
    return (uint32_t)crc_floats_from(crc32(0L, Z_NULL, 0), x, n);
}

Status model_io_write_floats(H5File *f, const char *dset, int rank, const size_t *dims,
                             const float *data)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    Status st = h5io_write(f, dset, H5IO_F32, rank, dims, data, 0);
    if (st == XT_OK) st = h5io_attr_write_i64(f, dset, CRC_ATTR, (int64_t)crc_floats(data, n));
    return st;
}

/* A W_1 kept by column (model.h) written as the file's (H, D), in pieces of rows of about
 * 4 MiB, with the CRC of the whole. */
static Status write_w1_by_column(H5File *f, const char *dset, const ModelShape *s,
                                 const float *params)
{
    const size_t H = s->sizes[1], D = s->sizes[0], dims[2] = {H, D};
    size_t rows = ((size_t)1 << 20) / (D ? D : 1);
    rows = rows < 1 ? 1 : rows > H ? H : rows;
    float *buf = malloc(rows * D * sizeof *buf);
    if (!buf) {
        log_error("%s:%s: out of memory for %zu rows of %zu weights", h5io_path(f), dset, rows, D);
        return XT_ERR_RUNTIME;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    Status st = h5io_create_dataset(f, dset, H5IO_F32, 2, dims, 0);
    for (size_t o = 0; o < H && st == XT_OK; o += rows) {
        size_t n = o + rows <= H ? rows : H - o;
        model_w1_rows(s, params, o, n, buf);
        crc = crc_floats_from(crc, buf, n * D);
        st = h5io_write_rows(f, dset, H5IO_F32, o, n, buf);
    }
    free(buf);
    if (st == XT_OK) st = h5io_attr_write_i64(f, dset, CRC_ATTR, (int64_t)(uint32_t)crc);
    return st;
}

/* The widest layer a model file may claim (a hostile file claims more). */
#define MODEL_IO_MAX_WIDTH (INT64_C(1) << 26)

Status model_io_write_group(H5File *f, const char *g, const ModelFile *mf)
{
    const ModelShape *s = &mf->shape;
    char p[512];
    int64_t sizes[MODEL_MAX_LAYERS + 1];
    for (int l = 0; l <= s->n_layers; l++) sizes[l] = (int64_t)s->sizes[l];
    Status st = h5io_create_group(f, g);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "format", "xentrain-model");
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "format_version", MODEL_FORMAT_VERSION);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "model_type", config_model_type_name(s->type));
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "activation", config_activation_name(s->act));
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "head", config_head_name(s->head));
    if (st == XT_OK)
        st = h5io_attr_write_i64s(f, g, "layer_sizes", sizes, (size_t)s->n_layers + 1);
    if (st == XT_OK)
        st = h5io_attr_write_i64(f, g, "classes",
                                 (int64_t)(s->type == MODEL_LOGISTIC ? 2 : model_outputs(s)));
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "normalize", config_normalize_name(mf->normalize));
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "epoch", mf->epoch);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "val_loss", mf->val_loss);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "val_accuracy", mf->val_accuracy);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "xentrain_version", XT_VERSION);
    if (st == XT_OK && mf->train_split[0])
        st = h5io_attr_write_str(f, g, "train_split", mf->train_split);
    if (st == XT_OK && mf->has_ignore)
        st = h5io_attr_write_i64(f, g, "ignore_index", mf->ignore_index);
    if (st == XT_OK && mf->class_names && mf->n_class_names > 0)
        st = h5io_attr_write_strs(f, g, "class_names", (const char *const *)mf->class_names,
                                  mf->n_class_names);
    if (st == XT_OK && mf->label_values && mf->n_label_values > 0)
        st = h5io_attr_write_strs(f, g, "label_values", (const char *const *)mf->label_values,
                                  mf->n_label_values);
    if (st == XT_OK && mf->feature_names && mf->n_feature_names > 0)
        st = h5io_attr_write_strs(f, g, "feature_names", (const char *const *)mf->feature_names,
                                  mf->n_feature_names);
    for (int l = 1; l <= s->n_layers && st == XT_OK; l++) {
        size_t dw[2] = {s->sizes[l], s->sizes[l - 1]}, db[1] = {s->sizes[l]};
        snprintf(p, sizeof p, "%s/layer%d", g, l);
        st = h5io_create_group(f, p);
        snprintf(p, sizeof p, "%s/layer%d/W", g, l);
        if (st == XT_OK && l == 1 && s->w1_by_column) st = write_w1_by_column(f, p, s, mf->params);
        else if (st == XT_OK) st = model_io_write_floats(f, p, 2, dw, mf->params + s->w_off[l - 1]);
        snprintf(p, sizeof p, "%s/layer%d/b", g, l);
        if (st == XT_OK) st = model_io_write_floats(f, p, 1, db, mf->params + s->b_off[l - 1]);
    }
    if (st == XT_OK && mf->normalize != NORM_NONE) {
        size_t d[1] = {s->sizes[0]};
        snprintf(p, sizeof p, "%s/normalization", g);
        st = h5io_create_group(f, p);
        snprintf(p, sizeof p, "%s/normalization/shift", g);
        if (st == XT_OK) st = model_io_write_floats(f, p, 1, d, mf->shift);
        snprintf(p, sizeof p, "%s/normalization/mul", g);
        if (st == XT_OK) st = model_io_write_floats(f, p, 1, d, mf->mul);
    }
    return st;
}

Status model_io_save(const char *path, const ModelFile *mf)
{
    H5File *f = NULL;
    Status st = h5io_create_atomic(path, &f);
    if (st == XT_OK) st = model_io_write_group(f, "/model", mf);
    if (st == XT_OK) st = h5io_commit(&f);
    h5io_close(&f); /* after a failure: discards the temporary file */
    if (st != XT_OK) log_error("could not write the model to %s", path);
    return st;
}

static const char *type_name_i(int i) { return config_model_type_name((ModelType)i); }
static const char *act_name_i(int i) { return config_activation_name((Activation)i); }
static const char *head_name_i(int i) { return config_head_name((Head)i); }
static const char *norm_name_i(int i) { return config_normalize_name((Normalize)i); }

/* A string attribute that must name one of n choices (name(i), i < n): *out = i. */
static Status read_choice(H5File *f, const char *g, const char *attr, const char *(*name)(int),
                          int n, int *out)
{
    char buf[128];
    Status st = h5io_attr_read_str(f, g, attr, buf, sizeof buf);
    if (st != XT_OK) return st;
    for (int i = 0; i < n; i++)
        if (!strcmp(buf, name(i))) {
            *out = i;
            return XT_OK;
        }
    log_error("%s:%s: unknown %s '%s'", h5io_path(f), g, attr, buf);
    return XT_ERR_USAGE;
}

static void format_dims(char *buf, size_t len, int rank, const size_t *dims)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", i ? ", " : "", dims[i]);
    if (used < len) snprintf(buf + used, len - used, ")");
}

/* Checks that a float dataset has exactly the given rank and dims. */
static Status check_exact(H5File *f, const char *p, int rank, const size_t *dims)
{
    H5ioInfo info;
    Status st = h5io_info(f, p, &info);
    if (st != XT_OK) return st;
    bool ok = info.rank == rank && info.cls == H5IO_CLASS_FLOAT;
    for (int i = 0; ok && i < rank; i++) ok = info.dims[i] == dims[i];
    if (!ok) {
        char want[64], got[64];
        format_dims(want, sizeof want, rank, dims);
        format_dims(got, sizeof got, info.rank, info.dims);
        log_error("%s:%s: expected float %s as layer_sizes imply, got %s %s", h5io_path(f), p,
                  want, info.type_name, got);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* What to do about a corrupt array, in a model file or a checkpoint. */
#define CORRUPT_HINT \
    "use another copy of the file (a checkpoint: or train.resume = never to start over)"

Status model_io_read_floats(H5File *f, const char *dset, int rank, const size_t *dims,
                            float *out)
{
    Status st = check_exact(f, dset, rank, dims);
    if (st == XT_OK) st = h5io_read_rows_float(f, dset, 0, dims[0], out);
    if (st != XT_OK) return st;
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (h5io_attr_exists(f, dset, CRC_ATTR)) { /* files written before checksums have none */
        int64_t stored = 0;
        if ((st = h5io_attr_read_i64(f, dset, CRC_ATTR, &stored)) != XT_OK) return st;
        uint32_t now = crc_floats(out, n);
        if (stored != (int64_t)now) {
            log_error("%s:%s: checksum mismatch (crc32 stored %08llx, of the data read %08x): "
                      "the array is corrupt (a flipped bit on disk or in a copy); %s",
                      h5io_path(f), dset, (unsigned long long)stored, now, CORRUPT_HINT);
            return XT_ERR_USAGE;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (isfinite(out[i])) continue;
        log_error("%s:%s: value %zu is %s: a model or checkpoint never stores one (the file is "
                  "corrupt); %s", h5io_path(f), dset, i, isnan(out[i]) ? "NaN" : "infinite",
                  CORRUPT_HINT);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Reads a float dataset that must have exactly the given rank and dims. */
static Status read_exact(H5File *f, const char *p, int rank, const size_t *dims, float *out)
{
    return model_io_read_floats(f, p, rank, dims, out);
}

/* Version, model type, activation, head, normalisation and layer sizes: the shape. */
static Status read_header(H5File *f, const char *g, ModelFile *mf)
{
    const char *file = h5io_path(f);
    int64_t ver = 0;
    if (!h5io_exists(f, g) || !h5io_attr_exists(f, g, "format_version")) {
        log_error("%s: not an xentrain model file (no %s group with a format_version)", file, g);
        return XT_ERR_USAGE;
    }
    Status st = h5io_attr_read_i64(f, g, "format_version", &ver);
    if (st != XT_OK) return st;
    if (ver > MODEL_FORMAT_VERSION || ver < 1) {
        log_error("%s: model format version %lld; this xentrain %s reads version %d%s", file,
                  (long long)ver, XT_VERSION, MODEL_FORMAT_VERSION,
                  ver > MODEL_FORMAT_VERSION ? " (upgrade xentrain)" : "");
        return XT_ERR_USAGE;
    }
    int type = 0, act = 0, head = 0, norm = 0;
    if ((st = read_choice(f, g, "model_type", type_name_i, 4, &type)) != XT_OK ||
        (st = read_choice(f, g, "activation", act_name_i, 3, &act)) != XT_OK ||
        (st = read_choice(f, g, "head", head_name_i, 2, &head)) != XT_OK ||
        (st = read_choice(f, g, "normalize", norm_name_i, NORM_AUTO, &norm)) != XT_OK)
        return st;
    mf->normalize = (Normalize)norm;
    int64_t sizes[MODEL_MAX_LAYERS + 1], classes = 0;
    size_t ns = 0;
    if ((st = h5io_attr_read_i64s(f, g, "layer_sizes", sizes, MODEL_MAX_LAYERS + 1, &ns)) != XT_OK)
        return st;
    if ((st = h5io_attr_read_i64(f, g, "classes", &classes)) != XT_OK) return st;
    bool sizes_ok = ns >= 2;
    for (size_t i = 0; i < ns && sizes_ok; i++)
        sizes_ok = sizes[i] >= 1 && sizes[i] <= MODEL_IO_MAX_WIDTH;
    if (!sizes_ok || classes < 1 || classes > XT_MAX_CLASSES) {
        log_error("%s:%s: invalid layer_sizes or classes attribute", file, g);
        return XT_ERR_USAGE;
    }
    char err[256];
    st = model_shape_init(&mf->shape, (ModelType)type, (Activation)act, (Head)head,
                          (size_t)sizes[0], sizes + 1, (int)ns - 2, (size_t)classes, err,
                          sizeof err);
    if (st == XT_OK && (mf->shape.n_layers != (int)ns - 1 ||
                        mf->shape.sizes[mf->shape.n_layers] != (size_t)sizes[ns - 1])) {
        snprintf(err, sizeof err, "layer_sizes do not match model_type %s",
                 config_model_type_name((ModelType)type));
        st = XT_ERR_USAGE;
    }
    if (st != XT_OK) log_error("%s:%s: %s", file, g, err);
    return st;
}

/* Checks (check_only) or reads every layer's W and b. */
static Status layers(H5File *f, const char *g, const ModelShape *s, float *params,
                     bool check_only)
{
    char p[512];
    Status st = XT_OK;
    for (int l = 1; l <= s->n_layers && st == XT_OK; l++) {
        size_t dw[2] = {s->sizes[l], s->sizes[l - 1]}, db[1] = {s->sizes[l]};
        snprintf(p, sizeof p, "%s/layer%d/W", g, l);
        st = check_only ? check_exact(f, p, 2, dw) : read_exact(f, p, 2, dw, params + s->w_off[l - 1]);
        snprintf(p, sizeof p, "%s/layer%d/b", g, l);
        if (st == XT_OK)
            st = check_only ? check_exact(f, p, 1, db)
                            : read_exact(f, p, 1, db, params + s->b_off[l - 1]);
    }
    return st;
}

/* The normalisation, epoch, validation figures and class names. */
static Status read_extras(H5File *f, const char *g, ModelFile *mf)
{
    Status st = XT_OK;
    if (mf->normalize != NORM_NONE) {
        char p[512];
        size_t d[1] = {mf->shape.sizes[0]};
        mf->shift = malloc(d[0] * sizeof(float));
        mf->mul = malloc(d[0] * sizeof(float));
        if (!mf->shift || !mf->mul) {
            log_error("%s:%s: out of memory for the normalisation (D = %zu)", h5io_path(f), g,
                      d[0]);
            return XT_ERR_RUNTIME;
        }
        snprintf(p, sizeof p, "%s/normalization/shift", g);
        st = read_exact(f, p, 1, d, mf->shift);
        snprintf(p, sizeof p, "%s/normalization/mul", g);
        if (st == XT_OK) st = read_exact(f, p, 1, d, mf->mul);
    }
    if (st == XT_OK && h5io_attr_exists(f, g, "epoch"))
        st = h5io_attr_read_i64(f, g, "epoch", &mf->epoch);
    if (st == XT_OK && h5io_attr_exists(f, g, "val_loss"))
        st = h5io_attr_read_f64(f, g, "val_loss", &mf->val_loss);
    if (st == XT_OK && h5io_attr_exists(f, g, "val_accuracy"))
        st = h5io_attr_read_f64(f, g, "val_accuracy", &mf->val_accuracy);
    if (st == XT_OK && h5io_attr_exists(f, g, "class_names"))
        st = h5io_attr_read_strs(f, g, "class_names", &mf->class_names, &mf->n_class_names);
    if (st == XT_OK && h5io_attr_exists(f, g, "label_values"))
        st = h5io_attr_read_strs(f, g, "label_values", &mf->label_values, &mf->n_label_values);
    if (st == XT_OK && h5io_attr_exists(f, g, "feature_names"))
        st = h5io_attr_read_strs(f, g, "feature_names", &mf->feature_names, &mf->n_feature_names);
    if (st == XT_OK && h5io_attr_exists(f, g, "train_split"))
        st = h5io_attr_read_str(f, g, "train_split", mf->train_split, sizeof mf->train_split);
    mf->has_ignore = st == XT_OK && h5io_attr_exists(f, g, "ignore_index");
    if (mf->has_ignore) st = h5io_attr_read_i64(f, g, "ignore_index", &mf->ignore_index);
    if (st == XT_OK && mf->has_ignore && (mf->ignore_index < 0 || mf->ignore_index > INT32_MAX)) {
        log_error("%s: %s ignore_index = %lld is not a class id", h5io_path(f), g,
                  (long long)mf->ignore_index);
        st = XT_ERR_USAGE;
    }
    return st;
}

Status model_io_read_group(H5File *f, const char *g, ModelFile *mf)
{
    *mf = (ModelFile){0};
    Status st = read_header(f, g, mf);
    /* The stored datasets must match layer_sizes BEFORE anything is allocated: the
     * attributes alone may claim an enormous model (2^26 x 2^26 weights) that a small,
     * damaged or hostile file does not hold. */
    if (st == XT_OK) st = layers(f, g, &mf->shape, NULL, true);
    if (st != XT_OK) return st;
    mf->params = malloc(mf->shape.n_params * sizeof *mf->params);
    if (!mf->params) {
        log_error("%s:%s: out of memory for %zu parameters", h5io_path(f), g, mf->shape.n_params);
        return XT_ERR_RUNTIME;
    }
    st = layers(f, g, &mf->shape, mf->params, false);
    if (st == XT_OK) st = read_extras(f, g, mf);
    if (st != XT_OK) model_io_free(mf);
    return st;
}

Status model_io_load(const char *path, ModelFile *mf)
{
    *mf = (ModelFile){0};
    H5File *f = NULL;
    Status st = h5io_open_read(path, NULL, &f);
    if (st == XT_OK) st = model_io_read_group(f, "/model", mf);
    h5io_close(&f);
    return st;
}

Status model_io_read_epoch(const char *path, int64_t *epoch)
{
    H5File *f = NULL;
    Status st = h5io_open_read(path, NULL, &f);
    if (st == XT_OK) st = h5io_attr_read_i64(f, "/model", "epoch", epoch);
    h5io_close(&f);
    return st;
}

Status model_io_copy_group(const char *path, int64_t epoch, H5File *dst, const char *group)
{
    H5File *f = NULL;
    int64_t held = -1;
    Status st = h5io_open_read(path, NULL, &f);
    if (st == XT_OK) st = h5io_attr_read_i64(f, "/model", "epoch", &held);
    if (st == XT_OK && held != epoch) {
        log_error("%s holds epoch %lld, not the kept epoch %lld: it was replaced during the run",
                  path, (long long)held, (long long)epoch);
        st = XT_ERR_RUNTIME;
    }
    if (st == XT_OK) st = h5io_copy(f, "/model", dst, group);
    h5io_close(&f);
    return st;
}

void model_io_free(ModelFile *mf)
{
    free(mf->params);
    free(mf->shift);
    free(mf->mul);
    if (mf->class_names) h5io_strs_free(mf->class_names, mf->n_class_names);
    if (mf->label_values) h5io_strs_free(mf->label_values, mf->n_label_values);
    if (mf->feature_names) h5io_strs_free(mf->feature_names, mf->n_feature_names);
    *mf = (ModelFile){0};
}

void model_io_class_text(const ModelFile *mf, size_t c, char *buf, size_t len)
{
    const char *v = mf->label_values && c < mf->n_label_values ? mf->label_values[c] : NULL;
    const char *n = mf->class_names && c < mf->n_class_names ? mf->class_names[c] : NULL;
    if (v && n && strcmp(v, n)) snprintf(buf, len, "%s (%s)", v, n);
    else if (v || n) snprintf(buf, len, "%s", v ? v : n);
    else snprintf(buf, len, "%zu", c);
}
