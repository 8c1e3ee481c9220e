/* A shared object with a thread-local counter: opened with dlopen, its accesses go through
 * ld.so's __tls_get_addr, which the profiler must unwind out of. */
__thread unsigned long tls_counter;

__attribute__((noinline)) unsigned long tls_bump(void) { return ++tls_counter; }

__attribute__((noinline)) unsigned long tls_spin(unsigned long rounds) {
    unsigned long sum = 0;
    for (unsigned long i = 0; i < rounds; i++)
        sum += tls_bump();
    return sum;
}
