/* export: the safetensors bytes and the ONNX messages of small hand-made models, field by
 * field (names, shapes, offsets, raw data, transB, the head's nodes, metadata), JSON
 * escaping, UTF-8 and finiteness checks, and atomic writing (a failed export leaves no
 * file and an existing one untouched). The runtimes' view (ONNX Runtime, PyTorch, onnx's
 * checker) is tests/cli/export.sh's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnx/onnx.pb-c.h>

#include "export.h"
#include "export_common.h"
#include "log.h"
#include "model.h"
#include "xt_test.h"

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", xt_test_dir, name);
}

/* A model of the given type: D = 3, one hidden layer of 2 for mlp, K outputs; params
 * 0.5 * i - 1 (every value distinct), standardised with shift j + 1 and mul 1 / (j + 2). */
typedef struct {
    ModelFile mf;
    float params[64], shift[3], mul[3];
    char *names[3];
} Fixture;

static void fixture(Fixture *x, ModelType type, Head head, size_t K, bool normalize)
{
    memset(x, 0, sizeof *x);
    char err[128];
    int64_t hidden[1] = {2};
    assert_int_equal(model_shape_init(&x->mf.shape, type, ACT_TANH, head, 3, hidden,
                                      type == MODEL_MLP ? 1 : 0, K, err, sizeof err), XT_OK);
    assert_true(x->mf.shape.n_params <= 64);
    for (size_t i = 0; i < x->mf.shape.n_params; i++) x->params[i] = 0.5f * (float)i - 1.0f;
    for (size_t j = 0; j < 3; j++) {
        x->shift[j] = (float)j + 1.0f;
        x->mul[j] = 1.0f / ((float)j + 2.0f);
    }
    x->mf.params = x->params;
    x->mf.normalize = normalize ? NORM_STANDARDIZE : NORM_NONE;
    x->mf.shift = normalize ? x->shift : NULL;
    x->mf.mul = normalize ? x->mul : NULL;
    x->mf.epoch = 7;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Nothing in the test directory whose name contains ".tmp." (a leftover temporary). */
static void assert_no_temp_files(void)
{
    DIR *d = opendir(xt_test_dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp.")) fail_msg("temporary file left behind: %s", e->d_name);
    }
    closedir(d);
}

static void test_export_safetensors_layout(void **state)
{
    (void)state;
    Fixture x;
    fixture(&x, MODEL_MLP, HEAD_SOFTMAX, 2, true);
    char *names[2] = {"a\"b", "c\\d\te"};
    x.mf.class_names = names;
    x.mf.n_class_names = 2;
    char path[600];
    path_in(path, sizeof path, "mlp.safetensors");
    assert_int_equal(export_write(&x.mf, "fixture.h5", EXPORT_SAFETENSORS, path), XT_OK);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    uint64_t n = 0;
    for (int b = 0; b < 8; b++) n |= (uint64_t)buf[b] << (8 * b);
    assert_true(8 + n < len);
    assert_int_equal((8 + n) % 8, 0);
    assert_int_equal(buf[8], '{');
    char *hdr = strndup((const char *)buf + 8, (size_t)n);
    /* Sequential(Linear(3, 2), Tanh, Linear(2, 2)): W1 (2, 3), b1, W2 (2, 2), b2 */
    assert_non_null(strstr(hdr, "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"));
    assert_non_null(strstr(hdr, "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}"));
    assert_non_null(strstr(hdr, "\"2.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[32,48]}"));
    assert_non_null(strstr(hdr, "\"2.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[48,56]}"));
    assert_null(strstr(hdr, "\"1.weight\""));
    assert_non_null(strstr(hdr, "\"layer_sizes\":\"[3, 2, 2]\""));
    assert_non_null(strstr(hdr, "\"activation\":\"tanh\""));
    assert_non_null(strstr(hdr, "\"normalize\":\"standardize\""));
    assert_non_null(strstr(hdr, "\"normalization_shift\":\"[1, 2, 3]\""));
    assert_non_null(strstr(hdr, "\"normalization_mul\":\"[0.5, 0.333333343, 0.25]\""));
    /* the list is JSON text inside a JSON string: escaped twice */
    assert_non_null(strstr(hdr, "\"class_names\":\"[\\\"a\\\\\\\"b\\\", \\\"c\\\\\\\\d\\\\te\\\"]\""));
    /* the data: the parameters in model order (W1 b1 W2 b2), float32 little-endian */
    assert_int_equal(len - 8 - n, x.mf.shape.n_params * 4);
    unsigned char want[64 * 4];
    export_f32le(want, x.params, x.mf.shape.n_params);
    assert_memory_equal(buf + 8 + n, want, x.mf.shape.n_params * 4);
    free(hdr);
    free(buf);
    assert_no_temp_files();
}

static const Onnx__NodeProto *node_of(const Onnx__GraphProto *g, size_t i, const char *op)
{
    assert_true(i < g->n_node);
    assert_string_equal(g->node[i]->op_type, op);
    return g->node[i];
}

static const Onnx__TensorProto *init_named(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!strcmp(g->initializer[i]->name, name)) return g->initializer[i];
    fail_msg("no initializer %s", name);
    return NULL;
}

