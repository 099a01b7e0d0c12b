#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"

Status model_shape_init(ModelShape *s, ModelType type, Activation act, Head head, size_t D,
                        const int64_t *hidden, int n_hidden, size_t classes, char *err,
                        size_t errlen)
{
    *s = (ModelShape){.type = type, .act = act, .head = head};
    if (D == 0) {
        snprintf(err, errlen, "the data have no features (D = 0)");
        return XT_ERR_USAGE;
    }
    if (classes < 2 && type != MODEL_MULTILABEL && !(type == MODEL_MLP && head == HEAD_SIGMOID)) {
        snprintf(err, errlen, "%s needs at least 2 classes, the data have %zu",
                 config_model_type_name(type), classes);
        return XT_ERR_USAGE;
    }
    if (classes < 1) {
        snprintf(err, errlen, "the targets have no outputs (K = 0)");
        return XT_ERR_USAGE;
    }
    size_t out = classes;
    int L = 1;
    s->sizes[0] = D;
    switch (type) {
    case MODEL_LOGISTIC:
        if (classes != 2) {
            snprintf(err, errlen,
                     "model.type = logistic is binary but the data have %zu classes "
                     "(use model.type = softmax)", classes);
            return XT_ERR_USAGE;
        }
        out = 1;
        s->head = HEAD_SIGMOID;
        break;
    case MODEL_SOFTMAX: s->head = HEAD_SOFTMAX; break;
    case MODEL_MULTILABEL: s->head = HEAD_SIGMOID; break;
    case MODEL_MLP:
        if (n_hidden < 1 || n_hidden > XT_MAX_HIDDEN) {
            snprintf(err, errlen, "model.type = mlp needs 1..%d hidden layers (model.hidden)",
                     XT_MAX_HIDDEN);
            return XT_ERR_USAGE;
        }
        for (int i = 0; i < n_hidden; i++) {
            if (hidden[i] < 1) {
                snprintf(err, errlen, "model.hidden: layer %d has %lld units", i + 1,
                         (long long)hidden[i]);
                return XT_ERR_USAGE;
            }
            s->sizes[i + 1] = (size_t)hidden[i];
        }
        L = n_hidden + 1;
        break;
    }
    s->n_layers = L;
    s->sizes[L] = out;
    size_t off = 0;
    for (int l = 1; l <= L; l++) {
        s->w_off[l - 1] = off;
        off += s->sizes[l] * s->sizes[l - 1];
        s->b_off[l - 1] = off;
        off += s->sizes[l];
    }
    s->n_params = off;
    return XT_OK;
}

Status model_loss_kind(ModelType type, Head head, TargetKind target, LossKind *kind, char *err,
                       size_t errlen)
{
    bool sigmoid_outputs = type == MODEL_MULTILABEL || (type == MODEL_MLP && head == HEAD_SIGMOID);
    bool dense = target == TARGET_DENSE;
    if (type == MODEL_LOGISTIC) {
        *kind = LOSS_BINARY;
        if (!dense) return XT_OK;
        snprintf(err, errlen, "model.type = logistic takes (N,) class ids 0/1, but y holds (N,K) "
                 "floats: use model.type = softmax for probability rows, multilabel for "
                 "multi-hot rows");
        return XT_ERR_USAGE;
    }
    if (sigmoid_outputs) {
        *kind = LOSS_MULTILABEL;
        if (dense) return XT_OK;
        snprintf(err, errlen, "model.type = %s%s takes (N,K) targets in [0, 1] (one column per "
                 "label), but y holds class ids: use model.type = softmax (or logistic for two "
                 "classes)%s", config_model_type_name(type),
                 type == MODEL_MLP ? " with model.head = sigmoid" : "",
                 type == MODEL_MLP ? ", or model.head = softmax" : "");
        return XT_ERR_USAGE;
    }
    *kind = dense ? LOSS_SOFTMAX_PROBS : LOSS_SOFTMAX;
    return XT_OK;
}

size_t model_outputs(const ModelShape *s) { return s->sizes[s->n_layers]; }

