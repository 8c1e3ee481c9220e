/* Things programs do that a preloaded library must not change.
 *
 * Descriptors: close every descriptor not known, as daemons and children before an exec do,
 * then open files; the numbers they get back may be ones the profiler had open.
 *   host write FILE        closes 3..1023, writes 100 lines to FILE, returns
 *   host two A B           closes 3..1023, opens A then B, writes to both, returns
 *   host pass FILE         closes 3..1023, opens FILE at fd 3, execs itself as "child",
 *                          which writes to fd 3 (descriptor passing, LISTEN_FDS style)
 *   host child             writes one line to fd 3
 *   host churn MS          one thread closes 3..1023 over and over for MS ms while another
 *                          starts and joins threads
 * The variadic exec family:
 *   host chain N           computes for 30 ms and replaces itself with itself N times, through
 *                          execl, execlp and execle in turn; the last image prints
 * Signal functions:
 *   host siginterrupt      SIGALRM set with signal() after siginterrupt(SIGALRM, 1) interrupts
 *                          a blocking read (exits 3 if it did not within 3 s)
 *   host sigset            a SIGINT handler set with sigset() survives a sigaction save and
 *                          restore, then handles a raised SIGINT
 *   host sigerr            signal(SIGPROF, SIG_ERR) is refused with EINVAL
 *   host sigwait           blocks SIGPROF and, between bits of work, polls for it with
 *                          sigtimedwait; prints how many it received (none are sent)
 * Fork:
 *   host fork-listing N    one thread lists the loaded objects (dl_iterate_phdr, slowly)
 *                          over and over while the main thread forks N children that compute
 *                          for 20 ms and _exit; prints whether every child ended within 1 s
 *   host forks N MS        forks N children in turn, each computing for MS ms and calling _exit
 *   host ignore-usr2       ignores SIGUSR2 with signal(), then polls a pipe for 300 ms while
 *                          another thread sends it SIGUSR2 every 5 ms; prints how often poll
 *                          was interrupted (an ignored signal interrupts nothing)
 * Termination:
 *   host malloc-term MS    the main thread allocates and frees blocks too large for malloc's
 *                          per-thread cache (so each call takes the arena's lock) until
 *                          another thread sends it SIGTERM after MS ms
 *   host cpu-limit MS      sets an ITIMER_PROF timer of MS ms of CPU with SIGPROF at its
 *                          default action, as a CPU limit, and computes; the timer ends it
 *                          (exits 3 if it still runs after 3 s)
 * Each mode prints what it did; the exit status is 0 unless something failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>


static void close_unknown_descriptors(void) {
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
}

/* Long enough for the sampler to take several samples (and open what it needs to). */
static void busy(long ms) {
    volatile unsigned long x = 1;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        for (int i = 0; i < 100000; i++)
            x = x * 31 + 7;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
}

static int write_lines(FILE *file, const char *text, int count) {
    for (int i = 0; i < count; i++)
        if (fprintf(file, "%s %d\n", text, i) < 0)
            return -1;
    return 0;
}

static int mode_write(const char *path) {
    busy(200);
    close_unknown_descriptors();
    FILE *file = fopen(path, "w");
    if (!file)
        return 1;
    busy(100);
    if (write_lines(file, "line", 100) != 0)
        return 1;
    printf("wrote 100 lines, fd %d\n", fileno(file));
    /* Left open: exit flushes it, after the library's destructor. */
    return 0;
}

static int mode_two(const char *a, const char *b) {
    busy(200);
    close_unknown_descriptors();
    FILE *first = fopen(a, "w");
    FILE *second = fopen(b, "w");
    if (!first || !second)
        return 1;
    busy(100);
    if (write_lines(first, "first", 50) != 0 || write_lines(second, "second", 50) != 0)
        return 1;
    printf("wrote two files\n");
    return 0;
}

static int mode_pass(const char *path, const char *self) {
    busy(200);
    close_unknown_descriptors();
    FILE *file = fopen(path, "w");
    if (!file || fileno(file) != 3)
        return 1;
    busy(100);
    fflush(stdout);
    execl(self, self, "child", (char *)NULL);
    return 1;
}

static int mode_child(void) {
    const char line[] = "written by the exec'd child\n";
    if (write(3, line, sizeof line - 1) != (ssize_t)(sizeof line - 1)) {
        printf("fd 3: %s\n", strerror(errno));
        return 1;
    }
    printf("child wrote to fd 3\n");
    return 0;
}

