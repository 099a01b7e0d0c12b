#include "comm_shm.h"

#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the node barrier needs lock-free atomics");

/* Elements summed per chunk: 4 KiB of partial sums stay in L1 while the L inputs stream by. */
#define CHUNK 1024
/* Slices start on 64-byte lines (16 elements): no two ranks write one cache line. */
#define ALIGN_ELEMS 16
/* Spins before a waiting rank yields its core (ranks may share cores). */
#define SPINS_BEFORE_YIELD 4000

typedef struct {
    _Alignas(64) atomic_uint arrived;
    _Alignas(64) atomic_uint generation;
} Ctrl;

struct ShmRed {
    MPI_Win win;
    MPI_Comm node, cross;  /* the node's ranks; the ranks of this local rank on every node */
    int me, L, nodes, P, world_rank;
    size_t cap;            /* bytes per segment */
    char **seg;            /* (L) every local rank's segment */
    char **pseg;           /* (L) every local rank's parameter segment */
    char *shared;          /* cap bytes on local rank 0's memory: allgather area */
    Ctrl *ctrl;
    size_t *lo;            /* (L + 1) slice bounds of the current reduction, elements */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* A sense-counting barrier of the node's ranks in the shared control block. The acquire and
 * release orders make every write before the barrier visible to every rank after it. */
static void node_barrier(ShmRed *s)
{
    Ctrl *c = s->ctrl;
    unsigned g = atomic_load_explicit(&c->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&c->arrived, 1, memory_order_acq_rel) == (unsigned)s->L - 1) {
        atomic_store_explicit(&c->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&c->generation, g + 1, memory_order_release);
        return;
    }
    for (unsigned spins = 0; atomic_load_explicit(&c->generation, memory_order_acquire) == g;
         spins++) {
        if (spins < SPINS_BEFORE_YIELD) cpu_relax();
        else sched_yield();
    }
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Slice [lo, hi) of the sum in_0 + in_1 + ... + in_{L-1}, added left to right whatever rank
 * computes it, written to every segment listed in `to` (this rank's, and the others' when
 * the result is pushed to them). Chunks of CHUNK elements: the partial sums stay in L1. */
static void sum_f32(ShmRed *s, size_t lo, size_t hi, char *const *to, int nto)
{
    float tmp[CHUNK];
    for (size_t a = lo; a < hi; a += CHUNK) {
        size_t m = min_sz(CHUNK, hi - a);
        const float *x0 = (const float *)s->seg[0] + a, *x1 = (const float *)s->seg[1] + a;
        for (size_t i = 0; i < m; i++) tmp[i] = x0[i] + x1[i];
        for (int k = 2; k < s->L; k++) {
            const float *x = (const float *)s->seg[k] + a;
            for (size_t i = 0; i < m; i++) tmp[i] += x[i];
        }
        for (int k = 0; k < nto; k++) memcpy(to[k] + a * 4, tmp, m * sizeof *tmp);
    }
}

/* The same for doubles (a full-batch solver's sums). */
static void sum_f64(ShmRed *s, size_t lo, size_t hi, char *const *to, int nto)
{
    double tmp[CHUNK];
    for (size_t a = lo; a < hi; a += CHUNK) {
        size_t m = min_sz(CHUNK, hi - a);
        const double *x0 = (const double *)s->seg[0] + a, *x1 = (const double *)s->seg[1] + a;
        for (size_t i = 0; i < m; i++) tmp[i] = x0[i] + x1[i];
        for (int k = 2; k < s->L; k++) {
            const double *x = (const double *)s->seg[k] + a;
            for (size_t i = 0; i < m; i++) tmp[i] += x[i];
        }
        for (int k = 0; k < nto; k++) memcpy(to[k] + a * 8, tmp, m * sizeof *tmp);
    }
}

static size_t elem_bytes(ShmType t) { return t == SHM_F64 ? 8 : 4; }

/* The same for int32 (the reproducible mode's exact sums, which never overflow; unsigned
 * arithmetic keeps even a wrong input defined). */
static void sum_i32(ShmRed *s, size_t lo, size_t hi, char *const *to, int nto)
{
    uint32_t tmp[CHUNK];
    for (size_t a = lo; a < hi; a += CHUNK) {
        size_t m = min_sz(CHUNK, hi - a);
        const uint32_t *x0 = (const uint32_t *)s->seg[0] + a, *x1 = (const uint32_t *)s->seg[1] + a;
        for (size_t i = 0; i < m; i++) tmp[i] = x0[i] + x1[i];
        for (int k = 2; k < s->L; k++) {
            const uint32_t *x = (const uint32_t *)s->seg[k] + a;
            for (size_t i = 0; i < m; i++) tmp[i] += x[i];
        }
        for (int k = 0; k < nto; k++) memcpy(to[k] + a * 4, tmp, m * sizeof *tmp);
    }
}

/* The node's ranks (in the test build, XT_TEST_NODE_RANKS = k pretends nodes of k
 * consecutive ranks). */
static MPI_Comm node_comm(MPI_Comm world, int wr)
{
    MPI_Comm node;
    MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, wr, MPI_INFO_NULL, &node);
    int test = fault_node_ranks();
    if (test > 0) {
        MPI_Comm sub;
        MPI_Comm_split(node, wr / test, wr, &sub);
        MPI_Comm_free(&node);
        node = sub;
    }
    return node;
}