void model_shape_describe(const ModelShape *s, char *buf, size_t len)
{
    size_t used = 0;
    for (int l = 0; l <= s->n_layers && used < len; l++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", l ? "-" : "", s->sizes[l]);
    if (used < len)
        snprintf(buf + used, len - used, " %s%s%s, %s head, %zu parameters",
                 config_model_type_name(s->type), s->type == MODEL_MLP ? " " : "",
                 s->type == MODEL_MLP ? config_activation_name(s->act) : "",
                 s->head == HEAD_SOFTMAX ? "softmax" : "sigmoid", s->n_params);
}

Status model_init(Model *m, const ModelShape *s, size_t max_batch, float *params)
{
    *m = (Model){.shape = *s, .max_batch = max_batch > 0 ? max_batch : 1, .params = params};
    size_t widest = 1; /* backward's dL/dA of the hidden layers (never of the input) */
    for (int l = 1; l < s->n_layers; l++)
        if (s->sizes[l] > widest) widest = s->sizes[l];
    bool ok = params != NULL;
    for (int l = 1; l <= s->n_layers && ok; l++) {
        m->act[l] = linalg_alloc(m->max_batch * s->sizes[l] * sizeof(float));
        ok = m->act[l] != NULL;
    }
    for (int i = 0; i < 2 && ok; i++) {
        m->work[i] = linalg_alloc(m->max_batch * widest * sizeof(float));
        ok = m->work[i] != NULL;
    }
    if (!ok) {
        model_free(m);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

void model_free(Model *m)
{
    for (int l = 0; l <= MODEL_MAX_LAYERS; l++) free(m->act[l]);
    free(m->work[0]);
    free(m->work[1]);
    ModelShape keep = m->shape;
    *m = (Model){.shape = keep};
}

/* Where W_l's element (o, j) lives in its block: o * so + j * sj. */
static void w_strides(const ModelShape *s, int l, size_t *so, size_t *sj)
{
    bool by_column = l == 1 && s->w1_by_column;
    *so = by_column ? 1 : s->sizes[l - 1];
    *sj = by_column ? s->sizes[l] : 1;
}

void model_init_params(Model *m, Init init, Rng *rng)
{
    const ModelShape *s = &m->shape;
    memset(m->params, 0, s->n_params * sizeof *m->params);
    if (init == INIT_ZEROS) return;
    for (int l = 1; l <= s->n_layers; l++) {
        size_t in = s->sizes[l - 1], out = s->sizes[l], so, sj;
        float *W = m->params + s->w_off[l - 1];
        w_strides(s, l, &so, &sj);
        double a = sqrt(6.0 / (double)(in + out)), sd = sqrt(2.0 / (double)in);
        for (size_t o = 0; o < out; o++)
            for (size_t j = 0; j < in; j++)
                W[o * so + j * sj] = init == INIT_XAVIER
                                         ? (float)(a * (2.0 * rng_uniform(rng) - 1.0))
                                         : (float)(sd * rng_normal(rng));
    }
}

void model_w1_rows(const ModelShape *s, const float *params, size_t o0, size_t n, float *dst)
{
    const size_t D = s->sizes[0];
    size_t so, sj;
    w_strides(s, 1, &so, &sj);
    const float *W = params + s->w_off[0];
    enum { TILE = 64 }; /* columns whose n outputs stay in cache while each row is written */
    for (size_t j0 = 0; j0 < D; j0 += TILE)
        for (size_t o = 0; o < n; o++)
            for (size_t j = j0; j < D && j < j0 + TILE; j++)
                dst[o * D + j] = W[(o0 + o) * so + j * sj];
}

void model_params_from_file(const ModelShape *s, float *dst, const float *src)
{
    memcpy(dst, src, s->n_params * sizeof *dst);
    if (!s->w1_by_column) return;
    const size_t D = s->sizes[0], H = s->sizes[1];
    float *W = dst + s->w_off[0];
    const float *F = src + s->w_off[0];
    for (size_t j = 0; j < D; j++) /* (H, D) read H lines at a time, 16 columns each */
        for (size_t o = 0; o < H; o++) W[j * H + o] = F[o * D + j];
}

/* In place: hidden activation of Z (n values). */
static void activate(float *z, size_t n, Activation act)
{
    switch (act) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++) z[i] = z[i] > 0.0f ? z[i] : 0.0f;
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++) z[i] = tanhf(z[i]);
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) z[i] = 1.0f / (1.0f + expf(-z[i]));
        break;
    }
}

/* In place: delta *= act'(Z), written in terms of the activation output a = act(Z). */
static void activate_backward(float *delta, const float *a, size_t n, Activation act)
{
    switch (act) {
    case ACT_RELU:
        for (size_t i = 0; i < n; i++) delta[i] = a[i] > 0.0f ? delta[i] : 0.0f;
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++) delta[i] *= 1.0f - a[i] * a[i];
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) delta[i] *= a[i] * (1.0f - a[i]);
        break;
    }
}

