/* fault: test-only fault injection, so that tests can prove the error paths that real
 * faults take (a diverged replica, a hung rank, a failed checkpoint write, a signal or a
 * kill in the middle of an epoch).
 *
 * Compiled only into the test build of the executable (`xentrain-testing`, CMake adds
 * XT_TESTING and fault.c); in the release build every hook below is an inline no-op and
 * the binary holds none of the variable names. The settings are read once, from the
 * environment, at the first hook:
 *   XT_FAULT_CORRUPT_PARAMS=RANK:STEP  that rank perturbs one parameter after optimiser
 *                                      step STEP (the replica check must fire);
 *   XT_FAULT_HANG=RANK:STEP            that rank stops taking part before the allreduce
 *                                      of step STEP, as a cut link would (the watchdog);
 *   XT_TEST_STEP_DELAY_MS=N            every step sleeps N ms (1..9999), so that a test
 *                                      can signal or kill a run mid-epoch on any machine;
 *   XT_TEST_STEP_DELAY_RANK=R          ... on rank R only (the others wait for it inside
 *                                      the step's collective, as a watchdog test needs);
 *   XT_TEST_CHECKPOINT_DELAY_MS=N      a checkpoint write takes N ms more (the others wait
 *                                      for rank 0 in a collective meanwhile);
 *   XT_FAULT_CHECKPOINT=fail           checkpoint writes fail half-way, as on a full disk;
 *   XT_TEST_NODE_RANKS=K               the shared-memory reduction treats every K
 *                                      consecutive ranks as one node (its multi-node path
 *                                      on one machine).
 * Local.
 */
#ifndef XT_FAULT_H
#define XT_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef XT_TESTING
/* Before step's allreduce: sleeps XT_TEST_STEP_DELAY_MS; never returns on the hung rank. */
void fault_before_reduce(int rank, uint64_t step);
/* After the update that made `step` optimiser steps: perturbs params[0] on that rank. */
void fault_after_update(int rank, uint64_t step, float *params);
/* True when a checkpoint write must fail now. */
bool fault_checkpoint_fails(void);
/* Sleeps XT_TEST_CHECKPOINT_DELAY_MS. */
void fault_checkpoint_delay(void);
/* XT_TEST_NODE_RANKS, or 0. */
int fault_node_ranks(void);
#else
static inline void fault_before_reduce(int rank, uint64_t step) { (void)rank; (void)step; }
static inline void fault_after_update(int rank, uint64_t step, float *params)
{
    (void)rank;
    (void)step;
    (void)params;
}
static inline bool fault_checkpoint_fails(void) { return false; }
static inline void fault_checkpoint_delay(void) {}
static inline int fault_node_ranks(void) { return 0; }
#endif

#endif
