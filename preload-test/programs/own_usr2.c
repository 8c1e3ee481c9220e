/* Uses SIGUSR2 (the profiler's default dump signal) for itself: installs a handler, sends
 * itself the signal a few times while working, and prints how many it received. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t received;
static volatile unsigned long sink;

static void on_usr2(int sig) {
    (void)sig;
    received++;
}

__attribute__((noinline)) void work(void) {
    for (unsigned long i = 0; i < 50000000UL; i++)
        sink += i;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    for (int i = 0; i < 5; i++) {
        kill(getpid(), SIGUSR2);
        work();
    }
    printf("received %d\n", (int)received);
    return 0;
}
