/* Prints the worker's tid; a worker thread that burns CPU in worker_spin for a while and exits, while main waits for
 * it in main_wait and then keeps running. Args: worker milliseconds, main milliseconds after
 * the worker ended, exit code. */
#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "fixture.h"

static volatile unsigned long sink;


__attribute__((noinline)) void worker_spin(double seconds) {
    double end = now() + seconds;
    unsigned long x = sink;
    while (now() < end)
        for (int i = 0; i < 10000; i++)
            x = x * 6364136223846793005UL + 1;
    sink = x;
}

static void *worker(void *arg) {
    printf("worker tid %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    worker_spin(*(double *)arg);
    return NULL;
}

__attribute__((noinline)) void main_wait(pthread_t thread) {
    pthread_join(thread, NULL);
    __asm__ volatile("" ::: "memory"); /* keep pthread_join from becoming a tail call */
}

__attribute__((noinline)) void main_after(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        sink++;
}

/* Whether a thread of this process has the name `name`. */
static int thread_named(const char *name) {
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks)
        return 0;
    int found = 0;
    struct dirent *task;
    while (!found && (task = readdir(tasks)) != NULL) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", task->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f))
            comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        found = strcmp(comm, name) == 0;
    }
    closedir(tasks);
    return found;
}

/* With WAIT_FOR_THREAD set, waits (up to 10 s) for a thread of that name, so the worker's tid
 * comes after it: tests that choose threads by id need the ids in a known order. */
static void wait_for_thread(void) {
    const char *name = getenv("WAIT_FOR_THREAD");
    double end = now() + 10;
    while (name && !thread_named(name) && now() < end)
        usleep(1000);
}

int main(int argc, char **argv) {
    double worker_seconds = (argc > 1 ? atoi(argv[1]) : 500) / 1000.0;
    double after_seconds = (argc > 2 ? atoi(argv[2]) : 100) / 1000.0;
    pthread_t thread;
    wait_for_thread();
    if (pthread_create(&thread, NULL, worker, &worker_seconds) != 0)
        return 99;
    main_wait(thread);
    main_after(after_seconds);
    printf("done\n");
    return argc > 3 ? atoi(argv[3]) : 0;
}
