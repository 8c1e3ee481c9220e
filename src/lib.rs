//! # stacksample
//!
//! A sampling profiler for the native call stacks of one or more threads of any dynamically
//! linked Linux program, injected with `LD_PRELOAD`; no rebuild, no ptrace, no perf.
//!
//! ```text
//! LD_PRELOAD=target/release/libstacksample.so STACKSAMPLE_TID=main ./program args
//! #  -> stacksample.<pid>.txt (functions by self and total, then the counters), .folded
//! ```
//!
//! ## How a sample travels
//!
//! ```text
//!  preload (ctor) ─ settings ─> run::Session ─┬─ engine::install: SIGPROF, dump and
//!                                             │  termination handlers
//!                                             └─ engine sampler thread (it starts the
//!                                                drain at its first tick)
//!
//!  sampler thread                 target thread (signal context)         drain thread
//!  ──────────────                 ──────────────────────────────         ────────────
//!  first tick: modules (dl_iterate_phdr -> framehop unwinder snapshot; again on dlopen)
//!  arm slot (seq) ──SIGPROF──────> engine::handler: claim slot, switch
//!                                  to the slot's own stack, unwind with
//!                                  framehop into preallocated frames,
//!                                  switch back, publish (wakes nobody)
//!  next tick: collect DONE slot <─┘
//!  copy into a sample::RawSample
//!  batch ──sink (crossbeam)─────────────────────────────────────────────> aggregate by
//!                                                                         raw addresses
//!                              dump signal / exit ──────────────────────> symbolize,
//!                                                                         profile, write
//!                                                                         every output
//! ```
//!
//! ## Layers
//!
//! Each module imports only from its own layer or the layers above it in this list (lower
//! numbers); the `layers` test reads this list and fails on an import that goes the other
//! way, on an import through the crate root, and on any import cycle between files.
//!
//! 1. `base`: errors, the clock, futexes, glibc look-ups, the library's heap, its threads.
//! 2. `settings`: the resolved settings (`model`) and the `STACKSAMPLE_*` parser (`env`).
//! 3. `threads`: what the kernel says of this process's threads; which to sample; fork guard.
//! 4. `sample`, `stats`: the raw sample that crosses from engine to consumer; the counters.
//! 5. `modules`, `python`: loaded objects, their unwind data (copied) and the memory map;
//!    CPython's layouts, thread states and code objects, and Python frames spliced into
//!    native stacks.
//! 6. `engine::handler`: every piece of code that runs in signal context, and nothing else.
//! 7. `engine`: handler installation, the sampler thread and its consumers, thread start.
//! 8. `aggregate`, `symbolize`: counts of raw stacks; names, at dump time only.
//! 9. `profile`: the symbolized profile every output renders.
//! 10. `output`: one module per format, files replaced atomically.
//! 11. `run`: a session's wiring, the drain thread that writes its profiles, and the
//!     run's shared sample count that `stacksample record` shows as progress.
//! 12. `api`: `Timer`, `Profiler` and one-shot stacks (numba's `stacktrace.tools` API).
//! 13. `capi`, `preload`: the C ABI; the constructor, destructor and `exec*` interposers.
//!
//! ## Public surface
//!
//! Modules are private; what is public is chosen here: [`api`] (Rust API), [`settings`]
//! (what a session is asked to do), [`profile`] and [`output`] (reading, filtering and
//! writing a saved profile, as the `stacksample` command line does), and at the root
//! [`Session`], [`Error`], [`StopReason`], [`Counters`], [`SamplerScheduling`],
//! [`StackTable`], [`ThreadState`], [`ProgressCounter`] and [`current_tid`]. The C ABI is `include/stacksample.h`.
//!
//! ## From Rust
//!
//! The same engine runs without `LD_PRELOAD`: start a [`Session`] for a thread, finish it to
//! write the profile.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use stacksample::settings::{Settings, ThreadChoice};
//! use stacksample::Session;
//!
//! let dir = std::env::temp_dir().join(format!("stacksample-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let this_thread = ThreadChoice::Tid(stacksample::current_tid());
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
//! memory only inside the mapping that holds the stack pointer, writes nothing on the
//! program's stack beyond its entry (the walk runs on a stack of the library's own), and
//! passes signals that are not ours to the program's handler. Samples that are lost or cut short are counted and
//! reported in the `.txt` header; stacks cut at the depth limit carry a `[truncated]` root
//! frame in the folded output.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod aggregate;
pub mod api;
mod base;
#[allow(non_camel_case_types)]
mod capi;
mod engine;
#[cfg(test)]
mod layers;
mod modules;
pub mod output;
mod preload;
pub mod profile;
mod python;
mod run;
mod sample;
pub mod settings;
mod stats;
mod symbolize;
mod threads;

pub use aggregate::StackTable;
pub use base::error::Error;
pub use run::progress::ProgressCounter;
pub use run::Session;
pub use sample::StopReason;
pub use stats::{Counters, SamplerScheduling, ThreadState};
pub use threads::current_tid;
