/* A thread with a 32 KB stack that recurses until only a given number of bytes of its stack
 * are left, then runs there while it is sampled; or, with "measure", a thread with a large
 * stack that calls itself `depth` times, paints the unused part, runs a while, and prints how
 * deep below its frame the stack was written (by the signal frames and handlers that
 * interrupted it), with "empty-handler" under an empty SIGPROF handler of its own that
 * another thread signals every 100 us; or, with "altstack", a signal handler that runs for
 * a while on an alternate stack (8 KB unless given) carved from a heap block whose lower part is painted,
 * and prints whether that paint survived.
 * Args: "near-end" room_bytes seconds | "measure" seconds depth ["empty-handler"] |
 * "altstack" seconds [bytes]. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "fixture.h"

#define PAINT 0xa5

static double seconds;
static size_t room;
static uintptr_t stack_low;
static volatile unsigned long sink;

static uintptr_t own_stack_low(void) {
    pthread_attr_t attr;
    void *address;
    size_t size;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &address, &size);
    pthread_attr_destroy(&attr);
    return (uintptr_t)address;
}

__attribute__((noinline)) static void spin_near_the_end(void) {
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 10000; i++)
            sink++;
}

__attribute__((noinline)) static void descend(void) {
    volatile char frame[512];
    frame[0] = 1;
    if ((uintptr_t)__builtin_frame_address(0) - stack_low > room + sizeof frame)
        descend();
    else
        spin_near_the_end();
    sink += frame[0];
}

static void *near_end(void *arg) {
    (void)arg;
    stack_low = own_stack_low();
    descend();
    return NULL;
}

__attribute__((noinline)) static void paint_below(uintptr_t top) {
    /* Leaves this function's own frame alone: it ends 1 KB below the caller's frame. */
    for (volatile uint8_t *p = (uint8_t *)stack_low + 4096; (uintptr_t)p < top - 1024; p++)
        *p = PAINT;
}

__attribute__((noinline)) static size_t measured_spin(void) {
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    paint_below(here);
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 10000; i++)
            sink++;
    uint8_t *p = (uint8_t *)stack_low + 4096;
    while (*p == PAINT)
        p++;
    return here - (uintptr_t)p;
}

static int depth;

__attribute__((noinline)) static size_t measure_below(int frames) {
    size_t used = frames > 0 ? measure_below(frames - 1) : measured_spin();
    sink++;
    return used;
}

static void *measure(void *arg) {
    stack_low = own_stack_low();
    *(size_t *)arg = measure_below(depth);
    return NULL;
}

static void empty_handler(int signal, siginfo_t *info, void *context) {
    (void)signal;
    (void)info;
    (void)context;
}

static volatile int measuring_done;

/* Signals thread `arg` every 100 us, as the profiler's sampler would at 10 kHz. */
static void *signal_every_100us(void *arg) {
    pid_t tid = *(pid_t *)arg;
    struct timespec pause = {.tv_nsec = 100000};
    while (!measuring_done) {
        syscall(SYS_tgkill, getpid(), tid, SIGPROF);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static pid_t measured_tid;

static void *measure_under_empty_handler(void *arg) {
    measured_tid = gettid();
    return measure(arg);
}

#define BELOW_ALTSTACK 32768

__attribute__((noinline)) static void spin_on_small_altstack(int signal) {
    (void)signal;
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 10000; i++)
            sink++;
}

/* The alternate stack lies inside one heap mapping, so only the stack the kernel saved for
 * the handler tells where it ends; whatever is written past that end lands in the paint. */
static int run_on_small_altstack(size_t size) {
    uint8_t *block = malloc(BELOW_ALTSTACK + size);
    if (!block)
        return 99;
    memset(block, PAINT, BELOW_ALTSTACK);
    stack_t alternate = {.ss_sp = block + BELOW_ALTSTACK, .ss_size = size};
    struct sigaction action = {.sa_handler = spin_on_small_altstack, .sa_flags = SA_ONSTACK};
    sigemptyset(&action.sa_mask);
    if (sigaltstack(&alternate, NULL) != 0 || sigaction(SIGUSR1, &action, NULL) != 0)
        return 98;
    raise(SIGUSR1);
    size_t overwritten = 0;
    for (size_t i = 0; i < BELOW_ALTSTACK; i++)
        overwritten += block[i] != PAINT;
    printf("below the alternate stack: %zu bytes overwritten\n", overwritten);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    seconds = atof(argv[2]);
    if (strcmp(argv[1], "altstack") == 0)
        return run_on_small_altstack(argc > 3 ? (size_t)atol(argv[3]) : 8192);
    int measuring = strcmp(argv[1], "measure") == 0;
    int empty = measuring && argc > 4 && strcmp(argv[4], "empty-handler") == 0;
    if (measuring)
        depth = argc > 3 ? atoi(argv[3]) : 0;
    else {
        room = atol(argv[2]);
        seconds = argc > 3 ? atof(argv[3]) : 1;
    }
    if (empty) {
        struct sigaction action = {.sa_sigaction = empty_handler,
                                   .sa_flags = SA_SIGINFO | SA_RESTART};
        sigemptyset(&action.sa_mask);
        sigaction(SIGPROF, &action, NULL);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, measuring ? 1 << 20 : 32 << 10);
    pthread_t thread, signaller;
    size_t used = 0;
    void *(*body)(void *) = empty ? measure_under_empty_handler : measuring ? measure : near_end;
    if (pthread_create(&thread, &attr, body, &used) != 0)
        return 99;
    if (empty) {
        while (!__atomic_load_n(&measured_tid, __ATOMIC_ACQUIRE))
            ;
        pthread_create(&signaller, NULL, signal_every_100us, &measured_tid);
    }
    pthread_join(thread, NULL);
    if (empty) {
        measuring_done = 1;
        pthread_join(signaller, NULL);
    }
    if (measuring)
        printf("stack used below the interrupted frame: %zu bytes\n", used);
    else
        printf("done\n");
    return 0;
}
