#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "comm.h"

#include <limits.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm_ring.h"
#include "comm_shm.h"
#include "log.h"

_Static_assert(RING_MAX_OPS == COMM_RING_MAX, "comm.h promises the ring's queue length");

/* Seconds on a monotonic clock: the watchdog thread uses it too, and it never calls MPI. */
static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* How often the watchdog looks. */
#define WATCHDOG_PERIOD_NS 500000000L
#define WATCHDOG_PERIOD_S 0.5
/* A wake-up later than this past its period means the process did not run in between
 * (SIGSTOP, Ctrl-Z, Slurm's suspend, the cgroup freezer: a stopped process's monotonic
 * clock runs on): that time is not counted as waiting. A busy machine delays a thread by
 * far less. Half of comm.timeout_s when that is smaller, so that a stop long enough to
 * matter is always seen (a rank stopped for about the timeout would count it otherwise). */
#define WATCHDOG_SUSPEND_S 2.0

/* What the watchdog thread reads; the main thread writes it around collectives. */
typedef struct {
    _Atomic(const char *) op;   /* the collective in progress, or NULL */
    _Atomic double since;       /* when it started (mono_seconds) */
    _Atomic double stopped_then; /* `stopped` when it started */
    _Atomic double stopped;     /* seconds this process did not run (watchdog thread only) */
    _Atomic(const char *) phase; /* what the ranks wait for outside collectives, or NULL */
    _Atomic int64_t epoch;
    _Atomic uint64_t step;
    double timeout_s;
    int rank;
    bool running;
    pthread_t thread;
} Watch;

struct Comm {
    MPI_Comm world;
    int rank, size;
    int local_size, node_count, local_min, local_max;
    int node_cpus;        /* CPUs this node's ranks may run on (union of their affinities) */
    bool oversubscribed;  /* on some node, more ranks than such CPUs (same on every rank) */
    double init_seconds;
};

/* The watchdog is process-wide (one per rank); collectives consult it through g_watch,
 * which is NULL until the watchdog runs. */
static Watch g_watch_state;
static Watch *g_watch;

static inline void watch_begin(const char *op)
{
    if (!g_watch) return;
    atomic_store(&g_watch->stopped_then, atomic_load(&g_watch->stopped));
    atomic_store(&g_watch->since, mono_seconds());
    atomic_store(&g_watch->op, op);
}

static inline void watch_end(void)
{
    if (g_watch) atomic_store(&g_watch->op, (const char *)NULL);
}

/* The error line: which collective, where, and whom it waits for. */
static void watchdog_report(Watch *w, const char *op, double waited)
{
    const char *phase = atomic_load(&w->phase);
    char why[320];
    if (phase)
        snprintf(why, sizeof why, "while %s: that took longer than the timeout, or a rank "
                                  "or a link is gone (if it is only slow, raise comm.timeout_s "
                                  "above its longest run)", phase);
    else
        snprintf(why, sizeof why, "a rank or a link is gone or stuck");
    fprintf(stderr,
            "xentrain: [rank %d] watchdog: %s did not complete within %g s (epoch %lld, "
            "step %llu), waited %.1f s: %s; ending the job (comm.timeout_s = %g)\n",
            w->rank, op, w->timeout_s, (long long)atomic_load(&w->epoch),
            (unsigned long long)atomic_load(&w->step), waited, why, w->timeout_s);
    fflush(stderr);
}

static void *watchdog_main(void *arg)
{
    Watch *w = arg;
    const struct timespec half = {0, WATCHDOG_PERIOD_NS};
    double last = mono_seconds();
    for (;;) {
        nanosleep(&half, NULL);
        double now = mono_seconds(), gap = now - last;
        last = now;
        /* first the time this process was stopped, then the timeout: a collective that
         * spans a suspension counts only the time the job ran */
        double late = w->timeout_s / 2 < WATCHDOG_SUSPEND_S ? w->timeout_s / 2 : WATCHDOG_SUSPEND_S;
        if (gap > WATCHDOG_PERIOD_S + late)
            atomic_store(&w->stopped, atomic_load(&w->stopped) + gap - WATCHDOG_PERIOD_S);
        const char *op = atomic_load(&w->op);
        if (!op) continue;
        double waited = now - atomic_load(&w->since) -
                        (atomic_load(&w->stopped) - atomic_load(&w->stopped_then));
        if (waited <= w->timeout_s || atomic_load(&w->op) != op) continue;
        watchdog_report(w, op, waited);
        _exit(XT_ERR_RUNTIME);
    }
    return NULL;
}

