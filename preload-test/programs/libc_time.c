/* Spends its time inside libc: qsort calling back into compare_ints, and large memcpy. */
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"
#include <string.h>

#define COUNT 200000
static int values[COUNT];
static char source[1 << 22], target[1 << 22];

__attribute__((noinline)) int compare_ints(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

__attribute__((noinline)) void sort_round(unsigned seed) {
    for (int i = 0; i < COUNT; i++) {
        seed = seed * 1103515245u + 12345u;
        values[i] = (int)(seed >> 1);
    }
    qsort(values, COUNT, sizeof values[0], compare_ints);
    __asm__ volatile("" ::: "memory"); /* keep qsort from becoming a tail call */
}

__attribute__((noinline)) void copy_round(void) {
    for (int i = 0; i < 8; i++) {
        memcpy(target, source, sizeof source);
        source[i] = target[sizeof target - 1 - i];
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    for (int r = 0; r < rounds; r++) {
        sort_round((unsigned)r);
        copy_round();
    }
    bench_end_stamp();
    printf("done %d %d\n", values[0] & 1, target[5]);
    return 0;
}
