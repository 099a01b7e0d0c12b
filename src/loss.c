#include "loss.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

LossOptions loss_options_default(void)
{
    LossOptions o = {.class_weight = NULL,
                     .ignore_index = LOSS_NO_IGNORE,
                     .label_smoothing = 0.0f,
                     .pos_weight = 1.0f};
    return o;
}

double loss_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

double loss_sigmoid(double x)
{
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* Row max and log-sum-exp of one row of logits; fills p (double) with softmax. */
static double row_softmax(double *p, const float *z, size_t K)
{
    double m = (double)z[0];
    for (size_t k = 1; k < K; k++)
        if ((double)z[k] > m) m = (double)z[k];
    double s = 0.0;
    for (size_t k = 0; k < K; k++) {
        p[k] = exp((double)z[k] - m);
        s += p[k];
    }
    for (size_t k = 0; k < K; k++) p[k] /= s;
    return m + log(s); /* lse */
}

/* K can be large (XT_MAX_CLASSES); softmax rows are computed in chunks on the stack
 * only for small K, otherwise in two passes without a buffer. */
#define LOSS_STACK_K 256

/* Row i of loss 1 with class weights c (W = sum c) and smoothing e:
 *   l = S lse - sum_k T_k z_k, grad_k = S p_k - T_k, with
 *   T_k = (1 - e) c_y [k == y] + (e / K) c_k and S = sum_k T_k = (1 - e) c_y + (e / K) W. */
static double weighted_softmax_row(float *gi, const float *zi, int32_t yi, size_t K, double e,
                                   const float *c, double W)
{
    double m = (double)zi[0];
    for (size_t k = 1; k < K; k++) m = fmax(m, (double)zi[k]);
    double s = 0.0;
    for (size_t k = 0; k < K; k++) s += exp((double)zi[k] - m);
    double lse = m + log(s), off = e / (double)K, cy = (double)c[yi];
    double S = (1.0 - e) * cy + off * W, Tz = 0.0;
    for (size_t k = 0; k < K; k++) {
        double T = off * (double)c[k] + ((size_t)yi == k ? (1.0 - e) * cy : 0.0);
        Tz += T * (double)zi[k];
        if (gi) gi[k] = (float)(S * exp((double)zi[k] - lse) - T);
    }
    return S * lse - Tz;
}

void loss_softmax_xent(float *grad, float *row_loss, LossTotals *totals, const float *z,
                       const int32_t *y, size_t B, size_t K, const LossOptions *opt)
{
    XT_ASSERT(K >= 1);
    const double e = (double)opt->label_smoothing;
    const double off = e / (double)K;
    double W = 0.0;
    for (size_t k = 0; opt->class_weight && k < K; k++) W += (double)opt->class_weight[k];
    double p[LOSS_STACK_K];
    for (size_t i = 0; i < B; i++) {
        const float *zi = z + i * K;
        float *gi = grad ? grad + i * K : NULL;
        int32_t yi = y[i];
        if (yi == opt->ignore_index) {
            if (gi)
                for (size_t k = 0; k < K; k++) gi[k] = 0.0f;
            if (row_loss) row_loss[i] = 0.0f;
            continue;
        }
        XT_ASSERT(yi >= 0 && (size_t)yi < K);
        if (opt->class_weight && e != 0.0) {
            double l = weighted_softmax_row(gi, zi, yi, K, e, opt->class_weight, W);
            if (row_loss) row_loss[i] = (float)l;
            totals->sum += l;
            totals->weight += (double)opt->class_weight[yi];
            continue;
        }
        /* one weight per row: l = w (lse - sum_k t_k z_k), t = (1-e) onehot + e/K */
        double w = opt->class_weight ? (double)opt->class_weight[yi] : 1.0;
        double lse;
        double tz = (1.0 - e) * (double)zi[yi];
        if (e != 0.0) {
            double zs = 0.0;
            for (size_t k = 0; k < K; k++) zs += (double)zi[k];
            tz += off * zs;
        }
        if (K <= LOSS_STACK_K) {
            lse = row_softmax(p, zi, K);
            if (gi)
                for (size_t k = 0; k < K; k++) {
                    double t = off + ((size_t)yi == k ? 1.0 - e : 0.0);
                    gi[k] = (float)(w * (p[k] - t));
                }
        } else {
            double m = (double)zi[0];
            for (size_t k = 1; k < K; k++) m = fmax(m, (double)zi[k]);
            double s = 0.0;
            for (size_t k = 0; k < K; k++) s += exp((double)zi[k] - m);
            lse = m + log(s);
            if (gi)
                for (size_t k = 0; k < K; k++) {
                    double t = off + ((size_t)yi == k ? 1.0 - e : 0.0);
                    gi[k] = (float)(w * (exp((double)zi[k] - lse) - t));
                }
        }
        double l = lse - tz;
        if (row_loss) row_loss[i] = (float)(w * l);
        totals->sum += w * l;
        totals->weight += w;
    }
}

void loss_softmax_xent_soft(float *grad, float *row_loss, LossTotals *totals, const float *z,
                            const float *t, size_t B, size_t K, const LossOptions *opt)
{
    XT_ASSERT(K >= 1);
    const double e = (double)opt->label_smoothing;
    const double off = e / (double)K;
    for (size_t i = 0; i < B; i++) {
        const float *zi = z + i * K;
        const float *ti = t + i * K;
        double m = (double)zi[0];
        for (size_t k = 1; k < K; k++) m = fmax(m, (double)zi[k]);
        double s = 0.0;
        for (size_t k = 0; k < K; k++) s += exp((double)zi[k] - m);
        double lse = m + log(s);
        /* l = -sum c_k t'_k (z_k - lse) = S lse - sum c_k t'_k z_k, S = sum c_k t'_k */
        double S = 0.0, ctz = 0.0;
        for (size_t k = 0; k < K; k++) {
            double c = opt->class_weight ? (double)opt->class_weight[k] : 1.0;
            double tk = (1.0 - e) * (double)ti[k] + off;
            S += c * tk;
            ctz += c * tk * (double)zi[k];
        }
        double l = S * lse - ctz;
        if (grad) {
            float *gi = grad + i * K;
            for (size_t k = 0; k < K; k++) {
                double c = opt->class_weight ? (double)opt->class_weight[k] : 1.0;
                double tk = (1.0 - e) * (double)ti[k] + off;
                gi[k] = (float)(exp((double)zi[k] - lse) * S - c * tk);
            }
        }
        if (row_loss) row_loss[i] = (float)l;
        totals->sum += l;
        totals->weight += 1.0;
    }
}

/* One sigmoid output: loss and d loss / dz for target y in [0,1] (already smoothed). */
static inline double bce_logit(double zd, double y, double pw, double *dz)
{
    double s = loss_sigmoid(zd);
    *dz = (pw * y + 1.0 - y) * s - pw * y;
    return pw * y * loss_softplus(-zd) + (1.0 - y) * loss_softplus(zd);
}

void loss_binary_xent(float *grad, float *row_loss, LossTotals *totals, const float *z,
                      const int32_t *y, size_t B, const LossOptions *opt)
{
    const double e = (double)opt->label_smoothing;
    const double pw = (double)opt->pos_weight;
    for (size_t i = 0; i < B; i++) {
        int32_t yi = y[i];
        if (yi == opt->ignore_index) {
            if (grad) grad[i] = 0.0f;
            if (row_loss) row_loss[i] = 0.0f;
            continue;
        }
        XT_ASSERT(yi == 0 || yi == 1);
        double w = opt->class_weight ? (double)opt->class_weight[yi] : 1.0;
        double ys = (1.0 - e) * (double)yi + 0.5 * e;
        double dz;
        double l = bce_logit((double)z[i], ys, pw, &dz);
        if (grad) grad[i] = (float)(w * dz);
        if (row_loss) row_loss[i] = (float)(w * l);
        totals->sum += w * l;
        totals->weight += 1.0; /* PyTorch's mean is over the rows, whatever their weights */
    }
}

void loss_sigmoid_xent(float *grad, float *row_loss, LossTotals *totals, const float *z,
                       const float *y, size_t B, size_t K, const LossOptions *opt)
{
    const double e = (double)opt->label_smoothing;
    const double pw = (double)opt->pos_weight;
    for (size_t i = 0; i < B; i++) {
        double l = 0.0;
        for (size_t k = 0; k < K; k++) {
            size_t ik = i * K + k;
            double c = opt->class_weight ? (double)opt->class_weight[k] : 1.0;
            double ys = (1.0 - e) * (double)y[ik] + 0.5 * e;
            double dz;
            l += c * bce_logit((double)z[ik], ys, pw, &dz);
            if (grad) grad[ik] = (float)(c * dz);
        }
        if (row_loss) row_loss[i] = (float)l;
        totals->sum += l;
        totals->weight += (double)K; /* PyTorch's mean is over all B K outputs */
    }
}

void loss_compute(LossKind kind, float *grad, float *row_loss, LossTotals *totals,
                  const float *z, LossTargets tg, size_t B, size_t K, const LossOptions *opt)
{
    switch (kind) {
    case LOSS_BINARY: loss_binary_xent(grad, row_loss, totals, z, tg.y, B, opt); return;
    case LOSS_SOFTMAX: loss_softmax_xent(grad, row_loss, totals, z, tg.y, B, K, opt); return;
    case LOSS_SOFTMAX_PROBS:
        loss_softmax_xent_soft(grad, row_loss, totals, z, tg.t, B, K, opt);
        return;
    case LOSS_MULTILABEL: loss_sigmoid_xent(grad, row_loss, totals, z, tg.t, B, K, opt); return;
    }
    XT_ASSERT(!"unknown loss kind");
}

size_t loss_argmax(const float *v, size_t K)
{
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (v[k] > v[best]) best = k;
    return best;
}

void loss_count_correct(LossKind kind, const float *z, LossTargets tg, size_t B, size_t K,
                        int32_t ignore_index, double *correct, double *decisions)
{
    size_t right = 0, all = 0;
    for (size_t i = 0; i < B; i++) {
        switch (kind) {
        case LOSS_BINARY:
            if (tg.y[i] == ignore_index) continue;
            right += (z[i] > 0.0f) == (tg.y[i] == 1);
            all++;
            break;
        case LOSS_SOFTMAX:
            if (tg.y[i] == ignore_index) continue;
            right += loss_argmax(z + i * K, K) == (size_t)tg.y[i];
            all++;
            break;
        case LOSS_SOFTMAX_PROBS:
            right += loss_argmax(z + i * K, K) == loss_argmax(tg.t + i * K, K);
            all++;
            break;
        case LOSS_MULTILABEL:
            for (size_t k = 0; k < K; k++)
                right += (z[i * K + k] > 0.0f) == (tg.t[i * K + k] >= 0.5f);
            all += K;
            break;
        }
    }
    *correct += (double)right;
    *decisions += (double)all;
}

const char *loss_kind_name(LossKind kind)
{
    switch (kind) {
    case LOSS_BINARY: return "binary (sigmoid, class ids 0/1)";
    case LOSS_SOFTMAX: return "softmax (class ids)";
    case LOSS_SOFTMAX_PROBS: return "softmax (probability targets)";
    case LOSS_MULTILABEL: return "multi-label (one sigmoid per output)";
    }
    return "?";
}

Status loss_check_options(LossKind kind, const LossOptions *opt, size_t n_weights, size_t K,
                          char *err, size_t errlen)
{
    bool ids = kind == LOSS_BINARY || kind == LOSS_SOFTMAX;
    bool sigmoid = kind == LOSS_BINARY || kind == LOSS_MULTILABEL;
    size_t want = kind == LOSS_BINARY ? 2 : K;
    if (opt->ignore_index != LOSS_NO_IGNORE && !ids) {
        snprintf(err, errlen, "loss.ignore_index = %d: the %s loss has no class ids to ignore "
                 "(PyTorch refuses it too); set loss.ignore_index = -1",
                 (int)opt->ignore_index, loss_kind_name(kind));
        return XT_ERR_USAGE;
    }
    if (opt->pos_weight != 1.0 && !sigmoid) {
        snprintf(err, errlen, "loss.pos_weight = %g: the %s loss has no positive class "
                 "(pos_weight weights sigmoid outputs: logistic, multilabel, mlp with head = "
                 "sigmoid); for class imbalance use loss.class_weights",
                 opt->pos_weight, loss_kind_name(kind));
        return XT_ERR_USAGE;
    }
    if (n_weights > 0 && n_weights != want) {
        snprintf(err, errlen, "loss.class_weights has %zu values but the %s loss needs %zu "
                 "(one per %s)", n_weights, loss_kind_name(kind), want,
                 kind == LOSS_MULTILABEL ? "output" : "class");
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

Status loss_balanced_weights(const double *counts, size_t K, long ignore, float *w, char *err,
                             size_t errlen)
{
    double n = 0.0;
    size_t k_used = 0;
    for (size_t c = 0; c < K; c++)
        if ((long)c != ignore) {
            n += counts[c];
            k_used++;
        }
    for (size_t c = 0; c < K; c++) {
        w[c] = 1.0f;
        if ((long)c == ignore) continue;
        if (counts[c] <= 0.0) {
            snprintf(err, errlen, "loss.class_weights = balanced: class %zu has no training "
                     "rows, so its weight n / (K * 0) is infinite; give the weights as numbers, "
                     "or leave the class out of model.classes", c);
            return XT_ERR_USAGE;
        }
        w[c] = (float)(n / ((double)k_used * counts[c]));
    }
    return XT_OK;
}

double loss_reduce(const LossTotals *t, LossReduction r)
{
    switch (r) {
    case LOSS_REDUCE_SUM: return t->sum;
    case LOSS_REDUCE_MEAN: return t->weight > 0.0 ? t->sum / t->weight : 0.0;
    case LOSS_REDUCE_NONE: break;
    }
    return NAN;
}

double loss_grad_scale(const LossTotals *t, LossReduction r)
{
    if (r == LOSS_REDUCE_MEAN) return t->weight > 0.0 ? 1.0 / t->weight : 0.0;
    return 1.0;
}

static double clamp_prob(double a, double eps)
{
    if (!(a >= eps)) return eps; /* also maps NaN to eps */
    if (a > 1.0 - eps) return 1.0 - eps;
    return a;
}

double loss_xent_prob(const double *y, const double *t, size_t K, double eps)
{
    double l = 0.0;
    for (size_t k = 0; k < K; k++)
        if (t[k] != 0.0) l -= t[k] * log(clamp_prob(y[k], eps));
    return l;
}

double loss_bce_prob(double a, double y, double eps)
{
    double c = clamp_prob(a, eps);
    return -(y * log(c) + (1.0 - y) * log1p(-c));
}

double loss_bce_prob_grad(double a, double y, double eps)
{
    double c = clamp_prob(a, eps);
    return (c - y) / (c * (1.0 - c));
}

/* ---- curvature at the logits (full-batch Newton) ------------------------------------------- */

/* The row's total target weight S of losses 1 and 2 (see loss_curvature). */
static double softmax_row_weight(LossKind kind, LossTargets tg, size_t i, size_t K,
                                 const LossOptions *opt)
{
    const double e = opt->label_smoothing, off = e / (double)K;
    const float *c = opt->class_weight;
    if (kind == LOSS_SOFTMAX) {
        double cy = c ? (double)c[tg.y[i]] : 1.0, W = 0.0;
        if (!c || e == 0.0) return cy; /* smoothing alone: sum of targets is 1 */
        for (size_t k = 0; k < K; k++) W += (double)c[k];
        return (1.0 - e) * cy + off * W;
    }
    double S = 0.0;
    for (size_t k = 0; k < K; k++)
        S += (c ? (double)c[k] : 1.0) * ((1.0 - e) * (double)tg.t[i * K + k] + off);
    return S;
}

/* Losses 1 and 2: a softmax over the row (the others are sigmoids, one per output). */
static bool softmax_kind(LossKind kind)
{
    return kind == LOSS_SOFTMAX || kind == LOSS_SOFTMAX_PROBS;
}

void loss_curvature(LossKind kind, float *curv, float *rw, const float *z, LossTargets tg,
                    size_t B, size_t K, const LossOptions *opt)
{
    const double e = opt->label_smoothing, pw = opt->pos_weight;
    const size_t KO = kind == LOSS_BINARY ? 1 : K;
    const bool ids = kind == LOSS_BINARY || kind == LOSS_SOFTMAX;
    for (size_t i = 0; i < B; i++) {
        float *c = curv + i * KO;
        const float *zi = z + i * KO;
        if (ids && tg.y[i] == opt->ignore_index) {
            for (size_t k = 0; k < KO; k++) c[k] = 0.0f;
            rw[i] = 0.0f;
            continue;
        }
        if (softmax_kind(kind)) { /* p, and S */
            double m = (double)zi[0], sum = 0.0;
            for (size_t k = 1; k < K; k++) m = fmax(m, (double)zi[k]);
            for (size_t k = 0; k < K; k++) sum += exp((double)zi[k] - m);
            for (size_t k = 0; k < K; k++) c[k] = (float)(exp((double)zi[k] - m) / sum);
            rw[i] = (float)softmax_row_weight(kind, tg, i, K, opt);
            continue;
        }
        for (size_t k = 0; k < KO; k++) { /* c (pw y' + 1 - y') s (1 - s) */
            double y = kind == LOSS_BINARY ? (double)tg.y[i] : (double)tg.t[i * K + k];
            double cw = !opt->class_weight ? 1.0
                        : kind == LOSS_BINARY ? (double)opt->class_weight[tg.y[i]]
                                              : (double)opt->class_weight[k];
            double ys = (1.0 - e) * y + 0.5 * e, s = loss_sigmoid((double)zi[k]);
            c[k] = (float)(cw * (pw * ys + 1.0 - ys) * s * (1.0 - s));
        }
        rw[i] = 1.0f;
    }
}

void loss_curvature_times(LossKind kind, float *hv, const float *curv, const float *rw,
                          const float *u, size_t B, size_t K)
{
    const size_t KO = kind == LOSS_BINARY ? 1 : K;
    for (size_t i = 0; i < B; i++) {
        const float *p = curv + i * KO, *ui = u + i * KO;
        float *h = hv + i * KO;
        if (!softmax_kind(kind)) {
            for (size_t k = 0; k < KO; k++) h[k] = (float)((double)p[k] * (double)ui[k]);
            continue;
        }
        double pu = 0.0, S = (double)rw[i]; /* S (p * u - p (p . u)) */
        for (size_t k = 0; k < K; k++) pu += (double)p[k] * (double)ui[k];
        for (size_t k = 0; k < K; k++) h[k] = (float)(S * (double)p[k] * ((double)ui[k] - pu));
    }
}

void loss_curvature_diag(LossKind kind, float *hd, const float *curv, const float *rw, size_t B,
                         size_t K)
{
    const size_t KO = kind == LOSS_BINARY ? 1 : K;
    if (!softmax_kind(kind)) { /* the sigmoids' H_i is diagonal: curv itself */
        memcpy(hd, curv, B * KO * sizeof *hd);
        return;
    }
    for (size_t i = 0; i < B; i++) /* softmax: S p (1 - p) */
        for (size_t k = 0; k < K; k++) {
            double p = (double)curv[i * K + k];
            hd[i * K + k] = (float)((double)rw[i] * p * (1.0 - p));
        }
}
