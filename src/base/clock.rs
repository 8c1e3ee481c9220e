//! CLOCK_MONOTONIC in nanoseconds and as `timespec`: the one clock every thread of the
//! profiler, and the signal handler, tells time by. Every function is async-signal-safe
//! (`clock_gettime` is a vDSO call).

use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn monotonic_nanos() -> u64 {
    timespec_nanos(&monotonic_now())
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
        tv_sec: (nanos / NANOS_PER_SECOND) as libc::time_t,
        tv_nsec: (nanos % NANOS_PER_SECOND) as libc::c_long,
    }
}

/// Converts a timespec into nanoseconds since the clock's epoch.
pub fn timespec_nanos(time: &libc::timespec) -> u64 {
    (time.tv_sec as u64) * NANOS_PER_SECOND + time.tv_nsec as u64
}
