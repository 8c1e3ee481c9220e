//! Installing the handlers: once per process, for the life of the process (a late request
//! must never meet the default action), and again if something replaced them behind
//! `sigaction`'s back.

use std::io;

use super::handler::{
    on_dump_signal, on_sample_signal, on_termination_signal, pool, sample_signal, set_fiber_start,
    set_pool, set_sample_signal, SlotPool, PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION, SPARE_SLOTS,
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
    if let Some(address) = fiber_start() {
        set_fiber_start(address);
    }
    PROGRAM_SAMPLE_ACTION
        .take_over(sample_signal_number, on_sample_signal as *const () as usize)?;
    if let Some(sig) = dump_signal {
        PROGRAM_DUMP_ACTION.take_over_unless_ignored(sig, on_dump_signal as *const () as usize)?;
    }
    for (sig, chained) in TERMINATION_SIGNALS.iter().zip(&TERMINATION_ACTIONS) {
        chained.take_over_default(*sig, on_termination_signal as *const () as usize)?;
    }
    Ok(pool)
}

/// The address glibc's `makecontext` makes every fiber return to (`__start_context`, a
/// function with no exported symbol): read off the stack of a context made for the purpose
/// and never run.
fn fiber_start() -> Option<u64> {
    extern "C" fn never_run() {}
    let mut stack = [0u64; 64];
    // SAFETY: an all-zero ucontext_t is a valid value; getcontext fills it.
    let mut context: libc::ucontext_t = unsafe { std::mem::zeroed() };
    // SAFETY: getcontext writes only the context we pass.
    if unsafe { libc::getcontext(&mut context) } != 0 {
        return None;
    }
    context.uc_stack.ss_sp = stack.as_mut_ptr().cast();
    context.uc_stack.ss_size = std::mem::size_of_val(&stack);
    context.uc_link = std::ptr::null_mut();
    // SAFETY: makecontext writes the context and the stack given to it, both ours; the
    // context is never switched to.
    unsafe { libc::makecontext(&mut context, never_run, 0) };
    let sp = context.uc_mcontext.gregs[libc::REG_RSP as usize] as u64;
    let base = stack.as_ptr() as u64;
    let index = usize::try_from(sp.checked_sub(base)? / 8).ok()?;
    stack.get(index).copied().filter(|&address| address != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fiber_start_is_code_of_the_c_library() {
        let address = super::fiber_start().expect("glibc's makecontext") as usize;
        // SAFETY: an all-zero Dl_info is a valid value.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr writes only the struct we pass.
        assert_ne!(unsafe { libc::dladdr(address as *const _, &mut info) }, 0);
        // SAFETY: dladdr set dli_fname to a NUL-terminated path.
        let object = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
        assert!(object.to_string_lossy().contains("libc.so"), "{object:?}");
    }
}
