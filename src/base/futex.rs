//! Futex wait and wake on an `AtomicU32`: how the sampler sleeps until a handler finishes or a
//! deadline passes, without spinning on a CPU the target thread needs.
//!
//! `wake` is a bare system call and is async-signal-safe; handlers call it.

use std::sync::atomic::AtomicU32;

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
