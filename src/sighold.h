/* sighold: SIGTERM, SIGINT and SIGUSR1 held from the first instruction of `xentrain train`.
 *
 * In MPI_Init and the first part of start-up (0.2-2 s) the default action would end the
 * rank (exit 138 for SIGUSR1) and a batch script would not requeue. main.c calls
 * sighold_begin() first for `train`; the trainer (train.c) reads the same flag
 * (sighold_flag) in every step's reduction, so a signal caught at any time, start-up
 * included, is carried by the next step: every rank checkpoints after it and exits 75.
 * Does not: interpret the signal, or hold anything for the other subcommands (they have
 * nothing to checkpoint and keep the default actions).
 * Local; the handler only stores the signal number (async-signal-safe).
 */
#ifndef XT_SIGHOLD_H
#define XT_SIGHOLD_H

#include <signal.h>

/* Installs a handler for SIGTERM, SIGINT and SIGUSR1 that records the signal. */
void sighold_begin(void);
/* The handler's flag: the last signal recorded, 0 when none; polled by the trainer. */
const volatile sig_atomic_t *sighold_flag(void);

#endif