static Onnx__ModelProto *onnx_of(const Fixture *x, const char *name)
{
    char path[600];
    path_in(path, sizeof path, name);
    assert_int_equal(export_write(&x->mf, "fixture.h5", EXPORT_ONNX, path), XT_OK);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(m);
    assert_int_equal(m->ir_version, EXPORT_ONNX_IR_VERSION);
    assert_int_equal(m->n_opset_import, 1);
    assert_string_equal(m->opset_import[0]->domain, "");
    assert_int_equal(m->opset_import[0]->version, EXPORT_ONNX_OPSET);
    return m;
}

static void test_export_onnx_mlp_graph(void **state)
{
    (void)state;
    Fixture x;
    fixture(&x, MODEL_MLP, HEAD_SOFTMAX, 2, true);
    char *names[2] = {"cat", "chat\xc3\xa9"};
    x.mf.class_names = names;
    x.mf.n_class_names = 2;
    Onnx__ModelProto *m = onnx_of(&x, "mlp.onnx");
    const Onnx__GraphProto *g = m->graph;
    assert_int_equal(g->n_node, 6);
    const char *ops[6] = {"Sub", "Mul", "Gemm", "Tanh", "Gemm", "Softmax"};
    for (size_t i = 0; i < 6; i++) node_of(g, i, ops[i]);
    assert_string_equal(g->node[0]->input[0], "features");
    assert_string_equal(g->node[0]->input[1], "normalization.shift");
    const Onnx__NodeProto *gemm = g->node[2];
    assert_int_equal(gemm->n_input, 3);
    assert_string_equal(gemm->input[0], g->node[1]->output[0]);
    assert_string_equal(gemm->input[1], "layer1.weight");
    assert_int_equal(gemm->n_attribute, 1);
    assert_string_equal(gemm->attribute[0]->name, "transB");
    assert_int_equal(gemm->attribute[0]->i, 1);
    assert_string_equal(g->node[4]->output[0], "logits");
    assert_string_equal(g->node[5]->output[0], "probabilities");
    assert_int_equal(g->node[5]->attribute[0]->i, 1); /* Softmax axis */
    const Onnx__TensorProto *w1 = init_named(g, "layer1.weight");
    assert_int_equal(w1->n_dims, 2);
    assert_int_equal(w1->dims[0], 2); /* (out, in) as stored */
    assert_int_equal(w1->dims[1], 3);
    unsigned char want[6 * 4];
    export_f32le(want, x.params + x.mf.shape.w_off[0], 6);
    assert_int_equal(w1->raw_data.len, sizeof want);
    assert_memory_equal(w1->raw_data.data, want, sizeof want);
    const Onnx__TensorProto *mul = init_named(g, "normalization.mul");
    export_f32le(want, x.mul, 3);
    assert_memory_equal(mul->raw_data.data, want, 12);
    assert_int_equal(g->n_input, 1);
    assert_string_equal(g->input[0]->name, "features");
    const Onnx__TensorShapeProto *shp = g->input[0]->type->tensor_type->shape;
    assert_string_equal(shp->dim[0]->dim_param, "N");
    assert_int_equal(shp->dim[1]->dim_value, 3);
    assert_int_equal(g->n_output, 2);
    bool found = false;
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        if (strcmp(m->metadata_props[i]->key, "class_names")) continue;
        assert_string_equal(m->metadata_props[i]->value, "[\"cat\", \"chat\xc3\xa9\"]");
        found = true;
    }
    assert_true(found);
    onnx__model_proto__free_unpacked(m, NULL);
}

