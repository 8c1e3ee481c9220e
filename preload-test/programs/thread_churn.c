/* Creates and joins many short-lived threads, each doing a little work in churn_work.
 * Args: number of threads, additions per thread (default a million). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile unsigned long sink;
static int work = 1000000;

__attribute__((noinline)) void churn_work(void) {
    for (int i = 0; i < work; i++)
        sink += i;
}

static void *worker(void *arg) {
    (void)arg;
    churn_work();
    return NULL;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 1000;
    if (argc > 2)
        work = atoi(argv[2]);
    for (int i = 0; i < count; i++) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, worker, NULL) != 0)
            return 99;
        pthread_join(thread, NULL);
    }
    printf("done %d\n", count);
    return 0;
}
