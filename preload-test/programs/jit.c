/* Generates machine code at run time (a counting loop) in anonymous memory, announces it in
 * /tmp/perf-<pid>.map as a JIT would, and runs it. Arg: loop count in millions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    unsigned long millions = argc > 1 ? strtoul(argv[1], NULL, 10) : 400;
    /* dec %rdi; jnz .-3; ret */
    static const unsigned char code[] = {0x48, 0xff, 0xcf, 0x75, 0xfb, 0xc3};
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 97;
    memcpy(page, code, sizeof code);
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    FILE *map = fopen(path, "w");
    if (!map)
        return 98;
    fprintf(map, "%lx %zx jitted_count_down\n", (unsigned long)page, sizeof code);
    fclose(map);
    void (*count_down)(unsigned long) = (void (*)(unsigned long))page;
    for (unsigned long i = 0; i < millions; i++)
        count_down(1000000);
    printf("done\n");
    return 0;
}
