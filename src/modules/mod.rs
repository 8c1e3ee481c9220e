//! Layer 5: the loaded objects of the process, unwind data for the handler and names for the
//! drain.
//!
//! Runs on the sampler thread, at its first tick and after libraries come or go. From the
//! loader's list (`dl_iterate_phdr`, with nothing allocated under its lock: `loader`; the
//! program's own calls of it are counted in `loader_lock`, for forked children) it takes
//! the executable, the shared libraries, ld.so and the vdso; from each it copies
//! `.eh_frame_hdr` and `.eh_frame` (with checked reads: `elf`) into memory it owns, so a
//! `dlclose` cannot unmap what the handler reads. The `registry` publishes each generation
//! twice:
//! - an [`UnwindSnapshot`] for the signal handler (framehop unwinder, writable mappings from
//!   `maps` that bound stack reads);
//! - a [`ModuleMap`] for the drain, kept per generation so samples taken before an unload
//!   still get names.

mod elf;
mod loader;
mod loader_lock;
mod map;
mod maps;
mod registry;
mod snapshot;

pub use loader::{read_memory, read_words};
pub use loader_lock::loader_lock_may_be_held;
pub use map::{ModuleInfo, ModuleMap};
pub use registry::{Generation, ModuleRegistry};
pub use snapshot::UnwindSnapshot;
