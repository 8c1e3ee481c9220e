/* Uses the library from C through include/stacksample.h, without LD_PRELOAD: profiles a
 * worker thread while a timer samples the same thread, then takes one stack. Prints what
 * the test checks; argv[1] is the output prefix of the profile. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "stacksample.h"

static atomic_int stop;
static atomic_long timer_stacks, timer_stacks_in_function;

__attribute__((noinline)) static void c_api_busy_function(void) {
    volatile unsigned long x = 1;
    while (!atomic_load(&stop))
        x = x * 6364136223846793005UL + 1;
}

static void *worker(void *arg) {
    (void)arg;
    c_api_busy_function();
    return NULL;
}

static int in_function(const stacksample_entry *entries, size_t count) {
    for (size_t i = 0; i < count; i++)
        /* The fields after is_python checked too: the header's layout is the library's. */
        if (strcmp(entries[i].name, "c_api_busy_function") == 0 &&
            entries[i].kind == STACKSAMPLE_NATIVE && !entries[i].is_python &&
            entries[i].file == NULL && entries[i].line == 0)
            return 1;
    return 0;
}

static void on_stack(const stacksample_entry *entries, size_t count, void *data) {
    (void)data;
    atomic_fetch_add(&timer_stacks, 1);
    if (in_function(entries, count))
        atomic_fetch_add(&timer_stacks_in_function, 1);
}

static int check(int status, const char *what) {
    if (status != STACKSAMPLE_OK)
        printf("error %s: %d %s\n", what, status, stacksample_last_error());
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    alarm(60); /* a hang ends the program, and the test fails instead of waiting */
    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);

    stacksample_profiler *profiler = NULL;
    if (check(stacksample_profiler_start((uint64_t)thread, 0.001, 100, &profiler), "start"))
        return 1;
    /* A timer on the same thread at the same time: both get every stack. */
    stacksample_timer *timer = NULL;
    if (check(stacksample_timer_start((uint64_t)thread, 0.001, 100, 1, on_stack, NULL, &timer),
              "timer"))
        return 1;
    usleep(300 * 1000);
    check(stacksample_profiler_stop(profiler), "stop");
    check(stacksample_timer_join(timer), "join");

    stacksample_symbols *symbols = NULL;
    if (!check(stacksample_profiler_symbols(profiler, &symbols), "symbols")) {
        const stacksample_symbol *rows = stacksample_symbols_get(symbols);
        size_t n = stacksample_symbols_count(symbols);
        for (size_t i = 0; i < n && i < 5; i++)
            printf("symbol %s %lu %lu\n", rows[i].name, (unsigned long)rows[i].count,
                   (unsigned long)rows[i].self_count);
        stacksample_symbols_free(symbols);
    }
    check(stacksample_profiler_write(profiler, argv[1], "txt,folded"), "write");
    printf("bad format: %d\n", stacksample_profiler_write(profiler, argv[1], "png"));
    stacksample_profiler_free(profiler);

    printf("timer stacks %ld in function %ld\n", atomic_load(&timer_stacks),
           atomic_load(&timer_stacks_in_function));

    stacksample_stack *stack = NULL;
    if (!check(stacksample_thread_stack((uint64_t)thread, 100, 1, &stack), "stack")) {
        printf("one stack in function %d\n",
               in_function(stacksample_stack_entries(stack), stacksample_stack_len(stack)));
        stacksample_stack_free(stack);
    }
    atomic_store(&stop, 1);
    pthread_join(thread, NULL);
    return 0;
}
