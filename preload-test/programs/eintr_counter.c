/* The main thread spends its time blocked in read (pipe), poll, nanosleep and
 * pthread_cond_timedwait, in turn, and counts how often each returns EINTR. A helper thread
 * feeds the pipe every 20 ms. Prints the counts. Arg: rounds (about 20 ms each). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int pipe_fds[2];
static int eintr_read, eintr_poll, eintr_sleep, eintr_cond;

static void *feeder(void *arg) {
    int rounds = *(int *)arg;
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int i = 0; i < rounds; i++) {
        while (nanosleep(&pause, &pause) != 0)
            ;
        if (write(pipe_fds[1], "x", 1) != 1)
            abort();
    }
    return NULL;
}

__attribute__((noinline)) void blocked_read(void) {
    char byte;
    while (read(pipe_fds[0], &byte, 1) != 1)
        if (errno == EINTR)
            eintr_read++;
}

__attribute__((noinline)) void blocked_poll(void) {
    struct pollfd none = {-1, 0, 0};
    if (poll(&none, 1, 5) < 0 && errno == EINTR)
        eintr_poll++;
}

__attribute__((noinline)) void blocked_sleep(void) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    if (nanosleep(&pause, NULL) != 0 && errno == EINTR)
        eintr_sleep++;
}

__attribute__((noinline)) void blocked_cond(void) {
    static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 5 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&mutex);
    if (pthread_cond_timedwait(&cond, &mutex, &until) == EINTR)
        eintr_cond++;
    pthread_mutex_unlock(&mutex);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    if (pipe(pipe_fds) != 0)
        return 99;
    pthread_t thread;
    pthread_create(&thread, NULL, feeder, &rounds);
    for (int i = 0; i < rounds; i++) {
        blocked_read();
        blocked_poll();
        blocked_sleep();
        blocked_cond();
    }
    pthread_join(thread, NULL);
    printf("eintr read %d poll %d sleep %d cond %d\n", eintr_read, eintr_poll, eintr_sleep,
           eintr_cond);
    return 0;
}
