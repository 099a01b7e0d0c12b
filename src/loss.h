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
 *   totals->sum    += sum over rows of  w_i * l_i        (a SUM, never a mean)
 *   totals->weight += sum over rows of  w_i              (the row-weight total)
 *   grad[i]         = d(w_i * l_i) / d z_i               (gradient of the SUM), or NULL
 *   row_loss[i]     = w_i * l_i                           (reduction "none"), or NULL
 * so ranks can allreduce sum, weight and gradients and divide once (loss_reduce,
 * loss_grad_scale). Totals are accumulated into (+=), so one LossTotals can span
 * several calls; zero it first.
 *
 * Definitions (l_i = row loss, w_i = row weight, e = label smoothing):
 * 1. Softmax, class-id targets y_i in [0, K):
 *      t_i = (1 - e) onehot(y_i) + e / K,  l_i = -sum_k t_ik log p_ik,
 *      w_i = class_weight[y_i] (1 without weights), w_i = 0 and l_i = 0 when
 *      y_i == ignore_index; grad_i = w_i (p_i - t_i).
 *    The weighted mean is sum w_i l_i / sum w_i over the non-ignored rows (not / B).
 * 2. Softmax, probability (soft) targets t_i (rows sum to 1):
 *      t'_i = (1 - e) t_i + e / K,  l_i = -sum_k c_k t'_ik log p_ik  (c = class_weight),
 *      w_i = 1 (the mean divides by B); grad_ik = p_ik sum_j c_j t'_ij - c_k t'_ik,
 *      which is p_i - t'_i without class weights.
 * 3. Sigmoid, binary, class ids y_i in {0, 1}, one logit per row (K = 1):
 *      y' = (1 - e) y + e / 2,  l_i = pw y' softplus(-z) + (1 - y') softplus(z),
 *      w_i = class_weight[y_i] ({w_0, w_1}) or 1, 0 when ignored (as in 1);
 *      grad_i = w_i ((pw y' + 1 - y') s(z) - pw y'), i.e. s(z) - y without options.
 * 4. Sigmoid, multi-label, targets y (B, K) in [0, 1]: the SUM over the K outputs of
 *    per-output binary cross-entropy (each output a two-outcome distribution),
 *      l_i = sum_k c_k [pw y'_ik softplus(-z_ik) + (1 - y'_ik) softplus(z_ik)],
 *      w_i = 1; grad_ik = c_k ((pw y' + 1 - y') s(z_ik) - pw y').
 *    pw is LossOptions.pos_weight (1 = plain cross-entropy).
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

#define LOSS_NO_IGNORE INT32_MIN

typedef enum { LOSS_REDUCE_NONE, LOSS_REDUCE_SUM, LOSS_REDUCE_MEAN } LossReduction;

typedef struct {
    const float *class_weight; /* see the definitions above; NULL = all ones */
    int32_t ignore_index;      /* LOSS_NO_IGNORE = none */
    float label_smoothing;     /* e in [0, 1) */
    float pos_weight;          /* pw > 0; 1 = none */
} LossOptions;

typedef struct {
    double sum;    /* sum of w_i l_i */
    double weight; /* sum of w_i */
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
