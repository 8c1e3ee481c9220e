/* Burns CPU in parent_work, forks a child that burns in child_work and exits normally, waits
 * for it, burns a little more, and exits with the child's status. Arg: child exit code. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fixture.h"

static volatile unsigned long sink;


__attribute__((noinline)) void parent_work(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        sink++;
}

__attribute__((noinline)) void child_work(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        sink += 2;
}

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    parent_work(0.3);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        child_work(0.4);
        printf("child done\n");
        exit(code);
    }
    int status = 0;
    waitpid(child, &status, 0);
    parent_work(0.1);
    printf("parent done\n");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}
