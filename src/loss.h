/* loss: cross-entropy, exactly and stably, from logits, with its gradient in the same pass.
 *
 * Notation: a batch of B rows, K outputs per row, logits z (B, K) row-major.
 *   softmax p_k = exp(z_k - m) / sum_j exp(z_j - m), m = max_j z_j  (log-sum-exp)
 *   sigmoid s   = 1 / (1 + exp(-z)), evaluated on the side that cannot overflow
 *   softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))
 *   so -log s(z) = softplus(-z) and -log(1 - s(z)) = softplus(z), exactly, for any z.
 * Per-row arithmetic is in double; inputs, gradients and per-row outputs are float.
 *
 * What each function returns (the contract a distributed caller relies on):
 *   totals->sum    += sum over rows of  l_i               (a SUM, never a mean)
 *   totals->weight += sum over rows of  d_i               (the mean's denominator)
 *   grad[i]         = d l_i / d z_i                       (gradient of the SUM), or NULL
 *   row_loss[i]     = l_i                                  (reduction "none"), or NULL
 * so ranks can allreduce sum, weight and gradients and divide once (loss_reduce,
 * loss_grad_scale): the mean is sum / weight, PyTorch's reduction="mean". Totals are
 * accumulated into (+=), so one LossTotals can span several calls; zero it first.
 *
 * Definitions: these are PyTorch's (torch.nn.functional in 1.13), option for option and
 * in every combination, so that users can check us against it; where PyTorch has no such
 * option the extension is stated. l_i = row loss, d_i = the row's share of the mean's
 * denominator, e = label smoothing, c = class weights (all ones without weights):
 * 1. Softmax, class ids y_i in [0, K)  ==  F.cross_entropy(z, y, weight=c,
 *    ignore_index, label_smoothing=e):
 *      l_i = (1 - e) c[y_i] (-log p_{i,y_i}) + (e / K) sum_k c_k (-log p_ik),
 *      d_i = c[y_i]; rows with y_i == ignore_index count nothing (l_i = d_i = 0);
 *      grad_ik = (1 - e) c[y_i] (p_ik - [k == y_i]) + (e / K) (p_ik sum_j c_j - c_k),
 *      i.e. p_i - ((1 - e) onehot(y_i) + e / K) without weights.
 *    The smoothing term is weighted class by class; the mean divides by the weight of
 *    the non-ignored rows' classes.
 * 2. Softmax, probability (soft) targets t_i (rows sum to 1)  ==  F.cross_entropy(z, t,
 *    weight=c, label_smoothing=e): t'_i = (1 - e) t_i + e / K,
 *      l_i = -sum_k c_k t'_ik log p_ik, d_i = 1 (the mean divides by B);
 *      grad_ik = p_ik sum_j c_j t'_ij - c_k t'_ik (p_i - t'_i without weights).
 *    ignore_index does not apply (PyTorch refuses it for probability targets).
 * 3. Sigmoid, binary class ids y_i in {0, 1}, one logit per row  ==
 *    F.binary_cross_entropy_with_logits(z, y', weight=c[y], pos_weight=pw) on the rows
 *    whose label is not ignore_index, with y' = (1 - e) y + e / 2 (PyTorch has neither
 *    label smoothing nor ignore_index for this loss: smoothing makes the target
 *    y', ignored rows are left out):
 *      l_i = c[y_i] (pw y' softplus(-z) + (1 - y') softplus(z)), d_i = 1 (the mean is
 *      over the rows, not over the weights, as PyTorch's);
 *      grad_i = c[y_i] ((pw y' + 1 - y') s(z) - pw y'), i.e. s(z) - y without options.
 * 4. Sigmoid, multi-label, targets y (B, K) in [0, 1]  ==
 *    F.binary_cross_entropy_with_logits(z, y', weight=c (per output), pos_weight=pw):
 *    every one of the B K outputs is a two-outcome distribution,
 *      l_i = sum_k c_k [pw y'_ik softplus(-z_ik) + (1 - y'_ik) softplus(z_ik)],
 *      d_i = K (the mean is over all B K outputs, as PyTorch's);
 *      grad_ik = c_k ((pw y' + 1 - y') s(z_ik) - pw y').
 *    pw is LossOptions.pos_weight (1 = plain cross-entropy), the same for every output.
 * 5. From probabilities, as textbooks write it (for teaching and debugging; the trainer
 *    always uses logits): probabilities are clamped to [eps, 1 - eps] first.
 *      loss_xent_prob = -sum_k t_k ln y_k;  loss_bce_prob = -[y ln a + (1-y) ln(1-a)];
 *      loss_bce_prob_grad = dL/da = (a - y) / (a (1 - a)).
 * Local; no allocation.
 */
