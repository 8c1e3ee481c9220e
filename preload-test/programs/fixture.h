/* Shared by the fixture programs. */
#ifndef FIXTURE_H
#define FIXTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* For scripts/bench.sh: when BENCH_END_STAMP names a file, writes to it the moment the
 * program's own work ended (nanoseconds of CLOCK_REALTIME) and the CPU time of the calling
 * thread, so the benchmark can measure what a profiler costs the thread it samples and how
 * long it takes after the work ends to get its profile onto disk. */
static inline void bench_end_stamp(void) {
    const char *path = getenv("BENCH_END_STAMP");
    if (!path)
        return;
    struct timespec end, cpu;
    clock_gettime(CLOCK_REALTIME, &end);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%lld %lld\n", (long long)end.tv_sec * 1000000000LL + end.tv_nsec,
                (long long)cpu.tv_sec * 1000000000LL + cpu.tv_nsec);
        fclose(f);
    }
}

#endif
