/* train_reduce: the step's reduction and update (see trainer.h).
 *
 *   unsharded  allreduce(gradient sums + slots)  -> every rank updates all parameters
 *   sharded    reduce-scatter(gradient sums; the slots to every rank) -> each rank updates
 *              its slice of the parameters and of the optimiser state -> allgather(params)
 *
 * Both move the same bytes per rank (a ring allreduce is a reduce-scatter and an allgather);
 * sharding divides the update's work and the optimiser state by P. The reductions run
 * through MPI or through the node's shared memory (comm.allreduce). Checkpoints hold the
 * whole optimiser state either way: rank 0 gathers the slices before writing, and a resumed
 * run takes its slice of whatever was saved, at any P, sharded or not.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "log.h"
#include "trainer.h"

/* Overlap buckets: layers are merged until a bucket holds at least this much. */
#define BUCKET_MIN_BYTES (256u << 10)
/* comm.overlap = auto wants each ring message (a bucket / P) at least this large: the ring
 * pays 2 (P - 1) latencies per bucket, and steps that backward's progress calls do not
 * reach are finished after it. */
#define RING_MIN_MESSAGE (64u << 10)

static size_t n_params(const Trainer *tr) { return tr->model.shape.n_params; }
static void layer_done(void *ctx, int layer);
static void progress(void *ctx);

/* The buckets layer_done forms for this shape: layers L .. 1 merged until a bucket holds
 * BUCKET_MIN_BYTES (the slots ride in the first), the rest in the last. Their number, and
 * the smallest one's bytes in *smallest. */
static int overlap_buckets(const ModelShape *s, size_t *smallest)
{
    size_t end = s->n_params + N_SLOTS;
    int k = 0;
    *smallest = SIZE_MAX;
    for (int l = s->n_layers; l >= 1; l--) {
        size_t bytes = (end - s->w_off[l - 1]) * sizeof(float);
        if (bytes < BUCKET_MIN_BYTES && l > 1) continue;
        k++;
        if (bytes < *smallest) *smallest = bytes;
        end = s->w_off[l - 1];
    }
    return k;
}

/* ---- set-up ------------------------------------------------------------------------- */

Status trainer_setup_shard(Trainer *tr)
{
    const Config *c = &tr->cfg;
    const size_t P = (size_t)tr->P, n = n_params(tr);
    tr->part = malloc((P + 1) * sizeof *tr->part);
    tr->part_bytes = malloc((P + 1) * sizeof *tr->part_bytes);
    if (!tr->part || !tr->part_bytes) return XT_ERR_RUNTIME;
    /* overlap first: it reduces whole layers, so it takes the place of a sharded update */
    size_t smallest;
    const int buckets = overlap_buckets(&tr->model.shape, &smallest);
    const int nodes = comm_node_count(tr->comm), local = comm_local_size(tr->comm);
    tr->overlap = c->comm.overlap == OVERLAP_TRUE && tr->P > 1;
    if (c->comm.overlap == OVERLAP_FALSE)
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "comm.overlap = false");
    else if (tr->P == 1)
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "one rank: nothing to reduce");
    else if (c->comm.overlap == OVERLAP_TRUE)
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "comm.overlap = true");
    else if (tr->repro || c->optim.shard == SHARD_TRUE || c->comm.allreduce == ALLREDUCE_SHM)
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "comm.overlap = auto: off with %s",
                 tr->repro ? "train.reproducible" : c->optim.shard == SHARD_TRUE
                                                        ? "optim.shard = true"
                                                        : "comm.allreduce = shm");
    else if (buckets < 2 || nodes < 2 || local > 1 || smallest / P < RING_MIN_MESSAGE)
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "comm.overlap = auto: off, %s",
                 buckets < 2 ? "one bucket of layers merged to 256 KiB, whose reduction could "
                               "only start when backward ends"
                 : nodes < 2 ? "one node: the reduction is fast"
                 : local > 1 ? "several ranks per node: the node's shared memory and the "
                               "sharded update serve them"
                             : "ring messages under 64 KiB at this P: latency-bound");
    else {
        tr->overlap = true;
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "comm.overlap = auto: %d buckets of "
                 "layers on %d nodes, one rank each, ring messages of %zu KiB or more", buckets,
                 nodes, smallest / P / 1024);
    }
    tr->shard = c->optim.shard != SHARD_FALSE && tr->P > 1 && !tr->overlap;
    if (tr->overlap && c->optim.shard == SHARD_AUTO && tr->P > 1)
        snprintf(tr->shard_why, sizeof tr->shard_why, "optim.shard = auto: off with overlap");
    else if (c->optim.shard == SHARD_FALSE)
        snprintf(tr->shard_why, sizeof tr->shard_why, "optim.shard = false");
    else if (tr->P == 1)
        snprintf(tr->shard_why, sizeof tr->shard_why, "optim.shard = %s: one rank, nothing to share",
                 c->optim.shard == SHARD_TRUE ? "true" : "auto");
    else
        snprintf(tr->shard_why, sizeof tr->shard_why, "optim.shard = %s",
                 c->optim.shard == SHARD_TRUE ? "true" : "auto: P > 1");
    if (tr->shard) {
        optim_partition(&tr->oset, n, tr->P, tr->part);
    } else {
        for (size_t r = 0; r <= P; r++) tr->part[r] = r == 0 ? 0 : n;
    }
    for (size_t r = 0; r <= P; r++) tr->part_bytes[r] = tr->part[r] * sizeof(float);
    tr->lo = tr->shard ? tr->part[tr->r] : 0;
    tr->hi = tr->shard ? tr->part[tr->r + 1] : n;
    return XT_OK;
}

