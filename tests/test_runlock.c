/* runlock: one run per run directory (issue 32 item 4), and fsutil's unique temporary
 * names. A second process is forked to hold the lock: fcntl locks belong to a process, so
 * one process never conflicts with itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "runlock.h"
#include "xt_test.h"

static bool has(const char *hay, const char *needle)
{
    if (strstr(hay, needle)) return true;
    print_message("missing \"%s\" in:\n%s\n", needle, hay);
    return false;
}

/* Forks a child that takes dir's lock (owner_file: the fallback), reports through a pipe
 * and holds it for hold_s seconds (or until killed). Returns its pid. */
static pid_t hold_in_child(const char *dir, bool owner_file, const char *job, int hold_s)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (job) setenv("SLURM_JOB_ID", job, 1);
        else unsetenv("SLURM_JOB_ID");
        RunLock *l = NULL;
        Status st = owner_file ? runlock_acquire_owner_file(dir, "run.dir", &l)
                               : runlock_acquire(dir, "run.dir", &l);
        char c = st == XT_OK ? 'y' : 'n';
        if (write(p[1], &c, 1) != 1) _exit(3);
        sleep((unsigned)hold_s);
        runlock_release(&l);
        _exit(0);
    }
    close(p[1]);
    char c = 0;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    assert_int_equal(c, 'y');
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_runlock_creates_and_locks(void **state)
{
    (void)state;
    char dir[700], path[800], text[512] = "";
    snprintf(dir, sizeof dir, "%s/a/b/run", xt_test_dir);
    RunLock *l = NULL;
    assert_int_equal(runlock_acquire(dir, "run.dir", &l), XT_OK);
    assert_true(fsutil_is_dir(dir));
    assert_string_equal(runlock_method(l), "fcntl");
    snprintf(path, sizeof path, "%s/.xentrain.lock", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "pid=%ld\n", (long)getpid());
    assert_true(has(text, want));
    assert_true(has(text, "host="));
    runlock_release(&l);
    assert_null(l);
    runlock_release(&l); /* safe on NULL */
}

/* A second run is refused, naming the holder's host, pid and Slurm job; once the holder
 * is gone (killed: the kernel drops its lock), the directory is free again. */
