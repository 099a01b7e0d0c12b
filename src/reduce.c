/* reduce: set-up, the parameters, the sharded update and checkpoints of the step's reduction
 * (see reduce.h); the implementations are reduce_sum.c, reduce_ring.c and reduce_exact.c.
 *
 *   whole    cross = allreduce(gradient sums + slots)  -> every rank updates all parameters
 *   sliced   cross = reduce-scatter(gradient sums; the slots to every rank) -> each rank
 *            updates its slice of the parameters and of the optimiser state -> allgather
 * Both move the same bytes per rank (a ring allreduce is a reduce-scatter and an allgather);
 * slicing divides the update's work and the optimiser state by P. Checkpoints hold the
 * whole optimiser state either way: rank 0 gathers the slices before writing, and a resumed
 * run takes its slice of whatever was saved, at any P, sharded or not.
 */
#include "reduce_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "linalg.h"
#include "log.h"

/* ---- whole or sliced ------------------------------------------------------------------- */

static void cross_whole(Reduce *r, void *buf, size_t tail, CommType t)
{
    comm_path_allreduce(r->path, buf, r->n + tail, t);
}

static void cross_sliced(Reduce *r, void *buf, size_t tail, CommType t)
{
    comm_path_reduce_scatter(r->path, buf, r->part, tail, t);
}

static double after_whole(Reduce *r)
{
    (void)r;
    return 0.0;
}

static double after_sliced(Reduce *r)
{
    double t0 = comm_wtime();
    comm_path_allgather(r->path, r->params, r->part_bytes);
    return comm_wtime() - t0;
}

static bool sliced(const Reduce *r) { return r->after_update == after_sliced; }

/* The hook that completes a sharded optimiser's norm blocks. */
static void gather_blocks(void *ctx, void *buf, const size_t *off)
{
    Reduce *r = ctx;
    comm_path_allgather(r->path, buf, off);
}

/* ---- set-up ------------------------------------------------------------------------------ */

static const ReduceOps *reduce_choose(const Plan *p)
{
    return p->G > 0     ? &REDUCE_EXACT
           : p->wide    ? &REDUCE_WIDE
           : p->overlap ? &REDUCE_RING
           : p->touched ? &REDUCE_TOUCHED
           : p->sparse  ? &REDUCE_SPARSE
                        : &REDUCE_SUM;
}

/* The transport: the ring needs none; shared memory when the plan says so and the window
 * can be had (else MPI, said in the description). Collective. */
static Status open_path(Reduce *r, const Plan *p)
{
    const char *ops = p->shard ? "reduce-scatter + allgather" : "allreduce";
    if (r->ops == &REDUCE_RING) {
        snprintf(r->why, sizeof r->why, "ring allreduce layer by layer, moved on between pieces "
                 "of backward (%s)", p->path_why);
        return XT_OK;
    }
    if (p->shm) {
        char why[256];
        size_t bytes = r->ops->buffer_elems(r->n) * 4;
        if (comm_path_open_shm(r->comm, bytes, &r->path, why, sizeof why) == XT_OK) {
            int local, nodes;
            comm_path_shape(r->path, &local, &nodes);
            snprintf(r->why, sizeof r->why, "shared-memory %s, %d ranks per node%s (%s)", ops,
                     local, nodes > 1 ? ", then one slice owner per node over MPI" : "",
                     p->path_why);
            return XT_OK;
        }
        if (p->shm_asked && r->rank == 0) log_warn("comm.allreduce = shm: %s; using MPI", why);
        snprintf(r->why, sizeof r->why, "MPI %s (comm.allreduce = %s: %s)", ops,
                 p->shm_asked ? "shm" : "auto", why);
    } else if (r->ops == &REDUCE_SPARSE) {
        snprintf(r->why, sizeof r->why, "sparse exchange of W_1's touched columns or MPI "
                 "allreduce, per step (%s)", p->path_why);
    } else if (r->ops == &REDUCE_TOUCHED) {
        snprintf(r->why, sizeof r->why, "touched columns only%s (%s)",
                 r->P > 1 ? ", exchanged or MPI allreduce per step" : "", p->path_why);
    } else {
        snprintf(r->why, sizeof r->why, "MPI %s (%s)", ops, p->path_why);
    }
    return comm_agree(r->comm, comm_path_open_mpi(r->comm, &r->path));
}

/* The ranks' slices (the whole for rank 0's side when not sharded), cross and after_update. */
static Status open_slices(Reduce *r, const ReduceSpec *spec)
{
    const size_t P = (size_t)r->P;
    r->part = malloc((P + 1) * sizeof *r->part);
    r->part_bytes = malloc((P + 1) * sizeof *r->part_bytes);
    if (!r->part || !r->part_bytes) return XT_ERR_RUNTIME;
    bool sliced = spec->plan->shard;
    if (sliced) optim_partition(spec->oset, r->n, r->P, r->part);
    else
        for (size_t k = 0; k <= P; k++) r->part[k] = k == 0 ? 0 : r->n;
    for (size_t k = 0; k <= P; k++) r->part_bytes[k] = r->part[k] * sizeof(float);
    r->lo = sliced ? r->part[r->rank] : 0;
    r->hi = sliced ? r->part[r->rank + 1] : r->n;
    r->cross = sliced ? cross_sliced : cross_whole;
    r->after_update = sliced ? after_sliced : after_whole;
    return XT_OK;
}

