/* Loads a plugin with dlopen, runs its plugin_spin, closes it with dlclose, then keeps
 * running in main_after_close: the plugin's frames must keep their names in the final
 * profile. Args: plugin path, milliseconds in the plugin. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "fixture.h"

static volatile unsigned long sink;


__attribute__((noinline)) void main_after_close(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        sink++;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    double seconds = (argc > 2 ? atoi(argv[2]) : 300) / 1000.0;
    void *plugin = dlopen(argv[1], RTLD_NOW);
    if (!plugin) {
        fprintf(stderr, "%s\n", dlerror());
        return 3;
    }
    void (*spin)(unsigned long) = (void (*)(unsigned long))dlsym(plugin, "plugin_spin");
    double end = now() + seconds;
    while (now() < end)
        spin(100000);
    dlclose(plugin);
    main_after_close(0.1);
    printf("done\n");
    return 0;
}
