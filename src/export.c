#include "export.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "export_common.h"
#include "fsutil.h"
#include "log.h"
#include "model.h"
#include "opts.h"

/* ---- text, JSON and bytes ----------------------------------------------------------- */

static bool text_reserve(ExportText *t, size_t extra)
{
    if (t->oom) return false;
    if (t->len + extra + 1 <= t->cap) return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + extra + 1) cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
        t->oom = true;
        return false;
    }
    t->p = p;
    t->cap = cap;
    return true;
}

void export_text_printf(ExportText *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !text_reserve(t, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void export_text_json(ExportText *t, const char *s)
{
    export_text_printf(t, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') export_text_printf(t, "\\%c", *c);
        else if (*c == '\n') export_text_printf(t, "\\n");
        else if (*c == '\t') export_text_printf(t, "\\t");
        else if (*c < 0x20) export_text_printf(t, "\\u%04x", (unsigned)*c);
        else export_text_printf(t, "%c", *c);
    }
    export_text_printf(t, "\"");
}

void export_text_free(ExportText *t)
{
    free(t->p);
    *t = (ExportText){0};
}

void export_f32le(uint8_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        for (int b = 0; b < 4; b++) dst[4 * i + (size_t)b] = (uint8_t)(u >> (8 * b));
    }
}

/* ---- the model's description ---------------------------------------------------------- */

static Status meta_add(ExportMeta *m, const char *key, ExportText *t)
{
    XT_ASSERT(m->n < EXPORT_META_MAX);
    if (t->oom || !t->p) {
        export_text_free(t);
        log_error("export: out of memory for the metadata entry %s", key);
        return XT_ERR_RUNTIME;
    }
    m->key[m->n] = key;
    m->value[m->n++] = t->p;
    *t = (ExportText){0};
    return XT_OK;
}

/* A JSON list of n floats, 9 significant digits each. */
static void text_floats(ExportText *t, const float *v, size_t n)
{
    export_text_printf(t, "[");
    for (size_t i = 0; i < n; i++) export_text_printf(t, "%s%.9g", i ? ", " : "", (double)v[i]);
    export_text_printf(t, "]");
}

/* Everything but the lists: model kind, head, sizes, provenance. */
static Status meta_scalars(ExportMeta *m, const ModelFile *mf)
{
    const ModelShape *s = &mf->shape;
    ExportText t = {0};
    Status st;
    export_text_printf(&t, "%s", XT_VERSION);
    if ((st = meta_add(m, "xentrain_version", &t)) != XT_OK) return st;
    export_text_printf(&t, "%s", config_model_type_name(s->type));
    if ((st = meta_add(m, "model_type", &t)) != XT_OK) return st;
    export_text_printf(&t, "%s", config_activation_name(s->act));
    if ((st = meta_add(m, "activation", &t)) != XT_OK) return st;
    export_text_printf(&t, "%s", config_head_name(s->head));
    if ((st = meta_add(m, "head", &t)) != XT_OK) return st;
    export_text_printf(&t, "[");
    for (int l = 0; l <= s->n_layers; l++) export_text_printf(&t, "%s%zu", l ? ", " : "", s->sizes[l]);
    export_text_printf(&t, "]");
    if ((st = meta_add(m, "layer_sizes", &t)) != XT_OK) return st;
    export_text_printf(&t, "%zu", s->type == MODEL_LOGISTIC ? (size_t)2 : model_outputs(s));
    return meta_add(m, "classes", &t);
}

Status export_meta_init(ExportMeta *m, const ModelFile *mf, bool with_normalization)
{
    *m = (ExportMeta){0};
    ExportText t = {0};
    Status st = meta_scalars(m, mf);
    if (st == XT_OK && mf->class_names && mf->n_class_names > 0) {
        export_text_printf(&t, "[");
        for (size_t k = 0; k < mf->n_class_names; k++) {
            if (k) export_text_printf(&t, ", ");
            export_text_json(&t, mf->class_names[k]);
        }
        export_text_printf(&t, "]");
        st = meta_add(m, "class_names", &t);
    }
    if (st == XT_OK) {
        export_text_printf(&t, "%s", config_normalize_name(mf->normalize));
        st = meta_add(m, "normalize", &t);
    }
    if (st == XT_OK) {
        export_text_printf(&t, "%lld", (long long)mf->epoch);
        st = meta_add(m, "epoch", &t);
    }
    if (st == XT_OK) {
        export_text_printf(&t, "%.9g", mf->val_loss);
        st = meta_add(m, "val_loss", &t);
    }
    if (st == XT_OK) {
        export_text_printf(&t, "%.9g", mf->val_accuracy);
        st = meta_add(m, "val_accuracy", &t);
    }
    if (st == XT_OK && mf->train_split[0]) {
        export_text_printf(&t, "%s", mf->train_split);
        st = meta_add(m, "train_split", &t);
    }
    if (st == XT_OK && with_normalization && mf->normalize != NORM_NONE) {
        text_floats(&t, mf->shift, mf->shape.sizes[0]);
        st = meta_add(m, "normalization_shift", &t);
        if (st == XT_OK) text_floats(&t, mf->mul, mf->shape.sizes[0]);
        if (st == XT_OK) st = meta_add(m, "normalization_mul", &t);
    }
    if (st != XT_OK) export_meta_free(m);
    return st;
}

void export_meta_free(ExportMeta *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->value[i]);
    *m = (ExportMeta){0};
}