/* The hook that completes a sharded optimiser's norm blocks. */
static void gather_blocks(void *ctx, void *buf, const size_t *off)
{
    const Trainer *tr = ctx;
    comm_step_allgather(tr->comm, buf, off);
}

Status trainer_setup_reduce(Trainer *tr)
{
    const Config *c = &tr->cfg;
    const size_t n = n_params(tr);
    tr->gbuf = tr->model.grads;
    if (tr->shard && optim_set_gather(&tr->optim, tr->part, tr->P, gather_blocks, tr) != XT_OK)
        return comm_agree(tr->comm, XT_ERR_RUNTIME);
    if (comm_agree(tr->comm, XT_OK) != XT_OK) return XT_ERR_RUNTIME;
    const char *ops = tr->shard ? "reduce-scatter + allgather" : "allreduce";
    if (tr->overlap) {
        char why[200];
        if (comm_async_start(tr->comm, n + N_SLOTS, why, sizeof why) == XT_OK) {
            tr->hooks = (BackwardHooks){.layer_done = layer_done, .progress = progress, .ctx = tr};
            snprintf(tr->reduce_why, sizeof tr->reduce_why, "ring allreduce layer by layer, "
                     "moved on between pieces of backward (%s)", tr->overlap_why);
            return XT_OK;
        }
        log_warn("comm.overlap: %s; reducing after backward", why);
        tr->overlap = false;
        snprintf(tr->overlap_why, sizeof tr->overlap_why, "comm.overlap: %s", why);
    }
    if (c->comm.allreduce == ALLREDUCE_MPI) {
        comm_step_use(tr->comm, COMM_STEP_MPI);
        snprintf(tr->reduce_why, sizeof tr->reduce_why, "MPI %s (comm.allreduce = mpi)", ops);
        return XT_OK;
    }
    /* auto decides by the ranks' placement, never by a timing: a timed choice could differ
     * between two runs of one configuration, and the two paths sum in different orders, so
     * the models would differ in their last bits. Spinning barriers need a core per rank. */
    if (c->comm.allreduce == ALLREDUCE_AUTO && comm_oversubscribed(tr->comm)) {
        comm_step_use(tr->comm, COMM_STEP_MPI);
        snprintf(tr->reduce_why, sizeof tr->reduce_why, "MPI %s (comm.allreduce = auto: %d "
                 "ranks share %d CPU(s) on a node; shared memory needs a CPU per rank)", ops,
                 comm_local_size(tr->comm), comm_node_cpus(tr->comm));
        return XT_OK;
    }
    char why[256];
    size_t bytes = (n + ((size_t)N_XSLOTS > (size_t)N_SLOTS ? (size_t)N_XSLOTS : (size_t)N_SLOTS)) * sizeof(float);
    if (comm_step_setup(tr->comm, bytes, why, sizeof why) != XT_OK) {
        if (c->comm.allreduce == ALLREDUCE_SHM)
            log_warn("comm.allreduce = shm: %s; using MPI", why);
        snprintf(tr->reduce_why, sizeof tr->reduce_why, "MPI %s (comm.allreduce = %s: %s)", ops,
                 c->comm.allreduce == ALLREDUCE_SHM ? "shm" : "auto", why);
        return XT_OK;
    }
    /* Backward (or the exact conversion) writes straight into this rank's segment. */
    if (tr->repro) exact_grad_use_acc(&tr->exact, comm_step_buffer(tr->comm));
    else tr->gbuf = comm_step_buffer(tr->comm);
    /* The update writes its slice straight into the others' copies (one node). */
    int local, nodes;
    comm_step_shape(tr->comm, &local, &nodes);
    if (tr->shard && nodes == 1) model_use_params(&tr->model, comm_step_param_buffer(tr->comm));
    char shape[96];
    snprintf(shape, sizeof shape, "%d ranks per node%s", local,
             nodes > 1 ? ", then one slice owner per node over MPI" : "");
    comm_step_use(tr->comm, COMM_STEP_SHM);
    if (c->comm.allreduce == ALLREDUCE_SHM)
        snprintf(tr->reduce_why, sizeof tr->reduce_why, "shared-memory %s, %s (comm.allreduce "
                 "= shm)", ops, shape);
    else
        snprintf(tr->reduce_why, sizeof tr->reduce_why, "shared-memory %s, %s (comm.allreduce "
                 "= auto: a CPU per rank, %d ranks on %d CPUs)", ops, shape,
                 comm_local_size(tr->comm), comm_node_cpus(tr->comm));
    return XT_OK;
}

