/* Runs for a given time in busy_loop after changing to /, printing a line on start so a test
 * knows it is running. Args: milliseconds, exit code, and "_exit" to end with _exit(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fixture.h"

static volatile unsigned long sink;


__attribute__((noinline)) void busy_loop(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 1000; i++)
            sink++;
}

int main(int argc, char **argv) {
    double seconds = (argc > 1 ? atoi(argv[1]) : 1000) / 1000.0;
    if (chdir("/") != 0)
        return 98;
    printf("running\n");
    fflush(stdout);
    busy_loop(seconds);
    printf("done\n");
    fflush(stdout);
    int code = argc > 2 ? atoi(argv[2]) : 0;
    if (argc > 3 && strcmp(argv[3], "_exit") == 0)
        _exit(code);
    return code;
}
