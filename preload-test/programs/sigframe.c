/* Spends half its time inside its own SIGUSR1 handler (it raises the signal itself, so the
 * share does not depend on timer delivery), optionally on an alternate signal stack, so
 * sampled stacks must unwind through the kernel's signal frame back to main.
 * Args: "altstack" or "normal", milliseconds. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fixture.h"

static volatile unsigned long sink;


__attribute__((noinline)) void spin_in_handler(void) {
    double end = now() + 0.003;
    while (now() < end)
        for (int i = 0; i < 1000; i++)
            sink++;
}

static void usr1_handler(int sig) {
    (void)sig;
    spin_in_handler();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void main_loop(double seconds) {
    double end = now() + seconds;
    while (now() < end) {
        raise(SIGUSR1);
        double slice = now() + 0.003;
        while (now() < slice)
            for (int i = 0; i < 1000; i++)
                sink += 3;
    }
}

int main(int argc, char **argv) {
    int altstack = argc > 1 && strcmp(argv[1], "altstack") == 0;
    double seconds = (argc > 2 ? atoi(argv[2]) : 1000) / 1000.0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = usr1_handler;
    sa.sa_flags = SA_RESTART;
    if (altstack) {
        stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16, .ss_flags = 0};
        sigaltstack(&ss, NULL);
        sa.sa_flags |= SA_ONSTACK;
    }
    sigaction(SIGUSR1, &sa, NULL);
    main_loop(seconds);
    printf("done\n");
    return 0;
}
