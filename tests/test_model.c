/* Models: whole-model finite-difference gradient checks for every type and activation,
 * exact outputs from hand-set weights, shapes and initialisation, W_1 kept by column (the
 * same model, transposed in memory, (out, in) in files), and the hooked backward
 * (comm.overlap): products in pieces give the plain backward's gradients, each layer is
 * announced once, in order L .. 1, with its gradient already final. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "model.h"
#include "xt_test.h"

#define BATCH 4

/* Mean loss of the model on (X, y or t) and, when g != NULL, its gradient in m->grads. */
/* The mean loss; with grads, its gradient there too. */
static double model_loss(Model *m, const float *X, const int32_t *y, const float *t, float *grads)
{
    const ModelShape *s = &m->shape;
    size_t K = model_outputs(s);
    const float *z = model_forward(m, X, BATCH);
    float dz[BATCH * 8];
    LossOptions o = loss_options_default();
    LossTotals tot = {0};
    if (s->type == MODEL_LOGISTIC) loss_binary_xent(dz, NULL, &tot, z, y, BATCH, &o);
    else if (s->head == HEAD_SOFTMAX) loss_softmax_xent(dz, NULL, &tot, z, y, BATCH, K, &o);
    else loss_sigmoid_xent(dz, NULL, &tot, z, t, BATCH, K, &o);
    if (grads) {
        float sc = (float)loss_grad_scale(&tot, LOSS_REDUCE_MEAN);
        for (size_t i = 0; i < BATCH * K; i++) dz[i] *= sc;
        model_backward(m, X, dz, BATCH, false, grads, NULL);
    }
    return loss_reduce(&tot, LOSS_REDUCE_MEAN);
}

static double fd_model(ModelType type, Activation act, Head head, const char *name)
{
    const size_t D = 5, K = type == MODEL_LOGISTIC ? 2 : 3;
    const int64_t hidden[2] = {4, 3};
    ModelShape s;
    char err[256];
    assert_int_equal(model_shape_init(&s, type, act, head, D, hidden, 2, K, err, sizeof err), XT_OK);
    Model m;
    float *params = calloc(s.n_params, sizeof *params), *grads = calloc(s.n_params, sizeof *grads);
    assert_true(params && grads);
    assert_int_equal(model_init(&m, &s, BATCH, params), XT_OK);
    Rng rng;
    rng_seed(&rng, 11);
    model_init_params(&m, INIT_XAVIER, &rng);
    for (int l = 0; l < s.n_layers; l++) /* non-zero biases exercise their gradient */
        for (size_t j = 0; j < s.sizes[l + 1]; j++)
            m.params[s.b_off[l] + j] = (float)(0.3 * rng_normal(&rng));
    float X[BATCH * 5];
    for (size_t i = 0; i < BATCH * D; i++) X[i] = (float)rng_normal(&rng);
    int32_t y[BATCH] = {0, 1, 2 % (int32_t)K, 1};
    float t[BATCH * 3] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0};
    model_loss(&m, X, y, t, grads);
    double worst = 0.0;
    for (size_t p = 0; p < s.n_params; p++) {
        float keep = m.params[p];
        const double h = 3e-3;
        float pp = (float)(keep + h), pm = (float)(keep - h);
        m.params[p] = pp;
        double lp = model_loss(&m, X, y, t, NULL);
        m.params[p] = pm;
        double lm = model_loss(&m, X, y, t, NULL);
        m.params[p] = keep;
        double fd = (lp - lm) / ((double)pp - (double)pm);
        double e = fabs(fd - (double)grads[p]) / fmax(fabs(fd), 1e-2);
        if (e > worst) worst = e;
    }
    printf("  model fd %-28s %4zu params  max rel err %.2e\n", name, s.n_params, worst);
    model_free(&m);
    free(params);
    free(grads);
    return worst;
}

static void test_model_finite_differences(void **state)
{
    (void)state;
    const struct {
        ModelType t;
        Activation a;
        Head h;
        const char *name;
    } cases[] = {
        {MODEL_LOGISTIC, ACT_RELU, HEAD_SIGMOID, "logistic"},
        {MODEL_SOFTMAX, ACT_RELU, HEAD_SOFTMAX, "softmax"},
        {MODEL_MULTILABEL, ACT_RELU, HEAD_SIGMOID, "multilabel"},
        {MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, "mlp relu softmax"},
        {MODEL_MLP, ACT_TANH, HEAD_SOFTMAX, "mlp tanh softmax"},
        {MODEL_MLP, ACT_SIGMOID, HEAD_SOFTMAX, "mlp sigmoid softmax"},
        {MODEL_MLP, ACT_RELU, HEAD_SIGMOID, "mlp relu sigmoid (multilabel)"},
        {MODEL_MLP, ACT_TANH, HEAD_SIGMOID, "mlp tanh sigmoid (multilabel)"},
    };
    /* float forward: the check is for sign, layout and transposition errors; the loss
     * itself is checked to 1e-6 in double in test_loss */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_true(fd_model(cases[i].t, cases[i].a, cases[i].h, cases[i].name) < 2e-3);
}