/* Logistic regression: one logit, probabilities [sigmoid(-z), sigmoid(z)] = [P(0), P(1)];
 * no normalisation nodes when there is none. */
static void test_export_onnx_logistic_head(void **state)
{
    (void)state;
    Fixture x;
    fixture(&x, MODEL_LOGISTIC, HEAD_SIGMOID, 2, false);
    Onnx__ModelProto *m = onnx_of(&x, "logistic.onnx");
    const Onnx__GraphProto *g = m->graph;
    assert_int_equal(g->n_node, 4);
    assert_string_equal(node_of(g, 0, "Gemm")->input[0], "features");
    const Onnx__NodeProto *neg = node_of(g, 1, "Neg");
    const Onnx__NodeProto *cat = node_of(g, 2, "Concat");
    node_of(g, 3, "Sigmoid");
    assert_string_equal(neg->input[0], "logits");
    assert_string_equal(cat->input[0], neg->output[0]); /* -z first: column 0 is P(0) */
    assert_string_equal(cat->input[1], "logits");
    assert_string_equal(cat->attribute[0]->name, "axis");
    assert_int_equal(cat->attribute[0]->i, 1);
    assert_int_equal(g->n_initializer, 2);
    assert_int_equal(g->output[0]->type->tensor_type->shape->dim[1]->dim_value, 2);
    assert_int_equal(g->output[1]->type->tensor_type->shape->dim[1]->dim_value, 1);
    onnx__model_proto__free_unpacked(m, NULL);
}

static void test_export_multilabel_sigmoid_head(void **state)
{
    (void)state;
    Fixture x;
    fixture(&x, MODEL_MULTILABEL, HEAD_SIGMOID, 3, true);
    Onnx__ModelProto *m = onnx_of(&x, "multilabel.onnx");
    assert_int_equal(m->graph->n_node, 4); /* Sub, Mul, Gemm, Sigmoid */
    node_of(m->graph, 3, "Sigmoid");
    assert_int_equal(m->graph->output[0]->type->tensor_type->shape->dim[1]->dim_value, 3);
    onnx__model_proto__free_unpacked(m, NULL);
}

static void test_export_json_escaping(void **state)
{
    (void)state;
    ExportText t = {0};
    export_text_json(&t, "q\"b\\s\nn\x01 \xc3\xa9");
    assert_false(t.oom);
    assert_string_equal(t.p, "\"q\\\"b\\\\s\\nn\\u0001 \xc3\xa9\"");
    export_text_free(&t);
    assert_null(t.p);
}