/* Why the node shape rules the window out (NULL: it does not). Collective over world. */
static const char *shape_refusal(MPI_Comm world, int L, int me, int *nodes, char *why, size_t len)
{
    int lmin[2] = {L, -L}, leader = me == 0;
    MPI_Allreduce(MPI_IN_PLACE, lmin, 2, MPI_INT, MPI_MIN, world);
    MPI_Allreduce(&leader, nodes, 1, MPI_INT, MPI_SUM, world);
    if (-lmin[1] < 2) {
        snprintf(why, len, "one rank per node: nothing to share");
        return why;
    }
    if (lmin[0] != -lmin[1]) {
        snprintf(why, len, "the nodes run different numbers of ranks (%d to %d): the "
                 "hierarchical reduction needs the same number on every node", lmin[0], -lmin[1]);
        return why;
    }
    return NULL;
}

static void shm_free(ShmRed *s)
{
    if (!s) return;
    free(s->seg);
    free(s->pseg);
    free(s->lo);
    free(s);
}

/* Local rank 0: control block, shared area, its own segment; the others: a segment.
 * Non-contiguous: each rank's memory is placed near it (first touch on NUMA nodes).
 * Collective over the node. */
static void map_window(ShmRed *s)
{
    /* + 64: the library's base address need not be on a cache line (seen: 8 bytes past) */
    MPI_Aint mine = (MPI_Aint)(64 + 2 * s->cap + (s->me == 0 ? sizeof(Ctrl) + s->cap : 0));
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    char *base = NULL;
    MPI_Win_allocate_shared(mine, 1, info, s->node, &base, &s->win);
    MPI_Info_free(&info);
    for (int k = 0; k < s->L; k++) {
        MPI_Aint sz;
        int du;
        char *p;
        MPI_Win_shared_query(s->win, k, &sz, &du, &p);
        p += (64 - (uintptr_t)p % 64) % 64;
        s->seg[k] = k == 0 ? p + sizeof(Ctrl) + s->cap : p;
        s->pseg[k] = s->seg[k] + s->cap;
        if (k == 0) {
            s->ctrl = (Ctrl *)p;
            s->shared = p + sizeof(Ctrl);
        }
    }
    if (s->me == 0) {
        atomic_init(&s->ctrl->arrived, 0);
        atomic_init(&s->ctrl->generation, 0);
    }
}

Status shmred_open(ShmRed **out, MPI_Comm world, size_t cap, char *why, size_t len)
{
    *out = NULL;
    int P, wr, L, me, nodes = 0;
    MPI_Comm_size(world, &P);
    MPI_Comm_rank(world, &wr);
    MPI_Comm node = node_comm(world, wr);
    MPI_Comm_size(node, &L);
    MPI_Comm_rank(node, &me);
    if (shape_refusal(world, L, me, &nodes, why, len)) {
        MPI_Comm_free(&node);
        return XT_ERR_USAGE;
    }
    ShmRed *s = calloc(1, sizeof *s);
    if (s) {
        *s = (ShmRed){.node = node, .me = me, .L = L, .nodes = nodes, .P = P, .world_rank = wr,
                      .cap = (cap + 63) / 64 * 64,
                      .seg = calloc((size_t)L, sizeof *s->seg),
                      .pseg = calloc((size_t)L, sizeof *s->pseg),
                      .lo = calloc((size_t)L + 1, sizeof *s->lo)};
    }
    int ok = s && s->seg && s->pseg && s->lo;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, world);
    if (!ok) {
        shm_free(s);
        MPI_Comm_free(&node);
        snprintf(why, len, "out of memory");
        return XT_ERR_RUNTIME;
    }
    map_window(s);
    MPI_Comm_split(world, me, wr, &s->cross);
    MPI_Barrier(node); /* the control block is initialised before anyone uses it */
    *out = s;
    return XT_OK;
}

void shmred_close(ShmRed **sp)
{
    if (!sp || !*sp) return;
    ShmRed *s = *sp;
    MPI_Win_free(&s->win);
    MPI_Comm_free(&s->cross);
    MPI_Comm_free(&s->node);
    shm_free(s);
    *sp = NULL;
}

void *shmred_segment(ShmRed *s) { return s->seg[s->me]; }
void *shmred_param_segment(ShmRed *s) { return s->pseg[s->me]; }
size_t shmred_capacity(const ShmRed *s) { return s->cap; }
int shmred_local_size(const ShmRed *s) { return s->L; }
int shmred_nodes(const ShmRed *s) { return s->nodes; }

