#include "optim.h"

#include <math.h>
#include <stdlib.h>

static const char *const KIND_NAMES[] = {"sgd", "adam", "adamw", "lars", "lamb", "lbfgs",
                                         "newton"};

const char *optim_name(Optimizer kind)
{
    return (unsigned)kind < sizeof KIND_NAMES / sizeof KIND_NAMES[0] ? KIND_NAMES[kind] : "?";
}

static bool has_moments(Optimizer k) { return k == OPT_ADAM || k == OPT_ADAMW || k == OPT_LAMB; }

/* The tensors norms are taken over: each W_l and b_l for lars and lamb, else one. */
static size_t norm_segments(const OptimSettings *set, size_t n, size_t off[], size_t len[])
{
    if (set->kind != OPT_LARS && set->kind != OPT_LAMB) {
        off[0] = 0;
        len[0] = n;
        return 1;
    }
    for (size_t i = 0; i < set->n_segs; i++) {
        off[i] = set->segs[i].off;
        len[i] = set->segs[i].n;
    }
    return set->n_segs;
}

/* The block boundaries in order (out may be NULL: just count); returns the block count. */
static size_t block_bounds(const OptimSettings *set, size_t n, size_t *out, size_t *seg_blk)
{
    size_t off[OPTIM_MAX_SEGMENTS], len[OPTIM_MAX_SEGMENTS];
    size_t nseg = norm_segments(set, n, off, len), k = 0;
    for (size_t s = 0; s < nseg; s++) {
        if (seg_blk) seg_blk[s] = k;
        for (size_t a = 0; a < len[s]; a += OPTIM_NORM_BLOCK, k++)
            if (out) out[k] = off[s] + a;
    }
    if (seg_blk) seg_blk[nseg] = k;
    if (out) out[k] = n;
    return k;
}

void optim_partition(const OptimSettings *set, size_t n, int P, size_t *off)
{
    size_t nb = block_bounds(set, n, NULL, NULL);
    size_t *b = malloc((nb + 1) * sizeof *b);
    XT_ASSERT(b);
    block_bounds(set, n, b, NULL);
    size_t j = 0;
    off[0] = 0;
    for (int r = 1; r < P; r++) {
        size_t target = n / (size_t)P * (size_t)r + n % (size_t)P * (size_t)r / (size_t)P;
        while (j < nb && b[j] < target) j++;
        off[r] = b[j];
    }
    off[P] = n;
    free(b);
}

Status optim_init(Optim *o, const OptimSettings *set, size_t n)
{
    return optim_init_slice(o, set, n, 0, n);
}

Status optim_init_slice(Optim *o, const OptimSettings *set, size_t n, size_t lo, size_t hi)
{
    XT_ASSERT(lo <= hi && hi <= n);
    *o = (Optim){.set = *set, .n = n, .lo = lo, .hi = hi};
    size_t cap = hi > lo ? hi - lo : 1;
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
        for (size_t i = 0; i < set->n_segs; i++) {
            XT_ASSERT(set->segs[i].off == covered); /* the tensors tile [0, n) in order */
            covered += set->segs[i].n;
        }
        XT_ASSERT(set->n_segs > 0 && covered == n);
    }
    size_t off[OPTIM_MAX_SEGMENTS], len[OPTIM_MAX_SEGMENTS];
    o->nseg = norm_segments(set, n, off, len);
    o->nblk = block_bounds(set, n, NULL, NULL);
    o->blk_off = malloc((o->nblk + 1) * sizeof *o->blk_off);
    o->blk = calloc(2 * o->nblk + 1, sizeof *o->blk);
    if (!o->blk_off || !o->blk) {
        optim_free(o);
        return XT_ERR_RUNTIME;
    }
    block_bounds(set, n, o->blk_off, o->seg_blk);
    o->blo = o->bhi = 0;
    while (o->blo < o->nblk && o->blk_off[o->blo] < lo) o->blo++;
    o->bhi = o->blo;
    while (o->bhi < o->nblk && o->blk_off[o->bhi] < hi) o->bhi++;
    XT_ASSERT(o->blk_off[o->blo] == lo || lo == hi); /* slices start on block boundaries */
    XT_ASSERT(o->blk_off[o->bhi] == hi || lo == hi);
    return XT_OK;
}

