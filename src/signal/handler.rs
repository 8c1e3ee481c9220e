//! The code that runs in signal context. Everything here must be async-signal-safe.
//!
//! Rules, enforced by review and by the lints below:
//! - no allocation, no locks, no panics (no unwrap, no indexing), no std I/O, no TLS;
//! - `errno` is saved on entry and restored on exit;
//! - every stack read is bounded to the writable mapping that holds the stack pointer, so a
//!   corrupt frame pointer ends the stack instead of faulting;
//! - signals that are not ours go to the handler the program installed.
//!
//! Items the handlers touch: [`super::POOL`] (slots, preallocated), [`super::SNAPSHOT`]
//! (unwinder and stack regions, built on the sampler thread), `SIGRETURN_TRAMPOLINE`, the
//! [`super::ChainedAction`]s, `framehop`'s `unwind_frame` with a `MustNotAllocateDuringUnwind`
//! cache, and the system calls `getpid`, `gettid`, `clock_gettime`; the dump and termination
//! handlers also [`super::CONTROL`], `DUMPS_WRITTEN`, `futex`, `rt_sigaction` and `tgkill`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::mem::offset_of;
use std::sync::atomic::Ordering;

use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};

use super::slot::{SlotData, StopReason};
use super::{futex, ChainedAction, REQUEST_MAGIC};
use crate::modules::UnwindSnapshot;

/// `SA_SIGINFO` handler for the sampling signal.
pub extern "C" fn on_sample_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let errno = SavedErrno::save();
    match decode_request(info) {
        Some((slot_index, armed)) => take_sample(slot_index, armed, context),
        None => chain(&super::PROGRAM_SAMPLE_ACTION, sig, info, context),
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
    super::CONTROL.request(super::Control::DUMP);
    chain(&super::PROGRAM_DUMP_ACTION, sig, info, context);
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
    super::dump_and_wait();
    super::end_with_default_action(sig);
    errno.restore();
}

/// Our requests are queued by this process with `SI_QUEUE` and a value whose upper half is
/// [`REQUEST_MAGIC`]; the lower half names the slot and its armed word.
pub(super) fn decode_request(info: *const libc::siginfo_t) -> Option<(usize, u32)> {
    if info.is_null() {
        return None;
    }
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers; for SI_QUEUE the
    // `_rt` union member (pid, uid, value) is the one filled in.
    let (pid, value) = unsafe {
        let info = &*info;
        if info.si_code != libc::SI_QUEUE {
            return None;
        }
        (info.si_pid(), info.si_value().sival_ptr as u64)
    };
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    let own_pid = unsafe { libc::getpid() };
    if pid != own_pid || value >> 40 != REQUEST_MAGIC {
        return None;
    }
    let slot_index = ((value >> 32) & 0xff) as usize;
    Some((slot_index, value as u32))
}

fn take_sample(slot_index: usize, armed: u32, context: *mut libc::c_void) {
    let started = futex::monotonic_nanos();
    // SAFETY: POOL is either null or a leaked, never-freed SlotPool.
    let Some(pool) = (unsafe { super::POOL.load(Ordering::Acquire).as_ref() }) else {
        return;
    };
    let Some(slot) = pool.slots.get(slot_index) else {
        return;
    };
    // SAFETY: we are the handler of the signal that carried `armed`.
    let Some(data) = (unsafe { slot.claim(armed) }) else {
        pool.late_signals.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let snapshot = super::SNAPSHOT.load(Ordering::SeqCst);
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
    data.handler_nanos = futex::monotonic_nanos().saturating_sub(started);
    slot.publish(armed);
}

/// Stack the unwinding needs below the handler's frame, with twice the margin: the gauntlet
/// test `handler_stack_use_is_within_what_the_check_assumes` measured 9.9 KB written below
/// the interrupted frame, the kernel's signal frame included.
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
    let mut frames = FrameWriter {
        frames: &mut data.frames,
        depth: 0,
    };
    frames.push(start.ip);
    data.depth = frames.depth;
    data.stop = StopReason::StackTooSmall;
}