/* C = op(A) op(B) (M, N, K as linalg_gemm) in pieces of rows with hooks->progress between
 * them, or in one call without hooks. */
static void gemm_pieces(float *C, const float *A, const float *Bm, size_t M, size_t N, size_t K,
                        bool ta, float beta, const BackwardHooks *hooks)
{
    if (!hooks || !hooks->progress) {
        linalg_gemm(C, A, Bm, M, N, K, ta, false, 1.0f, beta);
        return;
    }
    size_t per_row = 2 * (N > 0 ? N : 1) * (K > 0 ? K : 1);
    size_t rows = MODEL_PIECE_FLOPS / per_row;
    if (rows < MODEL_PIECE_MIN_ROWS) rows = MODEL_PIECE_MIN_ROWS;
    for (size_t m0 = 0; m0 < M; m0 += rows) {
        linalg_gemm_rows(C, A, Bm, M, N, K, ta, false, 1.0f, beta, m0, m0 + rows);
        hooks->progress(hooks->ctx);
    }
}

/* A layer's products with its input A (B rows of `in` features), for W stored (out, in)
 * (index 0) or (in, out) (index 1, W_1 by column):
 *   mul   Z (B, out) += A W^T
 *   grad  dW = beta dW + delta^T A (in W's layout), delta (B, out) */
struct ModelInputOps {
    void (*mul[2])(float *Z, ModelInput a, const float *W, size_t B, size_t out, size_t in);
    void (*grad[2])(float *dW, const float *delta, ModelInput a, size_t B, size_t out,
                    size_t in, bool accumulate, const BackwardHooks *hooks);
};

static void dense_mul_wt(float *Z, ModelInput a, const float *W, size_t B, size_t out, size_t in)
{
    linalg_gemm(Z, a.X, W, B, out, in, false, true, 1.0f, 1.0f);
}

static void dense_mul_w(float *Z, ModelInput a, const float *W, size_t B, size_t out, size_t in)
{
    linalg_gemm(Z, a.X, W, B, out, in, false, false, 1.0f, 1.0f);
}

static void dense_grad_w(float *dW, const float *delta, ModelInput a, size_t B, size_t out,
                         size_t in, bool accumulate, const BackwardHooks *hooks)
{
    gemm_pieces(dW, delta, a.X, out, in, B, true, accumulate ? 1.0f : 0.0f, hooks);
}

static void dense_grad_wt(float *dW, const float *delta, ModelInput a, size_t B, size_t out,
                          size_t in, bool accumulate, const BackwardHooks *hooks)
{
    gemm_pieces(dW, a.X, delta, in, out, B, true, accumulate ? 1.0f : 0.0f, hooks);
}

static void csr_input_mul_wt(float *Z, ModelInput a, const float *W, size_t B, size_t out,
                             size_t in)
{
    XT_ASSERT(a.csr->m == B && a.csr->d == in);
    csr_mul_wt(Z, a.csr, W, out);
}

static void csr_input_mul_w(float *Z, ModelInput a, const float *W, size_t B, size_t out,
                            size_t in)
{
    XT_ASSERT(a.csr->m == B && a.csr->d == in);
    csr_mul_w(Z, a.csr, W, out);
}

static void csr_input_grad_w(float *dW, const float *delta, ModelInput a, size_t B, size_t out,
                             size_t in, bool accumulate, const BackwardHooks *hooks)
{
    XT_ASSERT(a.csr->m == B && a.csr->d == in);
    XT_ASSERT(!a.w1_pos); /* a packed gradient is kept by column */
    csr_grad_w(dW, delta, a.csr, out, accumulate);
    if (hooks && hooks->progress) hooks->progress(hooks->ctx);
}

static void csr_input_grad_wt(float *dW, const float *delta, ModelInput a, size_t B, size_t out,
                              size_t in, bool accumulate, const BackwardHooks *hooks)
{
    XT_ASSERT(a.csr->m == B && a.csr->d == in);
    csr_grad_wt(dW, delta, a.csr, out, accumulate, a.w1_pos);
    if (hooks && hooks->progress) hooks->progress(hooks->ctx);
}

static const ModelInputOps DENSE_INPUT = {{dense_mul_wt, dense_mul_w},
                                          {dense_grad_w, dense_grad_wt}};