#ifndef XT_LOSS_H
#define XT_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define LOSS_NO_IGNORE INT32_MIN

/* How a split stores its targets: (N,) integer class ids, or (N, K) floats. */
typedef enum { TARGET_CLASS, TARGET_DENSE } TargetKind;

/* Which of the four losses: what a model's head makes of a kind of target (the choice is
 * model_loss_kind's). */
typedef enum {
    LOSS_BINARY,        /* 3.: one logit, class ids 0/1 */
    LOSS_SOFTMAX,       /* 1.: K logits, class ids */
    LOSS_SOFTMAX_PROBS, /* 2.: K logits, (N, K) probability rows */
    LOSS_MULTILABEL     /* 4.: K logits, (N, K) targets in [0, 1] */
} LossKind;

/* The targets of B rows: y (B) class ids for BINARY and SOFTMAX, t (B, K) otherwise. */
typedef struct {
    const int32_t *y;
    const float *t;
} LossTargets;

typedef enum { LOSS_REDUCE_NONE, LOSS_REDUCE_SUM, LOSS_REDUCE_MEAN } LossReduction;

typedef struct {
    const float *class_weight; /* see the definitions above; NULL = all ones */
    int32_t ignore_index;      /* LOSS_NO_IGNORE = none */
    double label_smoothing;    /* e in [0, 1) */
    double pos_weight;         /* pw > 0; 1 = none */
} LossOptions;

typedef struct {
    double sum;    /* sum of l_i */
    double weight; /* sum of d_i: the mean's denominator */
} LossTotals;

/* Options with no weights, no ignored label, no smoothing, pos_weight 1. */
LossOptions loss_options_default(void);

/* 1. grad (B,K) or NULL; row_loss (B) or NULL; z (B,K); y (B). */
void loss_softmax_xent(float *grad, float *row_loss, LossTotals *totals, const float *z,
                       const int32_t *y, size_t B, size_t K, const LossOptions *opt);
/* 2. t (B,K) probabilities. */
void loss_softmax_xent_soft(float *grad, float *row_loss, LossTotals *totals, const float *z,
                            const float *t, size_t B, size_t K, const LossOptions *opt);
/* 3. z (B), y (B) in {0,1}. */
void loss_binary_xent(float *grad, float *row_loss, LossTotals *totals, const float *z,
                      const int32_t *y, size_t B, const LossOptions *opt);
/* 4. z (B,K), y (B,K) in [0,1]. */
void loss_sigmoid_xent(float *grad, float *row_loss, LossTotals *totals, const float *z,
                       const float *y, size_t B, size_t K, const LossOptions *opt);

/* The one dispatch: the loss `kind` of B rows with K outputs each (K = 1 for BINARY). */
void loss_compute(LossKind kind, float *grad, float *row_loss, LossTotals *totals,
                  const float *z, LossTargets targets, size_t B, size_t K,
                  const LossOptions *opt);

