/* model: the classifiers, as one flat parameter buffer and one flat gradient buffer.
 *
 * Dimensions: N samples, B batch rows, D features, H hidden units, K outputs
 * (K = 1 for logistic regression), P ranks, r rank.
 *
 * Every model is a stack of L dense layers; layer l maps sizes[l-1] -> sizes[l] with
 *   W_l (sizes[l], sizes[l-1])  row-major, i.e. (out, in) as torch.nn.Linear stores it
 *   b_l (sizes[l])
 * laid out in params as W_1 b_1 W_2 b_2 ... (offsets in ModelShape), except that a trainer may
 * keep W_1 by column in memory, (in, out) = (D, H), when its steps touch only some columns
 * (w1_by_column, chosen once at set-up: plan.h's touched): a column's H weights are then one
 * contiguous run. Files always hold (out, in) (model_w1_rows, model_params_from_file). Forward:
 *   Z_l = A_{l-1} W_l^T + b_l,  A_l = act(Z_l) for hidden layers, A_0 = X (B, D);
 * the last layer's Z_L are the logits; the head (softmax or sigmoid) lives in the loss.
 *   logistic   : D -> 1,    sigmoid head (binary class ids)
 *   softmax    : D -> K,    softmax head
 *   multilabel : D -> K,    sigmoid head per output
 *   mlp        : D -> H1 -> ... -> K, relu/tanh/sigmoid hidden, softmax or sigmoid head
 * Forward and backward use cblas_sgemm through linalg. Buffers for activations are
 * allocated once for a maximum batch (model_init); nothing allocates afterwards. The model
 * owns no parameters or gradients: it computes over the caller's buffers.
 * Local everywhere.
 */
#ifndef XT_MODEL_H
#define XT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "csr.h"
#include "error.h"
#include "loss.h"
#include "rng.h"

#define MODEL_MAX_LAYERS (XT_MAX_HIDDEN + 1)

typedef struct {
    ModelType type;
    Activation act;          /* hidden activation (mlp) */
    Head head;               /* softmax or sigmoid */
    int n_layers;            /* L */
    size_t sizes[MODEL_MAX_LAYERS + 1]; /* sizes[0] = D ... sizes[L] = outputs */
    size_t w_off[MODEL_MAX_LAYERS];     /* offset of W_l (l = 1..L at index l-1) */
    size_t b_off[MODEL_MAX_LAYERS];
    size_t n_params;
    bool w1_by_column;       /* W_1 stored (in, out) in params (see above); never in a file */
} ModelShape;

/* Builds the shape. `classes` is K (>= 2 for logistic/softmax: logistic needs exactly
 * 2). hidden/n_hidden are used by mlp only. XT_ERR_USAGE with a message otherwise. */
Status model_shape_init(ModelShape *s, ModelType type, Activation act, Head head, size_t D,
                        const int64_t *hidden, int n_hidden, size_t classes, char *err,
                        size_t errlen);
/* The one place that decides which targets a model takes, and so which loss it trains
 * and is evaluated with (training, validation, eval and predict all ask here):
 *   logistic                       + class ids 0/1        -> LOSS_BINARY
 *   softmax, mlp with softmax head + class ids            -> LOSS_SOFTMAX
 *   softmax, mlp with softmax head + (N, K) floats        -> LOSS_SOFTMAX_PROBS: every
 *        row must be a distribution (dataset_check_distributions); multi-hot rows are
 *        refused there with the hint to use a sigmoid head
 *   multilabel, mlp with sigmoid head + (N, K) floats     -> LOSS_MULTILABEL
 * Any other pair is refused: XT_ERR_USAGE with the combination and the fix in err. */
Status model_loss_kind(ModelType type, Head head, TargetKind target, LossKind *kind, char *err,
                       size_t errlen);

/* Files hold every W as (out, in). model_w1_rows: dst (n, D) <- rows [o0, o0 + n) of W_1 in
 * that order, from params in s's layout (a file's W_1 written in pieces, without a copy of
 * all of it). model_params_from_file: dst (params in s's layout) <- src (n_params in file
 * order); dst and src do not overlap. */
void model_w1_rows(const ModelShape *s, const float *params, size_t o0, size_t n, float *dst);
void model_params_from_file(const ModelShape *s, float *dst, const float *src);

