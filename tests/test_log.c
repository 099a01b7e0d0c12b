/* log: every message line reaches its descriptor in ONE write(), so that lines of ranks
 * failing at once under mpirun never interleave. The descriptor is a SOCK_SEQPACKET socket:
 * each write() arrives as one record, so the test counts the writes a message took. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "xt_test.h"

#define RECORD_MAX 16384

typedef struct {
    int sock[2];
    int saved;
    int fd;
} Capture;

/* Points fd (1 or 2) at a record-preserving socket. */
static void capture_begin(Capture *c, int fd)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, c->sock), 0);
    fflush(fd == 1 ? stdout : stderr);
    c->fd = fd;
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(c->sock[0], fd) >= 0);
}

/* Restores fd; returns the number of records (writes) and copies the first into first. */
static int capture_end(Capture *c, char *first, size_t len)
{
    fflush(c->fd == 1 ? stdout : stderr);
    dup2(c->saved, c->fd);
    close(c->saved);
    close(c->sock[0]);
    static char rec[RECORD_MAX];
    int records = 0;
    ssize_t n;
    first[0] = '\0';
    while ((n = recv(c->sock[1], rec, sizeof rec - 1, MSG_DONTWAIT)) > 0) {
        rec[n] = '\0';
        if (records++ == 0) snprintf(first, len, "%s", rec);
    }
    close(c->sock[1]);
    return records;
}

static void test_log_error_is_one_write(void **state)
{
    (void)state;
    char got[RECORD_MAX];
    Capture c;
    log_set_rank(2, 4);
    capture_begin(&c, 2);
    log_error("%s: cannot open: %s", "/data/train.h5", "No such file or directory");
    int writes = capture_end(&c, got, sizeof got);
    assert_int_equal(writes, 1);
    assert_string_equal(got, "xentrain: [rank 2] error: /data/train.h5: cannot open: No such "
                             "file or directory\n");
    log_set_rank(0, 1);
}

/* A message longer than the stack buffer (a 1,000-character path or more) is still one
 * write, whole. */
static void test_log_long_message_is_one_write(void **state)
{
    (void)state;
    static char path[6001], got[RECORD_MAX], want[RECORD_MAX];
    memset(path, 'p', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    Capture c;
    capture_begin(&c, 2);
    log_error0("run.dir %s: not writable", path);
    int writes = capture_end(&c, got, sizeof got);
    snprintf(want, sizeof want, "xentrain: error: run.dir %s: not writable\n", path);
    assert_int_equal(writes, 1);
    assert_string_equal(got, want);
}

static void test_log_info_and_warn_are_one_write(void **state)
{
    (void)state;
    char got[RECORD_MAX];
    Capture c;
    capture_begin(&c, 1);
    log_info("epoch %d  loss %.3f", 3, 0.25);
    int writes = capture_end(&c, got, sizeof got);
    assert_int_equal(writes, 1);
    assert_string_equal(got, "epoch 3  loss 0.250\n");
    capture_begin(&c, 2);
    log_warn("%s", "disk almost full");
    writes = capture_end(&c, got, sizeof got);
    assert_int_equal(writes, 1);
    assert_string_equal(got, "xentrain: warning: disk almost full\n");
}

/* Rank 0 only: other ranks stay silent for log_error0, log_warn and log_info. */
static void test_log_rank0_only(void **state)
{
    (void)state;
    char got[RECORD_MAX];
    Capture c;
    log_set_rank(1, 2);
    capture_begin(&c, 2);
    log_error0("agreed refusal");
    log_warn("warning");
    int writes = capture_end(&c, got, sizeof got);
    log_set_rank(0, 1);
    assert_int_equal(writes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_error_is_one_write),
        cmocka_unit_test(test_log_long_message_is_one_write),
        cmocka_unit_test(test_log_info_and_warn_are_one_write),
        cmocka_unit_test(test_log_rank0_only),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