/* ---- the step --------------------------------------------------------------------------- */

static void progress(void *ctx)
{
    const Trainer *tr = ctx;
    comm_async_progress(tr->comm);
}

void trainer_overlap_begin(Trainer *tr)
{
    tr->pend_end = n_params(tr) + N_SLOTS;
    tr->next_layer = tr->model.shape.n_layers;
}

static void layer_done(void *ctx, int layer)
{
    Trainer *tr = ctx;
    XT_ASSERT(layer == tr->next_layer);
    const size_t lo = tr->model.shape.w_off[layer - 1];
    tr->next_layer = layer - 1;
    if ((tr->pend_end - lo) * sizeof(float) < BUCKET_MIN_BYTES && layer > 1) return;
    comm_async_sum(tr->comm, tr->gbuf + lo, tr->pend_end - lo);
    tr->pend_end = lo;
}

void trainer_overlap_flush(Trainer *tr)
{
    while (tr->next_layer > 0) layer_done(tr, tr->next_layer);
}

void trainer_reduce(Trainer *tr)
{
    const size_t n = n_params(tr);
    if (tr->shard) comm_step_reduce_scatter(tr->comm, tr->gbuf, tr->part, N_SLOTS, COMM_F32);
    else comm_step_allreduce(tr->comm, tr->gbuf, n + N_SLOTS, COMM_F32);
}

void trainer_reduce_exact(Trainer *tr)
{
    ExactGrad *x = &tr->exact;
    if (tr->shard) comm_step_reduce_scatter(tr->comm, x->acc, tr->part, N_XSLOTS, COMM_I32);
    else comm_step_allreduce(tr->comm, x->acc, exact_grad_len(x), COMM_I32);
}