/* 2-2-2 network with hand-set weights: exact outputs. */
static void test_model_hand_set_weights(void **state)
{
    (void)state;
    const int64_t hidden[1] = {2};
    ModelShape s;
    char err[256];
    assert_int_equal(model_shape_init(&s, MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, 2, hidden, 1, 2, err,
                                      sizeof err), XT_OK);
    assert_int_equal(s.n_params, 2 * 2 + 2 + 2 * 2 + 2);
    Model m;
    float params[12], paramsl[3];
    assert_int_equal(model_init(&m, &s, 2, params), XT_OK);
    /* W1 = [[1, -1], [2, 0.5]] (out, in), b1 = [0, -1]; W2 = [[1, 1], [-1, 2]], b2 = [0.5, 0] */
    const float p[12] = {1, -1, 2, 0.5f, 0, -1, 1, 1, -1, 2, 0.5f, 0};
    memcpy(m.params, p, sizeof p);
    const float X[4] = {3, 1, -1, 2};
    const float *z = model_forward(&m, X, 2);
    /* row 0: h = relu([3-1, 6+0.5-1]) = [2, 5.5]; z = [2+5.5+0.5, -2+11] = [8, 9] */
    /* row 1: h = relu([-1-2, -2+1-1]) = [0, 0];   z = [0.5, 0] */
    assert_true(z[0] == 8.0f && z[1] == 9.0f && z[2] == 0.5f && z[3] == 0.0f);
    /* logistic 2 -> 1: z = w.x + b */
    ModelShape sl;
    assert_int_equal(model_shape_init(&sl, MODEL_LOGISTIC, ACT_RELU, HEAD_SIGMOID, 2, NULL, 0, 2, err,
                                      sizeof err), XT_OK);
    Model ml;
    assert_int_equal(model_init(&ml, &sl, 2, paramsl), XT_OK);
    ml.params[0] = 0.5f;
    ml.params[1] = -2.0f;
    ml.params[2] = 0.25f;
    const float *zl = model_forward(&ml, X, 2);
    assert_true(zl[0] == 1.5f - 2.0f + 0.25f && zl[1] == -0.5f - 4.0f + 0.25f);
    model_free(&ml);
    model_free(&m);
    model_free(&m); /* idempotent */
}