Status optim_set_gather(Optim *o, const size_t *off, int P, OptimGather gather, void *ctx)
{
    for (int w = 0; w < 2; w++) {
        free(o->goff[w]);
        o->goff[w] = malloc(((size_t)P + 1) * sizeof *o->goff[w]);
        if (!o->goff[w]) return XT_ERR_RUNTIME;
    }
    size_t j = 0;
    for (int r = 0; r <= P; r++) { /* the first block at or after off[r] */
        while (j < o->nblk && o->blk_off[j] < off[r]) j++;
        o->goff[0][r] = j * sizeof(double);
        o->goff[1][r] = 2 * j * sizeof(double);
    }
    o->gather = gather;
    o->gather_ctx = ctx;
    return XT_OK;
}

void optim_free(Optim *o)
{
    free(o->velocity);
    free(o->m);
    free(o->v);
    free(o->blk_off);
    free(o->blk);
    free(o->goff[0]);
    free(o->goff[1]);
    o->velocity = o->m = o->v = NULL;
    o->blk_off = NULL;
    o->blk = NULL;
    o->goff[0] = o->goff[1] = NULL;
}

void optim_state(Optim *o, StateList *out)
{
    const size_t len = o->hi - o->lo;
    state_init(out, optim_name(o->set.kind));
    if (o->velocity) state_add_array(out, "velocity", o->velocity, len);
    if (o->m) {
        state_add_array(out, "exp_avg", o->m, len);
        state_add_array(out, "exp_avg_sq", o->v, len);
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

/* Sums of squares in 8 fixed lanes: a set order (the result does not depend on the
 * compiler), and independent lanes that the compiler can vectorise. */
#define LANES 8

static double lanes_total(const double acc[LANES])
{
    double t = 0.0;
    for (int j = 0; j < LANES; j++) t += acc[j];
    return t;
}

/* sum of (scale x)^2 over len values. */
static double scaled_sq(const float *x, float scale, size_t len)
{
    double acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= len; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double v = (double)(scale * x[i + (size_t)j]);
            acc[j] += v * v;
        }
    for (; i < len; i++) {
        double v = (double)(scale * x[i]);
        acc[i % LANES] += v * v;
    }
    return lanes_total(acc);
}

/* After this Optim filled its blocks' partial sums (w per block): the other ranks' too. */
static void complete_blocks(Optim *o, int w)
{
    if (o->gather) o->gather(o->gather_ctx, o->blk, o->goff[w - 1]);
}

/* Sum c of blocks [a, b), in block order (w sums per block). */
static double blocks_total(const Optim *o, size_t a, size_t b, int w, int c)
{
    double t = 0.0;
    for (size_t j = a; j < b; j++) t += o->blk[(size_t)w * j + (size_t)c];
    return t;
}

/* Elements [a, b) of segment s that lie in this Optim's slice. */
static bool seg_slice(const Optim *o, size_t s, size_t *a, size_t *b)
{
    size_t x = o->blk_off[o->seg_blk[s]], y = o->blk_off[o->seg_blk[s + 1]];
    *a = x > o->lo ? x : o->lo;
    *b = y < o->hi ? y : o->hi;
    return *a < *b;
}

static double sgd_step(Optim *o, float *params, const float *grad, float grad_scale, double lr)
{
    const float wd = (float)o->set.weight_decay;
    double norm = NAN;
    float cf = 1.0f; /* the clipping factor */
    if (o->set.clip_norm > 0.0) {
        /* The global norm of the effective gradient needs its own pass. */
        for (size_t j = o->blo; j < o->bhi; j++) {
            double acc[LANES] = {0};
            for (size_t i = o->blk_off[j]; i < o->blk_off[j + 1]; i++) {
                float g = grad_scale * grad[i] + wd * params[i];
                acc[(i - o->blk_off[j]) % LANES] += (double)g * (double)g;
            }
            o->blk[j] = lanes_total(acc);
        }
        complete_blocks(o, 1);
        norm = sqrt(blocks_total(o, 0, o->nblk, 1, 0));
        if (norm > o->set.clip_norm) cf = (float)(o->set.clip_norm / norm);
    }
    /* g = cf (grad_scale grad + wd p), in one fused pass with momentum and the update. */
    const float gs = grad_scale * cf;
    const float wdc = wd * cf;
    const float flr = (float)lr;
    const size_t len = o->hi - o->lo;
    float *p = params + o->lo;
    const float *gr = grad + o->lo;
    if (o->velocity) {
        const float mu = (float)o->set.momentum;
        float *v = o->velocity;
        if (o->set.nesterov) {
            for (size_t i = 0; i < len; i++) {
                float g = gs * gr[i] + wdc * p[i];
                v[i] = mu * v[i] + g;
                p[i] -= flr * (g + mu * v[i]);
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                v[i] = mu * v[i] + (gs * gr[i] + wdc * p[i]);
                p[i] -= flr * v[i];
            }
        }
    } else {
        for (size_t i = 0; i < len; i++) p[i] -= flr * (gs * gr[i] + wdc * p[i]);
    }
    return norm;
}

/* The global norm of grad_scale * grad, and the factor that clips it to clip_norm. */
static double clip_factor(Optim *o, const float *grad, float grad_scale, float *cf)
{
    *cf = 1.0f;
    if (!(o->set.clip_norm > 0.0)) return NAN;
    for (size_t j = o->blo; j < o->bhi; j++)
        o->blk[j] = scaled_sq(grad + o->blk_off[j], grad_scale, o->blk_off[j + 1] - o->blk_off[j]);
    complete_blocks(o, 1);
    double norm = sqrt(blocks_total(o, 0, o->nblk, 1, 0));
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
    float *m = o->m, *v = o->v, *p = params + o->lo;
    const float *gr = grad + o->lo;
    for (size_t i = 0; i < o->hi - o->lo; i++) {
        float g = gs * gr[i];
        if (decoupled) p[i] *= shrink;
        else g += wd * p[i];
        m[i] = b1 * m[i] + c1 * g;
        v[i] = b2 * v[i] + c2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= (step_size * m[i]) / denom; /* addcdiv_'s grouping */
    }
}

/* lars: per tensor, the trust ratio scales the decayed gradient; then SGD momentum. */
static void lars_step(Optim *o, float *params, const float *grad, float gs, double lr)
{
    const OptimSettings *st = &o->set;
    const float flr = (float)lr, mu = (float)st->momentum;
    for (size_t j = o->blo; j < o->bhi; j++) { /* ||p||^2, ||G||^2 per block */
        size_t a = o->blk_off[j], len = o->blk_off[j + 1] - a;
        o->blk[2 * j] = scaled_sq(params + a, 1.0f, len);
        o->blk[2 * j + 1] = scaled_sq(grad + a, gs, len);
    }
    complete_blocks(o, 2);
    for (size_t s = 0; s < o->nseg; s++) {
        const ParamSegment *sg = &st->segs[s];
        const bool plain = sg->bias && st->exclude_bias;
        const double wd = plain ? 0.0 : st->weight_decay;
        double r = 1.0;
        if (!plain) {
            double pn = sqrt(blocks_total(o, o->seg_blk[s], o->seg_blk[s + 1], 2, 0));
            double gn = sqrt(blocks_total(o, o->seg_blk[s], o->seg_blk[s + 1], 2, 1));
            if (pn > 0.0 && gn > 0.0) r = st->trust_coefficient * pn / (gn + wd * pn + st->eps);
        }
        size_t a, b;
        if (!seg_slice(o, s, &a, &b)) continue;
        const float fr = (float)r, fwd = (float)wd;
        float *p = params + a, *v = o->velocity ? o->velocity + (a - o->lo) : NULL;
        const float *g = grad + a;
        for (size_t i = 0; i < b - a; i++) {
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
#define LAMB_U(i) ((m[i] * rbc1) / (sqrtf(v[i] * rbc2) + eps) + wd * p[i])

static void lamb_step(Optim *o, float *params, const float *grad, float gs, double lr)
{
    const OptimSettings *st = &o->set;
    o->t++;
    const float rbc1 = (float)(1.0 / (1.0 - pow(st->beta1, (double)o->t)));
    const float rbc2 = (float)(1.0 / (1.0 - pow(st->beta2, (double)o->t)));
    const float b1 = (float)st->beta1, b2 = (float)st->beta2, eps = (float)st->eps;
    const float c1 = (float)(1.0 - st->beta1), c2 = (float)(1.0 - st->beta2); /* as torch */
    {
        float *m = o->m, *v = o->v;
        const float *g = grad + o->lo;
        for (size_t i = 0; i < o->hi - o->lo; i++) {
            float gi = gs * g[i];
            m[i] = b1 * m[i] + c1 * gi;
            v[i] = b2 * v[i] + c2 * gi * gi;
        }
    }
    for (size_t s = 0; s < o->nseg; s++) { /* ||p||^2, ||u||^2 of this slice's blocks */
        const ParamSegment *sg = &st->segs[s];
        const float wd = sg->bias && st->exclude_bias ? 0.0f : (float)st->weight_decay;
        size_t j0 = o->seg_blk[s] > o->blo ? o->seg_blk[s] : o->blo;
        size_t j1 = o->seg_blk[s + 1] < o->bhi ? o->seg_blk[s + 1] : o->bhi;
        for (size_t j = j0; j < j1; j++) {
            size_t a = o->blk_off[j], len = o->blk_off[j + 1] - a;
            const float *p = params + a, *m = o->m + (a - o->lo), *v = o->v + (a - o->lo);
            double acc[LANES] = {0};
            for (size_t i = 0; i < len; i++) {
                float u = LAMB_U(i);
                acc[i % LANES] += (double)u * (double)u;
            }
            o->blk[2 * j] = scaled_sq(p, 1.0f, len);
            o->blk[2 * j + 1] = lanes_total(acc);
        }
    }
    complete_blocks(o, 2);
    for (size_t s = 0; s < o->nseg; s++) {
        const ParamSegment *sg = &st->segs[s];
        const bool plain = sg->bias && st->exclude_bias;
        const float wd = plain ? 0.0f : (float)st->weight_decay;
        double pn = sqrt(blocks_total(o, o->seg_blk[s], o->seg_blk[s + 1], 2, 0));
        double un = sqrt(blocks_total(o, o->seg_blk[s], o->seg_blk[s + 1], 2, 1)), r = 1.0;
        if (!plain && pn > 0.0 && un > 0.0) r = pn / un;
        size_t a, b;
        if (!seg_slice(o, s, &a, &b)) continue;
        const float step = (float)(lr * r);
        float *p = params + a;
        const float *m = o->m + (a - o->lo), *v = o->v + (a - o->lo);
        for (size_t i = 0; i < b - a; i++) {
            float u = LAMB_U(i);
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
    case OPT_LBFGS:
    case OPT_NEWTON: XT_ASSERT(!"a full-batch solver takes no optimiser step (solver.h)");
    }
    return norm;
}

bool optim_is_plain(const OptimSettings *set)
{
    return set->kind == OPT_SGD && set->momentum == 0.0 && set->weight_decay == 0.0 &&
           !(set->clip_norm > 0.0);
}

void optim_step_run(const Optim *o, float *params, const float *grad, size_t n,
                    float grad_scale, double lr)
{
    XT_ASSERT(optim_is_plain(&o->set) && !o->velocity && o->lo == 0);
    /* sgd_step's expression with its clipping factor 1 (x * 1.0f is x); wdc is 0 but kept,
     * as there: 0 p may be -0, and the same expression gives the same bits */
    const float gs = grad_scale, wdc = (float)o->set.weight_decay;
    const float flr = (float)lr;
    for (size_t i = 0; i < n; i++) params[i] -= flr * (gs * grad[i] + wdc * params[i]);
}