static void test_runlock_refuses_a_second_run(void **state)
{
    (void)state;
    char dir[700], err[4096], want[64];
    snprintf(dir, sizeof dir, "%s/busy", xt_test_dir);
    pid_t child = hold_in_child(dir, false, "4242", 60);
    unsetenv("SLURM_JOB_ID");
    RunLock *l = NULL;
    xt_test_capture_begin();
    Status st = runlock_acquire(dir, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_null(l);
    snprintf(want, sizeof want, "pid %ld, Slurm job 4242", (long)child);
    assert_true(has(err, "run.dir = "));
    assert_true(has(err, "is in use by another xentrain run (host "));
    assert_true(has(err, want));
    reap(child); /* SIGKILL: no release, the kernel drops the lock */
    assert_int_equal(runlock_acquire(dir, "run.dir", &l), XT_OK);
    runlock_release(&l);
}

/* An earlier attempt of the same Slurm job is waited for (its lock may outlive a failed
 * node for a while), then the directory is taken. */
static void test_runlock_waits_for_the_same_job(void **state)
{
    (void)state;
    char dir[700], err[4096];
    snprintf(dir, sizeof dir, "%s/requeued", xt_test_dir);
    pid_t child = hold_in_child(dir, false, "777", 3);
    setenv("SLURM_JOB_ID", "777", 1);
    RunLock *l = NULL;
    xt_test_capture_begin();
    Status st = runlock_acquire(dir, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    unsetenv("SLURM_JOB_ID");
    waitpid(child, NULL, 0);
    assert_int_equal(st, XT_OK);
    assert_true(has(err, "an earlier attempt of this Slurm job still holds the lock"));
    runlock_release(&l);
}

/* The fallback where record locks are unavailable: an owner file, exclusive; a live
 * holder is refused (naming the file to remove if it is gone), a dead one on this host or
 * one of the same Slurm job is taken over, and the file goes at the end. */
static void test_runlock_owner_file_fallback(void **state)
{
    (void)state;
    char dir[700], owner[800], err[4096], want[64];
    snprintf(dir, sizeof dir, "%s/nolocks", xt_test_dir);
    snprintf(owner, sizeof owner, "%s/.xentrain.owner", dir);
    pid_t child = hold_in_child(dir, true, NULL, 60);
    RunLock *l = NULL;
    xt_test_capture_begin();
    Status st = runlock_acquire_owner_file(dir, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    snprintf(want, sizeof want, "pid %ld,", (long)child);
    assert_true(has(err, want));
    assert_true(has(err, "remove the file"));
    reap(child); /* killed: the owner file stays, its pid runs no more */
    assert_true(fsutil_exists(owner));
    xt_test_capture_begin();
    st = runlock_acquire_owner_file(dir, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_OK);
    assert_true(has(err, "taking over"));
    assert_string_equal(runlock_method(l), "owner file");
    runlock_release(&l);
    assert_false(fsutil_exists(owner));

    /* another host's owner file: refused, unless it is this Slurm job's */
    char text[] = "host=othernode\npid=1\nslurm_job=99\nsince=2026-01-01T00:00:00\n";
    assert_true(xt_test_write_file(owner, text, strlen(text)));
    xt_test_capture_begin();
    st = runlock_acquire_owner_file(dir, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_true(has(err, "host othernode, pid 1, Slurm job 99"));
    setenv("SLURM_JOB_ID", "99", 1);
    xt_test_capture_begin();
    st = runlock_acquire_owner_file(dir, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    unsetenv("SLURM_JOB_ID");
    assert_int_equal(st, XT_OK);
    runlock_release(&l);
}

/* run.dir problems are config errors (exit 2) that name run.dir. */
static void test_runlock_bad_dir_names_the_key(void **state)
{
    (void)state;
    char file[700], sub[800], err[4096];
    snprintf(file, sizeof file, "%s/plainfile", xt_test_dir);
    assert_true(xt_test_write_file(file, "x", 1));
    RunLock *l = NULL;
    xt_test_capture_begin();
    Status st = runlock_acquire(file, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_true(has(err, "run.dir = "));
    assert_true(has(err, "exists and is not a directory"));
    snprintf(sub, sizeof sub, "%s/below", file);
    xt_test_capture_begin();
    st = runlock_acquire(sub, "run.dir", &l);
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_true(has(err, "cannot create the directory"));
}

/* Temporaries that killed runs left are removed when the lock is taken; other files stay. */
static void test_runlock_removes_stale_temporaries(void **state)
{
    (void)state;
    const char *gone[] = {"checkpoint.h5.tmp.0123456789ab", "model.h5.tmp", "metrics.csv.tmp.4711",
                          "config.ini.tmp.deadbeef0000"};
    const char *kept[] = {"checkpoint.h5", "notes.tmp.1", "model.h5.tmp.xyz", "data.h5.tmp.12"};
    char dir[700], path[900];
    snprintf(dir, sizeof dir, "%s/stale", xt_test_dir);
    mkdir(dir, 0755);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, gone[i]);
        assert_true(xt_test_write_file(path, "x", 1));
        snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
        assert_true(xt_test_write_file(path, "x", 1));
    }
    RunLock *l = NULL;
    char err[4096];
    xt_test_capture_begin();
    assert_int_equal(runlock_acquire(dir, "run.dir", &l), XT_OK);
    xt_test_capture_end(err, sizeof err);
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, gone[i]);
        assert_false(fsutil_exists(path));
        snprintf(path, sizeof path, "%s/%s", dir, kept[i]);
        assert_true(fsutil_exists(path));
    }
    runlock_release(&l);
}

/* Temporary names are unique and fit, or the call says why not. */
static void test_fsutil_temp_names_are_unique(void **state)
{
    (void)state;
    char a[64], b[64], tiny[16];
    assert_int_equal(fsutil_temp_name(a, sizeof a, "run/checkpoint.h5"), XT_OK);
    assert_int_equal(fsutil_temp_name(b, sizeof b, "run/checkpoint.h5"), XT_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), strlen("run/checkpoint.h5.tmp.") + 12);
    const char *outputs[] = {"checkpoint.h5"};
    assert_true(fsutil_is_temp_of(a + 4, outputs, 1));
    char err[512];
    xt_test_capture_begin();
    Status st = fsutil_temp_name(tiny, sizeof tiny, "run/checkpoint.h5");
    xt_test_capture_end(err, sizeof err);
    assert_int_equal(st, XT_ERR_USAGE);
    assert_true(has(err, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runlock_creates_and_locks),
        cmocka_unit_test(test_runlock_refuses_a_second_run),
        cmocka_unit_test(test_runlock_waits_for_the_same_job),
        cmocka_unit_test(test_runlock_owner_file_fallback),
        cmocka_unit_test(test_runlock_bad_dir_names_the_key),
        cmocka_unit_test(test_runlock_removes_stale_temporaries),
        cmocka_unit_test(test_fsutil_temp_names_are_unique),
    };
    return cmocka_run_group_tests_name("runlock", tests, xt_test_group_setup,
                                       xt_test_group_teardown);
}
