/*
 * stacksample: sample native call stacks from C and C++ code.
 *
 * Link with -lstacksample (target/release/libstacksample.so). Thread ids are kernel ids
 * (gettid) or pthread_t values (pthread_self); 0 means the calling thread. Every function
 * that can fail returns STACKSAMPLE_OK (0) or an error code, and stacksample_last_error()
 * then gives a one-line message for the calling thread.
 *
 * Timers and profilers may run at the same time, on the same thread or on others, and
 * beside the library profiling the process through LD_PRELOAD: one sampler serves them all,
 * and a thread two of them sample at the same moment gets one signal for both.
 */
#ifndef STACKSAMPLE_H
#define STACKSAMPLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    STACKSAMPLE_OK = 0,
    STACKSAMPLE_EINVAL = 1,    /* bad argument: thread id, interval, depth, format, NULL */
    STACKSAMPLE_ESYSTEM = 3,   /* a system call or a file failed */
    STACKSAMPLE_EINTERNAL = 4  /* a bug in the library */
};

/* What ran at an entry: machine code, the interpreter's own C code, or a Python function
 * (spliced in place of the evaluation-loop activation that ran it). */
#define STACKSAMPLE_NATIVE 0
#define STACKSAMPLE_INTERPRETER 1
#define STACKSAMPLE_PYTHON 2

/* One frame of a stack. Strings stay valid as long as the stack (or the callback call). */
typedef struct stacksample_entry {
    uint64_t address;    /* instruction address (innermost) or return address */
    uint64_t offset;     /* bytes from the symbol's start; 0 without a symbol */
    const char *name;    /* symbol, "module+0xoffset", or "?" when nothing is known */
    const char *module;  /* file name of the module, "[vdso]", "[jit]", "[anon]" */
    int is_python;       /* code of the CPython interpreter (kind == STACKSAMPLE_INTERPRETER) */
    int kind;            /* STACKSAMPLE_NATIVE, _INTERPRETER or _PYTHON (a Python function) */
    const char *file;    /* source file (a Python frame's co_filename), NULL when unknown */
    uint32_t line;       /* line in file, 0 when unknown */
} stacksample_entry;

/* The layouts above changed in version 2 (kind, file and line appended, so the arrays'
 * stride changed): a program checks stacksample_abi_version() == STACKSAMPLE_ABI_VERSION. */
#define STACKSAMPLE_ABI_VERSION 2
int stacksample_abi_version(void);

/* Message of the calling thread's last failed call ("" if none). */
const char *stacksample_last_error(void);

/* Kernel thread id of a kernel id or pthread_t of this process. */
int stacksample_kernel_tid(uint64_t thread, int32_t *tid);

/* One stack of `thread` (0: the calling thread, without the library's own frames); with
 * show_python == 0, runs of interpreter frames are folded as a timer folds them. */
typedef struct stacksample_stack stacksample_stack;
int stacksample_thread_stack(uint64_t thread, size_t max_depth, int show_python,
                             stacksample_stack **out);
size_t stacksample_stack_len(const stacksample_stack *stack);
const stacksample_entry *stacksample_stack_entries(const stacksample_stack *stack);
void stacksample_stack_free(stacksample_stack *stack);

/* A timer: calls `callback` with each stack (innermost first) on a thread of its own, never
 * in a signal handler. With show_python == 0, runs of interpreter frames become one
 * "<skipped N Python entries>" entry. */
typedef void (*stacksample_callback)(const stacksample_entry *entries, size_t count,
                                     void *data);
typedef struct stacksample_timer stacksample_timer;
int stacksample_timer_start(uint64_t thread, double interval_seconds, size_t max_depth,
                            int show_python, stacksample_callback callback, void *data,
                            stacksample_timer **out);
/* Stops, waits for the last callback, and frees the timer. */
int stacksample_timer_join(stacksample_timer *timer);

/* A profiler: counts how often each symbol is on the stack. */
typedef struct stacksample_profiler stacksample_profiler;
int stacksample_profiler_start(uint64_t thread, double interval_seconds, size_t max_depth,
                               stacksample_profiler **out);
int stacksample_profiler_stop(stacksample_profiler *profiler);
/* Starts sampling again after a stop; counts add up. */
int stacksample_profiler_resume(stacksample_profiler *profiler);
/* Writes <prefix>.<ext> per format: "txt,folded,svg,pprof,json,speedscope". */
int stacksample_profiler_write(stacksample_profiler *profiler, const char *prefix,
                               const char *formats);
void stacksample_profiler_free(stacksample_profiler *profiler);

typedef struct stacksample_symbol {
    uint64_t address;     /* run-time start of the symbol (the address itself without one) */
    uint64_t count;       /* samples with the symbol on the stack */
    uint64_t self_count;  /* samples with the symbol innermost */
    const char *name;
    const char *module;
    int is_python;        /* code of the CPython interpreter */
    int kind;             /* as in stacksample_entry */
    const char *file;     /* a Python frame's file, NULL otherwise or when unknown */
    uint32_t line;        /* a Python frame's line (counted per line), else 0 */
} stacksample_symbol;
typedef struct stacksample_symbols stacksample_symbols;
/* The profile so far, largest count first. */
int stacksample_profiler_symbols(stacksample_profiler *profiler, stacksample_symbols **out);
size_t stacksample_symbols_count(const stacksample_symbols *symbols);
const stacksample_symbol *stacksample_symbols_get(const stacksample_symbols *symbols);
void stacksample_symbols_free(stacksample_symbols *symbols);

#ifdef __cplusplus
}
#endif

#endif
