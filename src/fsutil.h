/* fsutil: small POSIX file-system helpers: directories, atomic replacement.
 *
 * Atomic replacement (fsutil_commit): the caller writes a complete file under a
 * temporary name in the destination directory, then commits it: fsync the file,
 * rename over the destination, fsync the directory. A crash at any point leaves
 * either the old file or the new one, never a torn one. Local.
 */
#ifndef XT_FSUTIL_H
#define XT_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* mkdir -p; logs and fails with the path and strerror. */
Status fsutil_mkdirs(const char *path);
/* Fails (with a message) unless dir is a writable directory. */
Status fsutil_check_writable_dir(const char *dir);
/* "dir/name" into buf; XT_ERR_USAGE when it does not fit. */
Status fsutil_join(char *buf, size_t len, const char *dir, const char *name);
/* "<path>.tmp.<12 random hex digits>" in the same directory: a name no other process,
 * on this host or another, picks (two runs, or a run and a leftover of a killed one, never
 * write the same temporary file). Create it exclusively (fopen "wx", H5F_ACC_EXCL).
 * XT_ERR_USAGE with a message when it does not fit in buf. */
Status fsutil_temp_name(char *buf, size_t len, const char *path);
/* Whether name is a temporary of one of `outputs` (as fsutil_temp_name makes them, or
 * "<output>.tmp" and "<output>.tmp.<pid>" of earlier versions). */
bool fsutil_is_temp_of(const char *name, const char *const *outputs, size_t n);
/* fsync tmp, rename(tmp, path), fsync the directory. On failure removes tmp. */
Status fsutil_commit(const char *tmp, const char *path);
bool fsutil_exists(const char *path);
bool fsutil_is_dir(const char *path);

#endif
