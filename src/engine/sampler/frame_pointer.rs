//! The frame pointer of a thread blocked in a system call, found on its stack. The kernel
//! reports only the stack and instruction pointers of a blocked thread, and the unwind rule
//! of code built with frame pointers needs the third. A stack slot is taken for the frame
//! record of the function being unwound only if:
//! - it lies above the locals the function's prologue allocates (`sub $n, %rsp`), where
//!   records left by earlier calls cannot be;
//! - the word above it is a return address just after a call instruction in a loaded object,
//!   and a direct call there targets the function being unwound;
//! - the function's rule, given that slot, leads to that return address, and the caller's
//!   rule from there leads to a return address after a call to the caller.
//!
//! Indirect calls cannot be checked against their target; docs/limits.md says what that
//! leaves.

use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder as _};

use crate::engine::handler::{FindFramePointer, UnwindCache};
use crate::modules::{read_memory, ModuleMap, UnwindSnapshot};

/// How far above the stack pointer the frame pointer is looked for: the size of the
/// function's locals, which a blocking call rarely has more of.
const SEARCH_BYTES: u64 = 64 * 1024;

/// Searches the stack of one blocked thread, with buffers reused across threads.
pub(super) struct FramePointerSearch<'s> {
    pub(super) snapshot: &'s UnwindSnapshot,
    /// The snapshot's generation of modules, if the sampler has it yet.
    pub(super) map: Option<&'s ModuleMap>,
    /// Separate from the walk's own cache, which the walk holds while it asks.
    pub(super) cache: &'s mut UnwindCache,
    /// The stack above the stack pointer, read once per search.
    pub(super) window: &'s mut Vec<u8>,
    /// Whether a frame pointer was found (the walk went on from it).
    pub(super) found: bool,
}

impl FindFramePointer for FramePointerSearch<'_> {
    fn find(
        &mut self,
        address: FrameAddress,
        regs: &UnwindRegsX86_64,
        stack_end: u64,
    ) -> Option<u64> {
        let lookup = address.address_for_lookup();
        let function = self.map?.find(lookup)?.function_start(lookup)?;
        let lowest = regs.sp().checked_add(locals_size(function))?;
        // Lent to the stack copy while the search borrows the rest.
        let mut window = std::mem::take(self.window);
        let found = Stack::read(regs.sp(), stack_end, &mut window).and_then(|stack| {
            (lowest..stack.end.saturating_sub(8))
                .step_by(8)
                .find(|&slot| self.is_frame_pointer(slot, function, address, regs, &stack))
        });
        *self.window = window;
        self.found |= found.is_some();
        found
    }
}

impl FramePointerSearch<'_> {
    /// Whether `slot` holds the frame record (saved frame pointer, return address) of the
    /// frame at `address`, which runs the function starting at `function`.
    fn is_frame_pointer(
        &mut self,
        slot: u64,
        function: u64,
        address: FrameAddress,
        regs: &UnwindRegsX86_64,
        stack: &Stack,
    ) -> bool {
        let Some(return_address) = stack.word(slot + 8) else {
            return false;
        };
        if !self.follows_call(return_address, Some(function)) {
            return false;
        }
        let mut frame = *regs;
        frame.set_bp(slot);
        let unwound = self.unwind(address, &mut frame, stack);
        if unwound != Ok(Some(return_address)) || frame.sp() != slot + 16 {
            return false;
        }
        // The caller's own rule, from where the candidate leaves it, must lead to a return
        // address after a call to the caller. (Functions built with frame pointers are not
        // called from the outermost frames, `_start` and `clone3`.)
        let Some(caller) = FrameAddress::from_return_address(return_address) else {
            return false;
        };
        let caller_start = self
            .map
            .and_then(|map| map.find(caller.address_for_lookup()))
            .and_then(|module| module.function_start(caller.address_for_lookup()));
        match self.unwind(caller, &mut frame, stack) {
            Ok(Some(next)) => caller_start.is_some() && self.follows_call(next, caller_start),
            Ok(None) | Err(()) => false,
        }
    }

    fn unwind(
        &mut self,
        address: FrameAddress,
        regs: &mut UnwindRegsX86_64,
        stack: &Stack,
    ) -> Result<Option<u64>, ()> {
        let mut read = |at: u64| stack.word(at).ok_or(());
        self.snapshot
            .unwinder
            .unwind_frame(address, regs, self.cache, &mut read)
            .map_err(|_| ())
    }

    /// Whether `return_address` follows a call instruction in a loaded object, and, when
    /// the call's target can be read from the instruction, whether it is `callee`.
    fn follows_call(&self, return_address: u64, callee: Option<u64>) -> bool {
        if self
            .map
            .is_none_or(|map| map.find(return_address.wrapping_sub(1)).is_none())
        {
            return false;
        }
        let Some(code) = read_array::<8>(return_address.wrapping_sub(8)) else {
            return false;
        };
        // The bytes may read as more than one call (an `e8` inside an earlier instruction):
        // any that fits will do.
        calls_ending_at(&code, return_address).any(|call| match call {
            Call::Direct(target) => callee.is_none_or(|f| resolve_stub(target) == Some(f)),
            Call::ThroughSlot(slot) => {
                callee.is_none_or(|f| read_array::<8>(slot).map(u64::from_ne_bytes) == Some(f))
            }
            Call::Indirect => true,
        })
    }
}