static void test_model_shapes_and_errors(void **state)
{
    (void)state;
    ModelShape s;
    char err[256];
    const int64_t h[2] = {256, 128};
    assert_int_equal(model_shape_init(&s, MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, 784, h, 2, 10, err,
                                      sizeof err), XT_OK);
    assert_int_equal(s.n_params, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    assert_int_equal(model_outputs(&s), 10);
    char d[128];
    model_shape_describe(&s, d, sizeof d);
    assert_non_null(strstr(d, "784-256-128-10"));
    assert_int_equal(model_shape_init(&s, MODEL_LOGISTIC, ACT_RELU, HEAD_SOFTMAX, 4, NULL, 0, 3, err,
                                      sizeof err), XT_ERR_USAGE);
    assert_non_null(strstr(err, "softmax"));
    assert_int_equal(model_shape_init(&s, MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, 4, NULL, 0, 3, err,
                                      sizeof err), XT_ERR_USAGE);
    assert_int_equal(model_shape_init(&s, MODEL_SOFTMAX, ACT_RELU, HEAD_SOFTMAX, 0, NULL, 0, 3, err,
                                      sizeof err), XT_ERR_USAGE);
    assert_int_equal(model_shape_init(&s, MODEL_MULTILABEL, ACT_RELU, HEAD_SOFTMAX, 3, NULL, 0, 5,
                                      err, sizeof err), XT_OK);
    assert_int_equal(s.head, HEAD_SIGMOID);
}

static void test_model_init_schemes(void **state)
{
    (void)state;
    const int64_t h[1] = {400};
    ModelShape s;
    char err[256];
    assert_int_equal(model_shape_init(&s, MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, 300, h, 1, 10, err,
                                      sizeof err), XT_OK);
    Model m;
    float *params = calloc(s.n_params, sizeof *params);
    assert_true(params != NULL);
    assert_int_equal(model_init(&m, &s, 1, params), XT_OK);
    Rng r;
    rng_seed(&r, 5);
    model_init_params(&m, INIT_XAVIER, &r);
    const float *W = m.params + s.w_off[0];
    double a = sqrt(6.0 / 700.0), mx = 0, var = 0;
    for (size_t i = 0; i < 300 * 400; i++) {
        mx = fmax(mx, fabs(W[i]));
        var += (double)W[i] * W[i];
    }
    var /= 300 * 400;
    assert_true(mx <= a && mx > 0.99 * a);
    assert_true(fabs(var - a * a / 3) / (a * a / 3) < 0.02); /* U(-a,a) variance a^2/3 */
    for (size_t j = 0; j < 400; j++) assert_true(m.params[s.b_off[0] + j] == 0.0f);
    rng_seed(&r, 5);
    model_init_params(&m, INIT_HE, &r);
    var = 0;
    for (size_t i = 0; i < 300 * 400; i++) var += (double)W[i] * W[i];
    var /= 300 * 400;
    assert_true(fabs(var - 2.0 / 300) / (2.0 / 300) < 0.02);
    model_init_params(&m, INIT_ZEROS, &r);
    for (size_t i = 0; i < s.n_params; i++) assert_true(m.params[i] == 0.0f);
    /* the hash sees a one-bit change in any lane and in the tail */
    uint64_t h0 = model_param_hash(m.params, s.n_params);
    const size_t at[] = {0, 1, 2, 3, 4, s.n_params / 2 + 1, s.n_params - 1};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        m.params[at[i]] = 1e-45f;
        assert_true(model_param_hash(m.params, s.n_params) != h0);
        m.params[at[i]] = 0.0f;
    }
    assert_true(model_param_hash(m.params, s.n_params) == h0);
    assert_true(model_param_hash(m.params, 3) != model_param_hash(m.params, 2)); /* length */
    model_free(&m);
    free(params);
}

/* The same MLP with W_1 by row and by column: the same initial values (by column, in file
 * order through model_w1_rows; back through model_params_from_file), the same logits and
 * gradients, bit for bit with CSR rows (csr.c's sums do not depend on the layout), within
 * float rounding with dense rows (sgemm transposed). */
static void test_model_w1_by_column(void **state)
{
    (void)state;
    enum { D = 30, H = 8, K = 4, B = 6 };
    const int64_t h[1] = {H};
    ModelShape sr, sc;
    char err[256];
    assert_int_equal(model_shape_init(&sr, MODEL_MLP, ACT_TANH, HEAD_SOFTMAX, D, h, 1, K, err,
                                      sizeof err), XT_OK);
    sc = sr;
    sc.w1_by_column = true;
    const size_t n = sr.n_params, w0 = sr.w_off[0];
    float *pr = malloc(n * sizeof *pr), *pc = malloc(n * sizeof *pc), *t = malloc(n * sizeof *t);
    float *gr = malloc(n * sizeof *gr), *gc = malloc(n * sizeof *gc), X[B * D] = {0};
    float zr[B * K], dz[B * K];
    assert_true(pr && pc && t && gr && gc);
    Model mr, mc;
    assert_int_equal(model_init(&mr, &sr, B, pr), XT_OK);
    assert_int_equal(model_init(&mc, &sc, B, pc), XT_OK);
    Rng r;
    rng_seed(&r, 9);
    model_init_params(&mr, INIT_XAVIER, &r);
    rng_seed(&r, 9);
    model_init_params(&mc, INIT_XAVIER, &r);
    model_w1_rows(&sc, pc, 0, H, t);
    assert_memory_equal(t, pr + w0, (size_t)H * D * sizeof *t);
    assert_memory_equal(pc + sr.b_off[0], pr + sr.b_off[0], (n - sr.b_off[0]) * sizeof *pc);
    assert_true(memcmp(pc + w0, pr + w0, (size_t)H * D * sizeof *pc) != 0); /* transposed */
    model_params_from_file(&sc, t, pr);
    assert_memory_equal(t, pc, n * sizeof *t);
    CsrRows c; /* rows of 0..5 non-zeros, sorted columns */
    assert_int_equal(csr_init_batch(&c, B, B * D, D), XT_OK);
    for (size_t i = 0, k = 0; i < B; i++) {
        for (size_t j = i; j < D; j += 5 + i) {
            c.indices[k] = (int32_t)j;
            c.values[k++] = X[i * D + j] = (float)(rng_uniform(&r) * 2.0 - 1.0);
        }
        c.indptr[i + 1] = k;
    }
    c.m = B;
    for (size_t i = 0; i < B * K; i++) dz[i] = (float)(rng_uniform(&r) - 0.5);
    for (int dense = 0; dense <= 1; dense++) {
        ModelInput in = dense ? model_input_dense(X) : model_input_csr(&c);
        memcpy(zr, model_forward_input(&mr, in, B), sizeof zr);
        const float *zc = model_forward_input(&mc, in, B);
        model_backward_input(&mr, in, dz, B, false, gr, NULL);
        model_backward_input(&mc, in, dz, B, false, gc, NULL);
        model_params_from_file(&sc, t, gr); /* gr in gc's layout */
        double worst = 0.0;
        for (size_t i = 0; i < B * K; i++) worst = fmax(worst, fabs((double)zr[i] - zc[i]));
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)t[i] - gc[i]));
        printf("W_1 by column, %s rows: max |diff| %.3g\n", dense ? "dense" : "CSR", worst);
        assert_true(dense ? worst <= 1e-6 : worst == 0.0);
    }
    csr_free(&c);
    model_free(&mr);
    model_free(&mc);
    free(pr), free(pc), free(t), free(gr), free(gc);
}

