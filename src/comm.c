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

_Static_assert(RING_MAX_OPS == COMM_ASYNC_MAX, "comm.h promises the ring's queue length");

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
 * far less. */
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

/* The step's reduction path; a pointer in Comm, so that functions taking a const Comm may
 * set it up. */
typedef struct {
    ShmRed *shm;         /* the node's shared window, or NULL */
    CommStep use;
    int *counts, *displs; /* (P) for MPI_Reduce_scatter and MPI_Allgatherv */
    Ring *ring;           /* comm.overlap's non-blocking ring allreduces, or NULL */
} StepPath;

struct Comm {
    MPI_Comm world;
    int rank, size;
    int local_size, node_count;
    int node_cpus;        /* CPUs this node's ranks may run on (union of their affinities) */
    bool oversubscribed;  /* on some node, more ranks than such CPUs (same on every rank) */
    double init_seconds;
    StepPath *step;
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
            "xentrain: [rank %d] watchdog: %s did not complete within %.0f s (epoch %lld, "
            "step %llu) %s; ending the job (comm.timeout_s = %g)\n",
            w->rank, op, waited, (long long)atomic_load(&w->epoch),
            (unsigned long long)atomic_load(&w->step), why, w->timeout_s);
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
        if (gap > WATCHDOG_PERIOD_S + WATCHDOG_SUSPEND_S)
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
    c->step = calloc(1, sizeof *c->step);
    if (!c->step) abort_world(XT_ERR_RUNTIME);
    (void)provided; /* the watchdog and stream reader threads exist but never call MPI */
    c->init_seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    c->world = MPI_COMM_WORLD;
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    c->step->counts = calloc((size_t)c->size, sizeof(int));
    c->step->displs = calloc((size_t)c->size, sizeof(int));
    if (!c->step->counts || !c->step->displs) abort_world(XT_ERR_RUNTIME);
    MPI_Comm node;
    MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &c->local_size);
    int node_rank;
    MPI_Comm_rank(node, &node_rank);
    int leader = node_rank == 0 ? 1 : 0;
    MPI_Allreduce(&leader, &c->node_count, 1, MPI_INT, MPI_SUM, c->world);
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
    ring_close(&(*c)->step->ring);
    shmred_close(&(*c)->step->shm);
    free((*c)->step->counts);
    free((*c)->step->displs);
    free((*c)->step);
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

/* ---- the step's reductions -------------------------------------------------------------- */

Status comm_step_setup(const Comm *c, size_t bytes, char *why, size_t len)
{
    StepPath *sp = c->step;
    shmred_close(&sp->shm);
    sp->use = COMM_STEP_MPI;
    watch_begin("shared-memory window set-up");
    Status st = shmred_open(&sp->shm, c->world, bytes, why, len);
    watch_end();
    if (st == XT_OK) sp->use = COMM_STEP_SHM;
    return st;
}

void comm_step_use(const Comm *c, CommStep which)
{
    c->step->use = which == COMM_STEP_SHM && c->step->shm ? COMM_STEP_SHM : COMM_STEP_MPI;
}

CommStep comm_step_current(const Comm *c) { return c->step->use; }

void *comm_step_buffer(const Comm *c) { return c->step->shm ? shmred_segment(c->step->shm) : NULL; }
void *comm_step_param_buffer(const Comm *c)
{
    return c->step->shm ? shmred_param_segment(c->step->shm) : NULL;
}

void comm_step_shape(const Comm *c, int *local, int *nodes)
{
    *local = c->step->shm ? shmred_local_size(c->step->shm) : 0;
    *nodes = c->step->shm ? shmred_nodes(c->step->shm) : 0;
}

static MPI_Datatype mpi_type(CommType t) { return t == COMM_F32 ? MPI_FLOAT : MPI_INT32_T; }

void comm_step_allreduce(const Comm *c, void *buf, size_t n, CommType t)
{
    if (c->step->use == COMM_STEP_SHM) {
        watch_begin("shared-memory allreduce");
        shmred_allreduce(c->step->shm, buf, n, t == COMM_F32 ? SHM_F32 : SHM_I32);
        watch_end();
        return;
    }
    allreduce_chunked(c, buf, n, mpi_type(t), 4, MPI_SUM);
}

void comm_step_reduce_scatter(const Comm *c, void *buf, const size_t *off, size_t tail,
                              CommType t)
{
    StepPath *sp = c->step;
    XT_ASSERT(off[c->size] <= (size_t)INT_MAX);
    if (sp->use == COMM_STEP_SHM) {
        watch_begin("shared-memory reduce-scatter");
        shmred_reduce_scatter(sp->shm, buf, off, tail, t == COMM_F32 ? SHM_F32 : SHM_I32);
        watch_end();
        return;
    }
    char *b = buf;
    if (tail > 0) allreduce_chunked(c, b + off[c->size] * 4, tail, mpi_type(t), 4, MPI_SUM);
    for (int r = 0; r < c->size; r++) sp->counts[r] = (int)(off[r + 1] - off[r]);
    watch_begin("MPI_Reduce_scatter");
    /* In place, MPI leaves this rank's piece at the start of buf: moved to where it belongs. */
    if (MPI_Reduce_scatter(MPI_IN_PLACE, buf, sp->counts, mpi_type(t), MPI_SUM, c->world) !=
        MPI_SUCCESS)
        abort_world(XT_ERR_RUNTIME);
    watch_end();
    memmove(b + off[c->rank] * 4, b, (off[c->rank + 1] - off[c->rank]) * 4);
}

void comm_step_allgather(const Comm *c, void *buf, const size_t *off)
{
    StepPath *sp = c->step;
    XT_ASSERT(off[c->size] <= (size_t)INT_MAX);
    if (sp->use == COMM_STEP_SHM && shmred_nodes(sp->shm) == 1) {
        watch_begin("shared-memory allgather");
        shmred_allgather(sp->shm, buf, off);
        watch_end();
        return;
    }
    for (int r = 0; r < c->size; r++) {
        sp->counts[r] = (int)(off[r + 1] - off[r]);
        sp->displs[r] = (int)off[r];
    }
    watch_begin("MPI_Allgatherv");
    if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, sp->counts, sp->displs, MPI_BYTE,
                       c->world) != MPI_SUCCESS)
        abort_world(XT_ERR_RUNTIME);
    watch_end();
}

/* ---- overlap ---------------------------------------------------------------------------- */

Status comm_async_start(const Comm *c, size_t max_floats, char *why, size_t len)
{
    StepPath *sp = c->step;
    if (sp->ring && ring_max_floats(sp->ring) >= max_floats) return XT_OK;
    ring_close(&sp->ring); /* too small for this model: every rank reopens it */
    sp->ring = ring_open(c->world, max_floats);
    if (!sp->ring) {
        snprintf(why, len, "out of memory for the ring's receive buffers");
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

void comm_async_sum(const Comm *c, float *buf, size_t n)
{
    XT_ASSERT(c->step->ring);
    ring_start(c->step->ring, buf, n);
}

bool comm_async_progress(const Comm *c)
{
    return c->step->ring ? ring_progress(c->step->ring) : true;
}

void comm_async_wait(const Comm *c)
{
    watch_begin("ring allreduce (layer by layer, overlapped with backward)");
    ring_wait(c->step->ring);
    watch_end();
}

double comm_async_inflight(const Comm *c)
{
    return c->step->ring ? ring_inflight_seconds(c->step->ring) : 0.0;
}

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