/// Instruction, stack and frame pointer of the interrupted code.
#[derive(Clone, Copy)]
pub struct Registers {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// Unwinds a thread that is blocked in a system call, from the sampler thread: the same
/// walk as in the handler, with the registers the kernel reports for the blocked thread.
/// The caller must check afterwards that the thread stayed blocked while this ran.
pub fn unwind_blocked(
    snapshot: &UnwindSnapshot,
    start: Registers,
    cache: &mut super::slot::UnwindCache,
    frames: &mut [u64],
) -> (usize, StopReason) {
    walk(snapshot, start, Reader::Other, cache, frames)
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

fn walk(
    snapshot: &UnwindSnapshot,
    start: Registers,
    reader: Reader,
    cache: &mut super::slot::UnwindCache,
    frames: &mut [u64],
) -> (usize, StopReason) {
    let mut frames = FrameWriter { frames, depth: 0 };
    if !frames.push(start.ip) {
        return (0, StopReason::DepthLimit);
    }
    let Some(mut stack) = StackBounds::containing(snapshot, start.sp, reader) else {
        return (frames.depth, StopReason::UnknownStack);
    };
    let mut regs = UnwindRegsX86_64::new(start.ip, start.sp, start.bp);
    let mut address = FrameAddress::from_instruction_pointer(start.ip);
    loop {
        let mut read = |addr: u64| stack.read(addr);
        let return_address = match snapshot
            .unwinder
            .unwind_frame(address, &mut regs, cache, &mut read)
        {
            Ok(Some(ra)) => ra,
            Ok(None) => return (frames.depth, StopReason::Complete),
            Err(_) => return (frames.depth, StopReason::UnwindError),
        };
        if super::is_sigreturn_trampoline(return_address) {
            // The frame below is a signal handler of the program: continue in the code it
            // interrupted, from the registers the kernel saved on the stack.
            let Some(saved) = saved_signal_registers(&stack, regs.sp()) else {
                return (frames.depth, StopReason::UnwindError);
            };
            let Some(bounds) = StackBounds::containing(snapshot, saved.sp, reader) else {
                return (frames.depth, StopReason::UnknownStack);
            };
            stack = bounds;
            regs = UnwindRegsX86_64::new(saved.ip, saved.sp, saved.bp);
            address = FrameAddress::from_instruction_pointer(saved.ip);
            // Stored one past the interrupted instruction: names are looked up at return
            // address minus one, which then lands on the instruction itself.
            if !frames.push(saved.ip.wrapping_add(1)) {
                return (frames.depth, StopReason::DepthLimit);
            }
            continue;
        }
        let Some(next) = FrameAddress::from_return_address(return_address) else {
            return (frames.depth, StopReason::Complete);
        };
        if !frames.push(return_address) {
            return (frames.depth, StopReason::DepthLimit);
        }
        address = next;
    }
}

/// Reads the registers of a `ucontext_t` at `ucontext_address` (where the stack pointer is
/// after returning into `__restore_rt`).
fn saved_signal_registers(stack: &StackBounds, ucontext_address: u64) -> Option<Registers> {
    let gregs = ucontext_address
        .checked_add(offset_of!(libc::ucontext_t, uc_mcontext) as u64)?
        .checked_add(offset_of!(libc::mcontext_t, gregs) as u64)?;
    let reg = |index: libc::c_int| stack.read(gregs.checked_add(8 * index as u64)?).ok();
    Some(Registers {
        ip: reg(libc::REG_RIP)?,
        sp: reg(libc::REG_RSP)?,
        bp: reg(libc::REG_RBP)?,
    })
}

/// Bounded writer into the preallocated frame buffer.
struct FrameWriter<'a> {
    frames: &'a mut [u64],
    depth: usize,
}

impl FrameWriter<'_> {
    /// False when the buffer is full.
    fn push(&mut self, address: u64) -> bool {
        match self.frames.get_mut(self.depth) {
            Some(slot) => {
                *slot = address;
                self.depth += 1;
                true
            }
            None => false,
        }
    }
}

/// The part of a stack mapping at and above the stack pointer: the only memory unwinding may
/// read.
struct StackBounds {
    low: u64,
    high: u64,
    reader: Reader,
}

/// Whose stack is read.
#[derive(Clone, Copy)]
enum Reader {
    /// The thread running the handler: its stack cannot go away under it.
    Own,
    /// Another thread (blocked, seen from the sampler): it may wake, exit and have its stack
    /// unmapped while we read, so every read goes through `process_vm_readv`, which fails
    /// instead of faulting.
    Other,
}

impl StackBounds {
    fn containing(snapshot: &UnwindSnapshot, sp: u64, reader: Reader) -> Option<StackBounds> {
        let high = snapshot.writable_region_end(sp)?;
        Some(StackBounds {
            low: sp,
            high,
            reader,
        })
    }

    fn read(&self, address: u64) -> Result<u64, ()> {
        let end = address.checked_add(8).ok_or(())?;
        if address < self.low || end > self.high {
            return Err(());
        }
        match self.reader {
            // SAFETY: [address, address+8) lies inside a readable, writable mapping that
            // holds the interrupted thread's stack; that thread is us, so the mapping cannot
            // go away.
            Reader::Own => Ok(unsafe { std::ptr::read_unaligned(address as *const u64) }),
            Reader::Other => read_checked(address),
        }
    }
}

/// Reads 8 bytes of this process's memory with `process_vm_readv`: an unmapped address gives
/// an error, not a fault.
fn read_checked(address: u64) -> Result<u64, ()> {
    let mut value = [0u8; 8];
    if crate::modules::read_memory(address, &mut value) {
        Ok(u64::from_ne_bytes(value))
    } else {
        Err(())
    }
}

/// Calls the handler the program installed for `sig`, if it installed one.
fn chain(
    action: &ChainedAction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let Some(program) = action.load() else {
        return;
    };
    let handler = program.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return;
    }
    if program.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program registered this address as an SA_SIGINFO handler.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        handler(sig, info, context);
    } else {
        // SAFETY: the program registered this address as a plain signal handler.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        handler(sig);
    }
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
