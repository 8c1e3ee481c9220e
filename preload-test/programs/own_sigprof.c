/* Installs its own SIGPROF handler (sigaction, signal, sysv_signal, or sigset, which glibc
 * implements without calling sigaction) and an ITIMER_PROF timer, burns CPU, and reports how
 * many of its own signals it saw and whether its handler is still the one sigaction reports.
 * Args: "sigaction", "signal", "sysv" or "sigset", milliseconds of CPU. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t ticks;
static volatile unsigned long sink;

static int rearm;
static void on_prof(int sig) {
    ticks++;
    if (rearm)
        sysv_signal(sig, on_prof);
}
static void on_prof_info(int sig, siginfo_t *info, void *ctx) {
    (void)sig; (void)info; (void)ctx;
    ticks++;
}

__attribute__((noinline)) void burn_cpu(double seconds) {
    clock_t end = clock() + (clock_t)(seconds * CLOCKS_PER_SEC);
    while (clock() < end)
        for (int i = 0; i < 10000; i++)
            sink = sink * 31 + 7;
}

int main(int argc, char **argv) {
    const char *api = argc > 1 ? argv[1] : "sigaction";
    int use_signal = strcmp(api, "sigaction") != 0;
    double seconds = (argc > 2 ? atoi(argv[2]) : 1000) / 1000.0;
    if (strcmp(api, "signal") == 0) {
        signal(SIGPROF, on_prof);
    } else if (strcmp(api, "sysv") == 0) {
        /* One-shot: re-armed in the handler, as System V code does. */
        rearm = 1;
        sysv_signal(SIGPROF, on_prof);
    } else if (strcmp(api, "sigset") == 0) {
        sigset(SIGPROF, on_prof);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_prof_info;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigaction(SIGPROF, &sa, NULL);
    }
    struct itimerval timer = {{0, 10000}, {0, 10000}};
    setitimer(ITIMER_PROF, &timer, NULL);
    burn_cpu(seconds);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    struct sigaction now;
    sigaction(SIGPROF, NULL, &now);
    void *expected = use_signal ? (void *)on_prof : (void *)on_prof_info;
    printf("ticks %d\nhandler kept %s\n", (int)ticks,
           (void *)now.sa_sigaction == expected ? "yes" : "no");
    return 0;
}
