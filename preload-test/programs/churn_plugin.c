/* A shared object the library-churn fixture loads, runs and unloads; built several times
 * with -DSPIN=<name>, so each copy is a different object with a differently named function. */
static volatile unsigned long sink;

__attribute__((noinline)) void SPIN(unsigned long units) {
    unsigned long x = sink;
    for (unsigned long i = 0; i < units; i++)
        x = x * 2862933555777941757UL + 3037000493UL;
    sink = x;
}

void plugin_entry(unsigned long units) {
    SPIN(units);
}
