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

void log_info(const char *fmt, ...)
{
    if (g_rank != 0 || g_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vprint(stdout, NULL, fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprint(stderr, "xentrain: warning: ", fmt, ap);
    va_end(ap);
}

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

void log_error0(const char *fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprint(stderr, "xentrain: error: ", fmt, ap);
    va_end(ap);
}
