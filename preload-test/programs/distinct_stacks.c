/* Threads that walk a random path down a binary tree of calls 20 levels deep, over and over:
 * 2^20 (about a million) distinct stacks per thread. Args: threads, seconds. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

#define LEVELS 20

static double seconds;
static volatile unsigned long sink;

static int descend(int level, unsigned long path);

__attribute__((noinline)) static int go_left(int level, unsigned long path) {
    volatile int keep = level;
    return descend(level - 1, path >> 1) + keep;
}

__attribute__((noinline)) static int go_right(int level, unsigned long path) {
    volatile int keep = level;
    return descend(level - 1, path >> 1) - keep;
}

__attribute__((noinline)) static int descend(int level, unsigned long path) {
    if (level == 0) {
        for (int i = 0; i < 2000; i++)
            sink++;
        return 0;
    }
    return (path & 1) ? go_left(level, path) : go_right(level, path);
}

static void *walker(void *arg) {
    unsigned long seed = (unsigned long)arg;
    double end = now() + seconds;
    while (now() < end) {
        seed = seed * 6364136223846793005UL + 1442695040888963407UL;
        descend(LEVELS, seed >> 20);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 4;
    seconds = argc > 2 ? atof(argv[2]) : 1;
    pthread_t threads[64];
    if (count > 64)
        return 2;
    for (long i = 0; i < count; i++)
        if (pthread_create(&threads[i], NULL, walker, (void *)(i + 1)) != 0)
            return 99;
    for (int i = 0; i < count; i++)
        pthread_join(threads[i], NULL);
    printf("done\n");
    return 0;
}
