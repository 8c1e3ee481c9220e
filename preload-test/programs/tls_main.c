/* Opens the thread-local plugin (argv[1]) and spends argv[2] ms in its tls_spin. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW);
    if (!plugin)
        return 3;
    unsigned long (*spin)(unsigned long) = (unsigned long (*)(unsigned long))dlsym(plugin, "tls_spin");
    if (!spin)
        return 4;
    double end = now_ms() + atof(argv[2]);
    unsigned long sum = 0;
    while (now_ms() < end)
        sum += spin(100000);
    printf("done %lu\n", sum & 1);
    return 0;
}
