//! # stacksample
//!
//! A sampling profiler for the native call stacks of one or more threads of any dynamically
//! linked Linux program, injected with `LD_PRELOAD`; no rebuild, no ptrace, no perf.
//!
//! ```text
//! LD_PRELOAD=target/release/libstacksample.so STACKSAMPLE_TID=main ./program args
//! #  -> stacksample.<pid>.txt (header + top functions), stacksample.<pid>.folded
//! ```
//!
//! ## How a sample travels
//!
//! ```text
//!  preload (ctor) ─ settings ─> session ─┬─ signal::install: SIGPROF + dump signal handlers
//!                                        └─ threads: sampler (it starts the drain at its
//!                                           first tick; a process that ends before that
//!                                           writes its profile without one)
//!
//!  sampler thread                 target thread (signal context)         drain thread
//!  ──────────────                 ──────────────────────────────         ────────────
//!  first tick: modules (dl_iterate_phdr -> framehop unwinder snapshot; again on dlopen)
//!  arm slot (seq) ──SIGPROF──────> handler: claim slot, unwind with
//!                                  framehop into preallocated frames,
//!  next tick: collect DONE slot <─ publish slot (wakes nobody)
//!  copy frames ──crossbeam──────────────────────────────────────────────> aggregate by
//!                                                                         raw addresses
//!                              dump signal / exit ──────────────────────> symbolize, write
//!                                                                         every format
//! ```
//!
//! - [`settings`]: `STACKSAMPLE_*` variables -> [`settings::Settings`].
//! - `preload`: constructor/destructor; errors become one `stacksample:` line on stderr.
//!   `exec`: interposed `exec*` and `_exit`, which write the profile first; `glibc` finds
//!   the definitions the interposers replace.
//! - [`session`]: starts and stops one profiling session.
//! - [`sampler`]: one sampler thread for every consumer in the process (the session, API
//!   timers and profilers): deadlines, requests shared by consumers of one thread, timeouts,
//!   module refresh; `sampler::consumer`: one consumer's threads, schedule, counters and
//!   batches, which come back to the sampler thread to be freed there; `sampler::blocked`:
//!   blocked threads sampled without a signal, idle threads in CPU mode;
//!   `sampler::scheduling`: deadline scheduling for the sampler thread where allowed.
//! - [`threads`]: which threads to sample (`main`, ids, `all`, name globs), names, masks;
//!   `thread_start`: interposed `pthread_create`, so new threads are known as they start.
//! - [`signal`]: handler installation, chaining to the program's own handlers (interposed
//!   `sigaction` and the `signal` family), termination signals that dump first, the sample
//!   slots' state machine; `signal::handler` is all the code that runs in signal context.
//! - [`modules`]: loaded objects, unwind data copied so `dlclose` cannot pull it away.
//! - [`drain`]: aggregation in bounded memory and dump orchestration.
//! - [`symbolize`], [`profile`]: names at dump time; the symbolized profile.
//! - [`output`]: one module per format, files replaced atomically; `output::lossless` is the
//!   whole profile, which the `stacksample` command line (`src/bin/stacksample`: `record`,
//!   `report`, `dump`) reads back and renders with the same writers.
//! - [`stats`]: what was requested, taken, lost; printed in every report. [`heap`]: the
//!   library's own heap, counted with the `heap-stats` feature.
//! - [`api`]: `Timer`, `Profiler` and one-shot stacks from Rust (numba's `stacktrace.tools`
//!   API); [`capi`]: the same for C through `include/stacksample.h`, and for the Python
//!   package in `python/` through ctypes. They run beside each other and beside a preloaded
//!   session, all served by the one sampler.
//!
//! ## From Rust
//!
//! The same engine runs without `LD_PRELOAD`: start a [`session::Session`] for a thread,
//! finish it to write the profile.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use stacksample::session::Session;
//! use stacksample::settings::{Settings, ThreadChoice};
//!
//! let dir = std::env::temp_dir().join(format!("stacksample-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let this_thread = ThreadChoice::Tid(stacksample::threads::current_tid());
//! let session = Session::start(Settings {
//!     interval: Duration::from_millis(1),
//!     dump_signal: None,
//!     ..Settings::new(vec![this_thread], dir.join("profile"))
//! })?;
//! let started = Instant::now();
//! let mut x = 1u64;
//! while started.elapsed() < Duration::from_millis(100) {
//!     x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
//! }
//! session.finish()?;
//! let folded = std::fs::read_to_string(dir.join("profile.folded"))?;
//! assert!(!folded.is_empty());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! The handler allocates nothing, takes no lock, cannot panic, saves `errno`, reads stack
//! memory only inside the mapping that holds the stack pointer, and passes signals that are
//! not ours to the program's handler. Samples that are lost or cut short are counted and
//! reported in the `.txt` header; stacks cut at the depth limit carry a `[truncated]` root
//! frame in the folded output.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod api;
#[allow(non_camel_case_types)]
pub mod capi;
pub mod drain;
pub mod error;
mod exec;
mod glibc;
pub mod heap;
pub mod modules;
pub mod output;
mod preload;
pub mod profile;
pub mod sampler;
pub mod session;
pub mod settings;
pub mod signal;
pub mod stats;
pub mod symbolize;
mod thread_start;
pub mod threads;

pub use error::Error;
pub use settings::Settings;
