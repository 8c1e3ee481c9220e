//! `sigaction`, `siginterrupt`, the `signal` family and the synchronous waits
//! (`sigtimedwait`, `sigwaitinfo`, `sigwait`) as the program sees them once the library is
//! loaded.
//!
//! For the signals we installed handlers for (SIGPROF, the dump signal, termination signals
//! the program leaves at their default), a program that sets its own handler must not
//! replace ours, and must still receive its own signals: its action is recorded as the one
//! to chain to, and it reads back what it set. A program that ignores the dump signal gets
//! it ignored for real. An action installed behind `sigaction`'s back
//! (`sigset`, a raw system call) is found and taken as the program's. Every other signal goes
//! to glibc's own functions, with glibc's semantics. A thread that blocks the sampling signal
//! and waits for it synchronously never receives one of our requests: the waits pass over
//! them. `sigaction` is async-signal-safe, as POSIX requires.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::actions::{
    empty_action, real_sigaction, ChainedAction, PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION,
};
use super::request::decode_request;
use super::statics::sample_signal;
use super::termination::TERMINATION_ACTIONS;
use crate::base::clock::{monotonic_nanos, timespec_from_nanos, timespec_nanos};
use crate::base::glibc;

/// glibc's definitions, for the signals we leave to it; looked up at load time (`dlsym` is
/// not safe in a forked child of a threaded program).
static GLIBC_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static GLIBC_BSD_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static GLIBC_SYSV_SIGNAL: AtomicUsize = AtomicUsize::new(0);
static GLIBC_SIGINTERRUPT: AtomicUsize = AtomicUsize::new(0);
static GLIBC_SIGTIMEDWAIT: AtomicUsize = AtomicUsize::new(0);

#[ctor::ctor]
fn resolve_at_load() {
    glibc::next_definition(&GLIBC_SIGNAL, c"signal");
    glibc::next_definition(&GLIBC_BSD_SIGNAL, c"bsd_signal");
    glibc::next_definition(&GLIBC_SYSV_SIGNAL, c"sysv_signal");
    glibc::next_definition(&GLIBC_SIGINTERRUPT, c"siginterrupt");
    glibc::next_definition(&GLIBC_SIGTIMEDWAIT, c"sigtimedwait");
}

/// Signals (bit `sig - 1`) the program asked `siginterrupt` to let interrupt system calls,
/// among those we hold: its `signal` then installs them without `SA_RESTART`, as glibc's does.
static INTERRUPTING: AtomicU64 = AtomicU64::new(0);

fn managing(sig: libc::c_int) -> Option<&'static ChainedAction> {
    [&PROGRAM_SAMPLE_ACTION, &PROGRAM_DUMP_ACTION]
        .into_iter()
        .find(|chained| chained.manages(sig))
}

/// Our stand-in for a termination signal's default action, if we hold one for `sig`.
fn standing_in(sig: libc::c_int) -> Option<&'static ChainedAction> {
    TERMINATION_ACTIONS
        .iter()
        .find(|chained| chained.manages(sig))
}

/// Interposed `sigaction(2)`.
///
/// # Safety
/// As for `sigaction(2)`.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: libc::c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    if let Some(chained) = standing_in(sig).filter(|chained| !chained.yield_if_bypassed()) {
        // The program reads back the default it left; a new action of its own replaces ours.
        // SAFETY: the caller passed a valid out-pointer or null.
        unsafe { report_program_action(chained, old) };
        // SAFETY: the caller passed a valid action or null.
        return match unsafe { act.as_ref() } {
            Some(action) => chained.step_aside(sig, action),
            None => 0,
        };
    }
    let Some(chained) = managing(sig) else {
        // SAFETY: forwarded preconditions.
        return unsafe { real_sigaction(sig, act, old) };
    };
    chained.ensure_installed();
    // SAFETY: the caller passed a valid out-pointer or null.
    unsafe { report_program_action(chained, old) };
    // SAFETY: the caller passed a valid action or null.
    let Some(action) = (unsafe { act.as_ref() }) else {
        return 0;
    };
    if action.sa_sigaction == libc::SIG_IGN && std::ptr::eq(chained, &PROGRAM_DUMP_ACTION) {
        // An ignored signal interrupts nothing; a handler of ours would (`poll` gets EINTR).
        // The program's wish wins: the dump signal is off from then on.
        return chained.step_aside(sig, action);
    }
    chained.store(*action);
    0
}

