#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static int g_rank = 0;
static int g_nranks = 1;
static bool g_quiet = false;

void log_set_rank(int rank, int nranks)
{
    g_rank = rank;
    g_nranks = nranks;
}

int log_rank(void) { return g_rank; }

void log_set_quiet(bool quiet) { g_quiet = quiet; }

static void vprint(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
    if (prefix) fputs(prefix, f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
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