void comm_watchdog_start(const Comm *c, double timeout_s)
{
    Watch *w = &g_watch_state;
    if (w->running) {
        w->timeout_s = timeout_s;
        return;
    }
    w->timeout_s = timeout_s;
    w->rank = c->rank;
    atomic_store(&w->op, (const char *)NULL);
    atomic_store(&w->phase, (const char *)NULL);
    if (pthread_create(&w->thread, NULL, watchdog_main, w) == 0) {
        pthread_detach(w->thread);
        w->running = true;
        g_watch = w;
    } else {
        fprintf(stderr, "xentrain: [rank %d] warning: could not start the collective watchdog\n",
                c->rank);
    }
}

void comm_watch_position(const Comm *c, int64_t epoch, uint64_t step)
{
    (void)c;
    atomic_store(&g_watch_state.epoch, epoch);
    atomic_store(&g_watch_state.step, step);
}

void comm_watch_phase(const Comm *c, const char *phase)
{
    (void)c;
    atomic_store(&g_watch_state.phase, phase);
}

static void abort_world(int code)
{
    int up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Abort(MPI_COMM_WORLD, code);
    abort();
}

Status comm_open(int *argc, char ***argv, Comm **out)
{
    *out = NULL;
    int provided = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* FUNNELED: only the main thread calls MPI (the watchdog and the stream reader never
     * do; overlap progresses its reductions from the main thread). */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "xentrain: error: MPI_Init failed\n");
        return XT_ERR_RUNTIME;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    Comm *c = calloc(1, sizeof *c);
    if (!c) abort_world(XT_ERR_RUNTIME);
    (void)provided; /* the watchdog and stream reader threads exist but never call MPI */
    c->init_seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    c->world = MPI_COMM_WORLD;
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    MPI_Comm node;
    MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &c->local_size);
    int node_rank;
    MPI_Comm_rank(node, &node_rank);
    int leader = node_rank == 0 ? 1 : 0;
    MPI_Allreduce(&leader, &c->node_count, 1, MPI_INT, MPI_SUM, c->world);
    int range[2] = {c->local_size, -c->local_size};
    MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT, MPI_MIN, c->world);
    c->local_min = range[0];
    c->local_max = -range[1];
    /* The node's CPUs: the union of its ranks' affinity masks (a bound rank sees one core,
     * an unbound one all of the cpuset). */
    long conf = sysconf(_SC_NPROCESSORS_CONF); /* sized for the machine, past 1024 CPUs too */
    int ncpu = conf > 0 && conf < INT_MAX / 2 ? (int)conf : 1;
    size_t setsize = CPU_ALLOC_SIZE(ncpu);
    cpu_set_t *cpus = CPU_ALLOC(ncpu);
    if (!cpus) abort_world(XT_ERR_RUNTIME);
    CPU_ZERO_S(setsize, cpus);
    if (sched_getaffinity(0, setsize, cpus) != 0) CPU_SET_S(0, setsize, cpus);
    MPI_Allreduce(MPI_IN_PLACE, cpus, (int)setsize, MPI_BYTE, MPI_BOR, node);
    c->node_cpus = CPU_COUNT_S(setsize, cpus);
    CPU_FREE(cpus);
    int over = c->local_size > c->node_cpus ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &over, 1, MPI_INT, MPI_MAX, c->world);
    c->oversubscribed = over != 0;
    MPI_Comm_free(&node);
    log_set_rank(c->rank, c->size);
    xt_set_abort_hook(abort_world);
    *out = c;
    return XT_OK;
}

void comm_close(Comm **c)
{
    if (!c || !*c) return;
    g_watch = NULL; /* the detached thread only reads it while collectives run */
    free(*c);
    *c = NULL;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

int comm_rank(const Comm *c) { return c->rank; }
int comm_size(const Comm *c) { return c->size; }
int comm_local_size(const Comm *c) { return c->local_size; }
int comm_node_count(const Comm *c) { return c->node_count; }
int comm_node_cpus(const Comm *c) { return c->node_cpus; }
bool comm_oversubscribed(const Comm *c) { return c->oversubscribed; }

void comm_placement(const Comm *c, CommPlacement *out)
{
    *out = (CommPlacement){.P = c->size, .nodes = c->node_count, .local = c->local_size,
                           .local_min = c->local_min, .local_max = c->local_max,
                           .node_cpus = c->node_cpus, .oversubscribed = c->oversubscribed};
}
double comm_wtime(void) { return mono_seconds(); }
double comm_init_seconds(const Comm *c) { return c->init_seconds; }
const void *comm_native(const Comm *c) { return &c->world; }

void comm_library_version(char *buf, size_t len)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(v, &n);
    char *nl = strpbrk(v, ",\n");
    if (nl) *nl = '\0';
    snprintf(buf, len, "%s", v);
}