static volatile int stop;

static void *closer(void *unused) {
    (void)unused;
    while (!stop)
        close_unknown_descriptors();
    return NULL;
}

static void *nothing(void *unused) {
    busy(1);
    return unused;
}

static int mode_churn(long ms) {
    pthread_t thread;
    pthread_create(&thread, NULL, closer, NULL);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int started = 0;
    do {
        pthread_t worker;
        if (pthread_create(&worker, NULL, nothing, NULL) == 0) {
            pthread_join(worker, NULL);
            started++;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
    stop = 1;
    pthread_join(thread, NULL);
    printf("churned %s\n", started > 0 ? "threads" : "nothing");
    return 0;
}

/* Replaces itself with itself, `images` more times, through execl, execlp and execle in
 * turn; the last image prints. */
static int mode_chain(const char *self, int images) {
    if (images == 0) {
        printf("last image\n");
        return 0;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", images - 1);
    char *const environment[] = {"PATH=/usr/bin:/bin", NULL};
    busy(30);
    fflush(stdout);
    switch (images % 3) {
    case 0:
        execl(self, self, "chain", count, (char *)NULL);
        break;
    case 1:
        /* A path with a slash: execlp runs it without searching. */
        execlp(self, self, "chain", count, (char *)NULL);
        break;
    default:
        execle(self, self, "chain", count, (char *)NULL, environment);
    }
    return 1;
}

static volatile sig_atomic_t handled;

static void count_signal(int sig) {
    (void)sig;
    handled++;
}

static void *watchdog(void *unused) {
    (void)unused;
    sleep(3);
    printf("read was not interrupted\n");
    fflush(stdout);
    _exit(3);
}

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int mode_siginterrupt(void) {
    /* In this order glibc's signal() reads the choice siginterrupt() recorded. */
    siginterrupt(SIGALRM, 1);
    signal(SIGALRM, count_signal);
    int pipe_ends[2];
    if (pipe(pipe_ends) != 0)
        return 1;
    pthread_t thread;
    pthread_create(&thread, NULL, watchdog, NULL);
    struct itimerval in_200ms = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &in_200ms, NULL);
    char byte;
    ssize_t read_bytes = read(pipe_ends[0], &byte, 1);
    printf("read returned %zd (%s), handler ran %d time(s)\n", read_bytes,
           read_bytes < 0 ? strerror(errno) : "data", (int)handled);
    return 0;
}

static int mode_sigset(void) {
    sigset(SIGINT, count_signal);
    struct sigaction saved;
    sigaction(SIGINT, NULL, &saved);
    sigaction(SIGINT, &saved, NULL);
    raise(SIGINT);
    printf("survived SIGINT, handler ran %d time(s)\n", (int)handled);
    return 0;
}

static int mode_sigerr(void) {
    errno = 0;
    void (*previous)(int) = signal(SIGPROF, SIG_ERR);
    printf("signal(SIGPROF, SIG_ERR): %s, %s\n", previous == SIG_ERR ? "SIG_ERR" : "accepted",
           strerror(errno));
    return 0;
}

static int mode_sigwait(void) {
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &prof, NULL);
    struct timespec no_wait = {0, 0};
    int received = 0;
    for (int i = 0; i < 300; i++) {
        busy(2);
        siginfo_t info;
        if (sigtimedwait(&prof, &info, &no_wait) == SIGPROF)
            received++;
    }
    printf("received %d SIGPROF\n", received);
    return 0;
}

static int slow_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)info, (void)size, (void)data;
    struct timespec pause = {0, 200000};
    nanosleep(&pause, NULL);
    return 0;
}

