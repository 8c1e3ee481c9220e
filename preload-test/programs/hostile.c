/* Stacks an unwinder cannot walk to the end, each for a while: code without unwind
 * information and a garbage frame pointer, a stack in a heap buffer, a signal handler on an
 * alternate signal stack, and a recursion 100 000 calls deep. Arg: seconds per phase. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fixture.h"

void no_unwind_spin(unsigned long iterations);
void call_on_stack(void *stack_top, void (*fn)(void));

static double phase_seconds;
static volatile unsigned long sink;

__attribute__((noinline)) static void spin_for(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 10000; i++)
            sink++;
}

__attribute__((noinline)) static void without_unwind_info(void) {
    double end = now() + phase_seconds;
    while (now() < end)
        no_unwind_spin(1000000);
}

/* The `sink` updates keep spin_for from being a tail call, so these frames stay on the
 * stack. */
__attribute__((noinline)) static void on_heap_stack(void) {
    spin_for(phase_seconds);
    sink++;
}

__attribute__((noinline)) static void on_alternate_stack(int sig) {
    (void)sig;
    spin_for(phase_seconds);
    sink++;
}

__attribute__((noinline)) static int deep_recursion(int depth) {
    volatile int frame[4];
    frame[0] = depth;
    if (depth == 0) {
        spin_for(phase_seconds);
        return 0;
    }
    return deep_recursion(depth - 1) + frame[0] % 2;
}

int main(int argc, char **argv) {
    phase_seconds = argc > 1 ? atof(argv[1]) : 0.5;

    without_unwind_info();

    size_t heap_stack_size = 1 << 20;
    char *heap_stack = malloc(heap_stack_size);
    call_on_stack(heap_stack + heap_stack_size, on_heap_stack);
    free(heap_stack);

    stack_t alternate = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16};
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alternate_stack;
    action.sa_flags = SA_ONSTACK;
    if (sigaltstack(&alternate, NULL) != 0 || sigaction(SIGUSR1, &action, NULL) != 0)
        return 3;
    raise(SIGUSR1);

    int odd = deep_recursion(100000);
    printf("done %d\n", odd);
    return 0;
}
