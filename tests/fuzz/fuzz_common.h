/* fuzz_common: shared helpers of the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 *
 * Every harness writes the fuzz input to a per-process temporary file and calls a real
 * entry point of xentrain_core on it, serially, without MPI_Init (comm == NULL: the
 * POSIX HDF5 driver). Error messages go to stderr; scripts/fuzz.sh runs libFuzzer with
 * -close_fd_mask=3, which keeps its own and the sanitizers' reports.
 */
#ifndef XT_FUZZ_COMMON_H
#define XT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A path unique to this process: "/tmp/xt_fuzz_<tag>_<pid><suffix>". */
static inline const char *fuzz_path(char *buf, size_t len, const char *tag, const char *suffix)
{
    snprintf(buf, len, "/tmp/xt_fuzz_%s_%ld%s", tag, (long)getpid(), suffix);
    return buf;
}

/* Writes data to path (truncating); returns 0 on success. */
static inline int fuzz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    int rc = fclose(f);
    return (w == size && rc == 0) ? 0 : -1;
}

#endif