double trainer_update(Trainer *tr, const float *grads, float grad_scale, double lr)
{
    optim_step(&tr->optim, tr->model.params, grads, grad_scale, lr);
    if (!tr->shard) return 0.0;
    double t0 = comm_wtime();
    comm_step_allgather(tr->comm, tr->model.params, tr->part_bytes);
    return comm_wtime() - t0;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

void trainer_drop_optim(Trainer *tr)
{
    for (size_t i = 0; i < STATE_MAX_ITEMS; i++) {
        free(tr->ostate_buf[i]);
        tr->ostate_buf[i] = NULL;
    }
    tr->ostate_ready = false;
}

void trainer_gather_optim(Trainer *tr)
{
    if (!tr->shard) return;
    trainer_drop_optim(tr);
    StateList mine;
    optim_state(&tr->optim, &mine);
    const size_t n = n_params(tr), P = (size_t)tr->P;
    size_t *counts = NULL;
    Status st = XT_OK;
    if (tr->r == 0) {
        counts = malloc(P * sizeof *counts);
        if (!counts) st = XT_ERR_RUNTIME;
        for (size_t r = 0; counts && r < P; r++)
            counts[r] = tr->part_bytes[r + 1] - tr->part_bytes[r];
        state_init(&tr->ostate, mine.kind);
        for (size_t i = 0; i < mine.n_arrays; i++) {
            tr->ostate_buf[i] = malloc((n > 0 ? n : 1) * sizeof(float));
            if (!tr->ostate_buf[i]) st = XT_ERR_RUNTIME;
            state_add_array(&tr->ostate, mine.arrays[i].name, tr->ostate_buf[i], n);
        }
        for (size_t i = 0; i < mine.n_scalars; i++) /* the same on every rank */
            tr->ostate.scalars[tr->ostate.n_scalars++] = mine.scalars[i];
        if (st != XT_OK)
            log_error("out of memory gathering the optimiser state (%zu arrays of %zu floats) "
                      "for a checkpoint", mine.n_arrays, n);
    }
    if (comm_agree(tr->comm, st) == XT_OK) {
        for (size_t i = 0; i < mine.n_arrays; i++)
            comm_gatherv(tr->comm, mine.arrays[i].data, mine.arrays[i].n * sizeof(float),
                         tr->ostate_buf[i], counts);
        tr->ostate_ready = true;
    } else {
        trainer_drop_optim(tr);
    }
    free(counts);
}

const StateList *trainer_optim_state(Trainer *tr, StateList *tmp)
{
    if (!tr->shard) {
        optim_state(&tr->optim, tmp);
        return tmp;
    }
    return tr->ostate_ready ? &tr->ostate : NULL;
}

Status trainer_restore_optim(Trainer *tr, const char *path, StateList *early_stop)
{
    StateList mine;
    optim_state(&tr->optim, &mine);
    if (!tr->shard) return checkpoint_restore(path, &mine, early_stop);
    /* The checkpoint holds the whole state: read it, keep this rank's slice. */
    const size_t n = n_params(tr), lo = tr->lo;
    StateList full;
    float *buf[STATE_MAX_ITEMS] = {0};
    Status st = XT_OK;
    state_init(&full, mine.kind);
    for (size_t i = 0; i < mine.n_arrays; i++) {
        buf[i] = malloc((n > 0 ? n : 1) * sizeof(float));
        if (!buf[i]) st = XT_ERR_RUNTIME;
        state_add_array(&full, mine.arrays[i].name, buf[i], n);
    }
    for (size_t i = 0; i < mine.n_scalars; i++) full.scalars[full.n_scalars++] = mine.scalars[i];
    if (st == XT_OK) st = checkpoint_restore(path, &full, early_stop);
    else log_error("out of memory reading the optimiser state of %s", path);
    for (size_t i = 0; st == XT_OK && i < mine.n_arrays; i++)
        memcpy(mine.arrays[i].data, buf[i] + lo, mine.arrays[i].n * sizeof(float));
    for (size_t i = 0; i < mine.n_arrays; i++) free(buf[i]);
    return st;
}