/* Outputs per row (K, or 1 for logistic). */
size_t model_outputs(const ModelShape *s);
/* "784-256-128-10 mlp relu softmax" */
void model_shape_describe(const ModelShape *s, char *buf, size_t len);

typedef struct {
    ModelShape shape;
    float *params;  /* (n_params) the caller's, borrowed (the trainer's reduction owns them,
                       eval and predict the loaded model file) */
    size_t max_batch;
    float *act[MODEL_MAX_LAYERS + 1]; /* act[l] (max_batch, sizes[l]), l = 1..L; act[0] unused */
    float *work[2];                   /* backward scratch, (max_batch, widest hidden layer) */
} Model;

/* Allocates the activation buffers for up to max_batch rows over the caller's parameters
 * (n_params floats, borrowed: they must outlive m). Gradients go where each backward is
 * told (model_backward), so the caller decides where they live. */
Status model_init(Model *m, const ModelShape *s, size_t max_batch, float *params);
void model_free(Model *m);

/* zeros: all zero; xavier: W ~ U(-a, a), a = sqrt(6 / (in + out)); he: W ~ N(0, 2 / in).
 * Biases start at zero. Draws from rng in layer order, each W in (out, in) order (the same
 * values in either layout of W_1). */
void model_init_params(Model *m, Init init, Rng *rng);

/* The first layer's input, B rows of D features, dense (B, D) row-major or CSR (csr.h),
 * with the two products the first layer needs from it, for either layout of W (dense:
 * sgemm; CSR: csr.c's kernels, docs/sparse.md). Which form a run uses is the row source's
 * choice, made once at set-up (rowsource_batch_alloc), the layout the shape's: the step
 * passes them along without asking. */
typedef struct ModelInputOps ModelInputOps;
typedef struct {
    const ModelInputOps *ops;
    const float *X;          /* dense rows, or NULL */
    CsrRows *csr;            /* CSR rows (csr->m is the batch's B; csr_init_batch), or NULL */
    const uint32_t *w1_pos;  /* NULL, or (CSR rows, W_1 by column) where backward adds W_1's
                                gradient: column j's run at w1_pos[j] (the touched step's
                                packed gradient, reduce_sparse.c; csr_grad_wt) */
} ModelInput;
ModelInput model_input_dense(const float *X);
ModelInput model_input_csr(CsrRows *csr);

/* Forward for B <= max_batch rows of X (B, D). Returns the logits (B, outputs), a view
 * into the model's buffers valid until the next forward. */
const float *model_forward(Model *m, const float *X, size_t B);
/* The same for rows in either form. */
const float *model_forward_input(Model *m, ModelInput x, size_t B);
/* What a hooked backward calls (comm.overlap): layer_done(ctx, l) as soon as layer l's
 * gradients (W_l, b_l: grads[w_off[l-1], w_off[l-1] + the layer's size)) are final, layers
 * in the order L .. 1, before the rest of backward runs: the moment to start reducing them;
 * and progress(ctx) between pieces of the products (MODEL_PIECE_FLOPS each, at least
 * MODEL_PIECE_MIN_ROWS rows): the moments to move those reductions on. */
typedef struct {
    void (*layer_done)(void *ctx, int layer);
    void (*progress)(void *ctx);
    void *ctx;
} BackwardHooks;
#define MODEL_PIECE_FLOPS ((size_t)1 << 27)
#define MODEL_PIECE_MIN_ROWS 16
/* Backward after model_forward on the same X: given dL/dlogits (B, outputs), writes
 * dL/dparams into grads (n_params floats; overwrites), or adds them when accumulate
 * (micro-batches). hooks: NULL, or the calls above (the products are then computed in
 * pieces). */
void model_backward(Model *m, const float *X, const float *dlogits, size_t B, bool accumulate,
                    float *grads, const BackwardHooks *hooks);
/* The same for rows in either form (the input model_forward_input was given). */
void model_backward_input(Model *m, ModelInput x, const float *dlogits, size_t B,
                          bool accumulate, float *grads, const BackwardHooks *hooks);

/* A 64-bit hash of the parameter bytes (replica checks: equal iff bit-identical,
 * up to hash collisions). */
uint64_t model_param_hash(const float *params, size_t n);

#endif