/* ---- checks ---------------------------------------------------------------------------- */

/* Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF). */
static bool utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        size_t n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                 : (c & 0xF8) == 0xF0 ? 3 : 4;
        if (n == 4 || c == 0xC0 || c == 0xC1 || c > 0xF4) return false;
        uint32_t cp = n == 0 ? c : c & (0x3Fu >> n);
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

Status export_check_model(const ModelFile *mf, const char *model)
{
    const size_t D = mf->shape.sizes[0];
    for (size_t j = 0; mf->normalize != NORM_NONE && j < D; j++) {
        if (!isfinite(mf->shift[j]) || !isfinite(mf->mul[j])) {
            log_error("export: %s: /model/normalization %s[%zu] = %g is not finite; the model "
                      "cannot be used on any row (retrain it)", model,
                      isfinite(mf->shift[j]) ? "mul" : "shift", j,
                      (double)(isfinite(mf->shift[j]) ? mf->mul[j] : mf->shift[j]));
            return XT_ERR_USAGE;
        }
    }
    for (size_t k = 0; mf->class_names && k < mf->n_class_names; k++) {
        if (!utf8_valid(mf->class_names[k])) {
            log_error("export: %s: class_names[%zu] is not valid UTF-8, which ONNX and "
                      "safetensors metadata require (rewrite the class_names attribute of the "
                      "data file in UTF-8 and retrain, or remove it)", model, k);
            return XT_ERR_USAGE;
        }
    }
    return XT_OK;
}

