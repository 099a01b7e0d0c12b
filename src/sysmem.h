/* sysmem: how much memory this node lets the job use.
 *
 * The smaller of MemAvailable (/proc/meminfo) and the memory limit of the cgroup the process
 * runs in: batch systems confine jobs that way (Slurm's ConstrainRAMSpace), and a job that
 * plans by MemAvailable alone is killed at the cgroup's limit. The cgroup path comes from
 * /proc/self/cgroup; its limit is the smallest one set on the path from it up to the root
 * of the hierarchy: cgroup v2 `memory.max`, v1 `memory.limit_in_bytes` (Slurm sets the
 * job's limit on a parent of the task's cgroup). "max" and v1's near-2^63 values mean no
 * limit. Local; reads files only.
 */
#ifndef XT_SYSMEM_H
#define XT_SYSMEM_H

#include <stddef.h>

typedef struct {
    double bytes;        /* the usable memory; 0 when nothing is known */
    double mem_available; /* MemAvailable; 0 when unknown */
    double cgroup_limit;  /* the cgroup's limit; 0 when there is none */
    char cgroup_file[1200]; /* the file that set cgroup_limit */
} SysMem;

/* Reads the real system: root = "" (tests pass a directory holding proc/ and sys/). */
void sysmem_read(const char *root, SysMem *out);

/* One phrase naming the limit that decided, for messages: "the memory cgroup limit of
 * 2.0 GiB in /sys/fs/cgroup/..." or "MemAvailable of 12.3 GiB". */
void sysmem_describe(const SysMem *m, char *buf, size_t len);

#endif
