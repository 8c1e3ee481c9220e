/* bench-timeit OUT PROGRAM ARGS...: runs PROGRAM and writes "wall user sys maxrss_kib" of it
 * (its own process and threads only) to OUT, then exits with its status. When
 * BENCH_CHILD_PRELOAD is set, the program (and only the program) runs with it as LD_PRELOAD,
 * so a preloaded profiler never sees this helper. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench-timeit OUT PROGRAM ARGS...\n");
        return 2;
    }
    const char *preload = getenv("BENCH_CHILD_PRELOAD");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        if (preload && setenv("LD_PRELOAD", preload, 1) != 0)
            _exit(127);
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fprintf(f, "%.6f %.6f %.6f %ld\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss);
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 2;
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
