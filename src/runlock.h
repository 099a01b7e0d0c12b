/* runlock: one run per run directory.
 *
 * Two jobs on one run.dir would race on its files (metrics.csv losing rows, one job
 * resuming the other's checkpoint with other settings). Rank 0 creates run.dir, takes
 * its lock and holds it for the whole run; a second run is refused, naming the holder
 * (host, pid, Slurm job id, since when).
 *
 * The lock: an fcntl write lock on run.dir/.xentrain.lock (POSIX record locks work on
 * local file systems, NFS (lockd / NFSv4) and Lustre mounted with flock or localflock),
 * released by the kernel when the process ends, however it ends. The file holds the
 * holder's description, read by a refused run; it is left in place (unlinking a lock
 * file races with a run that just opened it).
 * Where the file system has no record locks (fcntl fails with ENOLCK, ENOSYS, EOPNOTSUPP
 * or EINVAL: Lustre without flock, some FUSE and old NFS mounts), the fallback is an
 * owner file run.dir/.xentrain.owner created with O_EXCL and removed at the end. A
 * leftover owner file (the run was killed) is taken over when its holder is provably
 * gone: the same host and a pid that no longer runs, or the same Slurm job id (a requeued
 * or relaunched attempt of this job: Slurm ended the previous one). Otherwise the refusal
 * names the file to remove.
 * A lock held by an earlier attempt of the same Slurm job (its node failed; the file
 * server has not yet noticed) is waited for up to RUNLOCK_SAME_JOB_WAIT_S, then refused
 * with XT_ERR_REQUEUE (requeue: try again later).
 * Taking the lock also removes temporaries that a killed run left (checkpoint.h5.tmp.*,
 * ...): nobody else writes there while the lock is held.
 *
 * Does not: lock anything but run.dir, or protect files a user edits by hand.
 * Rank 0 only (Local).
 */
#ifndef XT_RUNLOCK_H
#define XT_RUNLOCK_H

#include "error.h"

#define RUNLOCK_SAME_JOB_WAIT_S 60

typedef struct RunLock RunLock;

/* Creates dir (and its parents) if needed, checks it is a writable directory, takes its
 * lock and removes leftover temporaries of the run's outputs. Every message names the
 * config key `key` ("run.dir") and the directory. XT_ERR_USAGE when dir cannot be made or
 * written (a config error) or another run holds it; XT_ERR_REQUEUE when an earlier attempt
 * of this Slurm job still holds it; XT_ERR_RUNTIME on other I/O errors. */
Status runlock_acquire(const char *dir, const char *key, RunLock **out);
/* The fallback alone, as runlock_acquire takes it where record locks are unavailable. */
Status runlock_acquire_owner_file(const char *dir, const char *key, RunLock **out);
/* Releases the lock (the fallback's owner file is removed); sets *l to NULL. Safe on NULL. */
void runlock_release(RunLock **l);
/* How the lock is held: "fcntl" or "owner file" (for the banner and tests). */
const char *runlock_method(const RunLock *l);

#endif
