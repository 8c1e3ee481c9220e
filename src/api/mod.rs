//! Profiling from code: the Rust side of the seed API (numba's `stacktrace.tools`), over
//! the same engine as the preloaded library. The C ABI (`capi`) and the Python package wrap
//! these types.
//!
//! - [`Timer`]: samples one thread at an interval; a callback gets each stack as a slice of
//!   [`StackEntry`] on a thread of the timer's own, never in the signal handler.
//! - [`Profiler`]: counts how often each symbol is on the stack; results by symbol address,
//!   sorted, per stack, or written in any output format; [`Profiler::scope`] profiles a block.
//! - [`thread_stack`], [`current_stack`], [`print_stack`], [`print_thread_stack`]: one stack.
//! - [`kernel_tid`]: a `pthread_t` (or kernel id) to the kernel id these take.
//!
//! In a CPython process the stacks carry Python frames: each evaluation-loop activation is
//! replaced by the Python functions it ran ([`EntryKind::Python`], with file and line), as
//! in the preloaded library's profiles. `show_python = false` keeps its numba meaning: it
//! folds the interpreter's own C code ([`EntryKind::Interpreter`]); Python frames stay.
//!
//! ## One sampler for everyone
//!
//! The handler, slot pool and unwinder snapshot are installed once per process and shared
//! by everything that samples, and one sampler thread drives them for every consumer: any
//! number of `Timer`s and `Profiler`s, on the same thread or on others, and the preloaded
//! library's session. Each keeps its own interval, depth, counters and results; a thread
//! two of them want at the same moment gets one signal and both get the stack.

mod entries;
mod oneshot;
mod profiler;
mod python;
mod run;
mod thread_id;
mod timer;

pub use entries::{fold_python, EntryKind, StackEntry};
pub use oneshot::{current_stack, print_stack, print_thread_stack, thread_stack};
pub use profiler::{CountedStack, Profiler, ProfilerScope, SymbolCount};
pub use run::{DEFAULT_INTERVAL, DEFAULT_MAX_DEPTH};
pub use thread_id::kernel_tid;
pub use timer::Timer;
