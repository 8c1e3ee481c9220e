/* A shared object the dlopen fixture loads, runs and unloads. */
static volatile unsigned long sink;

__attribute__((noinline)) void plugin_spin(unsigned long units) {
    unsigned long x = sink;
    for (unsigned long i = 0; i < units; i++)
        x = x * 2862933555777941757UL + 3037000493UL;
    sink = x;
}
