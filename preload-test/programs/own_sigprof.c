/* Installs its own SIGPROF handler (sigaction or signal) and an ITIMER_PROF timer, burns CPU,
 * and reports how many of its own signals it saw and whether its handler is still the one
 * sigaction reports. Args: "sigaction" or "signal", milliseconds of CPU. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t ticks;
static volatile unsigned long sink;

static void on_prof(int sig) { (void)sig; ticks++; }
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
    int use_signal = argc > 1 && strcmp(argv[1], "signal") == 0;
    double seconds = (argc > 2 ? atoi(argv[2]) : 1000) / 1000.0;
    if (use_signal) {
        signal(SIGPROF, on_prof);
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
