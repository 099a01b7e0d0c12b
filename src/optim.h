/* optim: the optimisers on flat arrays, and the learning-rate schedule.
 *
 * Every update takes the gradient SUMS and grad_scale = 1 / (global weight), so the
 * averaged gradient is G = grad_scale * grad. With lr the scheduled rate, wd the weight
 * decay, t the 1-based update count:
 *
 * sgd (torch.optim.SGD):
 *   g = G + wd p;  g *= min(1, clip_norm / ||g||) when clip_norm > 0 (global norm)
 *   v = momentum v + g (momentum > 0);  d = nesterov ? g + momentum v : v (d = g without)
 *   p = p - lr d
 * adam (torch.optim.Adam 1.13, amsgrad off; L2 decay coupled into the gradient):
 *   g = G + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * adamw (torch.optim.AdamW 1.13): p = p (1 - lr wd), then adam's update with g = G.
 * lars (You, Gitman, Ginsburg 2017, in the form of LARC / torchlars: the trust ratio scales
 *   the decayed gradient, then SGD momentum), per parameter tensor (each W_l, each b_l):
 *   g = G + wd p;  r = eta ||p|| / (||G|| + wd ||p|| + eps)  (r = 1 if ||p|| or ||G|| is 0)
 *   v = momentum v + r g;  p = p - lr v
 * lamb (You et al. 2020, Algorithm 2, phi = identity), per parameter tensor:
 *   m, v as adam (with G);  u = m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd p
 *   r = ||p|| / ||u||  (r = 1 if either is 0);  p = p - lr r u
 * With exclude_bias (default), lars and lamb give biases r = 1 and no weight decay.
 * clip_norm > 0 clips G's global norm first for adam, adamw, lars and lamb (as
 * torch.nn.utils.clip_grad_norm_ before optimizer.step()); for sgd it clips g (decay
 * included), as it always has.
 *
 * Schedule at global step t (0-based) with S steps per epoch and E epochs:
 *   constant: lr0;  step: lr0 * gamma^floor(epoch / step_size);
 *   cosine:   lr0 * (1 + cos(pi * t / (E S))) / 2;
 *   warm-up (composes with any of them): times min(1, (t + 1) / (warmup_epochs S)).
 * Every rank runs the same update on the same (allreduced) gradient, so replicas stay
 * bit-identical. Local; no allocation after optim_init.
 */
#ifndef XT_OPTIM_H
#define XT_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "state.h"

#define OPTIM_MAX_SEGMENTS 32

/* One parameter tensor in the flat buffer: lars and lamb take a trust ratio per tensor. */
typedef struct {
    size_t off, n;
    bool bias;
} ParamSegment;

typedef struct {
    Optimizer kind;
    double lr;            /* base learning rate (after any linear scaling) */
    double momentum, weight_decay, clip_norm;
    bool nesterov;
    double beta1, beta2, eps, trust_coefficient;
    bool exclude_bias;
    Schedule schedule;
    int64_t step_size;
    double gamma;
    double warmup_epochs;
    int64_t epochs;       /* for cosine */
    size_t steps_per_epoch;
    ParamSegment segs[OPTIM_MAX_SEGMENTS]; /* lars, lamb: the tensors, covering [0, n) */
    size_t n_segs;
} OptimSettings;

typedef struct {
    OptimSettings set;
    size_t n;
    float *velocity;      /* (n) sgd/lars momentum buffer, owned; NULL without momentum */
    float *m, *v;         /* (n) adam, adamw, lamb moments, owned */
    int64_t t;            /* adam, adamw, lamb: updates made (bias correction) */
} Optim;

const char *optim_name(Optimizer kind);

Status optim_init(Optim *o, const OptimSettings *set, size_t n);
void optim_free(Optim *o);

/* The state a checkpoint must carry, as views of o's buffers: kind "sgd" (the momentum
 * buffer "velocity" when momentum > 0), "lars" (likewise), "adam", "adamw", "lamb"
 * ("exp_avg", "exp_avg_sq", "step"). A checkpoint of another optimiser is refused by kind.
 * Local. */
void optim_state(Optim *o, StateList *out);

/* The learning rate for global step t. */
double optim_lr(const OptimSettings *set, uint64_t t);

/* One update of params with grad_scale * grad (n each), as defined above: one fused pass
 * over the parameters for sgd, adam and adamw (plus one for the norm when clip_norm > 0);
 * lars and lamb add one pass per tensor for its norms. grad is not modified.
 * Returns the norm of the gradient that clipping looked at when clip_norm > 0, NAN
 * otherwise. */
double optim_step(Optim *o, float *params, const float *grad, float grad_scale, double lr);

#endif
