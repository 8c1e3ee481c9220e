/* A hot function inlined into its caller: mix() is always inlined into outer_work(). */
#include <stdio.h>
#include <stdlib.h>

static volatile unsigned long sink;

static inline __attribute__((always_inline)) unsigned long mix(unsigned long x) {
    for (int i = 0; i < 1000; i++) /* MIX_FIRST_LINE */
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x; /* MIX_LAST_LINE */
}

__attribute__((noinline)) void outer_work(unsigned long rounds) {
    unsigned long x = sink;
    for (unsigned long r = 0; r < rounds; r++)
        x = mix(x); /* CALL_LINE */
    sink = x;
}

int main(int argc, char **argv) {
    outer_work(argc > 1 ? strtoul(argv[1], NULL, 10) : 300000);
    printf("done\n");
    return 0;
}