static const ModelInputOps CSR_INPUT = {{csr_input_mul_wt, csr_input_mul_w},
                                        {csr_input_grad_w, csr_input_grad_wt}};

ModelInput model_input_dense(const float *X) { return (ModelInput){.ops = &DENSE_INPUT, .X = X}; }

ModelInput model_input_csr(CsrRows *csr)
{
    return (ModelInput){.ops = &CSR_INPUT, .csr = csr};
}

/* Which of a layer's products its W's layout takes (ModelInputOps). */
static int w_layout(const ModelShape *s, int l) { return l == 1 && s->w1_by_column; }

const float *model_forward_input(Model *m, ModelInput x, size_t B)
{
    const ModelShape *s = &m->shape;
    XT_ASSERT(B <= m->max_batch);
    ModelInput in = x;
    for (int l = 1; l <= s->n_layers; l++) {
        size_t ni = s->sizes[l - 1], no = s->sizes[l];
        const float *W = m->params + s->w_off[l - 1];
        const float *b = m->params + s->b_off[l - 1];
        float *Z = m->act[l];
        for (size_t i = 0; i < B; i++) memcpy(Z + i * no, b, no * sizeof *Z);
        in.ops->mul[w_layout(s, l)](Z, in, W, B, no, ni); /* Z += A W^T */
        if (l < s->n_layers) activate(Z, B * no, s->act);
        in = model_input_dense(Z);
    }
    return m->act[s->n_layers];
}

const float *model_forward(Model *m, const float *X, size_t B)
{
    return model_forward_input(m, model_input_dense(X), B);
}

void model_backward_input(Model *m, ModelInput x, const float *dlogits, size_t B,
                          bool accumulate, float *grads, const BackwardHooks *hooks)
{
    const ModelShape *s = &m->shape;
    XT_ASSERT(B <= m->max_batch);
    const float *delta = dlogits; /* dL/dZ_l, (B, sizes[l]) */
    for (int l = s->n_layers; l >= 1; l--) {
        size_t ni = s->sizes[l - 1], no = s->sizes[l];
        ModelInput a = l > 1 ? model_input_dense(m->act[l - 1]) : x;
        float *dW = grads + s->w_off[l - 1];
        float *db = grads + s->b_off[l - 1];
        a.ops->grad[w_layout(s, l)](dW, delta, a, B, no, ni, accumulate, hooks); /* (+)= delta^T A */
        if (!accumulate)
            for (size_t j = 0; j < no; j++) db[j] = 0.0f;
        for (size_t i = 0; i < B; i++)
            for (size_t j = 0; j < no; j++) db[j] += delta[i * no + j];
        if (hooks && hooks->layer_done) hooks->layer_done(hooks->ctx, l);
        if (l > 1) {
            float *next = m->work[l % 2];
            const float *W = m->params + s->w_off[l - 1];
            gemm_pieces(next, delta, W, B, ni, no, false, 0.0f, hooks); /* dA = delta W */
            activate_backward(next, m->act[l - 1], B * ni, s->act);
            delta = next;
        }
    }
}

void model_backward(Model *m, const float *X, const float *dlogits, size_t B, bool accumulate,
                    float *grads, const BackwardHooks *hooks)
{
    model_backward_input(m, model_input_dense(X), dlogits, B, accumulate, grads, hooks);
}

uint64_t model_param_hash(const float *params, size_t n)
{
    /* FNV-1a over the floats' 32-bit words in four interleaved lanes (each step
     * h -> (h ^ w) * prime is a bijection of h for a given w, so a single differing word
     * always changes its lane, and the lanes are folded the same way): any one differing
     * value changes the hash, at a quarter of the multiplies of a byte-wise FNV and without
     * one long dependency chain (a solver checks 6 million parameters every iteration). */
    const uint64_t prime = 1099511628211ULL;
    uint64_t h[4] = {1469598103934665603ULL, 1469598103934665603ULL ^ 1,
                     1469598103934665603ULL ^ 2, 1469598103934665603ULL ^ 3};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) {
            uint32_t w;
            memcpy(&w, params + i + (size_t)l, sizeof w);
            h[l] = (h[l] ^ w) * prime;
        }
    for (; i < n; i++) {
        uint32_t w;
        memcpy(&w, params + i, sizeof w);
        h[0] = (h[0] ^ w) * prime;
    }
    uint64_t out = h[0];
    for (int l = 1; l < 4; l++) out = (out ^ h[l]) * prime;
    return out;
}