/* Even slices of n elements, on cache-line boundaries. */
static void even_slices(ShmRed *s, size_t n)
{
    for (int l = 0; l < s->L; l++) {
        size_t L = (size_t)s->L, b = n / L * (size_t)l + n % L * (size_t)l / L;
        s->lo[l] = l == 0 ? 0 : b / ALIGN_ELEMS * ALIGN_ELEMS;
    }
    s->lo[s->L] = n;
}

/* Copy in (unless the caller computed into its segment), barrier, then this rank sums its
 * slice; with several nodes it allreduces the slice across them. `push`: the slice's result
 * goes to every local segment (the only writes into another rank's segment), else to this
 * rank's alone. Every rank also sums the `tail` elements at tail_at itself (a few values:
 * the step's slots) into `tail_out`. A second barrier: every pushed slice is in place and
 * no segment is read by another rank any more, so the caller may overwrite its own at once
 * (two barriers per reduction). */
static void reduce_slices(ShmRed *s, const void *buf, size_t n, ShmType t, bool push,
                          size_t tail_at, size_t tail, void *tail_out)
{
    char *mine = s->seg[s->me];
    const size_t es = elem_bytes(t);
    XT_ASSERT(n * es <= s->cap && (tail == 0 || es == 4));
    if (buf != mine) memcpy(mine, buf, n * es);
    node_barrier(s);
    size_t a = s->lo[s->me], b = s->lo[s->me + 1];
    char *to[1] = {mine};
    bool local_push = push && s->nodes == 1; /* several nodes: push after the allreduce */
    char *const *dst = local_push ? s->seg : to;
    int ndst = local_push ? s->L : 1;
    if (t == SHM_F32) sum_f32(s, a, b, dst, ndst);
    else if (t == SHM_F64) sum_f64(s, a, b, dst, ndst);
    else sum_i32(s, a, b, dst, ndst);
    for (size_t i = 0; i < tail; i++) { /* 4-byte words: float or int32 sums */
        if (t == SHM_F32) {
            float v = 0.0f;
            for (int k = 0; k < s->L; k++) v += ((const float *)s->seg[k])[tail_at + i];
            ((float *)tail_out)[i] = v;
        } else {
            uint32_t v = 0;
            for (int k = 0; k < s->L; k++) v += ((const uint32_t *)s->seg[k])[tail_at + i];
            ((uint32_t *)tail_out)[i] = v;
        }
    }
    if (s->nodes > 1) { /* slice l has the same bounds on every node */
        XT_ASSERT(b - a <= (size_t)INT_MAX);
        MPI_Datatype mt = t == SHM_F32 ? MPI_FLOAT : t == SHM_F64 ? MPI_DOUBLE : MPI_INT32_T;
        MPI_Allreduce(MPI_IN_PLACE, mine + a * es, (int)(b - a), mt, MPI_SUM, s->cross);
        for (int k = 0; push && k < s->L; k++)
            if (k != s->me) memcpy(s->seg[k] + a * es, mine + a * es, (b - a) * es);
    }
    node_barrier(s);
}

void shmred_allreduce(ShmRed *s, void *buf, size_t n, ShmType t)
{
    even_slices(s, n);
    reduce_slices(s, buf, n, t, true, 0, 0, NULL);
    if (buf != s->seg[s->me]) memcpy(buf, s->seg[s->me], n * elem_bytes(t));
}

void shmred_reduce_scatter(ShmRed *s, void *buf, const size_t *off, size_t tail, ShmType t)
{
    const size_t np = off[s->P], a = off[s->world_rank], b = off[s->world_rank + 1];
    const char *mine = s->seg[s->me];
    char tail_sum[64 * 4];
    XT_ASSERT(tail <= 64 && t != SHM_F64);
    if (s->nodes == 1) { /* local rank = world rank: each sums exactly its piece */
        for (int l = 0; l < s->L; l++) s->lo[l] = off[l];
        s->lo[s->L] = np;
        reduce_slices(s, buf, np + tail, t, false, np, tail, tail_sum);
        memcpy((char *)buf + np * 4, tail_sum, tail * 4);
    } else { /* even slices, allreduced across nodes and pushed: every piece and the tail */
        even_slices(s, np + tail);
        reduce_slices(s, buf, np + tail, t, true, 0, 0, NULL);
        if (buf != mine) memcpy((char *)buf + np * 4, mine + np * 4, tail * 4);
    }
    if (buf != mine) memcpy((char *)buf + a * 4, mine + a * 4, (b - a) * 4);
}

void shmred_allgather(ShmRed *s, void *buf, const size_t *off)
{
    XT_ASSERT(s->nodes == 1 && off[s->P] <= s->cap);
    char *b = buf;
    size_t a = off[s->me], e = off[s->me + 1];
    if (buf == s->pseg[s->me]) { /* push this rank's piece into every other parameter segment */
        for (int k = 0; k < s->L; k++)
            if (k != s->me) memcpy(s->pseg[k] + a, b + a, e - a);
        node_barrier(s);
        return;
    }
    memcpy(s->shared + a, b + a, e - a);
    node_barrier(s);
    memcpy(b, s->shared, a);
    memcpy(b + e, s->shared + e, off[s->P] - e);
    node_barrier(s);
}