#ifndef XT_MPI_BUILD
#define XT_MPI_BUILD "unknown"
#endif

void comm_build_info(char *buf, size_t len)
{
    snprintf(buf, len, "%s (MPI %d.%d headers)", XT_MPI_BUILD, MPI_VERSION, MPI_SUBVERSION);
}

Status comm_agree(const Comm *c, Status local)
{
    int mine = (int)local, worst = 0;
    watch_begin("MPI_Allreduce (status agreement)");
    MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, c->world);
    watch_end();
    return (Status)worst;
}

/* In-place allreduce in chunks of at most INT_MAX elements. */
static void allreduce_chunked(const Comm *c, void *buf, size_t n, MPI_Datatype t, size_t elem,
                              MPI_Op op)
{
    char *p = buf;
    watch_begin("MPI_Allreduce");
    while (n > 0) {
        size_t m = n > (size_t)INT_MAX ? (size_t)INT_MAX : n;
        if (MPI_Allreduce(MPI_IN_PLACE, p, (int)m, t, op, c->world) != MPI_SUCCESS)
            abort_world(XT_ERR_RUNTIME);
        p += m * elem;
        n -= m;
    }
    watch_end();
}

void comm_allreduce_sum_float(const Comm *c, float *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_FLOAT, sizeof *buf, MPI_SUM);
}
void comm_allreduce_sum_double(const Comm *c, double *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_DOUBLE, sizeof *buf, MPI_SUM);
}
void comm_allreduce_max_double(const Comm *c, double *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_DOUBLE, sizeof *buf, MPI_MAX);
}
void comm_allreduce_sum_i32(const Comm *c, int32_t *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_INT32_T, sizeof *buf, MPI_SUM);
}
void comm_allreduce_max_i32(const Comm *c, int32_t *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_INT32_T, sizeof *buf, MPI_MAX);
}
void comm_allreduce_sum_i64(const Comm *c, int64_t *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_INT64_T, sizeof *buf, MPI_SUM);
}
void comm_allreduce_max_i64(const Comm *c, int64_t *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_INT64_T, sizeof *buf, MPI_MAX);
}
void comm_allreduce_min_i64(const Comm *c, int64_t *buf, size_t n)
{
    allreduce_chunked(c, buf, n, MPI_INT64_T, sizeof *buf, MPI_MIN);
}

void comm_bcast(const Comm *c, void *buf, size_t bytes, int root)
{
    char *p = buf;
    watch_begin("MPI_Bcast");
    while (bytes > 0) {
        size_t m = bytes > (size_t)INT_MAX ? (size_t)INT_MAX : bytes;
        MPI_Bcast(p, (int)m, MPI_BYTE, root, c->world);
        p += m;
        bytes -= m;
    }
    watch_end();
}

void comm_gather(const Comm *c, const void *send, void *recv0, size_t bytes)
{
    XT_ASSERT(bytes <= (size_t)INT_MAX);
    watch_begin("MPI_Gather");
    MPI_Gather(send, (int)bytes, MPI_BYTE, recv0, (int)bytes, MPI_BYTE, 0, c->world);
    watch_end();
}

void comm_allgather(const Comm *c, const void *send, void *recv, size_t bytes)
{
    XT_ASSERT(bytes <= (size_t)INT_MAX);
    watch_begin("MPI_Allgather");
    MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, c->world);
    watch_end();
}

void comm_allgatherv_inplace(const Comm *c, void *buf, const size_t *counts,
                             const size_t *displs)
{
    int *rc = malloc((size_t)c->size * sizeof *rc), *dp = malloc((size_t)c->size * sizeof *dp);
    XT_ASSERT(rc && dp);
    for (int r = 0; r < c->size; r++) {
        XT_ASSERT(counts[r] <= (size_t)INT_MAX && displs[r] <= (size_t)INT_MAX);
        rc[r] = (int)counts[r];
        dp[r] = (int)displs[r];
    }
    watch_begin("MPI_Allgatherv");
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, rc, dp, MPI_BYTE, c->world);
    watch_end();
    free(rc);
    free(dp);
}

