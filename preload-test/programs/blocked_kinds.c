/* Seven threads, each blocked for the whole run in one kind of call below the same chain of
 * its own functions (thread_entry -> blk_<kind>_outer -> blk_<kind>_inner -> the call):
 * read (a pipe), poll, epoll_wait, nanosleep, pthread_cond_timedwait, accept and
 * pthread_mutex_lock. The main thread sleeps in nanosleep meanwhile, then releases the
 * read, accept and mutex threads. Every call that returns EINTR is counted and retried;
 * prints the count. Arg: milliseconds to block (default 1500). Build it with and without
 * -fno-omit-frame-pointer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int block_ms = 1500;
static int eintr;
static int pipe_fds[2];
static int listener;
static struct sockaddr_in listen_address;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_signalled = PTHREAD_COND_INITIALIZER;

static void count_eintr(void) { __atomic_add_fetch(&eintr, 1, __ATOMIC_RELAXED); }

static struct timespec deadline(clockid_t clock) {
    struct timespec at;
    clock_gettime(clock, &at);
    at.tv_sec += block_ms / 1000;
    at.tv_nsec += (block_ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    return at;
}

static int ms_left(struct timespec until) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (until.tv_sec - now.tv_sec) * 1000 + (until.tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? (int)ms : 0;
}

/* Each inner function does its call, then returns a value its outer function uses, so that
 * no call is a tail call and every function keeps its frame on the stack. The read's buffer
 * is large and left unwritten but for its first byte: it still holds the frame records of
 * the calls `leave_frame_records` made before, which must not be taken for its own. */
__attribute__((noinline)) int blk_read_inner(void) {
    char buffer[4096];
    while (read(pipe_fds[0], buffer, 1) != 1)
        if (errno == EINTR)
            count_eintr();
    return buffer[0];
}

__attribute__((noinline)) int blk_poll_inner(void) {
    struct timespec until = deadline(CLOCK_MONOTONIC);
    struct pollfd none = {-1, 0, 0};
    int left;
    while ((left = ms_left(until)) > 0)
        if (poll(&none, 1, left) < 0 && errno == EINTR)
            count_eintr();
    return left;
}

__attribute__((noinline)) int blk_epoll_inner(void) {
    struct timespec until = deadline(CLOCK_MONOTONIC);
    int epoll = epoll_create1(0);
    struct epoll_event event;
    int left;
    while ((left = ms_left(until)) > 0)
        if (epoll_wait(epoll, &event, 1, left) < 0 && errno == EINTR)
            count_eintr();
    close(epoll);
    return left;
}

__attribute__((noinline)) int blk_sleep_inner(void) {
    struct timespec until = deadline(CLOCK_MONOTONIC);
    struct timespec pause;
    int left;
    while ((left = ms_left(until)) > 0) {
        pause.tv_sec = left / 1000;
        pause.tv_nsec = (left % 1000) * 1000000L;
        if (nanosleep(&pause, NULL) != 0 && errno == EINTR)
            count_eintr();
    }
    return left;
}

__attribute__((noinline)) int blk_cond_inner(void) {
    struct timespec until = deadline(CLOCK_REALTIME);
    int result;
    pthread_mutex_lock(&cond_mutex);
    while ((result = pthread_cond_timedwait(&never_signalled, &cond_mutex, &until)) == 0 ||
           result == EINTR)
        if (result == EINTR)
            count_eintr();
    pthread_mutex_unlock(&cond_mutex);
    return result;
}

__attribute__((noinline)) int blk_accept_inner(void) {
    int connection;
    while ((connection = accept(listener, NULL, NULL)) < 0)
        if (errno == EINTR)
            count_eintr();
    close(connection);
    return connection;
}

__attribute__((noinline)) int blk_mutex_inner(void) {
    int result = pthread_mutex_lock(&held);
    pthread_mutex_unlock(&held);
    return result;
}

#define OUTER(kind)                                                                          \
    __attribute__((noinline)) int blk_##kind##_outer(void) { return blk_##kind##_inner() + 1; }
OUTER(read)
OUTER(poll)
OUTER(epoll)
OUTER(sleep)
OUTER(cond)
OUTER(accept)
OUTER(mutex)

struct kind {
    const char *name;
    int (*outer)(void);
};

static const struct kind kinds[] = {
    {"blk-read", blk_read_outer},     {"blk-poll", blk_poll_outer},
    {"blk-epoll", blk_epoll_outer},   {"blk-sleep", blk_sleep_outer},
    {"blk-cond", blk_cond_outer},     {"blk-accept", blk_accept_outer},
    {"blk-mutex", blk_mutex_outer},
};
#define KINDS (sizeof kinds / sizeof kinds[0])

static volatile int sink;

/* Calls itself `depth` times through a pointer, leaving a chain of frame records of indirect
 * calls below the caller's frame once it returns. */
static int (*volatile leave_records)(int);
__attribute__((noinline)) int leave_frame_records(int depth) {
    return depth > 0 ? leave_records(depth - 1) + 1 : 0;
}

__attribute__((noinline)) void *thread_entry(void *arg) {
    const struct kind *kind = arg;
    pthread_setname_np(pthread_self(), kind->name);
    sink = leave_records(16);
    sink = kind->outer();
    return NULL;
}

static void open_listener(void) {
    socklen_t length = sizeof listen_address;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    listen_address.sin_family = AF_INET;
    listen_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener < 0 || bind(listener, (struct sockaddr *)&listen_address, length) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, (struct sockaddr *)&listen_address, &length) != 0) {
        perror("listener");
        exit(99);
    }
}

static void release_blocked_threads(void) {
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 ||
        connect(client, (struct sockaddr *)&listen_address, sizeof listen_address) != 0) {
        perror("connect");
        exit(99);
    }
    close(client);
    if (write(pipe_fds[1], "x", 1) != 1)
        exit(99);
    pthread_mutex_unlock(&held);
}

int main(int argc, char **argv) {
    if (argc > 1)
        block_ms = atoi(argv[1]);
    leave_records = leave_frame_records;
    if (pipe(pipe_fds) != 0)
        return 99;
    open_listener();
    pthread_mutex_lock(&held);
    pthread_t threads[KINDS];
    for (size_t i = 0; i < KINDS; i++)
        pthread_create(&threads[i], NULL, thread_entry, (void *)&kinds[i]);
    struct timespec until = deadline(CLOCK_MONOTONIC);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        count_eintr();
    release_blocked_threads();
    for (size_t i = 0; i < KINDS; i++)
        pthread_join(threads[i], NULL);
    printf("eintr %d\n", eintr);
    return 0;
}
