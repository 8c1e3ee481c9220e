//! `sigaction`, `signal`, `bsd_signal` and `sysv_signal` as the program sees them once the
//! library is loaded.
//!
//! For the signals we installed handlers for (SIGPROF, the dump signal), a program that sets
//! its own handler must not replace ours, and must still receive its own signals: its action
//! is recorded as the one to chain to, and it reads back what it set. Every other signal goes
//! straight to glibc. Both functions are async-signal-safe, as POSIX requires of `sigaction`.

use super::actions::{
    empty_action, real_sigaction, ChainedAction, PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION,
};
use super::termination::TERMINATION_ACTIONS;

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
    if let Some(chained) = standing_in(sig) {
        // The program reads back the default it left; a new action of its own replaces ours.
        if !old.is_null() {
            let current = chained.load().unwrap_or_else(empty_action);
            // SAFETY: the caller passed a valid out-pointer.
            unsafe { old.write(current) };
        }
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
    if !old.is_null() {
        let current = chained.load().unwrap_or_else(empty_action);
        // SAFETY: the caller passed a valid out-pointer.
        unsafe { old.write(current) };
    }
    // SAFETY: the caller passed a valid action or null.
    if let Some(action) = unsafe { act.as_ref() } {
        chained.store(*action);
    }
    0
}

/// Installs a plain handler the way the `signal` family does, through `sigaction` (ours,
/// so our signals stay ours); returns the previous handler or `SIG_ERR`.
fn set_plain_handler(
    sig: libc::c_int,
    handler: libc::sighandler_t,
    flags: libc::c_int,
) -> libc::sighandler_t {
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

/// Interposed `signal(3)`, with glibc's BSD semantics (SA_RESTART, the signal blocked in its
/// own handler).
///
/// # Safety
/// As for `signal(3)`.
#[no_mangle]
pub unsafe extern "C" fn signal(
    sig: libc::c_int,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    set_plain_handler(sig, handler, libc::SA_RESTART)
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
    set_plain_handler(sig, handler, libc::SA_RESTART)
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
    set_plain_handler(sig, handler, libc::SA_RESETHAND | libc::SA_NODEFER)
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
    set_plain_handler(sig, handler, libc::SA_RESETHAND | libc::SA_NODEFER)
}
