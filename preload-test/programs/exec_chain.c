/* Burns CPU, then blocks SIGPROF (so a sample request can be left pending), burns a little
 * more, and execs itself as "child" without LD_PRELOAD: a request of the profiler still
 * pending at the exec would kill the child (default action) as soon as it unblocks SIGPROF.
 * Args: none (parent) or "child"; or "fail PATH": work, exec PATH (which fails), work again;
 * or "again": work, then exec itself as "after" with the same environment (the library
 * loaded again), which works in a function of its own. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fixture.h"

static volatile unsigned long sink;


__attribute__((noinline)) void burn(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 1000; i++)
            sink++;
}

/* The barriers keep the calls to burn from becoming tail calls. */
__attribute__((noinline)) void before_exec(void) {
    burn(0.3);
    __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) void after_failed_exec(void) {
    burn(0.3);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void after_exec(void) {
    burn(0.3);
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "again") == 0) {
        before_exec();
        char *args[] = {argv[0], "after", NULL};
        fflush(stdout);
        execv("/proc/self/exe", args);
        perror("execv");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "after") == 0) {
        after_exec();
        printf("after exec ok\n");
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "fail") == 0) {
        before_exec();
        char *args[] = {argv[2], NULL};
        execv(argv[2], args);
        printf("exec failed: %s\n", strerror(errno));
        after_failed_exec();
        return 0;
    }
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        sigprocmask(SIG_UNBLOCK, &prof, NULL);
        burn(0.05);
        printf("child ok\n");
        return 0;
    }
    burn(0.3);
    sigprocmask(SIG_BLOCK, &prof, NULL);
    burn(0.1);
    char *child_argv[] = {argv[0], "child", NULL};
    char *child_env[] = {"PATH=/usr/bin:/bin", NULL};
    fflush(stdout);
    execve("/proc/self/exe", child_argv, child_env);
    perror("execve");
    return 1;
}
