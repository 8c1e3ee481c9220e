//! The frame pointer of a thread blocked in a system call, found on its stack. The kernel
//! reports only the stack and instruction pointers of a blocked thread, and the unwind rule
//! of code built with frame pointers needs the third. A stack slot is taken for the frame
//! pointer only when it cannot be a coincidence: the word above it is a return address just
//! after a call instruction in a loaded object, a direct call there targets the function
//! being unwound, and the unwind tables of that caller agree with the frame it leads to.

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
        // Lent to the stack copy while the search borrows the rest.
        let mut window = std::mem::take(self.window);
        let found = Stack::read(regs.sp(), stack_end, &mut window).and_then(|stack| {
            (regs.sp()..stack.end.saturating_sub(8))
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
        // The caller's own rule, from where the candidate leaves it, must lead to the end of
        // the stack or to another return address after a call.
        let Some(caller) = FrameAddress::from_return_address(return_address) else {
            return false;
        };
        match self.unwind(caller, &mut frame, stack) {
            Ok(None) => true,
            Ok(Some(next)) => self.follows_call(next, None),
            Err(()) => false,
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
        match call_ending_at(&code, return_address) {
            Some(Call::Direct(target)) => callee.is_none_or(|f| resolve_stub(target) == Some(f)),
            Some(Call::ThroughSlot(slot)) => {
                callee.is_none_or(|f| read_array::<8>(slot).map(u64::from_ne_bytes) == Some(f))
            }
            Some(Call::Indirect) => true,
            None => false,
        }
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

/// Decodes the call instruction that ends at `return_address`, whose 8 preceding bytes are
/// `code`; `None` if none does.
fn call_ending_at(code: &[u8; 8], return_address: u64) -> Option<Call> {
    let ends_with = |length: usize| &code[8 - length..];
    let rel32 = |bytes: &[u8]| i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if let [0xe8, rest @ ..] = ends_with(5) {
        let target = return_address.wrapping_add_signed(rel32(rest).into());
        return Some(Call::Direct(target));
    }
    if let [0xff, 0x15, rest @ ..] = ends_with(6) {
        let slot = return_address.wrapping_add_signed(rel32(rest).into());
        return Some(Call::ThroughSlot(slot));
    }
    // `ff /2` with every addressing form: the form (ModRM, and SIB when present) gives the
    // length, which must end exactly at the return address.
    [2, 3, 4, 6, 7]
        .into_iter()
        .any(|length| match ends_with(length) {
            [0xff, modrm, rest @ ..] => {
                modrm & 0x38 == 0x10 && indirect_length(*modrm, rest) == Some(length)
            }
            _ => false,
        })
        .then_some(Call::Indirect)
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

    fn ending(bytes: &[u8]) -> [u8; 8] {
        let mut code = [0x90; 8];
        code[8 - bytes.len()..].copy_from_slice(bytes);
        code
    }

    #[test]
    fn calls_are_decoded_from_the_bytes_before_the_return_address() {
        let at = 0x1000;
        // call 0x1000 - 0x10
        assert_eq!(
            call_ending_at(&ending(&[0xe8, 0xf0, 0xff, 0xff, 0xff]), at),
            Some(Call::Direct(0xff0))
        );
        // call *0x20(%rip)
        assert_eq!(
            call_ending_at(&ending(&[0xff, 0x15, 0x20, 0, 0, 0]), at),
            Some(Call::ThroughSlot(0x1020))
        );
        // call *%rax, call *%r8 (REX), call *0x18(%rbx), call *(%rax,%rbx,8), call *0x100(%rcx)
        for bytes in [
            &[0xff, 0xd0][..],
            &[0x41, 0xff, 0xd0],
            &[0xff, 0x53, 0x18],
            &[0xff, 0x14, 0xd8],
            &[0xff, 0x91, 0, 1, 0, 0],
        ] {
            assert_eq!(
                call_ending_at(&ending(bytes), at),
                Some(Call::Indirect),
                "{bytes:x?}"
            );
        }
        // jmp *%rax (ff /4), a mov ending in ff d0's place, and plain data are no calls.
        for bytes in [&[0xff, 0xe0][..], &[0x48, 0x89, 0xc7], &[0, 0, 0, 0]] {
            assert_eq!(call_ending_at(&ending(bytes), at), None, "{bytes:x?}");
        }
    }
}