/// The part of the blocked thread's stack the search reads: copied at once, since the thread
/// may wake and unmap it.
struct Stack<'w> {
    start: u64,
    end: u64,
    bytes: &'w [u8],
}

impl<'w> Stack<'w> {
    fn read(sp: u64, stack_end: u64, window: &'w mut Vec<u8>) -> Option<Stack<'w>> {
        let end = stack_end.min(sp.saturating_add(SEARCH_BYTES));
        window.resize(end.checked_sub(sp)? as usize, 0);
        read_memory(sp, window).then_some(Stack {
            start: sp,
            end,
            bytes: window,
        })
    }

    fn word(&self, address: u64) -> Option<u64> {
        let offset = address.checked_sub(self.start)? as usize;
        let bytes = self.bytes.get(offset..offset.checked_add(8)?)?;
        Some(u64::from_ne_bytes(bytes.try_into().ok()?))
    }
}

/// A call instruction, as far as its bytes tell where it went.
#[derive(Debug, PartialEq)]
enum Call {
    /// `call rel32`.
    Direct(u64),
    /// `call *slot(%rip)`: the target is the word at `slot` (a GOT entry).
    ThroughSlot(u64),
    /// `call *reg` or `call *mem`: the target is not in the instruction.
    Indirect,
}

/// The call instructions the 8 bytes `code` before `return_address` can end with.
fn calls_ending_at(code: &[u8; 8], return_address: u64) -> impl Iterator<Item = Call> {
    let ends_with = |length: usize| &code[8 - length..];
    let rel32 = |bytes: &[u8]| i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let direct = match ends_with(5) {
        [0xe8, rest @ ..] => Some(Call::Direct(
            return_address.wrapping_add_signed(rel32(rest).into()),
        )),
        _ => None,
    };
    let through_slot = match ends_with(6) {
        [0xff, 0x15, rest @ ..] => Some(Call::ThroughSlot(
            return_address.wrapping_add_signed(rel32(rest).into()),
        )),
        _ => None,
    };
    // `ff /2` in every other addressing form: the form (ModRM, and SIB when present) gives
    // the length, which must end exactly at the return address.
    let indirect = [2, 3, 4, 6, 7]
        .into_iter()
        .any(|length| match ends_with(length) {
            [0xff, modrm, rest @ ..] => {
                modrm & 0x38 == 0x10 && indirect_length(*modrm, rest) == Some(length)
            }
            _ => false,
        })
        .then_some(Call::Indirect);
    [direct, through_slot, indirect].into_iter().flatten()
}

/// Bytes of locals that the prologue of the function at `start` allocates below its frame
/// record: its `sub $n, %rsp` within the first instructions after `push %rbp; mov %rsp,
/// %rbp` (other instructions may be scheduled between them). 0 if it has none that reads so.
fn locals_size(start: u64) -> u64 {
    const PROLOGUE_BYTES: usize = 40;
    read_array::<PROLOGUE_BYTES>(start).map_or(0, |code| locals_in(&code))
}

/// [`locals_size`] of a function whose code starts with `code`.
fn locals_in(code: &[u8]) -> u64 {
    let Some(after_mov) = code.windows(3).position(|w| w == [0x48, 0x89, 0xe5]) else {
        return 0;
    };
    let body = &code[after_mov + 3..];
    let sub_imm8 = body.windows(4).position(|w| w[..3] == [0x48, 0x83, 0xec]);
    let sub_imm32 = body.windows(7).position(|w| w[..3] == [0x48, 0x81, 0xec]);
    // The first `sub` in the code is the prologue's.
    match (sub_imm8, sub_imm32) {
        (Some(a), b) if b.is_none_or(|b| a < b) => u64::from(body[a + 3]),
        (_, Some(b)) => u64::from(u32::from_le_bytes([
            body[b + 3],
            body[b + 4],
            body[b + 5],
            body[b + 6],
        ])),
        _ => 0,
    }
}

/// Length of `ff /2` with this ModRM byte, followed by `rest`.
fn indirect_length(modrm: u8, rest: &[u8]) -> Option<usize> {
    let (mode, base) = (modrm >> 6, modrm & 7);
    let sib = usize::from(mode != 3 && base == 4);
    let displacement = match mode {
        0 if base == 5 => return None, // rip-relative: `ThroughSlot`
        0 if sib == 1 && rest.first()? & 7 == 5 => 4,
        0 | 3 => 0,
        1 => 1,
        _ => 4,
    };
    Some(2 + sib + displacement)
}

/// Where a call to `target` lands: through a PLT stub (`[endbr64] [bnd] jmp *slot(%rip)`)
/// to the function its GOT entry holds, else `target` itself.
fn resolve_stub(target: u64) -> Option<u64> {
    let code = read_array::<11>(target)?;
    let skip = if code.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        4
    } else {
        0
    };
    let skip = skip + usize::from(code[skip] == 0xf2);
    match code.get(skip..skip + 6)? {
        [0xff, 0x25, rel @ ..] => {
            let next = target + skip as u64 + 6;
            let rel = i32::from_le_bytes(rel.try_into().ok()?);
            read_array::<8>(next.wrapping_add_signed(rel.into())).map(u64::from_ne_bytes)
        }
        _ => Some(target),
    }
}

