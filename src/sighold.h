/* sighold: SIGTERM, SIGINT and SIGUSR1 held from the first instruction of `xentrain train`.
 *
 * The trainer installs its own handlers once MPI is up and its watchdog runs (train.c);
 * before that, in MPI_Init and the first part of start-up (0.2-2 s), the default action
 * would end the rank (exit 138 for SIGUSR1) and a batch script would not requeue. main.c
 * calls sighold_begin() first for `train`; the trainer takes over the caught signal
 * (sighold_caught) when it installs its handlers, so the first step carries it: every
 * rank checkpoints after that step and exits 75, as for a signal at any later time.
 * Does not: interpret the signal, or hold anything for the other subcommands (they have
 * nothing to checkpoint and keep the default actions).
 * Local; the handler only stores the signal number (async-signal-safe).
 */
#ifndef XT_SIGHOLD_H
#define XT_SIGHOLD_H

/* Installs a handler for SIGTERM, SIGINT and SIGUSR1 that records the signal. */
void sighold_begin(void);
/* The last signal recorded by that handler, 0 when none. */
int sighold_caught(void);

#endif