/// Writes the action the program last set for `chained`'s signal to `old`, if not null.
///
/// # Safety
/// `old` is null or valid for writing a `sigaction`.
unsafe fn report_program_action(chained: &ChainedAction, old: *mut libc::sigaction) {
    if !old.is_null() {
        let current = chained.load().unwrap_or_else(empty_action);
        // SAFETY: the caller passed a valid out-pointer.
        unsafe { old.write(current) };
    }
}

/// Whether we hold `sig` (sampling, dump or a termination stand-in).
fn held(sig: libc::c_int) -> Option<&'static ChainedAction> {
    managing(sig).or_else(|| standing_in(sig))
}

fn interrupt_bit(sig: libc::c_int) -> u64 {
    1u64.checked_shl(sig.wrapping_sub(1) as u32).unwrap_or(0)
}

/// The `signal` family: a signal we hold gets a plain handler through our `sigaction`, with
/// `flags` (and `SA_RESTART` unless the program asked `siginterrupt` otherwise, if
/// `restarts`); any other goes to glibc's own function (`glibc`), which keeps its own
/// semantics. Returns the previous handler or `SIG_ERR`.
fn set_plain_handler(
    sig: libc::c_int,
    handler: libc::sighandler_t,
    mut flags: libc::c_int,
    restarts: bool,
    glibc: &AtomicUsize,
) -> libc::sighandler_t {
    if held(sig).is_none() {
        let address = glibc.load(Ordering::Acquire);
        if address == 0 {
            return fail(libc::ENOSYS);
        }
        // SAFETY: the address is glibc's definition of this very function.
        let glibc: extern "C" fn(libc::c_int, libc::sighandler_t) -> libc::sighandler_t =
            unsafe { std::mem::transmute(address) };
        return glibc(sig, handler);
    }
    if handler == libc::SIG_ERR {
        return fail(libc::EINVAL);
    }
    if restarts && INTERRUPTING.load(Ordering::Acquire) & interrupt_bit(sig) == 0 {
        flags |= libc::SA_RESTART;
    }
    let mut action = empty_action();
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    if flags & libc::SA_NODEFER == 0 {
        // SAFETY: `action.sa_mask` is a valid sigset owned by this frame.
        unsafe { libc::sigaddset(&mut action.sa_mask, sig) };
    }
    let mut previous = empty_action();
    // SAFETY: both pointers are valid for the call.
    if unsafe { sigaction(sig, &action, &mut previous) } != 0 {
        return libc::SIG_ERR;
    }
    previous.sa_sigaction
}

/// Sets `errno` and returns `SIG_ERR`.
fn fail(errno: libc::c_int) -> libc::sighandler_t {
    // SAFETY: __errno_location is always valid for the calling thread.
    unsafe { *libc::__errno_location() = errno };
    libc::SIG_ERR
}

/// Interposed `signal(3)`, with glibc's BSD semantics (restarting, the signal blocked in its
/// own handler).
///
/// # Safety
/// As for `signal(3)`.
#[no_mangle]
pub unsafe extern "C" fn signal(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    set_plain_handler(sig, handler, 0, true, &GLIBC_SIGNAL)
}

/// Interposed `bsd_signal(3)`: the same as `signal`.
///
/// # Safety
/// As for `signal(3)`.
#[no_mangle]
pub unsafe extern "C" fn bsd_signal(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    set_plain_handler(sig, handler, 0, true, &GLIBC_BSD_SIGNAL)
}

/// Interposed `sysv_signal(3)`: one-shot handler, not blocked in itself, no restart.
///
/// # Safety
/// As for `sysv_signal(3)`.
#[no_mangle]
pub unsafe extern "C" fn sysv_signal(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    let flags = libc::SA_RESETHAND | libc::SA_NODEFER;
    set_plain_handler(sig, handler, flags, false, &GLIBC_SYSV_SIGNAL)
}

/// glibc's internal name for `sysv_signal`, which some programs call directly.
///
/// # Safety
/// As for `sysv_signal(3)`.
#[no_mangle]
pub unsafe extern "C" fn __sysv_signal(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    let flags = libc::SA_RESETHAND | libc::SA_NODEFER;
    set_plain_handler(sig, handler, flags, false, &GLIBC_SYSV_SIGNAL)
}

