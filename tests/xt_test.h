/* Shared helpers for the cmocka tests. Include after the cmocka prerequisites:
 *   #include <stdarg.h> <stddef.h> <stdint.h> <setjmp.h> <cmocka.h>
 */
#ifndef XT_TEST_H
#define XT_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "comm.h"

/* Makes a fresh temporary directory (mkdtemp under $TMPDIR or /tmp) and returns its
 * path in buf. Every rank of an MPI test gets the one rank 0 made. */
void xt_test_tmpdir(char *buf, size_t len, const Comm *comm);
/* Removes a directory tree made by xt_test_tmpdir (rank 0 only when comm != NULL). */
void xt_test_rmtree(const char *dir, const Comm *comm);

/* cmocka group fixtures for serial tests that write files: a fresh temporary directory
 * in xt_test_dir before the group, removed after it. */
extern char xt_test_dir[512];
int xt_test_group_setup(void **state);
int xt_test_group_teardown(void **state);

/* MPI test runner: comm_open, CMOCKA_TEST_ABORT=1 when P > 1 (a failed assertion
 * ends the job instead of leaving ranks in a collective), run, comm_close. Every
 * rank runs every test; output of ranks other than 0 is silenced. */
int xt_test_run_mpi(int *argc, char ***argv, const char *name, const void *tests, size_t n,
                    Comm **comm_out);

/* Collective: fails the test on every rank unless cond holds on every rank. */
#define assert_all_ranks(comm, cond) assert_true(xt_test_all_true((comm), (cond)))
bool xt_test_all_true(const Comm *comm, bool cond);

/* Captures what this process writes to stderr (fd 2) from xt_test_capture_begin to
 * xt_test_capture_end, which restores stderr and copies the text into buf (truncated
 * to len-1 bytes, NUL-terminated). Not nested. */
void xt_test_capture_begin(void);
void xt_test_capture_end(char *buf, size_t len);

/* Writes len bytes to path (creating or truncating it); false on failure. */
bool xt_test_write_file(const char *path, const void *data, size_t len);

/* max |a-b| / max(|b|, floor) over n values; *where gets the worst index. */
double xt_max_rel_err(const double *a, const double *b, size_t n, double floor, size_t *where);

#endif
