/* sysmem: MemAvailable and the memory cgroup limits, on fake /proc and /sys trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sysmem.h"
#include "xt_test.h"

/* Writes root/rel (making its directories) with content. */
static void put(const char *root, const char *rel, const char *content)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void fresh_root(char *root, size_t len, const char *name)
{
    snprintf(root, len, "%s/%s", xt_test_dir, name);
    mkdir(root, 0755);
    put(root, "proc/meminfo", "MemTotal: 24000000 kB\nMemAvailable: 8000000 kB\n");
}

static void test_sysmem_no_cgroup_limit(void **state)
{
    (void)state;
    char root[600];
    fresh_root(root, sizeof root, "plain");
    put(root, "proc/self/cgroup", "0::/user.slice\n");
    put(root, "sys/fs/cgroup/user.slice/memory.max", "max\n");
    SysMem m;
    sysmem_read(root, &m);
    assert_true(m.mem_available == 8000000.0 * 1024);
    assert_true(m.cgroup_limit == 0.0);
    assert_true(m.bytes == m.mem_available);
    char d[1400];
    sysmem_describe(&m, d, sizeof d);
    assert_non_null(strstr(d, "MemAvailable"));
}

static void test_sysmem_v2_limit_on_a_parent(void **state)
{
    (void)state;
    char root[600];
    fresh_root(root, sizeof root, "v2");
    put(root, "proc/self/cgroup", "0::/job_7/step_0/task_1\n");
    put(root, "sys/fs/cgroup/job_7/step_0/task_1/memory.max", "max\n");
    put(root, "sys/fs/cgroup/job_7/memory.max", "2147483648\n");
    put(root, "sys/fs/cgroup/memory.max", "4294967296\n");
    SysMem m;
    sysmem_read(root, &m);
    assert_true(m.cgroup_limit == 2147483648.0);
    assert_true(m.bytes == 2147483648.0); /* smaller than MemAvailable (7.6 GiB) */
    assert_non_null(strstr(m.cgroup_file, "job_7/memory.max"));
    char d[1400];
    sysmem_describe(&m, d, sizeof d);
    assert_non_null(strstr(d, "memory cgroup limit of 2.0 GiB"));
}

static void test_sysmem_v1_slurm_layout(void **state)
{
    (void)state;
    char root[600];
    fresh_root(root, sizeof root, "v1");
    put(root, "proc/self/cgroup",
        "12:pids:/slurm/uid_0/job_3\n5:memory:/slurm/uid_0/job_3/step_batch\n1:cpu,cpuacct:/\n");
    put(root, "sys/fs/cgroup/memory/slurm/uid_0/job_3/step_batch/memory.limit_in_bytes",
        "9223372036854771712\n"); /* v1's "no limit" */
    put(root, "sys/fs/cgroup/memory/slurm/uid_0/job_3/memory.limit_in_bytes", "1073741824\n");
    put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    SysMem m;
    sysmem_read(root, &m);
    assert_true(m.cgroup_limit == 1073741824.0);
    assert_true(m.bytes == 1073741824.0);
}

static void test_sysmem_limit_above_available(void **state)
{
    (void)state;
    char root[600];
    fresh_root(root, sizeof root, "big");
    put(root, "proc/self/cgroup", "0::/\n");
    put(root, "sys/fs/cgroup/memory.max", "68719476736\n"); /* 64 GiB */
    SysMem m;
    sysmem_read(root, &m);
    assert_true(m.cgroup_limit == 68719476736.0);
    assert_true(m.bytes == m.mem_available); /* MemAvailable is the smaller */
}

static void test_sysmem_nothing_known(void **state)
{
    (void)state;
    char root[600];
    snprintf(root, sizeof root, "%s/empty", xt_test_dir);
    mkdir(root, 0755);
    SysMem m;
    sysmem_read(root, &m);
    assert_true(m.bytes == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sysmem_no_cgroup_limit),
        cmocka_unit_test(test_sysmem_v2_limit_on_a_parent),
        cmocka_unit_test(test_sysmem_v1_slurm_layout),
        cmocka_unit_test(test_sysmem_limit_above_available),
        cmocka_unit_test(test_sysmem_nothing_known),
    };
    return cmocka_run_group_tests(tests, xt_test_group_setup, xt_test_group_teardown);
}
