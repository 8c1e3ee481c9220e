/* Loads a plugin with dlopen, runs its plugin_spin, closes it with dlclose, then keeps
 * running in main_after_close: the plugin's frames must keep their names in the final
 * profile. Args: plugin path, milliseconds in the plugin, and `relative` to open it as
 * `./<file name>` from its directory and change to `/` right after. */
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fixture.h"

static volatile unsigned long sink;

/* dlopen(path), or dlopen("./<file name>") from the file's directory, leaving it at once. */
static void *open_plugin(const char *path, int relative) {
    if (!relative)
        return dlopen(path, RTLD_NOW);
    char dir[4096], file[4096], spelled[4200];
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(file, sizeof file, "%s", path);
    snprintf(spelled, sizeof spelled, "./%s", basename(file));
    if (chdir(dirname(dir)) != 0)
        return NULL;
    void *plugin = dlopen(spelled, RTLD_NOW);
    return chdir("/") == 0 ? plugin : NULL;
}

__attribute__((noinline)) void main_after_close(double seconds) {
    double end = now() + seconds;
    while (now() < end)
        sink++;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    double seconds = (argc > 2 ? atoi(argv[2]) : 300) / 1000.0;
    int relative = argc > 3 && strcmp(argv[3], "relative") == 0;
    void *plugin = open_plugin(argv[1], relative);
    if (!plugin) {
        fprintf(stderr, "cannot open %s: %s\n", argv[1], dlerror());
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
