/* Generates machine code at run time (a counting loop) in anonymous memory, announces it in
 * /tmp/perf-<pid>.map as a JIT would, and runs it. Args: loop count in millions, then what
 * becomes of the map: `keep` (the default) leaves it; `delete` removes it before exit;
 * `rewrite` then rewrites it to name only a second copy of the code, runs that as long, and
 * removes the map before exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef void (*count_down_fn)(unsigned long);

/* Writes the map anew: one line naming `size` bytes at `code`. */
static int write_map(const char *path, void *code, size_t size, const char *name) {
    FILE *map = fopen(path, "w");
    if (!map)
        return -1;
    fprintf(map, "%lx %zx %s\n", (unsigned long)code, size, name);
    return fclose(map);
}

static void run(count_down_fn count_down, unsigned long millions) {
    for (unsigned long i = 0; i < millions; i++)
        count_down(1000000);
}

int main(int argc, char **argv) {
    unsigned long millions = argc > 1 ? strtoul(argv[1], NULL, 10) : 400;
    const char *mode = argc > 2 ? argv[2] : "keep";
    /* dec %rdi; jnz .-3; ret */
    static const unsigned char code[] = {0x48, 0xff, 0xcf, 0x75, 0xfb, 0xc3};
    unsigned char *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED)
        return 97;
    unsigned char *first = pages, *second = pages + 4096;
    memcpy(first, code, sizeof code);
    memcpy(second, code, sizeof code);
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    if (write_map(path, first, sizeof code, "jitted_count_down") != 0)
        return 98;
    run((count_down_fn)first, millions);
    if (strcmp(mode, "rewrite") == 0) {
        if (write_map(path, second, sizeof code, "jitted_second_copy") != 0)
            return 98;
        run((count_down_fn)second, millions);
    }
    if (strcmp(mode, "keep") != 0 && unlink(path) != 0)
        return 99;
    printf("done\n");
    return 0;
}
