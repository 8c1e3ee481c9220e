//! The stack the unwinding runs on: one per slot, owned by the library, so the program's
//! stack carries only the kernel's signal frame and the handler's entry. A fiber on a 16 KB
//! block of the heap, or a thread a few KB from its end, is sampled whole without a byte
//! written below what the kernel itself writes.

use std::ffi::c_void;
use std::ptr;

/// Usable bytes of each stack. The walk needs about 10 KB (framehop's rule storage, the
/// snapshot lookups); six times that leaves room for a deeper framehop. Only the pages a
/// walk touches are ever committed (docs/reliability.md has the figures).
const USABLE_BYTES: usize = 64 * 1024;
/// A page that is never accessible below the stack: an overflow faults instead of writing
/// into whatever memory lies below.
const GUARD_BYTES: usize = 4096;

/// A stack mapped for the handler of one slot, guard page below.
pub struct HandlerStack {
    mapping: *mut c_void,
}

// SAFETY: the stack is plain memory; the slot state machine gives it one user at a time.
unsafe impl Send for HandlerStack {}

impl HandlerStack {
    /// Maps a new stack (not in signal context). `None` when the kernel refuses the memory.
    pub fn map() -> Option<HandlerStack> {
        // SAFETY: a new anonymous mapping, aliasing nothing; MAP_NORESERVE commits no
        // memory up front.
        let mapping = unsafe {
            libc::mmap(
                ptr::null_mut(),
                GUARD_BYTES + USABLE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return None;
        }
        let stack = HandlerStack { mapping };
        // SAFETY: the first page of the mapping made above.
        let guarded = unsafe { libc::mprotect(mapping, GUARD_BYTES, libc::PROT_NONE) } == 0;
        guarded.then_some(stack)
    }

    /// Lowest and one past the highest usable address.
    pub fn range(&self) -> (u64, u64) {
        let low = self.mapping as u64 + GUARD_BYTES as u64;
        (low, low + USABLE_BYTES as u64)
    }

    /// Runs `body` with the stack pointer at the top of this stack, then returns to the
    /// caller's stack. Async-signal-safe: a register move, a call and a move back.
    pub fn run<F: FnMut()>(&mut self, body: &mut F) {
        extern "C" fn trampoline<F: FnMut()>(body: *mut c_void) {
            // SAFETY: `run` passes a pointer to its `&mut F`, alive for the call.
            let body = unsafe { &mut *body.cast::<F>() };
            body();
        }
        // The ABI wants the stack 16-byte aligned at a call; the mapping is page-aligned.
        let (_, top) = self.range();
        // SAFETY: `top` ends memory this stack owns, mapped read-write, used by nobody else
        // while its slot is being written; r12 is callee-saved, so it still holds the
        // program's stack pointer when the trampoline returns; the trampoline's C ABI
        // clobbers are declared; a panic cannot cross it (an extern "C" function aborts).
        unsafe {
            std::arch::asm!(
                "mov r12, rsp",
                "mov rsp, {top}",
                "call {trampoline}",
                "mov rsp, r12",
                top = in(reg) top,
                trampoline = in(reg) trampoline::<F> as *const () as usize,
                in("rdi") body as *mut F as *mut c_void,
                out("r12") _,
                clobber_abi("C"),
            );
        }
    }
}

impl Drop for HandlerStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, used by no slot any more (the slot owns us).
        unsafe { libc::munmap(self.mapping, GUARD_BYTES + USABLE_BYTES) };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_body_runs_on_the_stack_and_the_caller_gets_its_own_back() {
        let mut stack = HandlerStack::map().unwrap();
        let (low, high) = stack.range();
        let mut seen = 0u64;
        let before = std::hint::black_box(&seen) as *const u64 as u64;
        stack.run(&mut || {
            let marker = 0u8;
            seen = std::hint::black_box(&marker) as *const u8 as u64;
        });
        assert!(
            (low..high).contains(&seen),
            "{seen:#x} in {low:#x}..{high:#x}"
        );
        let after = std::hint::black_box(&seen) as *const u64 as u64;
        assert_eq!(before, after);
        assert!(!(low..high).contains(&before));
    }
}
