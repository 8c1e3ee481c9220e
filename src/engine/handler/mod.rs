//! Layer 6: every piece of code that runs in signal context, and nothing else.
//!
//! Rules, enforced by review and by the lints below (they cover every file in this folder):
//! - no allocation, no locks, no panics (no unwrap, no indexing), no std I/O, no TLS;
//! - `errno` is saved on entry and restored on exit (`entry`);
//! - every stack read is bounded to the writable mapping that holds the stack pointer
//!   (`walk`), so a corrupt frame pointer ends the stack instead of faulting;
//! - the program's stack carries the kernel's signal frame and the handler's entry, nothing
//!   more: the walk runs on a stack the library owns (`own_stack`);
//! - signals that are not ours go to the handler the program installed (`actions`).
//!
//! The files, in the order a request meets them:
//! - `request`: the payload of a sample request, encoded by the sampler, decoded here;
//! - `entry`: the three handlers (sample request, dump signal, termination signal);
//! - `slots`: the preallocated slots a handler writes one stack into, and their state machine;
//! - `own_stack`: the stack of each slot the walk runs on, so the program's stack carries only
//!   the kernel's frame and the handler's entry;
//! - `statics`: the pool, the unwind snapshot, the sampling signal and the fibers' start
//!   address the handler reads;
//! - `python`: the interrupted thread's Python frame chain (code objects and instructions),
//!   with checked reads only, when the request names the thread's Python state;
//! - `walk`: the stack walk, also used by the sampler for threads blocked in a system call
//!   (which alone passes a finder of frame pointers; the handler's finds none);
//! - `actions`: the program's own actions, stored without allocating, and the chained call;
//! - `interpose`: `sigaction` and the `signal` family as the program calls them (POSIX makes
//!   them async-signal-safe, so they obey the same rules);
//! - `control`: the sampler's mailbox, which the dump handler writes;
//! - `termination`: the bounded wait for a profile before a termination signal ends the
//!   program.
//!
//! What this folder calls outside itself: `base::clock` (`clock_gettime`), `base::futex`
//! (`futex` wait and wake), `base::thread::pid` (`getpid`), `threads::cpu_time`
//! (`clock_gettime` of another thread's CPU clock), `modules::read_memory`
//! and `modules::read_words` (`process_vm_readv`), `python::layout` (offsets, plain data)
//! and `modules::UnwindSnapshot` (read-only lookups), framehop's
//! `unwind_frame` with a `MustNotAllocateDuringUnwind` cache, and the system calls
//! `rt_sigaction` (through glibc's `__sigaction`), `rt_tgsigqueueinfo`, `tgkill`, `write`,
//! `sigprocmask` and `sigtimedwait`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod actions;
mod control;
mod entry;
mod interpose;
mod own_stack;
mod python;
mod request;
mod slots;
mod statics;
mod termination;
mod walk;

pub use actions::{PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION};
pub use control::{Control, CONTROL};
pub use entry::{on_dump_signal, on_sample_signal, on_termination_signal};
pub use python::{capture as read_python_frames, Thread as PythonThread};
pub use request::{discard_pending_requests, request_sample};
pub use slots::{Progress, SlotPool, UnwindCache, SPARE_SLOTS};
pub use statics::{
    current_snapshot, pool, publish_snapshot, sample_signal, set_fiber_start, set_pool,
    set_sample_signal,
};
pub use termination::{
    dump_and_wait, note_dump_written, say_no_profile, set_dump_writer, set_sampling, DumpWait,
    TERMINATION_ACTIONS, TERMINATION_SIGNALS,
};
pub use walk::{unwind_blocked, FindFramePointer, Registers, UNKNOWN_FRAME_POINTER};
