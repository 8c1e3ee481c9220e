//! Installing the handlers: once per process, for the life of the process (a late request
//! must never meet the default action), and again if something replaced them behind
//! `sigaction`'s back.

use std::io;

use super::handler::{
    on_dump_signal, on_sample_signal, on_termination_signal, pool, sample_signal, set_pool,
    set_sample_signal, SlotPool, PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION, SPARE_SLOTS,
    TERMINATION_ACTIONS, TERMINATION_SIGNALS,
};
use crate::base::error::Error;

/// Slots the pool keeps for the API's consumers beside a session's threads.
pub const API_SLOTS: usize = 8;

/// Re-installs our handlers if something replaced them behind `sigaction`'s back. The
/// sampler calls this before each round of requests.
pub fn ensure_installed() {
    PROGRAM_SAMPLE_ACTION.ensure_installed();
    PROGRAM_DUMP_ACTION.ensure_installed();
}

/// Slot indices travel in 8 bits of a request's value.
pub const MAX_SLOTS: usize = 256;

/// Installs the sampling handler (and the dump handler) once per process and returns the
/// slot pool, with a slot for each of `threads` sampled at once (up to [`MAX_SLOTS`] in all),
/// room for stuck handlers and for the API's timers and profilers. The handlers stay installed for the life of the
/// process (a late request must never meet the default action); a later call reuses them and
/// the pool if it is big enough.
pub fn install(
    threads: usize,
    max_depth: usize,
    sample_signal_number: libc::c_int,
    dump_signal: Option<libc::c_int>,
) -> Result<&'static SlotPool, Error> {
    let slots = threads
        .saturating_add(SPARE_SLOTS + API_SLOTS)
        .min(MAX_SLOTS);
    if let Some(pool) = pool() {
        if pool.max_depth() < max_depth
            || pool.slots.len() < slots
            || sample_signal() != sample_signal_number
        {
            return Err(Error::System {
                action:
                    "restart with more threads, a larger STACKSAMPLE_MAXDEPTH or another signal in this process",
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        return Ok(pool);
    }
    let pool: &'static SlotPool = Box::leak(Box::new(SlotPool::new(slots, max_depth)));
    set_pool(pool);
    set_sample_signal(sample_signal_number);
    PROGRAM_SAMPLE_ACTION
        .take_over(sample_signal_number, on_sample_signal as *const () as usize)?;
    if let Some(sig) = dump_signal {
        PROGRAM_DUMP_ACTION.take_over(sig, on_dump_signal as *const () as usize)?;
    }
    for (sig, chained) in TERMINATION_SIGNALS.iter().zip(&TERMINATION_ACTIONS) {
        chained.take_over_default(*sig, on_termination_signal as *const () as usize)?;
    }
    Ok(pool)
}
