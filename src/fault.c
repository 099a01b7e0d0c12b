/* fault: see fault.h. Compiled into the test build only. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FAULT_MAX_DELAY_MS 10000

typedef struct {
    bool read;
    int hang_rank, corrupt_rank;
    unsigned long long hang_step, corrupt_step;
    long delay_ms;
    int delay_rank;          /* -1: every rank */
    long checkpoint_delay_ms;
    bool checkpoint_fails;
    int node_ranks;
} FaultPlan;

static FaultPlan g_plan = {.hang_rank = -1, .corrupt_rank = -1, .delay_rank = -1};

static long env_ms(const char *var)
{
    const char *d = getenv(var);
    long ms = d ? strtol(d, NULL, 10) : 0;
    return ms > 0 && ms < FAULT_MAX_DELAY_MS ? ms : 0;
}

static void rank_step(const char *var, int *rank, unsigned long long *step)
{
    const char *v = getenv(var);
    if (!v || sscanf(v, "%d:%llu", rank, step) != 2) *rank = -1;
}

static const FaultPlan *plan(void)
{
    if (g_plan.read) return &g_plan;
    rank_step("XT_FAULT_HANG", &g_plan.hang_rank, &g_plan.hang_step);
    rank_step("XT_FAULT_CORRUPT_PARAMS", &g_plan.corrupt_rank, &g_plan.corrupt_step);
    g_plan.delay_ms = env_ms("XT_TEST_STEP_DELAY_MS");
    const char *r = getenv("XT_TEST_STEP_DELAY_RANK");
    g_plan.delay_rank = r && *r ? atoi(r) : -1;
    g_plan.checkpoint_delay_ms = env_ms("XT_TEST_CHECKPOINT_DELAY_MS");
    const char *c = getenv("XT_FAULT_CHECKPOINT");
    g_plan.checkpoint_fails = c && !strcmp(c, "fail");
    const char *k = getenv("XT_TEST_NODE_RANKS");
    g_plan.node_ranks = k && atoi(k) > 0 ? atoi(k) : 0;
    g_plan.read = true;
    return &g_plan;
}

void fault_before_reduce(int rank, uint64_t step)
{
    const FaultPlan *p = plan();
    if (p->delay_ms && (p->delay_rank < 0 || p->delay_rank == rank)) {
        struct timespec ts = {p->delay_ms / 1000, (p->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rank == p->hang_rank && step == p->hang_step)
        for (;;) sleep(1000);
}

void fault_after_update(int rank, uint64_t step, float *params)
{
    const FaultPlan *p = plan();
    if (rank == p->corrupt_rank && step == p->corrupt_step) params[0] += 1e-3f;
}

bool fault_checkpoint_fails(void) { return plan()->checkpoint_fails; }

void fault_checkpoint_delay(void)
{
    long ms = plan()->checkpoint_delay_ms;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    if (ms) nanosleep(&ts, NULL);
}

int fault_node_ranks(void) { return plan()->node_ranks; }