/* Refused models: exit status 2, and the existing output is left as it was. */
static void test_export_refuses_and_keeps_output(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "keep.onnx");
    assert_true(xt_test_write_file(path, "precious", 8));
    Fixture x;
    fixture(&x, MODEL_SOFTMAX, HEAD_SOFTMAX, 3, true);
    x.shift[1] = INFINITY;
    char msg[1024];
    xt_test_capture_begin();
    Status st = export_write(&x.mf, "fixture.h5", EXPORT_ONNX, path);
    xt_test_capture_end(msg, sizeof msg);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_non_null(strstr(msg, "fixture.h5: /model/normalization shift[1] = inf is not finite"));
    x.shift[1] = 2.0f;
    char *bad[3] = {"ok", "caf\xe9", "x"}; /* Latin-1 e-acute */
    x.mf.class_names = bad;
    x.mf.n_class_names = 3;
    xt_test_capture_begin();
    st = export_write(&x.mf, "fixture.h5", EXPORT_SAFETENSORS, path);
    xt_test_capture_end(msg, sizeof msg);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_non_null(strstr(msg, "class_names[1] is not valid UTF-8"));
    const char *invalid[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        char *one[1] = {(char *)invalid[i]};
        x.mf.class_names = one;
        x.mf.n_class_names = 1;
        xt_test_capture_begin();
        st = export_check_model(&x.mf, "fixture.h5");
        xt_test_capture_end(msg, sizeof msg);
        assert_int_equal(st, XT_ERR_USAGE);
    }
    char *good[2] = {"\xf0\x9f\x90\x88", "\xe2\x82\xac"}; /* U+1F408, U+20AC */
    x.mf.class_names = good;
    x.mf.n_class_names = 2;
    assert_int_equal(export_check_model(&x.mf, "fixture.h5"), XT_OK);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(buf, "precious", 8);
    free(buf);
    assert_no_temp_files();
}

/* A writer that fails half way: the temporary file is removed, the destination untouched. */
static Status fill_half_then_fail(FILE *f, const ExportJob *job)
{
    (void)job;
    fputs("half a file", f);
    return XT_ERR_RUNTIME;
}

static void test_export_failed_write_leaves_nothing(void **state)
{
    (void)state;
    char path[600], kept[600];
    path_in(path, sizeof path, "never.safetensors");
    Fixture x;
    fixture(&x, MODEL_SOFTMAX, HEAD_SOFTMAX, 3, false);
    ExportJob job = {.mf = &x.mf, .model = "fixture.h5", .out = path};
    assert_int_equal(export_write_atomic(&job, fill_half_then_fail), XT_ERR_RUNTIME);
    FILE *f = fopen(path, "rb");
    assert_null(f);
    path_in(kept, sizeof kept, "kept.safetensors");
    assert_true(xt_test_write_file(kept, "old", 3));
    job.out = kept;
    assert_int_equal(export_write_atomic(&job, fill_half_then_fail), XT_ERR_RUNTIME);
    size_t len;
    unsigned char *buf = slurp(kept, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "old", 3);
    free(buf);
    assert_no_temp_files();
}

static void test_export_parse_format(void **state)
{
    (void)state;
    ExportFormat f = EXPORT_SAFETENSORS;
    assert_int_equal(export_parse_format("onnx", &f), XT_OK);
    assert_int_equal(f, EXPORT_ONNX);
    assert_int_equal(export_parse_format("safetensors", &f), XT_OK);
    assert_int_equal(f, EXPORT_SAFETENSORS);
    assert_int_equal(export_parse_format("ONNX", &f), XT_ERR_USAGE);
    assert_int_equal(export_parse_format("pt", &f), XT_ERR_USAGE);
    assert_int_equal(export_parse_format(NULL, &f), XT_ERR_USAGE);
}

int main(void)
{
    log_set_quiet(true);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_safetensors_layout),
        cmocka_unit_test(test_export_onnx_mlp_graph),
        cmocka_unit_test(test_export_onnx_logistic_head),
        cmocka_unit_test(test_export_multilabel_sigmoid_head),
        cmocka_unit_test(test_export_json_escaping),
        cmocka_unit_test(test_export_refuses_and_keeps_output),
        cmocka_unit_test(test_export_failed_write_leaves_nothing),
        cmocka_unit_test(test_export_parse_format),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
