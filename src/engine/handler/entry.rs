//! The three signal handlers: a sample request, the dump signal, a termination signal.
//! Each saves `errno` first and puts it back last.

use super::actions::{chain, PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION};
use super::control::{Control, CONTROL};
use super::request::decode_request;
use super::slots::SlotData;
use super::statics::{pool_ptr, snapshot_ptr};
use super::termination::{dump_and_wait, end_with_default_action};
use super::walk::{walk, Reader, Registers};
use crate::base::clock::monotonic_nanos;
use crate::modules::UnwindSnapshot;
use crate::sample::StopReason;

/// `SA_SIGINFO` handler for the sampling signal.
pub extern "C" fn on_sample_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let errno = SavedErrno::save();
    match decode_request(info) {
        Some((slot_index, armed)) => take_sample(slot_index, armed, context),
        None => chain(&PROGRAM_SAMPLE_ACTION, sig, info, context),
    }
    errno.restore();
}

/// `SA_SIGINFO` handler for the dump signal: wakes the sampler, which asks the drain for a
/// dump; then chains, because the program may use the same signal.
pub extern "C" fn on_dump_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let errno = SavedErrno::save();
    CONTROL.request(Control::DUMP);
    chain(&PROGRAM_DUMP_ACTION, sig, info, context);
    errno.restore();
}

/// Handler for SIGINT, SIGTERM, SIGHUP and SIGQUIT while the program leaves them at their
/// default action: asks for the profile, waits until it is written (a futex wait, bounded),
/// then lets the signal end the program as it would have.
pub extern "C" fn on_termination_signal(
    sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let errno = SavedErrno::save();
    dump_and_wait();
    end_with_default_action(sig);
    errno.restore();
}

fn take_sample(slot_index: usize, armed: u32, context: *mut libc::c_void) {
    let started = monotonic_nanos();
    // SAFETY: POOL is either null or a leaked, never-freed SlotPool.
    let Some(pool) = (unsafe { pool_ptr().as_ref() }) else {
        return;
    };
    let Some(slot) = pool.slots.get(slot_index) else {
        return;
    };
    // SAFETY: we are the handler of the signal that carried `armed`.
    let Some(data) = (unsafe { slot.claim(armed) }) else {
        pool.count_late_signal();
        return;
    };
    let snapshot = snapshot_ptr();
    // SAFETY: the sampler keeps a replaced snapshot until every slot that was being written
    // when it was replaced has moved on; we hold a claimed slot (claimed before this load,
    // both SeqCst), so the snapshot we loaded stays alive until `publish`.
    match (unsafe { snapshot.as_ref() }, interrupted_registers(context)) {
        (Some(snapshot), Some(regs)) => {
            data.generation = snapshot.generation;
            if room_to_unwind(snapshot, context) {
                unwind(snapshot, regs, data);
            } else {
                leaf_only(regs, data);
            }
        }
        _ => {
            data.depth = 0;
            data.stop = StopReason::UnknownStack;
        }
    }
    data.handler_nanos = monotonic_nanos().saturating_sub(started);
    slot.publish(armed);
}

/// Stack the unwinding needs below the handler's frame: twice what the gauntlet measures
/// (docs/reliability.md).
const UNWIND_STACK_NEED: u64 = 20 * 1024;

/// Whether the stack this handler runs on has room for the unwinding below the handler's
/// frame: a thread with a small stack that is close to its end gets a leaf-only sample rather
/// than an overflow.
fn room_to_unwind(snapshot: &UnwindSnapshot, context: *const libc::c_void) -> bool {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as u64;
    let floor = alternate_stack_floor(context, here).or_else(|| snapshot.stack_floor(here));
    // A stack in no known mapping ends the walk at its first frame (unknown stack), before
    // any deep call.
    floor.is_none_or(|floor| here.saturating_sub(floor) >= UNWIND_STACK_NEED)
}

/// Low end of the alternate signal stack, if the handler runs on it. The kernel saves the
/// thread's alternate stack in the context (its `SS_ONSTACK` flag is not reliable there: 0
/// was seen for code running on it), which spares a `sigaltstack` call per sample.
fn alternate_stack_floor(context: *const libc::c_void, here: u64) -> Option<u64> {
    // SAFETY: for SA_SIGINFO handlers the kernel passes a valid ucontext_t.
    let saved = unsafe { (context as *const libc::ucontext_t).as_ref() }?.uc_stack;
    if saved.ss_flags & libc::SS_DISABLE != 0 {
        return None;
    }
    let low = saved.ss_sp as u64;
    let high = low.checked_add(saved.ss_size as u64)?;
    (low..high).contains(&here).then_some(low)
}

/// Records only the interrupted instruction.
fn leaf_only(start: Registers, data: &mut SlotData) {
    data.depth = match data.frames.first_mut() {
        Some(leaf) => {
            *leaf = start.ip;
            1
        }
        None => 0,
    };
    data.stop = StopReason::StackTooSmall;
}

fn interrupted_registers(context: *const libc::c_void) -> Option<Registers> {
    let context = context as *const libc::ucontext_t;
    // SAFETY: for SA_SIGINFO handlers the kernel passes a valid ucontext_t.
    let gregs = unsafe { context.as_ref() }?.uc_mcontext.gregs;
    Some(Registers {
        ip: *gregs.get(libc::REG_RIP as usize)? as u64,
        sp: *gregs.get(libc::REG_RSP as usize)? as u64,
        bp: *gregs.get(libc::REG_RBP as usize)? as u64,
    })
}

/// Fills `data.frames` with the leaf address followed by return addresses.
fn unwind(snapshot: &UnwindSnapshot, start: Registers, data: &mut SlotData) {
    if cfg!(feature = "bench-floor") {
        // The benchmark's floor: every cost of a sample except the unwinding itself.
        data.depth = 0;
        data.stop = StopReason::Complete;
        return;
    }
    // Every armed slot has its cache (see `SampleSlot::arm`).
    let Some(cache) = data.cache.as_mut() else {
        data.depth = 0;
        data.stop = StopReason::UnwindError;
        return;
    };
    let (depth, stop) = walk(snapshot, start, Reader::Own, cache, &mut data.frames);
    data.depth = depth;
    data.stop = stop;
}

/// `errno` of the interrupted code, put back before the handler returns.
struct SavedErrno(libc::c_int);

impl SavedErrno {
    fn save() -> SavedErrno {
        // SAFETY: __errno_location returns the calling thread's errno slot; always valid.
        SavedErrno(unsafe { *libc::__errno_location() })
    }

    fn restore(self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}
