/* ONNX through protobuf-c: the only file that includes the code protoc-c generates from
 * onnx.proto at build time (CMakeLists.txt).
 *
 * The graph (opset EXPORT_ONNX_OPSET), for a model with L layers:
 *   features (N, D) -> [Sub normalization.shift -> Mul normalization.mul]   (when stored)
 *   -> Gemm(layer1.weight (out, in), layer1.bias, transB = 1) -> act -> ... -> Gemm
 *   -> logits (N, outputs)
 *   -> Softmax(axis 1) | Sigmoid | logistic: Sigmoid(Concat(-logits, logits)) = [P(0), P(1)]
 *   -> probabilities (N, K)
 * Every message is allocated from one arena and freed at once. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <onnx/onnx.pb-c.h>

#include "export.h"
#include "export_common.h"
#include "model.h"

/* ---- an arena for the messages ---------------------------------------------------------- */

typedef struct {
    void **ptr;
    size_t n, cap;
    bool oom;
} Arena;

static void *arena_calloc(Arena *a, size_t n, size_t size)
{
    if (a->oom) return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **p = realloc(a->ptr, cap * sizeof *p);
        if (!p) {
            a->oom = true;
            return NULL;
        }
        a->ptr = p;
        a->cap = cap;
    }
    void *q = calloc(n ? n : 1, size);
    if (!q) a->oom = true;
    else a->ptr[a->n++] = q;
    return q;
}