/* The parameters: in the node's window when a sharded update pushes them there (one node),
 * else our own. Then the optimiser of this rank's slice. */
static Status open_params(Reduce *r, const ReduceSpec *spec)
{
    float *win = r->path && spec->plan->shard ? comm_path_param_buffer(r->path) : NULL;
    if (win) {
        r->params = win;
    } else {
        r->params_own = linalg_alloc((r->n > 0 ? r->n : 1) * sizeof *r->params_own);
        if (!r->params_own) return XT_ERR_RUNTIME;
        r->params = r->params_own;
    }
    memset(r->params, 0, r->n * sizeof *r->params);
    Status st = optim_init_slice(&r->optim, spec->oset, r->n, r->lo, r->hi);
    if (st == XT_OK && spec->plan->shard)
        st = optim_set_gather(&r->optim, r->part, r->P, gather_blocks, r);
    return st;
}

/* The implementation's buffers; a ring that cannot be had falls back to the sum over MPI. */
static Status open_impl(Reduce *r, const ReduceSpec *spec)
{
    char why[256];
    Status st = r->ops->open(r, spec, why, sizeof why);
    if (st == XT_OK || r->ops != &REDUCE_RING) {
        if (st != XT_OK) log_error("out of memory for the step's %s reduction: %s", r->ops->name,
                                   why);
        return comm_agree(r->comm, st);
    }
    if (r->rank == 0) log_warn("comm.overlap: %s; reducing after backward", why);
    snprintf(r->why, sizeof r->why, "MPI allreduce (comm.overlap: %s)", why);
    r->ops = &REDUCE_SUM;
    st = comm_agree(r->comm, comm_path_open_mpi(r->comm, &r->path));
    if (st == XT_OK) st = r->ops->open(r, spec, why, sizeof why);
    return comm_agree(r->comm, st);
}

Status reduce_open(const Comm *comm, const ReduceSpec *spec, Reduce **out)
{
    *out = NULL;
    Reduce *r = calloc(1, sizeof *r);
    Status st = comm_agree(comm, r ? XT_OK : XT_ERR_RUNTIME);
    if (st != XT_OK) {
        free(r);
        return st;
    }
    *r = (Reduce){.ops = reduce_choose(spec->plan), .comm = comm, .P = comm_size(comm),
                  .rank = comm_rank(comm), .n = spec->shape->n_params, .signal = spec->signal};
    st = open_path(r, spec->plan);
    if (st == XT_OK) st = comm_agree(comm, open_slices(r, spec));
    if (st == XT_OK) st = comm_agree(comm, open_params(r, spec));
    if (st == XT_OK) st = open_impl(r, spec);
    if (st != XT_OK) {
        log_error0("out of memory setting up the step's reduction (%zu parameters)", r->n);
        reduce_close(&r);
        return st;
    }
    *out = r;
    return XT_OK;
}

void reduce_close(Reduce **rp)
{
    if (!rp || !*rp) return;
    Reduce *r = *rp;
    if (r->impl) r->ops->close(r);
    reduce_drop_state(r);
    optim_free(&r->optim);
    free(r->params_own);
    free(r->part);
    free(r->part_bytes);
    comm_path_close(&r->path);
    free(r);
    *rp = NULL;
}

float *reduce_params(Reduce *r) { return r->params; }

void reduce_slice(const Reduce *r, size_t *lo, size_t *hi)
{
    *lo = r->lo;
    *hi = r->hi;
}

void reduce_describe(const Reduce *r, char *buf, size_t len) { snprintf(buf, len, "%s", r->why); }

void reduce_report(const Reduce *r) { r->ops->report(r); }

/* ---- the step ------------------------------------------------------------------------------ */

void reduce_begin(Reduce *r) { r->ops->begin(r); }

void reduce_add(Reduce *r, size_t part, const StepSums *s) { r->ops->add(r, part, s); }

float *reduce_partial(Reduce *r, size_t part, bool *accumulate)
{
    return r->ops->partial(r, part, accumulate);
}

const BackwardHooks *reduce_hooks(Reduce *r, bool last) { return r->ops->hooks(r, last); }

void reduce_partial_done(Reduce *r, size_t part) { r->ops->done(r, part); }

const float *reduce_finish(Reduce *r, StepTotals *tot, ReduceTimes *times)
{
    *times = (ReduceTimes){0};
    return r->ops->finish(r, tot, times);
}

double reduce_update(Reduce *r, const float *grads, float grad_scale, double lr)
{
    if (r->ops->update) return r->ops->update(r, grads, grad_scale, lr);
    optim_step(&r->optim, r->params, grads, grad_scale, lr);
    return r->after_update(r);
}

