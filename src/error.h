/* error: status codes, exit codes and the always-on assertion.
 *
 * Every fallible function returns a Status. A module that detects a failure logs it
 * once, where it knows the most (file, dataset, key, expected vs actual), and returns
 * the status; callers propagate it without logging again. Modules never exit().
 *
 * Status values double as the process exit codes documented in the README:
 *   0 ok, 1 runtime failure, 2 usage/config/input error, 3 diverged (NaN/Inf),
 *   75 checkpointed on a signal: requeue me (EX_TEMPFAIL from sysexits.h).
 */
#ifndef XT_ERROR_H
#define XT_ERROR_H

typedef enum {
    XT_OK = 0,
    XT_ERR_RUNTIME = 1,  /* I/O failure, out of memory, MPI failure */
    XT_ERR_USAGE = 2,    /* bad command line, config, or input data */
    XT_ERR_DIVERGED = 3, /* the loss became NaN or Inf */
    XT_ERR_REQUEUE = 75  /* stopped on a signal after writing a checkpoint */
} Status;

/* Bugs only (never input validation): prints rank, file:line and the condition, then
 * aborts the whole job (MPI_Abort when MPI is up). On in every build. */
#define XT_ASSERT(cond) \
    do { if (!(cond)) xt_assert_fail(#cond, __FILE__, __LINE__); } while (0)

_Noreturn void xt_assert_fail(const char *cond, const char *file, int line);

/* Installed by comm at start-up so that assertions abort every rank. Local. */
void xt_set_abort_hook(void (*hook)(int code));

/* The worse of two statuses (any failure beats XT_OK; otherwise the first). */
static inline Status xt_status_merge(Status a, Status b) { return a != XT_OK ? a : b; }

#endif
