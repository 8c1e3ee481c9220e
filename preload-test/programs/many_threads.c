/* Starts a number of threads that mostly sleep (in sleep_loop) for a given time, like the
 * worker pool of a server. Args: threads, milliseconds. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "fixture.h"

static double seconds;


__attribute__((noinline)) void sleep_loop(void) {
    struct timespec pause = {0, 20 * 1000 * 1000};
    double end = now() + seconds;
    while (now() < end)
        nanosleep(&pause, NULL);
}

static void *worker(void *arg) {
    (void)arg;
    sleep_loop();
    return NULL;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 64;
    seconds = (argc > 2 ? atoi(argv[2]) : 1000) / 1000.0;
    pthread_t *threads = calloc(count, sizeof *threads);
    for (int i = 0; i < count; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < count; i++)
        pthread_join(threads[i], NULL);
    printf("done %d\n", count);
    return 0;
}
