/* Main blocks in read() on a pipe while two named worker threads burn CPU in their own
 * functions (crunch_a in "cruncher-a", crunch_b in "cruncher-b") and a third sleeps in
 * nanosleep ("sleeper"). Names are set by each thread after it starts. Arg: milliseconds. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "fixture.h"

static volatile unsigned long sink;
static double run_seconds;
static int pipe_fds[2];


__attribute__((noinline)) void crunch_a(double end) {
    while (now() < end)
        for (int i = 0; i < 1000; i++)
            sink += i;
}

__attribute__((noinline)) void crunch_b(double end) {
    while (now() < end)
        for (int i = 0; i < 1000; i++)
            sink ^= i;
}

static void *cruncher(void *arg) {
    int which = (int)(long)arg;
    pthread_setname_np(pthread_self(), which ? "cruncher-b" : "cruncher-a");
    double end = now() + run_seconds;
    if (which)
        crunch_b(end);
    else
        crunch_a(end);
    if (write(pipe_fds[1], "x", 1) != 1)
        abort();
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "sleeper");
    struct timespec pause = {0, 50 * 1000 * 1000};
    double end = now() + run_seconds;
    while (now() < end)
        nanosleep(&pause, NULL);
    return NULL;
}

__attribute__((noinline)) void wait_for_workers(void) {
    char byte;
    for (int done = 0; done < 2;)
        if (read(pipe_fds[0], &byte, 1) == 1)
            done++;
}

int main(int argc, char **argv) {
    run_seconds = (argc > 1 ? atoi(argv[1]) : 600) / 1000.0;
    if (pipe(pipe_fds) != 0)
        return 99;
    pthread_t threads[3];
    pthread_create(&threads[0], NULL, cruncher, (void *)0L);
    pthread_create(&threads[1], NULL, cruncher, (void *)1L);
    pthread_create(&threads[2], NULL, sleeper, NULL);
    wait_for_workers();
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    printf("done\n");
    return 0;
}