void comm_gatherv(const Comm *c, const void *send, size_t bytes, void *recv0,
                  const size_t *counts)
{
    int *rc = NULL, *displ = NULL;
    XT_ASSERT(bytes <= (size_t)INT_MAX);
    if (c->rank == 0) {
        rc = malloc((size_t)c->size * sizeof *rc);
        displ = malloc((size_t)c->size * sizeof *displ);
        XT_ASSERT(rc && displ);
        size_t off = 0;
        for (int r = 0; r < c->size; r++) {
            XT_ASSERT(counts[r] <= (size_t)INT_MAX && off <= (size_t)INT_MAX);
            rc[r] = (int)counts[r];
            displ[r] = (int)off;
            off += counts[r];
        }
    }
    watch_begin("MPI_Gatherv");
    MPI_Gatherv(send, (int)bytes, MPI_BYTE, recv0, rc, displ, MPI_BYTE, 0, c->world);
    watch_end();
    free(rc);
    free(displ);
}

void comm_barrier(const Comm *c)
{
    watch_begin("MPI_Barrier");
    MPI_Barrier(c->world);
    watch_end();
}

/* ---- the step's transports ------------------------------------------------------------ */

/* A transport's three operations, chosen when it is opened. */
typedef struct {
    void (*allreduce)(CommPath *p, void *buf, size_t n, CommType t);
    void (*reduce_scatter)(CommPath *p, void *buf, const size_t *off, size_t tail, CommType t);
    void (*allgather)(CommPath *p, void *buf, const size_t *off);
} PathOps;

struct CommPath {
    const PathOps *ops;
    const Comm *comm;
    ShmRed *shm;          /* the node's shared window, or NULL (MPI) */
    int *counts, *displs; /* (P) for MPI_Reduce_scatter and MPI_Allgatherv */
};

static MPI_Datatype mpi_type(CommType t)
{
    return t == COMM_F32 ? MPI_FLOAT : t == COMM_F64 ? MPI_DOUBLE : MPI_INT32_T;
}
static ShmType shm_type(CommType t)
{
    return t == COMM_F32 ? SHM_F32 : t == COMM_F64 ? SHM_F64 : SHM_I32;
}

static void mpi_allreduce(CommPath *p, void *buf, size_t n, CommType t)
{
    allreduce_chunked(p->comm, buf, n, mpi_type(t), t == COMM_F64 ? 8 : 4, MPI_SUM);
}

static void mpi_reduce_scatter(CommPath *p, void *buf, const size_t *off, size_t tail, CommType t)
{
    const Comm *c = p->comm;
    XT_ASSERT(t != COMM_F64);
    XT_ASSERT(off[c->size] <= (size_t)INT_MAX);
    char *b = buf;
    if (tail > 0) allreduce_chunked(c, b + off[c->size] * 4, tail, mpi_type(t), 4, MPI_SUM);
    for (int r = 0; r < c->size; r++) p->counts[r] = (int)(off[r + 1] - off[r]);
    watch_begin("MPI_Reduce_scatter");
    /* In place, MPI leaves this rank's piece at the start of buf: moved to where it belongs. */
    if (MPI_Reduce_scatter(MPI_IN_PLACE, buf, p->counts, mpi_type(t), MPI_SUM, c->world) !=
        MPI_SUCCESS)
        abort_world(XT_ERR_RUNTIME);
    watch_end();
    memmove(b + off[c->rank] * 4, b, (off[c->rank + 1] - off[c->rank]) * 4);
}

static void mpi_allgather(CommPath *p, void *buf, const size_t *off)
{
    const Comm *c = p->comm;
    XT_ASSERT(off[c->size] <= (size_t)INT_MAX);
    for (int r = 0; r < c->size; r++) {
        p->counts[r] = (int)(off[r + 1] - off[r]);
        p->displs[r] = (int)off[r];
    }
    watch_begin("MPI_Allgatherv");
    if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, p->counts, p->displs, MPI_BYTE,
                       c->world) != MPI_SUCCESS)
        abort_world(XT_ERR_RUNTIME);
    watch_end();
}

static void shm_allreduce(CommPath *p, void *buf, size_t n, CommType t)
{
    watch_begin("shared-memory allreduce");
    shmred_allreduce(p->shm, buf, n, shm_type(t));
    watch_end();
}

static void shm_reduce_scatter(CommPath *p, void *buf, const size_t *off, size_t tail, CommType t)
{
    XT_ASSERT(off[p->comm->size] <= (size_t)INT_MAX);
    watch_begin("shared-memory reduce-scatter");
    shmred_reduce_scatter(p->shm, buf, off, tail, shm_type(t));
    watch_end();
}