typedef struct {
    const Model *m;
    const float *grads;
    float *seen;        /* each layer's gradient as it was when announced */
    int order[8], n_done;
    int progress;
} HookLog;

static void log_layer(void *ctx, int l)
{
    HookLog *h = ctx;
    const ModelShape *s = &h->m->shape;
    size_t lo = s->w_off[l - 1], hi = s->b_off[l - 1] + s->sizes[l];
    memcpy(h->seen + lo, h->grads + lo, (hi - lo) * sizeof *h->seen);
    h->order[h->n_done++] = l;
}

static void log_progress(void *ctx) { ((HookLog *)ctx)->progress++; }

static void test_model_hooked_backward(void **state)
{
    (void)state;
    const size_t D = 300, B = 1024;
    const int64_t hidden[2] = {1024, 1024}; /* 2 N K = 2M flops a row: pieces of 64 rows */
    ModelShape s;
    char err[256];
    assert_int_equal(model_shape_init(&s, MODEL_MLP, ACT_RELU, HEAD_SOFTMAX, D, hidden, 2, 10,
                                      err, sizeof err), XT_OK);
    Model m;
    float *params = calloc(s.n_params, sizeof *params);
    assert_true(params != NULL);
    assert_int_equal(model_init(&m, &s, B, params), XT_OK);
    Rng r;
    rng_seed(&r, 8);
    model_init_params(&m, INIT_HE, &r);
    float *X = malloc(B * D * sizeof *X), *dz = malloc(B * 10 * sizeof *dz);
    float *g1 = calloc(s.n_params, sizeof *g1), *g2 = calloc(s.n_params, sizeof *g2);
    float *seen = calloc(s.n_params, sizeof *seen);
    assert_true(X && dz && g1 && g2 && seen);
    for (size_t i = 0; i < B * D; i++) X[i] = (float)rng_normal(&r);
    for (size_t i = 0; i < B * 10; i++) dz[i] = (float)(0.01 * rng_normal(&r));
    model_forward(&m, X, B);
    model_backward(&m, X, dz, B, false, g1, NULL);
    HookLog h = {.m = &m, .grads = g2, .seen = seen};
    BackwardHooks hooks = {.layer_done = log_layer, .progress = log_progress, .ctx = &h};
    model_backward(&m, X, dz, B, false, g2, &hooks);
    assert_int_equal(h.n_done, 3);
    for (int k = 0; k < 3; k++) assert_int_equal(h.order[k], 3 - k);
    assert_true(h.progress > 16); /* 1024-row products in 64-row pieces */
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < s.n_params; i++) {
        worst = fmax(worst, fabs((double)g1[i] - g2[i]));
        scale = fmax(scale, fabs((double)g1[i]));
        assert_true(seen[i] == g2[i]); /* announced final */
    }
    assert_true(scale > 0.0 && worst <= 1e-5 * scale);
    free(X);
    free(dz);
    free(g1);
    free(g2);
    free(seen);
    model_free(&m);
    free(params);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_finite_differences),
        cmocka_unit_test(test_model_hand_set_weights),
        cmocka_unit_test(test_model_shapes_and_errors),
        cmocka_unit_test(test_model_init_schemes),
        cmocka_unit_test(test_model_w1_by_column),
        cmocka_unit_test(test_model_hooked_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
