#include "optim.h"

#include <math.h>
#include <stdlib.h>

Status optim_init(Optim *o, const OptimSettings *set, size_t n)
{
    *o = (Optim){.set = *set, .n = n};
    if (set->momentum > 0.0) {
        o->velocity = calloc(n > 0 ? n : 1, sizeof *o->velocity);
        if (!o->velocity) return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

void optim_free(Optim *o)
{
    free(o->velocity);
    o->velocity = NULL;
}

void optim_state(Optim *o, StateList *out)
{
    state_init(out, "sgd");
    if (o->velocity) state_add_array(out, "velocity", o->velocity, o->n);
}

double optim_lr(const OptimSettings *set, uint64_t t)
{
    double spe = (double)(set->steps_per_epoch > 0 ? set->steps_per_epoch : 1);
    double lr = set->lr;
    switch (set->schedule) {
    case SCHED_CONSTANT: break;
    case SCHED_STEP: {
        uint64_t epoch = t / (uint64_t)spe;
        lr *= pow(set->gamma, (double)(epoch / (uint64_t)set->step_size));
        break;
    }
    case SCHED_COSINE: {
        double total = spe * (double)set->epochs;
        double frac = fmin((double)t / total, 1.0);
        lr *= 0.5 * (1.0 + cos(3.14159265358979323846 * frac));
        break;
    }
    }
    if (set->warmup_epochs > 0.0) {
        double w = set->warmup_epochs * spe;
        double f = ((double)t + 1.0) / w;
        if (f < 1.0) lr *= f;
    }
    return lr;
}

double optim_step(Optim *o, float *params, const float *grad, float grad_scale, double lr)
{
    const size_t n = o->n;
    const float wd = (float)o->set.weight_decay;
    double norm = NAN;
    float cf = 1.0f; /* the clipping factor */
    if (o->set.clip_norm > 0.0) {
        /* The global norm needs its own pass over the effective gradient. */
        double ss = 0.0;
        for (size_t i = 0; i < n; i++) {
            float g = grad_scale * grad[i] + wd * params[i];
            ss += (double)g * (double)g;
        }
        norm = sqrt(ss);
        if (norm > o->set.clip_norm) cf = (float)(o->set.clip_norm / norm);
    }
    /* g = cf (grad_scale grad + wd p), in one fused pass with momentum and the update. */
    const float gs = grad_scale * cf;
    const float wdc = wd * cf;
    const float flr = (float)lr;
    if (o->velocity) {
        const float mu = (float)o->set.momentum;
        float *v = o->velocity;
        if (o->set.nesterov) {
            for (size_t i = 0; i < n; i++) {
                float g = gs * grad[i] + wdc * params[i];
                v[i] = mu * v[i] + g;
                params[i] -= flr * (g + mu * v[i]);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                v[i] = mu * v[i] + (gs * grad[i] + wdc * params[i]);
                params[i] -= flr * v[i];
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) params[i] -= flr * (gs * grad[i] + wdc * params[i]);
    }
    return norm;
}
