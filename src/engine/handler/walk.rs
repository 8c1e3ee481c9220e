//! The stack walk, shared by the handler (its own stack) and the sampler (a thread blocked
//! in a system call): framehop's unwinder over reads bounded to the stack's mapping, through
//! the program's own signal frames, into a preallocated buffer.

use std::mem::offset_of;

use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};

use super::actions::is_sigreturn_trampoline;
use super::slots::UnwindCache;
use super::statics::is_fiber_start;
use crate::modules::{read_memory, UnwindSnapshot};
use crate::sample::StopReason;

/// Instruction, stack and frame pointer of the interrupted code.
#[derive(Clone, Copy)]
pub struct Registers {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// The frame pointer of a thread blocked in a system call, which the kernel does not report.
/// No frame can be at 1: a frame-pointer rule that meets it fails instead of reading, and a
/// frame that restores the register replaces it.
pub const UNKNOWN_FRAME_POINTER: u64 = 1;

/// Finds the frame pointer of a frame whose unwind rule needs it while it is unknown.
pub trait FindFramePointer {
    /// The frame pointer of the function at `address`, whose stack pointer is `regs.sp()`,
    /// with the stack readable up to `stack_end`; `None` ends the walk.
    fn find(
        &mut self,
        address: FrameAddress,
        regs: &UnwindRegsX86_64,
        stack_end: u64,
    ) -> Option<u64>;
}

/// The handler's walks start from the interrupted registers: the frame pointer is known.
pub(super) struct FramePointerKnown;

impl FindFramePointer for FramePointerKnown {
    fn find(&mut self, _: FrameAddress, _: &UnwindRegsX86_64, _: u64) -> Option<u64> {
        None
    }
}

/// Unwinds a thread that is blocked in a system call, from the sampler thread: the same
/// walk as in the handler, with the registers the kernel reports for the blocked thread
/// (`start.bp` is [`UNKNOWN_FRAME_POINTER`]) and `finder` for the frame pointer. The caller
/// must check afterwards that the thread stayed blocked while this ran.
pub fn unwind_blocked(
    snapshot: &UnwindSnapshot,
    start: Registers,
    cache: &mut UnwindCache,
    frames: &mut [u64],
    finder: &mut impl FindFramePointer,
) -> (usize, StopReason) {
    walk(snapshot, start, Reader::Other, cache, frames, finder)
}

pub(super) fn walk(
    snapshot: &UnwindSnapshot,
    start: Registers,
    reader: Reader,
    cache: &mut UnwindCache,
    frames: &mut [u64],
    finder: &mut impl FindFramePointer,
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
            Err(_) if regs.bp() == UNKNOWN_FRAME_POINTER => {
                match finder.find(address, &regs, stack.high) {
                    Some(bp) if bp != UNKNOWN_FRAME_POINTER => {
                        regs.set_bp(bp);
                        continue;
                    }
                    _ => return (frames.depth, StopReason::UnwindError),
                }
            }
            Err(_) => return (frames.depth, StopReason::UnwindError),
        };
        if is_fiber_start(return_address) {
            return (frames.depth, StopReason::FiberStart);
        }
        if is_sigreturn_trampoline(return_address) {
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
pub(super) enum Reader {
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
    if read_memory(address, &mut value) {
        Ok(u64::from_ne_bytes(value))
    } else {
        Err(())
    }
}
