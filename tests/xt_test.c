#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "xt_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void xt_test_tmpdir(char *buf, size_t len, const Comm *comm)
{
    char path[512] = {0};
    int rank = comm ? comm_rank(comm) : 0;
    if (rank == 0) {
        const char *base = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/xt_test_XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(path)) {
            perror("mkdtemp");
            path[0] = '\0';
        }
    }
    if (comm) comm_bcast(comm, path, sizeof path, 0);
    snprintf(buf, len, "%s", path);
}

void xt_test_rmtree(const char *dir, const Comm *comm)
{
    if (comm) comm_barrier(comm);
    if ((comm ? comm_rank(comm) : 0) != 0 || !dir[0]) return;
    if (strncmp(dir, "/tmp/", 5) != 0 && !getenv("TMPDIR")) return; /* safety */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

char xt_test_dir[512];

int xt_test_group_setup(void **state)
{
    (void)state;
    xt_test_tmpdir(xt_test_dir, sizeof xt_test_dir, NULL);
    return xt_test_dir[0] ? 0 : -1;
}

int xt_test_group_teardown(void **state)
{
    (void)state;
    xt_test_rmtree(xt_test_dir, NULL);
    return 0;
}

bool xt_test_all_true(const Comm *comm, bool cond)
{
    Status s = comm_agree(comm, cond ? XT_OK : XT_ERR_RUNTIME);
    return s == XT_OK;
}

int xt_test_run_mpi(int *argc, char ***argv, const char *name, const void *tests, size_t n,
                    Comm **comm_out)
{
    Comm *comm = NULL;
    if (comm_open(argc, argv, &comm) != XT_OK) return 1;
    *comm_out = comm;
    if (comm_size(comm) > 1) setenv("CMOCKA_TEST_ABORT", "1", 1);
    if (comm_rank(comm) != 0) {
        if (!freopen("/dev/null", "w", stdout)) return 1;
        log_set_quiet(true);
    }
    int failed = _cmocka_run_group_tests(name, (const struct CMUnitTest *)tests, n, NULL, NULL);
    Status all = comm_agree(comm, failed ? XT_ERR_RUNTIME : XT_OK);
    comm_close(&comm);
    *comm_out = NULL;
    return all == XT_OK ? 0 : 1;
}

double xt_max_rel_err(const double *a, const double *b, size_t n, double floor, size_t *where)
{
    double worst = 0.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double den = fabs(b[i]) > floor ? fabs(b[i]) : floor;
        double e = fabs(a[i] - b[i]) / den;
        if (!(e <= worst)) { /* catches NaN */
            worst = isnan(e) ? INFINITY : e;
            w = i;
        }
    }
    if (where) *where = w;
    return worst;
}

static FILE *g_capture;
static int g_saved_stderr = -1;

void xt_test_capture_begin(void)
{
    fflush(stderr);
    g_capture = tmpfile();
    g_saved_stderr = dup(2);
    if (!g_capture || g_saved_stderr < 0 || dup2(fileno(g_capture), 2) < 0) {
        perror("xt_test_capture_begin");
        abort();
    }
}

void xt_test_capture_end(char *buf, size_t len)
{
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    g_saved_stderr = -1;
    rewind(g_capture);
    size_t n = len > 0 ? fread(buf, 1, len - 1, g_capture) : 0;
    if (len > 0) buf[n] = '\0';
    fclose(g_capture);
    g_capture = NULL;
}

bool xt_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}
