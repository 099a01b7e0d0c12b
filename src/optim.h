/* optim: SGD on flat arrays, and the learning-rate schedule.
 *
 * Update (the common convention, as torch.optim.SGD):
 *   g = grad_scale * grad + weight_decay * p   (L2, coupled)
 *   g = g * min(1, clip_norm / ||g||)          (when clip_norm > 0; global norm)
 *   v = momentum * v + g                       (when momentum > 0)
 *   d = nesterov ? g + momentum * v : v        (d = g without momentum)
 *   p = p - lr * d
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

typedef struct {
    double lr;            /* base learning rate (after any linear scaling) */
    double momentum, weight_decay, clip_norm;
    bool nesterov;
    Schedule schedule;
    int64_t step_size;
    double gamma;
    double warmup_epochs;
    int64_t epochs;       /* for cosine */
    size_t steps_per_epoch;
} OptimSettings;

typedef struct {
    OptimSettings set;
    size_t n;
    float *velocity;      /* (n) momentum buffer, owned; NULL without momentum */
} Optim;

Status optim_init(Optim *o, const OptimSettings *set, size_t n);
void optim_free(Optim *o);

/* The state a checkpoint must carry (kind "sgd": the momentum buffer "velocity" when
 * momentum > 0), as views of o's buffers. Local. */
void optim_state(Optim *o, StateList *out);

/* The learning rate for global step t. */
double optim_lr(const OptimSettings *set, uint64_t t);

/* One update of params with grad_scale * grad (n each): the trainer passes gradient
 * SUMS and 1 / (global weight), so the division happens inside the update. Scaling,
 * weight decay, momentum and the update are one fused pass over the parameters (plus
 * one pass for the norm when clip_norm > 0). grad is not modified.
 * Returns the norm of the scaled, decayed gradient before clipping when clip_norm > 0,
 * NAN otherwise. */
double optim_step(Optim *o, float *params, const float *grad, float grad_scale, double lr);

#endif
