/* Opens, runs and closes each shared object named on the command line, round after round,
 * until the time is up. Args: seconds, plugin paths. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "fixture.h"

__attribute__((noinline)) static int run_plugin(const char *path) {
    void *plugin = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!plugin) {
        fprintf(stderr, "%s\n", dlerror());
        return 0;
    }
    void (*entry)(unsigned long) = (void (*)(unsigned long))dlsym(plugin, "plugin_entry");
    if (entry)
        entry(300000);
    dlclose(plugin);
    return entry != NULL;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    double end = now() + atof(argv[1]);
    unsigned long rounds = 0;
    while (now() < end) {
        for (int i = 2; i < argc; i++)
            if (!run_plugin(argv[i]))
                return 3;
        rounds++;
    }
    printf("done %s\n", rounds > 10 ? "many rounds" : "few rounds");
    return 0;
}