Status export_parse_format(const char *name, ExportFormat *fmt)
{
    if (name && !strcmp(name, "onnx")) *fmt = EXPORT_ONNX;
    else if (name && !strcmp(name, "safetensors")) *fmt = EXPORT_SAFETENSORS;
    else return XT_ERR_USAGE;
    return XT_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

Status export_write_atomic(const ExportJob *job, ExportFill fill)
{
    char tmp[XT_PATH_MAX + 48];
    if (strlen(job->out) >= XT_PATH_MAX) {
        log_error("export: --out path too long (%zu bytes; at most %d)", strlen(job->out),
                  XT_PATH_MAX - 1);
        return XT_ERR_USAGE;
    }
    if (fsutil_temp_name(tmp, sizeof tmp, job->out) != XT_OK) return XT_ERR_USAGE;
    FILE *f = fopen(tmp, "wbx"); /* the name is unique: never another's temporary */
    if (!f) {
        log_error("export: cannot write %s: %s", tmp, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    Status st = fill(f, job);
    bool bad = ferror(f) != 0;
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = true;
        err = errno;
    }
    if (st == XT_OK && bad) {
        log_error("export: cannot write %s: %s", tmp, strerror(err));
        st = XT_ERR_RUNTIME;
    }
    if (st != XT_OK) {
        remove(tmp);
        return st;
    }
    return fsutil_commit(tmp, job->out);
}

Status export_write(const ModelFile *mf, const char *model, ExportFormat fmt, const char *path)
{
    Status st = export_check_model(mf, model);
    if (st != XT_OK) return st;
    const ExportJob job = {.mf = mf, .model = model, .out = path};
    return export_write_atomic(&job, fmt == EXPORT_ONNX ? export_onnx_fill
                                                        : export_safetensors_fill);
}

/* ---- the command ---------------------------------------------------------------------------- */

#define EXPORT_ABOUT                                                                        \
    "Writes a trained model (model.h5 of a run) in a format other tools read\n"              \
    "(docs/export.md):\n"                                                                    \
    "  onnx         ONNX opset 13: input \"features\" float32 [N, D] (raw features: the\n"   \
    "               stored normalisation is in the graph), outputs \"probabilities\"\n"      \
    "               [N, K] (K = 2 for logistic regression: P(0), P(1), as predict\n"         \
    "               writes) and \"logits\"; class names and the model's description\n"      \
    "               in metadata_props. Runs in ONNX Runtime.\n"                              \
    "  safetensors  the weights under torch.nn.Sequential names (\"0.weight\" (out, in),\n" \
    "               \"0.bias\", \"2.weight\", ...), float32; normalisation, class names\n"   \
    "               and the model's description in __metadata__. docs/export.md has\n"      \
    "               the PyTorch code that builds the matching model and loads it.\n"        \
    "The output is written to OUT.tmp.<random>, then renamed: a failed export\n"            \
    "leaves no file and never touches an existing one."

typedef struct {
    const char *model, *format, *out;
} ExportArgs;

static Status export_parse(int argc, char **argv, ExportArgs *a, ExportFormat *fmt, bool *help)
{
    *a = (ExportArgs){0};
    const OptSpec opts[] = {
        {.name = "model", OPT_STRING, &a->model, "M.h5", "the model file (model.h5 of a run)",
         .required = true},
        {.name = "format", OPT_STRING, &a->format, "F", "onnx or safetensors", .required = true},
        {.name = "out", OPT_STRING, &a->out, "FILE",
         "output file (e.g. model.onnx, model.safetensors)", .required = true},
    };
    OptTable t = {.cmd = "export",
                  .synopsis = "--model M.h5 --format onnx|safetensors --out FILE",
                  .about = EXPORT_ABOUT, .opts = opts, .n_opts = sizeof opts / sizeof opts[0]};
    Status st = opts_parse(&t, argc, argv, help);
    if (*help) opts_print_help(&t, stdout);
    if (st != XT_OK || *help) return st;
    if (export_parse_format(a->format, fmt) != XT_OK) {
        log_error("export: unknown --format '%s' (expected onnx or safetensors)", a->format);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* --out must not be a directory nor the model file itself (the rename would replace it). */
static Status check_out(const ExportArgs *a)
{
    struct stat so, sm;
    if (stat(a->out, &so) != 0) return XT_OK;
    if (S_ISDIR(so.st_mode)) {
        log_error("export: --out %s is a directory; name the file to write", a->out);
        return XT_ERR_USAGE;
    }
    if (stat(a->model, &sm) == 0 && sm.st_dev == so.st_dev && sm.st_ino == so.st_ino) {
        log_error("export: --out %s is the model file itself; choose another name", a->out);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

int export_main(int argc, char **argv)
{
    ExportArgs a;
    ExportFormat fmt = EXPORT_ONNX;
    bool help = false;
    Status st = export_parse(argc, argv, &a, &fmt, &help);
    if (help || st != XT_OK) return (int)st;
    if ((st = check_out(&a)) != XT_OK) return (int)st;
    ModelFile mf = {0};
    st = model_io_load(a.model, &mf);
    if (st == XT_OK) st = export_write(&mf, a.model, fmt, a.out);
    if (st == XT_OK) {
        char desc[256];
        model_shape_describe(&mf.shape, desc, sizeof desc);
        log_info("export: wrote %s (%s; model %s; normalize %s)", a.out, a.format, desc,
                 config_normalize_name(mf.normalize));
    }
    model_io_free(&mf);
    return (int)st;
}
