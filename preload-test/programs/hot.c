/* CPU-bound program with a known split: hot_a 50%, hot_b 30%, hot_c 20% of the work,
 * each reached through its own call chain from main. */
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

static volatile unsigned long sink;

__attribute__((noinline)) void burn(unsigned long units) {
    unsigned long x = sink;
    for (unsigned long i = 0; i < units * 1000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink = x;
}

__attribute__((noinline)) void hot_a(unsigned long units) { burn(units); __asm__ volatile(""); }
__attribute__((noinline)) void hot_b(unsigned long units) { burn(units); __asm__ volatile(""); }
__attribute__((noinline)) void hot_c(unsigned long units) { burn(units); __asm__ volatile(""); }
__attribute__((noinline)) void level1_a(unsigned long units) { hot_a(units); __asm__ volatile(""); }
__attribute__((noinline)) void level1_b(unsigned long units) { hot_b(units); __asm__ volatile(""); }
__attribute__((noinline)) void level1_c(unsigned long units) { hot_c(units); __asm__ volatile(""); }

int main(int argc, char **argv) {
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
    for (unsigned long r = 0; r < rounds; r++) {
        level1_a(50);
        level1_b(30);
        level1_c(20);
    }
    bench_end_stamp();
    printf("done %lu\n", (unsigned long)(sink & 1));
    return argc > 2 ? atoi(argv[2]) : 0;
}
