//! The sampler's mailbox: a futex word of wake-up reasons, set from signal context (a dump
//! request) and from other threads (a consumer joins or leaves).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::base::futex;

/// Requests to the sampler thread from signal context and from other threads.
pub static CONTROL: Control = Control::new();
/// Wake-up reasons for the sampler, as bits of a futex word.
pub struct Control(AtomicU32);

impl Control {
    pub const DUMP: u32 = 1;
    /// A consumer joined or left (see `sampler::ConsumerHandle`).
    pub const COMMAND: u32 = 2;

    const fn new() -> Control {
        Control(AtomicU32::new(0))
    }

    /// Sets `bits` and wakes the sampler. Async-signal-safe.
    pub fn request(&self, bits: u32) {
        self.0.fetch_or(bits, Ordering::AcqRel);
        futex::wake(&self.0);
    }

    /// Takes and clears every pending request.
    pub fn take(&self) -> u32 {
        self.0.swap(0, Ordering::AcqRel)
    }

    /// Sleeps until `deadline` (CLOCK_MONOTONIC) or until a request arrives.
    pub fn sleep_until(&self, deadline: &libc::timespec) {
        futex::wait_until(&self.0, 0, deadline);
    }
}
