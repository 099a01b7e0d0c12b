#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int g_rank = 0;
static int g_nranks = 1;
static bool g_quiet = false;

/* A message line of up to this many bytes is formatted on the stack; longer ones are
 * allocated (a message never arrives in pieces). */
#define LOG_LINE_STACK 2048

void log_set_rank(int rank, int nranks)
{
    g_rank = rank;
    g_nranks = nranks;
}

int log_rank(void) { return g_rank; }

void log_set_quiet(bool quiet) { g_quiet = quiet; }

/* Writes all of buf with as few write() calls as the descriptor allows (one for a pipe
 * or a terminal). Best effort: a failing stderr has nowhere to report to. */
static void write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        buf += w;
        n -= (size_t)w;
    }
}

/* prefix + message + '\n' formatted into one buffer, then ONE write(): ranks that fail
 * at once under mpirun share a pipe, and writes of up to PIPE_BUF bytes do not
 * interleave, so their lines stay whole (stdio on unbuffered stderr would issue one
 * write per piece). stdout is flushed first so the line lands after earlier output. */
static void vprint(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
    char stack[LOG_LINE_STACK];
    char *buf = stack;
    va_list again;
    va_copy(again, ap);
    int p = snprintf(stack, sizeof stack, "%s", prefix ? prefix : "");
    int m = vsnprintf(stack + p, sizeof stack - (size_t)p, fmt, ap);
    if (p < 0 || m < 0) {
        va_end(again);
        return;
    }
    size_t need = (size_t)p + (size_t)m + 2;
    if (need > sizeof stack && (buf = malloc(need)) != NULL) {
        snprintf(buf, need, "%s", prefix ? prefix : "");
        vsnprintf(buf + p, need - (size_t)p, fmt, again);
    } else if (need > sizeof stack) { /* no memory: the message, cut */
        buf = stack;
        need = sizeof stack;
    }
    va_end(again);
    buf[need - 2] = '\n';
    buf[need - 1] = '\0';
    fflush(stdout);
    if (f != stdout) fflush(f);
    write_all(fileno(f), buf, need - 1);
    if (buf != stack) free(buf);
}

/* Rank 0 only (and not silenced, for stdout): prints with the prefix. */
#define PRINT_ON_RANK0(f, prefix)                                                          \
    do {                                                                                   \
        if (g_rank != 0 || ((f) == stdout && g_quiet)) return;                             \
        va_list ap;                                                                        \
        va_start(ap, fmt);                                                                 \
        vprint(f, prefix, fmt, ap);                                                        \
        va_end(ap);                                                                        \
    } while (0)

void log_info(const char *fmt, ...) { PRINT_ON_RANK0(stdout, NULL); }
void log_warn(const char *fmt, ...) { PRINT_ON_RANK0(stderr, "xentrain: warning: "); }
void log_error0(const char *fmt, ...) { PRINT_ON_RANK0(stderr, "xentrain: error: "); }

void log_error(const char *fmt, ...)
{
    char prefix[48];
    if (g_nranks > 1)
        snprintf(prefix, sizeof prefix, "xentrain: [rank %d] error: ", g_rank);
    else
        snprintf(prefix, sizeof prefix, "xentrain: error: ");
    va_list ap;
    va_start(ap, fmt);
    vprint(stderr, prefix, fmt, ap);
    va_end(ap);
}