/* The loss's second derivatives in the logits, for full-batch Newton (solver.h): a linear
 * model whose logits move by u = X v has H v = X^T (H_i u_i)_i, and H's diagonal
 * (X o X)^T (diag H_i)_i, where H_i = d^2 l_i / d z_i^2 depends only on the logits at the
 * iterate. Hence two steps: loss_curvature keeps what H_i needs, once per iterate (the
 * caller caches it per row), then loss_curvature_times or loss_curvature_diag per product.
 * From the definitions above, for the kind, targets and options of loss_compute (B rows, K
 * outputs; rows whose label is ignore_index give 0):
 *   1., 2. (softmax)   H_i u = S_i (p_i * u - p_i (p_i . u)): curv (B, K) holds p_i, rw (B)
 *                      S_i = sum_k T_ik the row's total target weight (w_i without
 *                      smoothing, sum_k c_k t'_ik for 2.); diag S_i p_ik (1 - p_ik);
 *   3., 4. (sigmoids)  H_i is diagonal: curv (B, K) holds c (pw y' + 1 - y') s(z_ik)
 *                      (1 - s(z_ik)) (rw 1).
 * Local; no allocation. */
void loss_curvature(LossKind kind, float *curv, float *rw, const float *z, LossTargets tg,
                    size_t B, size_t K, const LossOptions *opt);
/* hv (B, K) = H_i u_i from loss_curvature's curv and rw. */
void loss_curvature_times(LossKind kind, float *hv, const float *curv, const float *rw,
                          const float *u, size_t B, size_t K);
/* hd (B, K) = the diagonal of each H_i. */
void loss_curvature_diag(LossKind kind, float *hd, const float *curv, const float *rw, size_t B,
                         size_t K);

/* Whether the options apply to the loss: ignore_index needs class ids (1, 3),
 * pos_weight a sigmoid (3, 4), class weights one per class or output (n_weights of
 * them for K classes; 2 for BINARY). On failure writes "loss.key: reason, fix" into
 * err and returns XT_ERR_USAGE. Local. */
/* scikit-learn's "balanced" class weights: w[c] = n / (K * counts[c]) with n the rows
 * counted; a class `ignore` (loss.ignore_index; -1: none) is left out of n and K and gets
 * weight 1 (its rows never count). A class without rows is refused (its weight would be
 * infinite), with the reason in err. Local. */
Status loss_balanced_weights(const double *counts, size_t K, long ignore, float *w, char *err,
                             size_t errlen);

Status loss_check_options(LossKind kind, const LossOptions *opt, size_t n_weights, size_t K,
                          char *err, size_t errlen);
const char *loss_kind_name(LossKind kind);

/* Index of the largest of K values (the first on ties). */
size_t loss_argmax(const float *v, size_t K);
/* Adds the right decisions and all decisions of B rows to *correct and *decisions:
 * z > 0 against y (BINARY), argmax z against y (SOFTMAX) or against argmax t
 * (SOFTMAX_PROBS), and for MULTILABEL every output, z > 0 against t >= 0.5. Rows whose
 * label is ignore_index do not count. */
void loss_count_correct(LossKind kind, const float *z, LossTargets tg, size_t B, size_t K,
                        int32_t ignore_index, double *correct, double *decisions);

/* The reduced loss: sum (SUM), sum / weight (MEAN; 0 when weight == 0), or NAN for
 * NONE (use row_loss). */
double loss_reduce(const LossTotals *t, LossReduction r);
/* The factor that turns the SUM gradient into the reduced one: 1 for SUM and NONE,
 * 1 / weight for MEAN (0 when weight == 0). */
double loss_grad_scale(const LossTotals *t, LossReduction r);

/* 5. From probabilities. eps in (0, 0.5); 1e-7 is typical. */
double loss_xent_prob(const double *y, const double *t, size_t K, double eps);
double loss_bce_prob(double a, double y, double eps);
double loss_bce_prob_grad(double a, double y, double eps);

/* Stable scalar pieces, exposed for the model's heads and tests. */
double loss_softplus(double x);
double loss_sigmoid(double x);

#endif
