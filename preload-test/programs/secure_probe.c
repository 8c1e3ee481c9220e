/* Loads the profiler the way LD_PRELOAD would (the variable set, then the object loaded),
 * from inside the program, so that it also runs in a set-user-ID process, where the dynamic
 * loader itself ignores LD_PRELOAD paths. Args: library path, milliseconds of work. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

static volatile unsigned long sink;

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    setenv("LD_PRELOAD", argv[1], 1);
    setenv("STACKSAMPLE_INTERVAL", "1ms", 1);
    setenv("STACKSAMPLE_MODE", "cpu", 1);
    if (!dlopen(argv[1], RTLD_NOW)) {
        fprintf(stderr, "%s\n", dlerror());
        return 3;
    }
    double end = now() + atoi(argv[2]) / 1000.0;
    while (now() < end)
        sink++;
    printf("done\n");
    return 0;
}
