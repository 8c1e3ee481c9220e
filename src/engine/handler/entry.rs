//! The three signal handlers: a sample request (or the program's own sampling signal), the
//! dump signal, a termination signal.
//! Each saves `errno` first and puts it back last.

use super::actions::{chain, PROGRAM_DUMP_ACTION, PROGRAM_SAMPLE_ACTION};
use std::ops::Range;

use super::control::{Control, CONTROL};
use super::python;
use super::request::decode_request;
use super::slots::SlotData;
use super::statics::{pool_ptr, snapshot_ptr};
use super::termination::{dump_and_wait, end_with_default_action, say_no_profile, DumpWait};
use super::walk::{walk, FramePointerKnown, Reader, Registers};
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
        None => on_foreign_sample_signal(sig, info, context),
    }
    errno.restore();
}

/// The program's own sampling signal (an `ITIMER_PROF` CPU limit, a `kill`) goes to its
/// handler; left at the default action it ends the program, as it would without us.
fn on_foreign_sample_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let default = PROGRAM_SAMPLE_ACTION
        .load()
        .is_none_or(|action| action.sa_sigaction == libc::SIG_DFL);
    if default {
        end_as_signalled(sig);
    } else {
        chain(&PROGRAM_SAMPLE_ACTION, sig, info, context);
    }
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
    end_as_signalled(sig);
    errno.restore();
}

/// Writes the profile (or says it could not in time), then lets `sig` end the program.
fn end_as_signalled(sig: libc::c_int) {
    if dump_and_wait() == DumpWait::Abandoned {
        say_no_profile(signal_name(sig));
    }
    end_with_default_action(sig);
}

fn signal_name(sig: libc::c_int) -> &'static [u8] {
    match sig {
        libc::SIGINT => b"SIGINT",
        libc::SIGTERM => b"SIGTERM",
        libc::SIGHUP => b"SIGHUP",
        libc::SIGQUIT => b"SIGQUIT",
        libc::SIGPROF => b"SIGPROF",
        _ => b"a signal at its default action",
    }
}

fn take_sample(slot_index: usize, armed: u32, context: *mut libc::c_void) {
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
    // The claim made the slot's stack ours: from here on only the slot's memory is used.
    match data.stack.take() {
        Some(mut stack) => {
            stack.run(&mut || fill_slot(data, context));
            data.stack = Some(stack);
        }
        None => leaf_only(data, context),
    }
    slot.publish(armed);
}

/// Unwinds the interrupted stack into the claimed slot; runs on the slot's own stack.
fn fill_slot(data: &mut SlotData, context: *const libc::c_void) {
    let started = monotonic_nanos();
    let snapshot = snapshot_ptr();
    // SAFETY: the sampler keeps a replaced snapshot until every slot that was being written
    // when it was replaced has moved on; we hold a claimed slot (claimed before this load,
    // both SeqCst), so the snapshot we loaded stays alive until `publish`.
    match (unsafe { snapshot.as_ref() }, interrupted_registers(context)) {
        (Some(snapshot), Some(regs)) => {
            data.generation = snapshot.generation;
            unwind(snapshot, regs, data);
            let stack_end = snapshot.writable_region_end(regs.sp).unwrap_or(regs.sp);
            read_python_frames(data, regs.sp..stack_end);
        }
        _ => {
            data.depth = 0;
            data.stop = StopReason::UnknownStack;
        }
    }
    data.handler_nanos = monotonic_nanos().saturating_sub(started);
}

/// Reads the thread's Python frames, when the request asks for them; `stack` is the range
/// of its C stack from the interrupted stack pointer.
fn read_python_frames(data: &mut SlotData, stack: Range<u64>) {
    if let (Some(target), Some(buffers)) = (&data.python_target, data.python.as_mut()) {
        let thread = python::Thread::Own { stack };
        let (depth, stop) = python::capture(target, thread, &mut buffers.frames);
        buffers.depth = depth;
        buffers.stop = stop;
    }
}

/// Records only the interrupted instruction, for a slot without a stack to unwind on.
fn leaf_only(data: &mut SlotData, context: *const libc::c_void) {
    let leaf = interrupted_registers(context).map(|regs| regs.ip);
    data.depth = match (data.frames.first_mut(), leaf) {
        (Some(slot), Some(ip)) => {
            *slot = ip;
            1
        }
        _ => 0,
    };
    data.stop = StopReason::NoHandlerStack;
    data.handler_nanos = 0;
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
    let (depth, stop) = walk(
        snapshot,
        start,
        Reader::Own,
        cache,
        &mut data.frames,
        &mut FramePointerKnown,
    );
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
