/* Threads that call malloc, realloc and free as fast as they can, so that most samples land
 * inside the allocator (glibc's or a preloaded one) with its locks held.
 * Args: threads, seconds. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

#define LIVE 64

static double seconds;

__attribute__((noinline)) static unsigned long churn_allocations(unsigned long seed) {
    void *live[LIVE] = {0};
    unsigned long rounds = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 1000; i++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            int index = (seed >> 33) % LIVE;
            size_t size = 16 + (seed >> 40) % 8192;
            if (live[index] && (seed & 1))
                live[index] = realloc(live[index], size);
            else {
                free(live[index]);
                live[index] = malloc(size);
            }
            if (live[index])
                *(volatile char *)live[index] = 1;
        }
        rounds++;
    }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    return rounds;
}

__attribute__((noinline)) static void *storm_worker(void *arg) {
    unsigned long rounds = churn_allocations((unsigned long)arg);
    return rounds > 0 ? arg : NULL;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 4;
    seconds = argc > 2 ? atof(argv[2]) : 1;
    pthread_t threads[64];
    if (count > 64)
        return 2;
    for (long i = 0; i < count; i++)
        if (pthread_create(&threads[i], NULL, storm_worker, (void *)(i + 1)) != 0)
            return 99;
    int worked = 0;
    for (int i = 0; i < count; i++) {
        void *result;
        pthread_join(threads[i], &result);
        worked += result != NULL;
    }
    printf("done %d\n", worked);
    return 0;
}
