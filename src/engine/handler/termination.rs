//! Termination signals and dumps that must finish before the program goes on: the
//! terminating thread asks for a profile and waits for it, bounded, then lets the signal end
//! the program as it would have.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use super::actions::{empty_action, real_sigaction, ChainedAction};
use super::control::{Control, CONTROL};
use crate::base::clock::{monotonic_after, monotonic_nanos, timespec_nanos};
use crate::base::futex;
use crate::base::thread::pid;

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
const TERMINATION_DUMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
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

/// Asks for a profile and waits until it is written. Async-signal-safe (atomics and futex).
/// Only the process whose sampler is running takes part: a forked or vfork child sees the
/// parent's flag but is a different process.
pub fn dump_and_wait() {
    if !SAMPLING.load(Ordering::Acquire) || SAMPLING_PID.load(Ordering::Acquire) != pid() {
        return;
    }
    let before = DUMPS_WRITTEN.load(Ordering::Acquire);
    CONTROL.request(Control::DUMP);
    let deadline = monotonic_after(TERMINATION_DUMP_TIMEOUT);
    while DUMPS_WRITTEN.load(Ordering::Acquire) == before {
        if monotonic_nanos() >= timespec_nanos(&deadline) {
            return;
        }
        futex::wait_until(&DUMPS_WRITTEN, before, &deadline);
    }
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
