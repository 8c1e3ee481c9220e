/* Sixteen threads doing the same fixed amount of CPU work each: main and fifteen workers
 * named worker-1 .. worker-15, each in worker_burn. Arg: units of work per thread. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

#define WORKERS 15

static volatile unsigned long sink;
static unsigned long units;

__attribute__((noinline)) void worker_burn(void) {
    unsigned long x = sink;
    for (unsigned long i = 0; i < units * 1000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink += x;
}

static void *worker(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "worker-%d", (int)(long)arg);
    pthread_setname_np(pthread_self(), name);
    worker_burn();
    return NULL;
}

int main(int argc, char **argv) {
    units = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)(i + 1));
    worker_burn();
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    bench_end_stamp();
    printf("done %lu\n", sink & 1);
    return 0;
}