void reduce_note_input(Reduce *r, size_t part, ModelInput *in)
{
    if (r->ops->note) r->ops->note(r, part, in);
}

void reduce_check_replicas(const Reduce *r, uint64_t step)
{
    uint64_t h = model_param_hash(r->params, r->n);
    int64_t mx = (int64_t)h, mn = (int64_t)h;
    comm_allreduce_max_i64(r->comm, &mx, 1);
    comm_allreduce_min_i64(r->comm, &mn, 1);
    if (mx != mn) {
        log_error0("replica check failed at step %llu: ranks hold different parameters "
                   "(hash %016llx vs %016llx); this is a bug or a faulty node",
                   (unsigned long long)step, (unsigned long long)mn, (unsigned long long)mx);
        comm_abort(r->comm, XT_ERR_RUNTIME);
    }
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

void reduce_drop_state(Reduce *r)
{
    for (size_t i = 0; i < STATE_MAX_ITEMS; i++) {
        free(r->ostate_buf[i]);
        r->ostate_buf[i] = NULL;
    }
    r->ostate_ready = false;
}

/* Rank 0: buffers for the whole state, shaped like this rank's slice of it. */
static Status alloc_whole_state(Reduce *r, const StateList *mine)
{
    Status st = XT_OK;
    state_init(&r->ostate, mine->kind);
    for (size_t i = 0; i < mine->n_arrays; i++) {
        r->ostate_buf[i] = malloc((r->n > 0 ? r->n : 1) * sizeof(float));
        if (!r->ostate_buf[i]) st = XT_ERR_RUNTIME;
        state_add_array(&r->ostate, mine->arrays[i].name, r->ostate_buf[i], r->n);
    }
    for (size_t i = 0; i < mine->n_scalars; i++) /* the same on every rank */
        r->ostate.scalars[r->ostate.n_scalars++] = mine->scalars[i];
    if (st != XT_OK)
        log_error("out of memory gathering the optimiser state (%zu arrays of %zu floats) for a "
                  "checkpoint", mine->n_arrays, r->n);
    return st;
}

void reduce_gather_state(Reduce *r)
{
    if (!sliced(r)) return; /* every rank holds the whole state */
    reduce_drop_state(r);
    StateList mine;
    optim_state(&r->optim, &mine);
    const size_t P = (size_t)r->P;
    size_t *counts = NULL;
    Status st = XT_OK;
    if (r->rank == 0) {
        counts = malloc(P * sizeof *counts);
        if (!counts) st = XT_ERR_RUNTIME;
        for (size_t k = 0; counts && k < P; k++)
            counts[k] = r->part_bytes[k + 1] - r->part_bytes[k];
        if (alloc_whole_state(r, &mine) != XT_OK) st = XT_ERR_RUNTIME;
    }
    if (comm_agree(r->comm, st) == XT_OK) {
        for (size_t i = 0; i < mine.n_arrays; i++)
            comm_gatherv(r->comm, mine.arrays[i].data, mine.arrays[i].n * sizeof(float),
                         r->ostate_buf[i], counts);
        r->ostate_ready = true;
    } else {
        reduce_drop_state(r);
    }
    free(counts);
}

void reduce_set_solver_state(Reduce *r, StateList *s) { r->solver_state = s; }

const StateList *reduce_state(Reduce *r, StateList *tmp)
{
    if (r->solver_state) return r->solver_state;
    if (!sliced(r)) {
        optim_state(&r->optim, tmp);
        return tmp;
    }
    return r->ostate_ready ? &r->ostate : NULL;
}

Status reduce_restore_state(Reduce *r, const char *path, StateList *early_stop)
{
    if (r->solver_state) return checkpoint_restore(path, r->solver_state, early_stop);
    StateList mine;
    optim_state(&r->optim, &mine);
    if (!sliced(r)) return checkpoint_restore(path, &mine, early_stop);
    /* The checkpoint holds the whole state: read it, keep this rank's slice. */
    StateList full;
    float *buf[STATE_MAX_ITEMS] = {0};
    Status st = XT_OK;
    state_init(&full, mine.kind);
    for (size_t i = 0; i < mine.n_arrays; i++) {
        buf[i] = malloc((r->n > 0 ? r->n : 1) * sizeof(float));
        if (!buf[i]) st = XT_ERR_RUNTIME;
        state_add_array(&full, mine.arrays[i].name, buf[i], r->n);
    }
    for (size_t i = 0; i < mine.n_scalars; i++) full.scalars[full.n_scalars++] = mine.scalars[i];
    if (st == XT_OK) st = checkpoint_restore(path, &full, early_stop);
    else log_error("out of memory reading the optimiser state of %s", path);
    for (size_t i = 0; st == XT_OK && i < mine.n_arrays; i++)
        memcpy(mine.arrays[i].data, buf[i] + r->lo, mine.arrays[i].n * sizeof(float));
    for (size_t i = 0; i < mine.n_arrays; i++) free(buf[i]);
    return st;
}
