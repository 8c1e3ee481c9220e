/* A thread with a 32 KB stack that recurses until only a given number of bytes of its stack
 * are left, then runs there while it is sampled; or, with "measure", a thread with a large
 * stack that paints the unused part, runs a while, and prints how deep below its frame the
 * stack was written (by the signal frames and handlers that interrupted it).
 * Args: "near-end" room_bytes seconds | "measure" seconds. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void *measure(void *arg) {
    stack_low = own_stack_low();
    *(size_t *)arg = measured_spin();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    int measuring = strcmp(argv[1], "measure") == 0;
    if (measuring)
        seconds = atof(argv[2]);
    else {
        room = atol(argv[2]);
        seconds = argc > 3 ? atof(argv[3]) : 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, measuring ? 1 << 20 : 32 << 10);
    pthread_t thread;
    size_t used = 0;
    if (pthread_create(&thread, &attr, measuring ? measure : near_end, &used) != 0)
        return 99;
    pthread_join(thread, NULL);
    if (measuring)
        printf("stack used below the interrupted frame: %zu bytes\n", used);
    else
        printf("done\n");
    return 0;
}
