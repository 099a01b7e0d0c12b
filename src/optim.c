#include "optim.h"

#include <math.h>
#include <stdlib.h>

static const char *const KIND_NAMES[] = {"sgd", "adam", "adamw", "lars", "lamb"};

const char *optim_name(Optimizer kind)
{
    return (unsigned)kind < sizeof KIND_NAMES / sizeof KIND_NAMES[0] ? KIND_NAMES[kind] : "?";
}

static bool has_moments(Optimizer k) { return k == OPT_ADAM || k == OPT_ADAMW || k == OPT_LAMB; }

Status optim_init(Optim *o, const OptimSettings *set, size_t n)
{
    *o = (Optim){.set = *set, .n = n};
    size_t cap = n > 0 ? n : 1;
    if ((set->kind == OPT_SGD || set->kind == OPT_LARS) && set->momentum > 0.0) {
        o->velocity = calloc(cap, sizeof *o->velocity);
        if (!o->velocity) return XT_ERR_RUNTIME;
    }
    if (has_moments(set->kind)) {
        o->m = calloc(cap, sizeof *o->m);
        o->v = calloc(cap, sizeof *o->v);
        if (!o->m || !o->v) {
            optim_free(o);
            return XT_ERR_RUNTIME;
        }
    }
    if (set->kind == OPT_LARS || set->kind == OPT_LAMB) {
        size_t covered = 0;
        for (size_t i = 0; i < set->n_segs; i++) covered += set->segs[i].n;
        XT_ASSERT(set->n_segs > 0 && covered == n);
    }
    return XT_OK;
}

void optim_free(Optim *o)
{
    free(o->velocity);
    free(o->m);
    free(o->v);
    o->velocity = o->m = o->v = NULL;
}

void optim_state(Optim *o, StateList *out)
{
    state_init(out, optim_name(o->set.kind));
    if (o->velocity) state_add_array(out, "velocity", o->velocity, o->n);
    if (o->m) {
        state_add_array(out, "exp_avg", o->m, o->n);
        state_add_array(out, "exp_avg_sq", o->v, o->n);
        state_add_i64(out, "step", &o->t);
    }
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

static double sgd_step(Optim *o, float *params, const float *grad, float grad_scale, double lr)
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

/* The global norm of grad_scale * grad, and the factor that clips it to clip_norm. */
static double clip_factor(const Optim *o, const float *grad, float grad_scale, float *cf)
{
    *cf = 1.0f;
    if (!(o->set.clip_norm > 0.0)) return NAN;
    double ss = 0.0;
    for (size_t i = 0; i < o->n; i++) {
        double g = (double)(grad_scale * grad[i]);
        ss += g * g;
    }
    double norm = sqrt(ss);
    if (norm > o->set.clip_norm) *cf = (float)(o->set.clip_norm / norm);
    return norm;
}

/* adam and adamw, as torch.optim.Adam/AdamW (single-tensor path) in float32: the same
 * operations in the same order; torch's CPU kernels fuse some multiply-adds (FMA), so the
 * two agree to about an ulp per step, not bit for bit. */
static void adam_step(Optim *o, float *params, const float *grad, float gs, double lr)
{
    const OptimSettings *st = &o->set;
    o->t++;
    const double bc1 = 1.0 - pow(st->beta1, (double)o->t);
    const double bc2 = 1.0 - pow(st->beta2, (double)o->t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)st->beta1, b2 = (float)st->beta2, eps = (float)st->eps;
    const float c1 = (float)(1.0 - st->beta1), c2 = (float)(1.0 - st->beta2); /* as torch */
    const bool decoupled = st->kind == OPT_ADAMW;
    const float wd = (float)st->weight_decay;
    const float shrink = (float)(1.0 - lr * st->weight_decay);
    float *m = o->m, *v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        float g = gs * grad[i];
        if (decoupled) params[i] *= shrink;
        else g += wd * params[i];
        m[i] = b1 * m[i] + c1 * g;
        v[i] = b2 * v[i] + c2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        params[i] -= (step_size * m[i]) / denom; /* addcdiv_'s grouping */
    }
}

/* Sums of squares in 8 fixed lanes: a set order (the result does not depend on the
 * compiler), and independent lanes that the compiler can vectorise. */
#define LANES 8

static double lanes_total(const double acc[LANES])
{
    double t = 0.0;
    for (int j = 0; j < LANES; j++) t += acc[j];
    return t;
}

/* ||scale * x||; scale = 1 for a plain norm. */
static double scaled_norm(const float *x, float scale, size_t n)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double v = (double)(scale * x[i + (size_t)j]);
            acc[j] += v * v;
        }
    for (; i < n; i++) {
        double v = (double)(scale * x[i]);
        acc[i % LANES] += v * v;
    }
    return sqrt(lanes_total(acc));
}