static void shm_allgather(CommPath *p, void *buf, const size_t *off)
{
    XT_ASSERT(off[p->comm->size] <= (size_t)INT_MAX);
    watch_begin("shared-memory allgather");
    shmred_allgather(p->shm, buf, off);
    watch_end();
}

static const PathOps MPI_PATH = {mpi_allreduce, mpi_reduce_scatter, mpi_allgather};
static const PathOps SHM_PATH = {shm_allreduce, shm_reduce_scatter, shm_allgather};
/* Several nodes: the pushes of shmred_allgather reach one node only. */
static const PathOps SHM_NODES_PATH = {shm_allreduce, shm_reduce_scatter, mpi_allgather};

static CommPath *path_new(const Comm *c)
{
    CommPath *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    *p = (CommPath){.ops = &MPI_PATH, .comm = c,
                    .counts = calloc((size_t)c->size, sizeof(int)),
                    .displs = calloc((size_t)c->size, sizeof(int))};
    if (p->counts && p->displs) return p;
    comm_path_close(&p);
    return NULL;
}

Status comm_path_open_mpi(const Comm *c, CommPath **out)
{
    *out = path_new(c);
    return *out ? XT_OK : XT_ERR_RUNTIME;
}

Status comm_path_open_shm(const Comm *c, size_t bytes, CommPath **out, char *why, size_t len)
{
    *out = NULL;
    CommPath *p = path_new(c);
    Status st = comm_agree(c, p ? XT_OK : XT_ERR_RUNTIME);
    if (st != XT_OK) {
        snprintf(why, len, "out of memory");
        comm_path_close(&p);
        return st;
    }
    watch_begin("shared-memory window set-up");
    st = shmred_open(&p->shm, c->world, bytes, why, len);
    watch_end();
    if (st != XT_OK) {
        comm_path_close(&p);
        return st;
    }
    p->ops = shmred_nodes(p->shm) == 1 ? &SHM_PATH : &SHM_NODES_PATH;
    *out = p;
    return XT_OK;
}

void comm_path_close(CommPath **pp)
{
    if (!pp || !*pp) return;
    CommPath *p = *pp;
    shmred_close(&p->shm);
    free(p->counts);
    free(p->displs);
    free(p);
    *pp = NULL;
}

void *comm_path_buffer(const CommPath *p) { return p->shm ? shmred_segment(p->shm) : NULL; }

void *comm_path_param_buffer(const CommPath *p)
{
    return p->ops == &SHM_PATH ? shmred_param_segment(p->shm) : NULL;
}

void comm_path_shape(const CommPath *p, int *local, int *nodes)
{
    *local = p->shm ? shmred_local_size(p->shm) : 0;
    *nodes = p->shm ? shmred_nodes(p->shm) : 0;
}

void comm_path_allreduce(CommPath *p, void *buf, size_t n, CommType t)
{
    p->ops->allreduce(p, buf, n, t);
}

void comm_path_reduce_scatter(CommPath *p, void *buf, const size_t *off, size_t tail, CommType t)
{
    p->ops->reduce_scatter(p, buf, off, tail, t);
}

void comm_path_allgather(CommPath *p, void *buf, const size_t *off)
{
    p->ops->allgather(p, buf, off);
}

/* ---- overlap ---------------------------------------------------------------------------- */

Status comm_ring_open(const Comm *c, size_t max_floats, CommRing **out, char *why, size_t len)
{
    *out = ring_open(c->world, max_floats);
    if (*out) return XT_OK;
    snprintf(why, len, "out of memory for the ring's receive buffers");
    return XT_ERR_RUNTIME;
}

void comm_ring_close(CommRing **r) { ring_close(r); }

void comm_ring_sum(CommRing *r, float *buf, size_t n) { ring_start(r, buf, n); }

bool comm_ring_progress(CommRing *r) { return ring_progress(r); }

void comm_ring_wait(CommRing *r)
{
    watch_begin("ring allreduce (layer by layer, overlapped with backward)");
    ring_wait(r);
    watch_end();
}

double comm_ring_inflight(const CommRing *r) { return ring_inflight_seconds(r); }

void comm_abort(const Comm *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    /* The launcher forwards our output through a pipe; MPICH's hydra kills the job on
     * MPI_Abort and could drop the message just written (seen with the replica check).
     * A moment for it to read the pipe first; this path ends the job anyway. */
    const struct timespec drain = {0, 200000000};
    nanosleep(&drain, NULL);
    MPI_Abort(c ? c->world : MPI_COMM_WORLD, code);
    abort();
}
