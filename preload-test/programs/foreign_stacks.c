/* Code running on stacks that are blocks inside larger memory, each with painted memory
 * right below it, sampled while it runs; prints how many painted bytes were changed.
 *   fibers seconds    four makecontext fibers on 16 KB stacks at the top of heap blocks,
 *                     taking turns with a scheduler
 *   setstack seconds  a thread on a 64 KB stack inside a heap block (pthread_attr_setstack)
 *                     that recurses until 8 KB of it are left (room for the kernel's
 *                     signal frame, 3.5 KB with AVX-512 state, not for an unwinder)
 *   buffer seconds    a function run with its stack pointer 8 KB into a 16 KB static
 *                     buffer, above a 64 KB zeroed array */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include "fixture.h"

#define PAINT 0xa5
#define FIBERS 4
#define FIBER_STACK (16 << 10)
#define BELOW (48 << 10)

static double deadline;
static volatile unsigned long sink;

static size_t changed(const uint8_t *paint, size_t size, uint8_t expected) {
    size_t count = 0;
    for (size_t i = 0; i < size; i++)
        count += paint[i] != expected;
    return count;
}

__attribute__((noinline)) static void spin_a_while(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 10000; i++)
            sink++;
}

/* ---- fibers ---- */

static ucontext_t scheduler, fibers[FIBERS];
static int finished[FIBERS];

/* Each call is followed by work of its own so that no call is a tail call: every function
 * keeps its frame on the stack. */
__attribute__((noinline)) static void fiber_work(void) {
    spin_a_while(0.002);
    sink++;
}

static void fiber_main(int index) {
    while (now() < deadline) {
        fiber_work();
        swapcontext(&fibers[index], &scheduler);
    }
    finished[index] = 1;
}

static int run_fibers(void) {
    uint8_t *blocks[FIBERS];
    for (int i = 0; i < FIBERS; i++) {
        blocks[i] = malloc(BELOW + FIBER_STACK);
        if (!blocks[i])
            return 99;
        memset(blocks[i], PAINT, BELOW);
        getcontext(&fibers[i]);
        fibers[i].uc_stack.ss_sp = blocks[i] + BELOW;
        fibers[i].uc_stack.ss_size = FIBER_STACK;
        fibers[i].uc_link = &scheduler;
        makecontext(&fibers[i], (void (*)(void))fiber_main, 1, i);
    }
    for (int running = FIBERS; running > 0;) {
        running = 0;
        for (int i = 0; i < FIBERS; i++)
            if (!finished[i]) {
                swapcontext(&scheduler, &fibers[i]);
                running++;
            }
    }
    size_t overwritten = 0;
    for (int i = 0; i < FIBERS; i++)
        overwritten += changed(blocks[i], BELOW, PAINT);
    printf("fibers: %d, painted bytes changed: %zu\n", FIBERS, overwritten);
    return 0;
}

/* ---- a thread on a stack inside a heap block ---- */

#define THREAD_STACK (64 << 10)
#define ROOM_LEFT 8192

static uintptr_t thread_stack_low;

__attribute__((noinline)) static void spin_near_the_end_of_the_block(void) {
    spin_a_while(deadline - now());
    sink++;
}

__attribute__((noinline)) static void descend_in_block(void) {
    volatile char frame[1024];
    frame[0] = 1;
    if ((uintptr_t)__builtin_frame_address(0) - thread_stack_low > ROOM_LEFT + sizeof frame)
        descend_in_block();
    else
        spin_near_the_end_of_the_block();
    sink += frame[0];
}

static void *thread_in_block(void *arg) {
    (void)arg;
    descend_in_block();
    sink++;
    return NULL;
}

static int run_setstack(void) {
    uint8_t *block = malloc(BELOW + THREAD_STACK);
    if (!block)
        return 99;
    memset(block, PAINT, BELOW);
    thread_stack_low = (uintptr_t)(block + BELOW);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, block + BELOW, THREAD_STACK);
    pthread_t thread;
    if (pthread_create(&thread, &attr, thread_in_block, NULL) != 0)
        return 98;
    pthread_join(thread, NULL);
    printf("thread stack in a heap block: painted bytes changed: %zu\n",
           changed(block, BELOW, PAINT));
    return 0;
}

/* ---- a stack pointer inside a static buffer ---- */

static struct {
    uint8_t below[64 << 10];
    uint8_t buffer[16 << 10];
} area;

__attribute__((noinline)) static void on_buffer_stack(void) {
    spin_a_while(deadline - now());
    sink += 2; /* differs from spin_near_the_end_of_the_block: gcc merges identical code */
}

static void run_with_stack_pointer(void (*function)(void), void *top) {
    __asm__ volatile("mov %%rsp, %%rbx\n\t"
                     "mov %0, %%rsp\n\t"
                     "call *%1\n\t"
                     "mov %%rbx, %%rsp"
                     :
                     : "r"(top), "r"(function)
                     : "rbx", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                       "memory", "cc");
}

static int run_buffer(void) {
    run_with_stack_pointer(on_buffer_stack, area.buffer + (8 << 10));
    printf("stack pointer in a buffer: zeroed bytes changed: %zu\n",
           changed(area.below, sizeof area.below, 0));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    deadline = now() + atof(argv[2]);
    if (strcmp(argv[1], "fibers") == 0)
        return run_fibers();
    if (strcmp(argv[1], "setstack") == 0)
        return run_setstack();
    if (strcmp(argv[1], "buffer") == 0)
        return run_buffer();
    return 2;
}
