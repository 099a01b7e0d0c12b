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
 *
 * Sharded update (optim.shard, the ZeRO-1 idea): an Optim may own only a slice [lo, hi) of
 * the parameters (optim_init_slice) and keep its state for that slice alone; the caller
 * reduce-scatters the gradient, steps the slice and allgathers the parameters. Every
 * element's update is the same arithmetic whatever the slice. Norms (clipping, lars, lamb)
 * are sums over fixed blocks of OPTIM_NORM_BLOCK elements of each tensor: each block's sum
 * of squares in 8 fixed lanes, then the blocks in order. A sharded Optim computes its own
 * blocks and the gather hook (optim_set_gather) fills in the others' (an allgather), so a
 * norm has the same bits sharded or not, at any P. optim_partition cuts [0, n) on block
 * boundaries.
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
#define OPTIM_NORM_BLOCK 512

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

/* The hook that completes a sharded Optim's norm blocks: buf holds every block's partial
 * sums (doubles); off[0..P] in bytes cut it into the ranks' parts, and this rank has written
 * its own part. On return every part must be filled (comm_path_allgather). Collective. */
typedef void (*OptimGather)(void *ctx, void *buf, const size_t *off);

typedef struct {
    OptimSettings set;
    size_t n;             /* all the parameters */
    size_t lo, hi;        /* the slice this Optim updates; state arrays cover it */
    float *velocity;      /* (hi - lo) sgd/lars momentum buffer, owned; NULL without momentum */
    float *m, *v;         /* (hi - lo) adam, adamw, lamb moments, owned */
    int64_t t;            /* adam, adamw, lamb: updates made (bias correction) */
    /* norm blocks: tensors (one [0, n) unless lars or lamb) cut into OPTIM_NORM_BLOCK pieces */
    size_t nseg, nblk;
    size_t seg_blk[OPTIM_MAX_SEGMENTS + 1]; /* segment s has blocks [seg_blk[s], seg_blk[s+1]) */
    size_t *blk_off;      /* (nblk + 1) element offsets of the blocks */
    double *blk;          /* (2 nblk) partial sums */
    size_t blo, bhi;      /* this Optim's blocks */
    OptimGather gather;   /* NULL: unsharded */
    void *gather_ctx;
    size_t *goff[2];      /* (P + 1) byte offsets of the ranks' blocks, 1 and 2 sums each */
} Optim;

const char *optim_name(Optimizer kind);

Status optim_init(Optim *o, const OptimSettings *set, size_t n);
/* An Optim for the slice [lo, hi) of n parameters; lo and hi must be block boundaries
 * (from optim_partition). */
Status optim_init_slice(Optim *o, const OptimSettings *set, size_t n, size_t lo, size_t hi);
void optim_free(Optim *o);
/* Cuts [0, n) into P slices on norm-block boundaries, as even as the blocks allow:
 * off[0] = 0 <= off[1] <= .. <= off[P] = n. */
void optim_partition(const OptimSettings *set, size_t n, int P, size_t *off);
/* Makes a slice Optim sharded: off[0..P] is the partition (this Optim's slice among them);
 * gather is called once per norm. */
Status optim_set_gather(Optim *o, const size_t *off, int P, OptimGather gather, void *ctx);

/* The state a checkpoint must carry, as views of o's buffers (a slice Optim's arrays hold
 * its slice): kind "sgd" (the momentum
 * buffer "velocity" when momentum > 0), "lars" (likewise), "adam", "adamw", "lamb"
 * ("exp_avg", "exp_avg_sq", "step"). A checkpoint of another optimiser is refused by kind.
 * Local. */
void optim_state(Optim *o, StateList *out);

/* The learning rate for global step t. */
double optim_lr(const OptimSettings *set, uint64_t t);

/* One update of params with grad_scale * grad (n each), as defined above: one fused pass
 * over the parameters for sgd, adam and adamw (plus one for the norm when clip_norm > 0);
 * lars and lamb add one pass per tensor for its norms. grad is not modified. A slice Optim
 * reads and writes params[lo, hi) and reads grad[lo, hi) only (collective when sharded and
 * a norm is needed).
 * Returns the norm of the gradient that clipping looked at when clip_norm > 0, NAN
 * otherwise. */
double optim_step(Optim *o, float *params, const float *grad, float grad_scale, double lr);

/* Plain SGD: sgd without momentum, weight decay or clipping, whose update of an element
 * with a zero gradient leaves it as it was (p - lr (0 + 0 p) = p). */
bool optim_is_plain(const OptimSettings *set);
/* Plain SGD's update of a run of n parameters only (of an unsliced Optim) from the run of
 * their n gradients, which may sit elsewhere than the parameters do (a packed gradient),
 * with the same float expression as optim_step: when the gradient is zero for every
 * element outside the runs updated, the parameters end bit for bit as optim_step leaves
 * them. */
void optim_step_run(const Optim *o, float *params, const float *grad, size_t n,
                    float grad_scale, double lr);

#endif
