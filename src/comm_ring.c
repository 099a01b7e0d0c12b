/* comm_ring: non-blocking ring allreduces progressed by the caller (see comm_ring.h). */
#include "comm_ring.h"

#include <stdlib.h>
#include <time.h>

#include "error.h"

/* Floats per message at most: a block count always fits an int. */
#define RING_MAX_BLOCK ((size_t)1 << 28)

typedef struct {
    float *buf;
    size_t n;
    float *tmp;         /* one block: what the left neighbour sends in a reduce-scatter step */
    int step;           /* 0 .. 2 (P - 1); 2 (P - 1) when complete */
    MPI_Request req[2]; /* the step's receive and send */
} Op;

struct Ring {
    MPI_Comm comm;
    int P, rank, left, right;
    float *tmp;         /* the receive areas of a step's ops */
    size_t tmp_cap, tmp_used, max_floats;
    Op ops[RING_MAX_OPS];
    int nops, ndone;
    double t_first, inflight;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int wrap(int b, int P) { return ((b % P) + P) % P; }

/* Block b of an n-element buffer: [lo, hi). */
static size_t block_lo(size_t n, int P, int b)
{
    return n / (size_t)P * (size_t)b + (n % (size_t)P) * (size_t)b / (size_t)P;
}

Ring *ring_open(MPI_Comm world, size_t max_floats)
{
    /* the duplicate first, on every rank; then the allocations, agreed on, so that a rank
     * short of memory never leaves the others in a collective it skips */
    MPI_Comm comm;
    XT_ASSERT(MPI_Comm_dup(world, &comm) == MPI_SUCCESS);
    Ring *r = calloc(1, sizeof *r);
    int P = 1;
    MPI_Comm_size(world, &P);
    size_t cap = max_floats / (size_t)P + RING_MAX_OPS + 1; /* ceil(n_k / P) summed */
    float *tmp = r ? malloc(cap * sizeof *tmp) : NULL;
    int ok = tmp != NULL;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, world);
    if (!ok) {
        free(tmp);
        free(r);
        MPI_Comm_free(&comm);
        return NULL;
    }
    r->comm = comm;
    r->P = P;
    MPI_Comm_rank(world, &r->rank);
    r->left = wrap(r->rank - 1, P);
    r->right = wrap(r->rank + 1, P);
    r->tmp = tmp;
    r->tmp_cap = cap;
    r->max_floats = max_floats;
    return r;
}

void ring_close(Ring **r)
{
    if (!r || !*r) return;
    XT_ASSERT((*r)->nops == (*r)->ndone);
    MPI_Comm_free(&(*r)->comm);
    free((*r)->tmp);
    free(*r);
    *r = NULL;
}

/* Posts step s of op k: a receive from the left neighbour and a send to the right one. */
static void post(Ring *r, int k)
{
    Op *op = &r->ops[k];
    const int P = r->P, s = op->step;
    int send_b, recv_b;
    float *into;
    if (s < P - 1) { /* reduce-scatter: pass on the partial sum of block r - s */
        send_b = wrap(r->rank - s, P);
        recv_b = wrap(r->rank - s - 1, P);
        into = op->tmp;
    } else { /* allgather: pass on the finished block r + 1 - t */
        int t = s - (P - 1);
        send_b = wrap(r->rank + 1 - t, P);
        recv_b = wrap(r->rank - t, P);
        into = op->buf + block_lo(op->n, P, recv_b);
    }
    size_t slo = block_lo(op->n, P, send_b), shi = block_lo(op->n, P, send_b + 1);
    size_t rlo = block_lo(op->n, P, recv_b), rhi = block_lo(op->n, P, recv_b + 1);
    /* the send first: over TCP (Open MPI 4.1) the ring then moved the MLP's 11.6 MB at
     * 1 Gbit/s in 100 ms, as fast as the library's own ring, against 115-131 ms with the
     * receive posted first (docs/architecture.md, the step's reduction) */
    XT_ASSERT(MPI_Isend(op->buf + slo, (int)(shi - slo), MPI_FLOAT, r->right, k, r->comm,
                        &op->req[1]) == MPI_SUCCESS);
    XT_ASSERT(MPI_Irecv(into, (int)(rhi - rlo), MPI_FLOAT, r->left, k, r->comm, &op->req[0]) ==
              MPI_SUCCESS);
}

/* Step s of op k has completed: add what arrived (reduce-scatter) and post the next step. */
static void advance(Ring *r, int k)
{
    Op *op = &r->ops[k];
    const int P = r->P;
    if (op->step < P - 1) {
        int b = wrap(r->rank - op->step - 1, P);
        size_t lo = block_lo(op->n, P, b), hi = block_lo(op->n, P, b + 1);
        float *dst = op->buf + lo;
        for (size_t i = 0; i < hi - lo; i++) dst[i] += op->tmp[i];
    }
    op->step++;
    if (op->step < 2 * (P - 1)) post(r, k);
    else r->ndone++;
}

static void start_one(Ring *r, float *buf, size_t n)
{
    XT_ASSERT(r->nops < RING_MAX_OPS);
    if (r->ndone == r->nops) r->t_first = now(); /* nothing in flight: a new span */
    Op *op = &r->ops[r->nops];
    size_t blk = (n + (size_t)r->P - 1) / (size_t)r->P;
    XT_ASSERT(r->tmp_used + blk <= r->tmp_cap);
    *op = (Op){.buf = buf, .n = n, .tmp = r->tmp + r->tmp_used, .step = 0};
    r->tmp_used += blk;
    r->nops++;
    if (r->P == 1) { /* nothing to exchange: complete at once (step 0 = 2 (P - 1)) */
        r->ndone++;
        return;
    }
    post(r, r->nops - 1);
}

void ring_start(Ring *r, float *buf, size_t n)
{
    const size_t most = RING_MAX_BLOCK * (size_t)r->P;
    for (size_t lo = 0; lo < n; lo += most) start_one(r, buf + lo, n - lo < most ? n - lo : most);
}

bool ring_progress(Ring *r)
{
    if (r->ndone == r->nops) return true;
    for (int k = 0; k < r->nops; k++) {
        Op *op = &r->ops[k];
        while (op->step < 2 * (r->P - 1)) {
            int flag = 0;
            MPI_Status st[2]; /* not MPI_STATUSES_IGNORE: GCC 12 misreads MPICH's prototype */
            XT_ASSERT(MPI_Testall(2, op->req, &flag, st) == MPI_SUCCESS);
            if (!flag) break;
            advance(r, k);
        }
    }
    if (r->ndone < r->nops) return false;
    r->inflight += now() - r->t_first;
    return true;
}

void ring_wait(Ring *r)
{
    while (!ring_progress(r)) {
    }
    r->nops = r->ndone = 0;
    r->tmp_used = 0;
}

double ring_inflight_seconds(const Ring *r) { return r->inflight; }
size_t ring_max_floats(const Ring *r) { return r->max_floats; }
