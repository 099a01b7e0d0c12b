#include "sighold.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_caught;

static void on_signal(int signo) { g_caught = signo; }

void sighold_begin(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

const volatile sig_atomic_t *sighold_flag(void) { return &g_caught; }