static void *lister(void *unused) {
    while (!stop)
        dl_iterate_phdr(slow_object, NULL);
    return unused;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Forks `children` children one after another, each computing for `ms` ms and calling
 * _exit; returns how long the slowest took from fork to its end, or -1 if one failed. */
static double fork_in_turn(int children, long ms) {
    double slowest = 0;
    for (int i = 0; i < children; i++) {
        double started = seconds_now();
        pid_t child = fork();
        if (child == 0) {
            busy(ms);
            _exit(0);
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
            return -1;
        double took = seconds_now() - started;
        if (took > slowest)
            slowest = took;
    }
    return slowest;
}

static int mode_fork_listing(int children) {
    pthread_t thread;
    pthread_create(&thread, NULL, lister, NULL);
    double slowest = fork_in_turn(children, 20);
    stop = 1;
    pthread_join(thread, NULL);
    if (slowest < 0)
        return 1;
    printf("every child ended within 1 s: %s\n", slowest < 1.0 ? "yes" : "no");
    return 0;
}

static int mode_forks(int children, long ms) {
    if (fork_in_turn(children, ms) < 0)
        return 1;
    printf("children ended: %d\n", children);
    return 0;
}

static pid_t main_tid;
static volatile int sending;

static void *send_usr2_every_5ms(void *arg) {
    (void)arg;
    struct timespec pause = {.tv_nsec = 5000000};
    while (sending) {
        syscall(SYS_tgkill, getpid(), main_tid, SIGUSR2);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static int mode_ignore_usr2(void) {
    main_tid = gettid();
    signal(SIGUSR2, SIG_IGN);
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    sending = 1;
    pthread_t thread;
    if (pthread_create(&thread, NULL, send_usr2_every_5ms, NULL) != 0)
        return 1;
    int interrupted = 0;
    double end = seconds_now() + 0.3;
    while (seconds_now() < end) {
        struct pollfd fd = {.fd = fds[0], .events = POLLIN};
        if (poll(&fd, 1, 50) < 0 && errno == EINTR)
            interrupted++;
    }
    sending = 0;
    pthread_join(thread, NULL);
    printf("poll interrupted: %d times\n", interrupted);
    return 0;
}

static void *terminate_main_later(void *ms) {
    struct timespec pause = {.tv_sec = (long)ms / 1000, .tv_nsec = (long)ms % 1000 * 1000000};
    nanosleep(&pause, NULL);
    syscall(SYS_tgkill, getpid(), main_tid, SIGTERM);
    return NULL;
}

static int mode_malloc_term(long ms) {
    main_tid = gettid();
    pthread_t thread;
    if (pthread_create(&thread, NULL, terminate_main_later, (void *)ms) != 0)
        return 1;
    for (unsigned long i = 0;; i++) {
        volatile char *block = malloc(4096 + (i * 7919) % 60000);
        if (!block)
            return 1;
        block[0] = 1;
        free((void *)block);
    }
}

static int mode_cpu_limit(long ms) {
    struct itimerval limit = {.it_value = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000}};
    if (setitimer(ITIMER_PROF, &limit, NULL) != 0)
        return 1;
    printf("CPU limit: %ld ms\n", ms);
    fflush(stdout);
    busy(3000);
    printf("still running\n");
    return 3;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "cpu-limit") == 0)
        return mode_cpu_limit(atol(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "ignore-usr2") == 0)
        return mode_ignore_usr2();
    if (argc >= 3 && strcmp(argv[1], "malloc-term") == 0)
        return mode_malloc_term(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "write") == 0)
        return mode_write(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "two") == 0)
        return mode_two(argv[2], argv[3]);
    if (argc >= 3 && strcmp(argv[1], "pass") == 0)
        return mode_pass(argv[2], argv[0]);
    if (argc >= 2 && strcmp(argv[1], "child") == 0)
        return mode_child();
    if (argc >= 3 && strcmp(argv[1], "churn") == 0)
        return mode_churn(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "chain") == 0)
        return mode_chain(argv[0], atoi(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "siginterrupt") == 0)
        return mode_siginterrupt();
    if (argc >= 2 && strcmp(argv[1], "sigset") == 0)
        return mode_sigset();
    if (argc >= 2 && strcmp(argv[1], "sigerr") == 0)
        return mode_sigerr();
    if (argc >= 2 && strcmp(argv[1], "sigwait") == 0)
        return mode_sigwait();
    if (argc >= 4 && strcmp(argv[1], "forks") == 0)
        return mode_forks(atoi(argv[2]), atol(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "fork-listing") == 0)
        return mode_fork_listing(atoi(argv[2]));
    fprintf(stderr, "usage: host write FILE | two A B | pass FILE | child | churn MS | chain N"
                    " | siginterrupt | sigset | sigerr | sigwait | fork-listing N"
                    " | forks N MS | ignore-usr2 | malloc-term MS | cpu-limit MS\n");
    return 2;
}