static char *arena_str(Arena *a, const char *fmt, ...) XT_PRINTF(2, 3);
static char *arena_str(Arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : arena_calloc(a, (size_t)n + 1, 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void arena_free(Arena *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->ptr[i]);
    free(a->ptr);
    *a = (Arena){0};
}

/* ---- graph pieces ----------------------------------------------------------------------- */

typedef struct {
    Arena *a;
    Onnx__NodeProto **node;
    size_t n_node, cap_node;
    Onnx__TensorProto **init;
    size_t n_init, cap_init;
} Graph;

/* A node op(in...) -> out, with at most one integer attribute (attr = NULL: none). */
static void node_add(Graph *g, const char *op, const char *in0, const char *in1,
                     const char *in2, const char *out, const char *attr, int64_t value)
{
    Onnx__NodeProto *n = arena_calloc(g->a, 1, sizeof *n);
    char **inputs = arena_calloc(g->a, 3, sizeof *inputs);
    char **outputs = arena_calloc(g->a, 1, sizeof *outputs);
    if (!n || !inputs || !outputs) return;
    XT_ASSERT(g->n_node < g->cap_node);
    onnx__node_proto__init(n);
    const char *in[3] = {in0, in1, in2};
    for (size_t i = 0; i < 3 && in[i]; i++) inputs[n->n_input++] = arena_str(g->a, "%s", in[i]);
    outputs[0] = arena_str(g->a, "%s", out);
    n->input = inputs;
    n->output = outputs;
    n->n_output = 1;
    n->op_type = arena_str(g->a, "%s", op);
    n->name = arena_str(g->a, "%s_%zu", op, g->n_node);
    if (attr) {
        Onnx__AttributeProto *at = arena_calloc(g->a, 1, sizeof *at);
        Onnx__AttributeProto **list = arena_calloc(g->a, 1, sizeof *list);
        if (!at || !list) return;
        onnx__attribute_proto__init(at);
        at->name = arena_str(g->a, "%s", attr);
        at->has_type = 1;
        at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        at->has_i = 1;
        at->i = value;
        list[0] = at;
        n->attribute = list;
        n->n_attribute = 1;
    }
    g->node[g->n_node++] = n;
}

/* A float32 initializer of shape (d0) or (d0, d1) (d1 = 0), raw little-endian data. */
static void init_add(Graph *g, const char *name, const float *v, size_t d0, size_t d1)
{
    size_t count = d1 ? d0 * d1 : d0;
    Onnx__TensorProto *t = arena_calloc(g->a, 1, sizeof *t);
    int64_t *dims = arena_calloc(g->a, 2, sizeof *dims);
    uint8_t *raw = arena_calloc(g->a, count, 4);
    if (!t || !dims || !raw) return;
    XT_ASSERT(g->n_init < g->cap_init);
    onnx__tensor_proto__init(t);
    dims[0] = (int64_t)d0;
    dims[1] = (int64_t)d1;
    t->dims = dims;
    t->n_dims = d1 ? 2 : 1;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = arena_str(g->a, "%s", name);
    export_f32le(raw, v, count);
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = count * 4;
    g->init[g->n_init++] = t;
}

/* A float32 graph input or output of shape (N, cols), N symbolic. */
static Onnx__ValueInfoProto *value_info(Arena *a, const char *name, size_t cols,
                                        const char *doc)
{
    Onnx__ValueInfoProto *vi = arena_calloc(a, 1, sizeof *vi);
    Onnx__TypeProto *type = arena_calloc(a, 1, sizeof *type);
    Onnx__TypeProto__Tensor *tt = arena_calloc(a, 1, sizeof *tt);
    Onnx__TensorShapeProto *shape = arena_calloc(a, 1, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **dim = arena_calloc(a, 2, sizeof *dim);
    Onnx__TensorShapeProto__Dimension *d0 = arena_calloc(a, 1, sizeof *d0);
    Onnx__TensorShapeProto__Dimension *d1 = arena_calloc(a, 1, sizeof *d1);
    if (!vi || !type || !tt || !shape || !dim || !d0 || !d1) return NULL;
    onnx__tensor_shape_proto__dimension__init(d0);
    onnx__tensor_shape_proto__dimension__init(d1);
    d0->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d0->dim_param = arena_str(a, "N");
    d1->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    d1->dim_value = (int64_t)cols;
    dim[0] = d0;
    dim[1] = d1;
    onnx__tensor_shape_proto__init(shape);
    shape->dim = dim;
    shape->n_dim = 2;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    onnx__type_proto__init(type);
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = arena_str(a, "%s", name);
    vi->type = type;
    vi->doc_string = arena_str(a, "%s", doc);
    return vi;
}

/* ---- the graph ------------------------------------------------------------------------------ */

static const char *activation_op(Activation act)
{
    return act == ACT_TANH ? "Tanh" : act == ACT_SIGMOID ? "Sigmoid" : "Relu";
}

/* Normalisation, layers, head: the nodes and initializers of mf into g. */
static void graph_nodes(Graph *g, const ModelFile *mf)
{
    const ModelShape *s = &mf->shape;
    const char *x = "features";
    if (mf->normalize != NORM_NONE) {
        init_add(g, "normalization.shift", mf->shift, s->sizes[0], 0);
        init_add(g, "normalization.mul", mf->mul, s->sizes[0], 0);
        node_add(g, "Sub", x, "normalization.shift", NULL, "features_centred", NULL, 0);
        node_add(g, "Mul", "features_centred", "normalization.mul", NULL, "features_normalized",
                 NULL, 0);
        x = "features_normalized";
    }
    char w[32], b[32], z[32];
    for (int l = 1; l <= s->n_layers; l++) {
        snprintf(w, sizeof w, "layer%d.weight", l);
        snprintf(b, sizeof b, "layer%d.bias", l);
        init_add(g, w, mf->params + s->w_off[l - 1], s->sizes[l], s->sizes[l - 1]);
        init_add(g, b, mf->params + s->b_off[l - 1], s->sizes[l], 0);
        if (l == s->n_layers) snprintf(z, sizeof z, "logits");
        else snprintf(z, sizeof z, "layer%d.z", l);
        node_add(g, "Gemm", x, w, b, z, "transB", 1);
        if (l == s->n_layers) break;
        char *a = arena_str(g->a, "layer%d.a", l);
        if (!a) return;
        node_add(g, activation_op(s->act), z, NULL, NULL, a, NULL, 0);
        x = a;
    }
    if (s->type == MODEL_LOGISTIC) { /* [sigmoid(-z), sigmoid(z)] = [P(0), P(1)] */
        node_add(g, "Neg", "logits", NULL, NULL, "logits_negated", NULL, 0);
        node_add(g, "Concat", "logits_negated", "logits", NULL, "logits_pair", "axis", 1);
        node_add(g, "Sigmoid", "logits_pair", NULL, NULL, "probabilities", NULL, 0);
    } else if (s->head == HEAD_SOFTMAX) {
        node_add(g, "Softmax", "logits", NULL, NULL, "probabilities", "axis", 1);
    } else {
        node_add(g, "Sigmoid", "logits", NULL, NULL, "probabilities", NULL, 0);
    }
}

/* What "probabilities" holds, for its doc_string. */
static const char *probabilities_doc(const ModelShape *s)
{
    if (s->type == MODEL_LOGISTIC) return "[P(class 0), P(class 1)] = sigmoid([-logit, logit])";
    return s->head == HEAD_SOFTMAX ? "softmax(logits) over the classes"
                                   : "sigmoid(logits): each label's probability";
}

static Onnx__GraphProto *graph_build(Arena *a, const ModelFile *mf)
{
    const ModelShape *s = &mf->shape;
    Graph g = {.a = a, .cap_node = 2 + 2 * (size_t)s->n_layers + 3,
               .cap_init = 2 + 2 * (size_t)s->n_layers};
    g.node = arena_calloc(a, g.cap_node, sizeof *g.node);
    g.init = arena_calloc(a, g.cap_init, sizeof *g.init);
    Onnx__GraphProto *gp = arena_calloc(a, 1, sizeof *gp);
    Onnx__ValueInfoProto **in = arena_calloc(a, 1, sizeof *in);
    Onnx__ValueInfoProto **out = arena_calloc(a, 2, sizeof *out);
    if (!g.node || !g.init || !gp || !in || !out) return NULL;
    graph_nodes(&g, mf);
    const size_t K = s->type == MODEL_LOGISTIC ? 2 : model_outputs(s);
    in[0] = value_info(a, "features", s->sizes[0], "raw features, one row per sample "
                                                   "(the normalisation is in the graph)");
    out[0] = value_info(a, "probabilities", K, probabilities_doc(s));
    out[1] = value_info(a, "logits", model_outputs(s), "the last layer's outputs");
    onnx__graph_proto__init(gp);
    gp->name = arena_str(a, "xentrain_%s", config_model_type_name(s->type));
    gp->node = g.node;
    gp->n_node = g.n_node;
    gp->initializer = g.init;
    gp->n_initializer = g.n_init;
    gp->input = in;
    gp->n_input = 1;
    gp->output = out;
    gp->n_output = 2;
    return gp;
}

/* The ModelProto around the graph: IR version, opset, producer, metadata_props. */
static Status model_build(Arena *a, const ModelFile *mf, Onnx__ModelProto *m)
{
    ExportMeta meta;
    Status st = export_meta_init(&meta, mf, false);
    if (st != XT_OK) return st;
    onnx__model_proto__init(m);
    Onnx__OperatorSetIdProto *ops = arena_calloc(a, 1, sizeof *ops);
    Onnx__OperatorSetIdProto **opl = arena_calloc(a, 1, sizeof *opl);
    Onnx__StringStringEntryProto **props = arena_calloc(a, meta.n, sizeof *props);
    for (size_t i = 0; props && i < meta.n; i++) {
        Onnx__StringStringEntryProto *e = arena_calloc(a, 1, sizeof *e);
        if (!e) break;
        onnx__string_string_entry_proto__init(e);
        e->key = arena_str(a, "%s", meta.key[i]);
        e->value = arena_str(a, "%s", meta.value[i]);
        props[i] = e;
    }
    if (ops && opl) {
        onnx__operator_set_id_proto__init(ops);
        ops->domain = arena_str(a, "%s", "");
        ops->has_version = 1;
        ops->version = EXPORT_ONNX_OPSET;
        opl[0] = ops;
    }
    m->has_ir_version = 1;
    m->ir_version = EXPORT_ONNX_IR_VERSION;
    m->opset_import = opl;
    m->n_opset_import = 1;
    m->producer_name = arena_str(a, "xentrain");
    m->producer_version = arena_str(a, "%s", XT_VERSION);
    m->doc_string = arena_str(a, "xentrain %s model: input \"features\" (raw), outputs "
                                 "\"probabilities\" and \"logits\"",
                              config_model_type_name(mf->shape.type));
    m->metadata_props = props;
    m->n_metadata_props = meta.n;
    m->graph = graph_build(a, mf);
    export_meta_free(&meta);
    return XT_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct {
    ProtobufCBuffer base; /* first: protobuf-c calls append with &base */
    FILE *f;
} FileBuffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    FileBuffer *fb = (FileBuffer *)b;
    fwrite(data, 1, len, fb->f); /* ferror is checked by export_write_atomic */
}

Status export_onnx_fill(FILE *f, const ExportJob *job)
{
    Arena a = {0};
    Onnx__ModelProto m;
    Status st = model_build(&a, job->mf, &m);
    if (st == XT_OK && a.oom) {
        log_error("export: out of memory building the ONNX graph of %s", job->model);
        st = XT_ERR_RUNTIME;
    }
    size_t size = st == XT_OK ? protobuf_c_message_get_packed_size(&m.base) : 0;
    if (st == XT_OK && size > (size_t)INT32_MAX) {
        log_error("export: %s: the ONNX file would take %zu bytes; protobuf files are "
                  "limited to 2 GiB (ONNX's external data is not written): export --format "
                  "safetensors instead", job->model, size);
        st = XT_ERR_USAGE;
    }
    if (st == XT_OK) {
        FileBuffer fb = {.base = {.append = file_append}, .f = f};
        protobuf_c_message_pack_to_buffer(&m.base, &fb.base);
    }
    arena_free(&a);
    return st;
}
