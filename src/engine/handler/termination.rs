//! Termination signals and dumps that must finish before the program goes on: the
//! terminating thread asks for a profile and waits for it while the thread that writes it
//! makes progress, then lets the signal end the program as it would have.
//!
//! The writer allocates. If the interrupted code holds the allocator's lock (it was inside
//! `malloc`), the writer waits for that lock while the interrupted thread waits for the
//! writer: neither can go on. The writer then uses no CPU, and after `STALL_LIMIT` of that
//! the wait ends, says on stderr that no profile was written, and the program ends.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use super::actions::{empty_action, real_sigaction, ChainedAction};
use super::control::{Control, CONTROL};
use crate::base::clock::{monotonic_after, monotonic_nanos};
use crate::base::futex;
use crate::base::thread::pid;
use crate::threads;

/// Signals that end the program by default; while the program leaves them at the default we
/// write the profile first, then let them end it.
pub const TERMINATION_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
/// Our stand-in default actions for [`TERMINATION_SIGNALS`], in the same order.
pub static TERMINATION_ACTIONS: [ChainedAction; 4] = [
    ChainedAction::new(),
    ChainedAction::new(),
    ChainedAction::new(),
    ChainedAction::new(),
];
/// Profiles written so far (a futex word: a terminating thread waits for the next one).
static DUMPS_WRITTEN: AtomicU32 = AtomicU32::new(0);
/// Whether a sampler is running to take a dump request, and in which process.
static SAMPLING: AtomicBool = AtomicBool::new(false);
static SAMPLING_PID: AtomicI32 = AtomicI32::new(0);
/// How long a terminating signal waits for its profile before ending the program anyway.
const TERMINATION_DUMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the writer may use no CPU before the dump counts as stuck. Long enough for a
/// sampler tick and a slow disk's write; short enough that a stuck program ends promptly.
const STALL_LIMIT: Duration = Duration::from_millis(500);
/// How often the waiting thread looks at the writer's CPU time.
const PROGRESS_CHECK: Duration = Duration::from_millis(20);
/// The thread that writes profiles (the drain), 0 until one starts.
static DUMP_WRITER: AtomicI32 = AtomicI32::new(0);

/// Records the thread that writes profiles; called by it when it starts.
pub fn set_dump_writer(tid: i32) {
    DUMP_WRITER.store(tid, Ordering::Release);
}

/// What became of a dump a thread waited for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DumpWait {
    /// Written, or no sampler runs in this process to write one.
    Done,
    /// The writer stopped making progress (see the module docs), or the wait timed out.
    Abandoned,
}
/// Called by the drain after each profile it writes.
pub fn note_dump_written() {
    DUMPS_WRITTEN.fetch_add(1, Ordering::AcqRel);
    futex::wake(&DUMPS_WRITTEN);
}

/// Marks whether a sampler is running (dump requests are only answered while one is).
pub fn set_sampling(running: bool) {
    SAMPLING_PID.store(pid(), Ordering::Release);
    SAMPLING.store(running, Ordering::Release);
}

/// Asks for a profile and waits until it is written, as long as the writer makes progress.
/// Async-signal-safe (atomics, futex, clock reads). Only the process whose sampler is running
/// takes part: a forked or vfork child sees the parent's flag but is a different process.
pub fn dump_and_wait() -> DumpWait {
    if !SAMPLING.load(Ordering::Acquire) || SAMPLING_PID.load(Ordering::Acquire) != pid() {
        return DumpWait::Done;
    }
    let before = DUMPS_WRITTEN.load(Ordering::Acquire);
    CONTROL.request(Control::DUMP);
    let started = monotonic_nanos();
    let mut progress = WriterProgress::new(started);
    while DUMPS_WRITTEN.load(Ordering::Acquire) == before {
        let now = monotonic_nanos();
        if now.saturating_sub(started) >= TERMINATION_DUMP_TIMEOUT.as_nanos() as u64
            || progress.stalled(now)
        {
            return DumpWait::Abandoned;
        }
        futex::wait_until(&DUMPS_WRITTEN, before, &monotonic_after(PROGRESS_CHECK));
    }
    DumpWait::Done
}

/// The writer's CPU time, and when it last changed.
struct WriterProgress {
    cpu_nanos: Option<u64>,
    changed: u64,
}

impl WriterProgress {
    fn new(now: u64) -> WriterProgress {
        WriterProgress {
            cpu_nanos: writer_cpu_nanos(),
            changed: now,
        }
    }

    /// Whether the writer has used no CPU for `STALL_LIMIT`.
    fn stalled(&mut self, now: u64) -> bool {
        let cpu_nanos = writer_cpu_nanos();
        if cpu_nanos != self.cpu_nanos {
            self.cpu_nanos = cpu_nanos;
            self.changed = now;
        }
        now.saturating_sub(self.changed) >= STALL_LIMIT.as_nanos() as u64
    }
}

fn writer_cpu_nanos() -> Option<u64> {
    match DUMP_WRITER.load(Ordering::Acquire) {
        0 => None,
        tid => threads::cpu_time(tid),
    }
}

/// Says on stderr that `what` ends the program without a profile. Async-signal-safe: one
/// `write` of bytes assembled on the stack.
pub fn say_no_profile(what: &[u8]) {
    const BEFORE: &[u8] = b"stacksample: ";
    const AFTER: &[u8] = b": the profile could not be written in time (the interrupted code \
may hold a lock its writer needs, such as malloc's); the program ends without it\n";
    let mut line = [0u8; 256];
    let mut length = 0;
    for part in [BEFORE, what, AFTER] {
        for (slot, byte) in line.iter_mut().skip(length).zip(part) {
            *slot = *byte;
            length += 1;
        }
    }
    let line = line.get(..length).unwrap_or_default();
    // SAFETY: write(2) is async-signal-safe; `line` is valid for its length.
    unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), line.len()) };
}

/// Puts the default action back for `sig` and sends it again to this thread: delivered when
/// our handler returns, it ends the program as it would have without us.
pub(super) fn end_with_default_action(sig: libc::c_int) {
    let default = empty_action();
    // SAFETY: installing SIG_DFL with a valid action; tgkill to ourselves. Both are
    // async-signal-safe system calls.
    unsafe {
        real_sigaction(sig, &default, ptr::null_mut());
        libc::syscall(libc::SYS_tgkill, pid(), libc::gettid(), sig);
    }
}