fn read_array<const N: usize>(address: u64) -> Option<[u8; N]> {
    let mut bytes = [0; N];
    read_memory(address, &mut bytes).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calls that code ending with `bytes` (after nops) at `at` can be.
    fn calls(bytes: &[u8], at: u64) -> Vec<Call> {
        let mut code = [0x90; 8];
        code[8 - bytes.len()..].copy_from_slice(bytes);
        calls_ending_at(&code, at).collect()
    }

    #[test]
    fn locals_are_read_from_the_prologue() {
        // push %rbp; mov $1,%edx; mov %rsp,%rbp; sub $0x1000,%rsp (as gcc -O2 schedules it)
        let prologue = [
            0x55, 0xba, 1, 0, 0, 0, 0x48, 0x89, 0xe5, 0x48, 0x81, 0xec, 0, 0x10, 0, 0,
        ];
        assert_eq!(locals_in(&prologue), 0x1000);
        // push %rbp; mov %rsp,%rbp; push %rbx; sub $0x18,%rsp
        assert_eq!(
            locals_in(&[0x55, 0x48, 0x89, 0xe5, 0x53, 0x48, 0x83, 0xec, 0x18]),
            0x18
        );
        // No frame record set up: no bound.
        assert_eq!(locals_in(&[0x48, 0x83, 0xec, 0x18, 0xc3]), 0);
    }

    #[test]
    fn calls_are_decoded_from_the_bytes_before_the_return_address() {
        let at = 0x1000;
        // call 0x1000 - 0x10
        assert_eq!(
            calls(&[0xe8, 0xf0, 0xff, 0xff, 0xff], at),
            [Call::Direct(0xff0)]
        );
        // call *0x20(%rip)
        assert_eq!(
            calls(&[0xff, 0x15, 0x20, 0, 0, 0], at),
            [Call::ThroughSlot(0x1020)]
        );
        // mov -0x18(%rbp),%eax; mov %eax,%edi; call *%rdx: an e8 five bytes back, but the
        // call is the indirect one.
        assert!(calls(&[0x8b, 0x45, 0xe8, 0x89, 0xc7, 0xff, 0xd2], at).contains(&Call::Indirect));
        // call *%rax, call *%r8 (REX), call *0x18(%rbx), call *(%rax,%rbx,8), call *0x100(%rcx)
        for bytes in [
            &[0xff, 0xd0][..],
            &[0x41, 0xff, 0xd0],
            &[0xff, 0x53, 0x18],
            &[0xff, 0x14, 0xd8],
            &[0xff, 0x91, 0, 1, 0, 0],
        ] {
            assert_eq!(calls(bytes, at), [Call::Indirect], "{bytes:x?}");
        }
        // jmp *%rax (ff /4), a mov ending in ff d0's place, and plain data are no calls.
        for bytes in [&[0xff, 0xe0][..], &[0x48, 0x89, 0xc7], &[0, 0, 0, 0]] {
            assert_eq!(calls(bytes, at), [], "{bytes:x?}");
        }
    }
}