static double sq_norm(const float *x, size_t n) { return scaled_norm(x, 1.0f, n); }

/* lars: per tensor, the trust ratio scales the decayed gradient; then SGD momentum. */
static void lars_step(Optim *o, float *params, const float *grad, float gs, double lr)
{
    const OptimSettings *st = &o->set;
    const float flr = (float)lr, mu = (float)st->momentum;
    for (size_t s = 0; s < st->n_segs; s++) {
        const ParamSegment *sg = &st->segs[s];
        float *p = params + sg->off;
        const float *g = grad + sg->off;
        const bool plain = sg->bias && st->exclude_bias;
        const double wd = plain ? 0.0 : st->weight_decay;
        double r = 1.0;
        if (!plain) {
            double pn = sq_norm(p, sg->n), gn = scaled_norm(g, gs, sg->n);
            if (pn > 0.0 && gn > 0.0) r = st->trust_coefficient * pn / (gn + wd * pn + st->eps);
        }
        const float fr = (float)r, fwd = (float)wd;
        float *v = o->velocity ? o->velocity + sg->off : NULL;
        for (size_t i = 0; i < sg->n; i++) {
            float d = fr * (gs * g[i] + fwd * p[i]);
            if (v) {
                v[i] = mu * v[i] + d;
                d = v[i];
            }
            p[i] -= flr * d;
        }
    }
}

/* lamb: adam's moments, the decayed adam direction u, per tensor r = ||p|| / ||u||. The
 * direction is computed twice (norm pass, update pass) with the same operations, so the
 * two passes see the same bits and no buffer is needed. */
static void lamb_step(Optim *o, float *params, const float *grad, float gs, double lr)
{
    const OptimSettings *st = &o->set;
    o->t++;
    const float rbc1 = (float)(1.0 / (1.0 - pow(st->beta1, (double)o->t)));
    const float rbc2 = (float)(1.0 / (1.0 - pow(st->beta2, (double)o->t)));
    const float b1 = (float)st->beta1, b2 = (float)st->beta2, eps = (float)st->eps;
    const float c1 = (float)(1.0 - st->beta1), c2 = (float)(1.0 - st->beta2); /* as torch */
    for (size_t s = 0; s < st->n_segs; s++) {
        const ParamSegment *sg = &st->segs[s];
        float *p = params + sg->off, *m = o->m + sg->off, *v = o->v + sg->off;
        const float *g = grad + sg->off;
        const bool plain = sg->bias && st->exclude_bias;
        const float wd = plain ? 0.0f : (float)st->weight_decay;
        for (size_t i = 0; i < sg->n; i++) {
            float gi = gs * g[i];
            m[i] = b1 * m[i] + c1 * gi;
            v[i] = b2 * v[i] + c2 * gi * gi;
        }
        double acc[LANES] = {0};
        size_t i0 = 0;
        for (; i0 + LANES <= sg->n; i0 += LANES)
            for (int j = 0; j < LANES; j++) {
                size_t i = i0 + (size_t)j;
                float u = (m[i] * rbc1) / (sqrtf(v[i] * rbc2) + eps) + wd * p[i];
                acc[j] += (double)u * (double)u;
            }
        for (; i0 < sg->n; i0++) {
            float u = (m[i0] * rbc1) / (sqrtf(v[i0] * rbc2) + eps) + wd * p[i0];
            acc[i0 % LANES] += (double)u * (double)u;
        }
        double un = sqrt(lanes_total(acc));
        double pn = sq_norm(p, sg->n), r = 1.0;
        if (!plain && pn > 0.0 && un > 0.0) r = pn / un;
        const float step = (float)(lr * r);
        for (size_t i = 0; i < sg->n; i++) {
            float u = (m[i] * rbc1) / (sqrtf(v[i] * rbc2) + eps) + wd * p[i];
            p[i] -= step * u;
        }
    }
}

double optim_step(Optim *o, float *params, const float *grad, float grad_scale, double lr)
{
    if (o->set.kind == OPT_SGD) return sgd_step(o, params, grad, grad_scale, lr);
    float cf;
    double norm = clip_factor(o, grad, grad_scale, &cf);
    const float gs = grad_scale * cf;
    switch (o->set.kind) {
    case OPT_ADAM:
    case OPT_ADAMW: adam_step(o, params, grad, gs, lr); break;
    case OPT_LARS: lars_step(o, params, grad, gs, lr); break;
    case OPT_LAMB: lamb_step(o, params, grad, gs, lr); break;
    case OPT_SGD: break;
    }
    return norm;
}