/// Interposed `siginterrupt(3)`. glibc's would rewrite the installed action, which for a
/// signal we hold is our handler's; there the program's own action is the one changed, and
/// its later `signal` calls honour the choice.
///
/// # Safety
/// As for `siginterrupt(3)`.
#[no_mangle]
pub unsafe extern "C" fn siginterrupt(sig: libc::c_int, interrupt: libc::c_int) -> libc::c_int {
    let Some(chained) = held(sig) else {
        let address = GLIBC_SIGINTERRUPT.load(Ordering::Acquire);
        if address == 0 {
            fail(libc::ENOSYS);
            return -1;
        }
        // SAFETY: the address is glibc's siginterrupt.
        let glibc: extern "C" fn(libc::c_int, libc::c_int) -> libc::c_int =
            unsafe { std::mem::transmute(address) };
        return glibc(sig, interrupt);
    };
    let mut action = chained.load().unwrap_or_else(empty_action);
    if interrupt != 0 {
        INTERRUPTING.fetch_or(interrupt_bit(sig), Ordering::AcqRel);
        action.sa_flags &= !libc::SA_RESTART;
    } else {
        INTERRUPTING.fetch_and(!interrupt_bit(sig), Ordering::AcqRel);
        action.sa_flags |= libc::SA_RESTART;
    }
    chained.store(action);
    0
}

type SigTimedWait = unsafe extern "C" fn(
    *const libc::sigset_t,
    *mut libc::siginfo_t,
    *const libc::timespec,
) -> libc::c_int;

/// glibc's `sigtimedwait` (a cancellation point), called until what it dequeues is not one
/// of our sample requests, within the caller's `timeout` (none: wait for good).
///
/// # Safety
/// As for `sigtimedwait(2)`; `info` may be null.
unsafe fn wait_passing_over_requests(
    set: *const libc::sigset_t,
    info: *mut libc::siginfo_t,
    timeout: *const libc::timespec,
) -> libc::c_int {
    let address = GLIBC_SIGTIMEDWAIT.load(Ordering::Acquire);
    if address == 0 {
        fail(libc::ENOSYS);
        return -1;
    }
    // SAFETY: the address is glibc's sigtimedwait, which has this signature.
    let glibc: SigTimedWait = unsafe { std::mem::transmute::<usize, SigTimedWait>(address) };
    // SAFETY: the caller's timeout is null or valid.
    let deadline = unsafe { timeout.as_ref() }
        .map(|timeout| monotonic_nanos().saturating_add(timespec_nanos(timeout)));
    loop {
        // SAFETY: siginfo_t is plain data.
        let mut own: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let target = if info.is_null() { &mut own } else { info };
        let remaining =
            deadline.map(|end| timespec_from_nanos(end.saturating_sub(monotonic_nanos())));
        let remaining_ptr = remaining
            .as_ref()
            .map_or(std::ptr::null(), |r| r as *const _);
        // SAFETY: `set` is the caller's, `target` and `remaining_ptr` are valid or null.
        let signal = unsafe { glibc(set, target, remaining_ptr) };
        if signal != sample_signal() || decode_request(target).is_none() {
            return signal;
        }
    }
}

/// Interposed `sigtimedwait(2)`.
///
/// # Safety
/// As for `sigtimedwait(2)`.
#[no_mangle]
pub unsafe extern "C" fn sigtimedwait(
    set: *const libc::sigset_t,
    info: *mut libc::siginfo_t,
    timeout: *const libc::timespec,
) -> libc::c_int {
    // SAFETY: forwarded preconditions.
    unsafe { wait_passing_over_requests(set, info, timeout) }
}

/// Interposed `sigwaitinfo(2)`.
///
/// # Safety
/// As for `sigwaitinfo(2)`.
#[no_mangle]
pub unsafe extern "C" fn sigwaitinfo(
    set: *const libc::sigset_t,
    info: *mut libc::siginfo_t,
) -> libc::c_int {
    // SAFETY: forwarded preconditions.
    unsafe { wait_passing_over_requests(set, info, std::ptr::null()) }
}

/// Interposed `sigwait(3)`: returns an error number, and is not interrupted by signals.
///
/// # Safety
/// As for `sigwait(3)`.
#[no_mangle]
pub unsafe extern "C" fn sigwait(set: *const libc::sigset_t, sig: *mut libc::c_int) -> libc::c_int {
    loop {
        // SAFETY: forwarded preconditions; a null info is allowed.
        let signal =
            unsafe { wait_passing_over_requests(set, std::ptr::null_mut(), std::ptr::null()) };
        if signal >= 0 {
            // SAFETY: the caller passed a valid out-pointer.
            unsafe { *sig = signal };
            return 0;
        }
        // SAFETY: __errno_location is always valid for the calling thread.
        let errno = unsafe { *libc::__errno_location() };
        if errno != libc::EINTR {
            return errno;
        }
    }
}
