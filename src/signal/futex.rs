//! Futex wait and wake on an `AtomicU32`: how the sampler sleeps until a handler finishes or a
//! deadline passes, without spinning on a CPU the target thread needs.
//!
//! `wake` is a bare system call and is async-signal-safe; handlers call it.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, at most until the CLOCK_MONOTONIC time `deadline`.
/// Returns early on a wake, a signal, or when the word already differs.
pub fn wait_until(word: &AtomicU32, expected: u32, deadline: &libc::timespec) {
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; FUTEX_WAIT_BITSET
    // with an absolute CLOCK_MONOTONIC timeout only reads it and the timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
            expected,
            deadline as *const libc::timespec,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        );
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout`.
pub fn wait_for(word: &AtomicU32, expected: u32, timeout: Duration) {
    let deadline = monotonic_after(timeout);
    wait_until(word, expected, &deadline);
}

/// Wakes every thread sleeping on `word`.
pub fn wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it never dereferences it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds. Async-signal-safe (a vDSO call).
pub fn monotonic_nanos() -> u64 {
    let now = monotonic_now();
    (now.tv_sec as u64) * 1_000_000_000 + now.tv_nsec as u64
}

/// CLOCK_MONOTONIC now.
pub fn monotonic_now() -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now
}

/// CLOCK_MONOTONIC `delay` from now.
pub fn monotonic_after(delay: Duration) -> libc::timespec {
    timespec_from_nanos(monotonic_nanos().saturating_add(delay.as_nanos() as u64))
}

/// Converts nanoseconds since the clock's epoch into a timespec.
pub fn timespec_from_nanos(nanos: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}
