/* Recursion to a chosen depth, spinning at the bottom: deep stacks and the depth limit. */
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

static volatile unsigned long sink;

__attribute__((noinline)) void spin(unsigned long units) {
    unsigned long x = sink;
    for (unsigned long i = 0; i < units; i++)
        x = x * 2862933555777941757UL + 3037000493UL;
    sink = x;
}

__attribute__((noinline)) void recurse(int depth, unsigned long units) {
    if (depth <= 1)
        spin(units);
    else
        recurse(depth - 1, units);
    __asm__ volatile("" ::: "memory"); /* keep the call from becoming a tail call */
}

int main(int argc, char **argv) {
    int depth = argc > 1 ? atoi(argv[1]) : 500;
    int rounds = argc > 2 ? atoi(argv[2]) : 100;
    for (int r = 0; r < rounds; r++)
        recurse(depth, 2000000);
    bench_end_stamp();
    printf("done %lu\n", sink & 1);
    return 0;
}
