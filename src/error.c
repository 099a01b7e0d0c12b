#include "error.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>

static void (*abort_hook)(int code);

void xt_set_abort_hook(void (*hook)(int code)) { abort_hook = hook; }

void xt_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "xentrain: [rank %d] %s:%d: assertion failed: %s\n", log_rank(), file, line,
            cond);
    fflush(stderr);
    if (abort_hook) abort_hook(XT_ERR_RUNTIME);
    abort();
}
