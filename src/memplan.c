/* memplan: see memplan.h. */
#include "memplan.h"

#include <stdio.h>

#include "config.h"
#include "log.h"
#include "model.h"
#include "strutil.h"
#include "sysmem.h"

#define F32 4.0

void memplan_estimate(const MemNeeds *n, MemEstimate *e)
{
    const double np = (double)n->n_params;
    *e = (MemEstimate){0};
    e->params = F32 * (np * (double)n->param_copies + (double)n->slots);
    double share = n->sharded && n->ranks > 1 ? 1.0 / (double)n->ranks : 1.0;
    e->optim = F32 * np * (double)n->optim_buffers * share;
    if (n->sharded && n->rank0 && n->ranks > 1) e->optim += F32 * np * (double)n->optim_buffers;
    /* one pass of mb rows: every layer's outputs and two work rows of the widest layer */
    double mb = (double)(n->train_rows > n->eval_rows ? n->train_rows : n->eval_rows);
    if (mb < 1.0) mb = 1.0;
    e->activations = F32 * mb * (double)(n->layer_sum + 2 * n->widest);
    /* the micro-step's input rows, targets (class ids are 4 bytes too) and dL/dlogits */
    double tr = (double)n->train_rows;
    double targets = n->k_targets ? (double)n->k_targets : 1.0;
    e->activations += F32 * tr * ((double)n->d + targets + (double)n->k_out);
    double ev = (double)n->eval_rows;
    e->eval = F32 * ev * ((double)n->d + 1.0 + (double)(n->k_targets ? n->k_targets : n->k_out));
    e->exact = F32 * np * (double)n->exact_parts;
    e->total = e->params + e->optim + e->activations + e->eval + e->exact;
}

typedef struct {
    double bytes;
    const char *what, *keys;
} Part;

Status memplan_check(const MemEstimate *e, double limit, const char *limit_why, char *msg,
                     size_t len)
{
    if (limit <= 0.0 || e->total <= MEMPLAN_HEADROOM * limit) return XT_OK;
    Part parts[] = {
        {e->params, "parameters and gradients", "model.hidden (the model's size)"},
        {e->optim, "optimiser state", "optim.optimizer, optim.momentum, optim.shard"},
        {e->activations + e->eval, "activations",
         "train.batch_size, train.accumulate, eval.batch_size"},
        {e->exact, "the reproducible mode's partial gradients",
         "train.micro_batches, train.reproducible"},
    };
    size_t big = 0;
    for (size_t i = 1; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].bytes > parts[big].bytes) big = i;
    char t[32], l[32], p0[32], p1[32], p2[32], p3[32];
    strutil_human_bytes(e->total, t, sizeof t);
    strutil_human_bytes(MEMPLAN_HEADROOM * limit, l, sizeof l);
    strutil_human_bytes(parts[0].bytes, p0, sizeof p0);
    strutil_human_bytes(parts[1].bytes, p1, sizeof p1);
    strutil_human_bytes(parts[2].bytes, p2, sizeof p2);
    strutil_human_bytes(parts[3].bytes, p3, sizeof p3);
    snprintf(msg, len,
             "the model needs %s per rank (%s of %s, %s of %s, %s of %s, %s of %s) but this "
             "rank may use %s (%.0f%% of %s, less the data): most is %s: lower %s, or use "
             "more ranks or nodes", t, p0, parts[0].what, p1, parts[1].what, p2, parts[2].what,
             p3, parts[3].what, l, 100.0 * MEMPLAN_HEADROOM, limit_why, parts[big].what,
             parts[big].keys);
    return XT_ERR_USAGE;
}

void memplan_needs(MemNeeds *n, const ModelShape *shape, const Config *c, size_t train_rows,
                   size_t val_rows, size_t k_targets, int ranks, size_t exact_parts)
{
    size_t layer_sum = 0, widest = 1; /* backward's scratch: the hidden layers (model.c) */
    for (int l = 1; l <= shape->n_layers; l++) {
        layer_sum += shape->sizes[l];
        if (l < shape->n_layers && shape->sizes[l] > widest) widest = shape->sizes[l];
    }
    size_t eval = val_rows > 0 ? (size_t)c->eval.batch_size : 0;
    if (eval > val_rows) eval = val_rows; /* a pass never holds more rows than the split */
    Optimizer o = c->optim.optimizer;
    size_t buffers = o == OPT_ADAM || o == OPT_ADAMW || o == OPT_LAMB ? 2
                     : c->optim.momentum > 0.0 ? 1 : 0;
    *n = (MemNeeds){.n_params = shape->n_params,
                    .slots = 8,
                    .layer_sum = layer_sum,
                    .widest = widest,
                    .d = shape->sizes[0],
                    .k_out = model_outputs(shape),
                    .k_targets = k_targets,
                    .train_rows = train_rows,
                    .eval_rows = eval,
                    .param_copies = 2, /* parameters, gradient sums (the best epoch: model.h5) */
                    .optim_buffers = buffers,
                    .ranks = ranks > 0 ? (size_t)ranks : 1,
                    .sharded = c->optim.shard == SHARD_TRUE || (c->optim.shard == SHARD_AUTO && ranks > 1),
                    .rank0 = true,
                    .exact_parts = exact_parts};
}

Status memplan_refuse(const MemNeeds *n, int local_ranks, double data_bytes)
{
    SysMem mem;
    sysmem_read("", &mem);
    if (mem.bytes <= 0) return XT_OK; /* nothing known: nothing to refuse */
    int local = local_ranks > 0 ? local_ranks : 1;
    double limit = mem.bytes / (double)local - data_bytes;
    char src[1300], why[1400], msg[2048];
    sysmem_describe(&mem, src, sizeof src);
    snprintf(why, sizeof why, "%s over %d rank(s) on this node", src, local);
    MemEstimate e;
    memplan_estimate(n, &e);
    Status st = memplan_check(&e, limit > 1.0 ? limit : 1.0, why, msg, sizeof msg);
    if (st != XT_OK) log_error0("%s", msg);
    return st;
}
