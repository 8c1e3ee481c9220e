//! `execl`, `execlp` and `execle`, the variadic `exec` family, as the program sees them: each
//! gathers its argument list and calls our `execv`, `execvp` or `execve` (see `exec`), so a
//! new image never meets a pending sample request.
//!
//! Stable Rust cannot define a C-variadic function, so each entry point is a few naked
//! instructions. Under the x86_64 System V convention a variadic call passes the path and
//! the first five pointers after it in registers (rdi, then rsi, rdx, rcx, r8, r9) and the
//! rest on the stack above the return address. The entry stores those five registers next to
//! each other on its own stack and calls [`gather_and_exec`] with the path, where they are,
//! and where the caller's stack arguments are.

use std::ffi::{c_char, c_int};

use super::exec::{execv, execve, execvp};

/// Which list call came in.
const EXECL: c_int = 0;
const EXECLP: c_int = 1;
const EXECLE: c_int = 2;
/// Pointers that arrive in registers after the path.
const IN_REGISTERS: usize = 5;

/// Defines one entry point: lays out the register arguments and calls `gather_and_exec`.
macro_rules! list_entry {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As for the libc function of that name: a NUL-terminated path and a NULL-terminated
        /// list of NUL-terminated arguments (for `execle`, followed by the environment).
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() -> c_int {
            std::arch::naked_asm!(
                "push rbp",
                "mov rbp, rsp",
                // Keeps the stack 16-byte aligned at the call after five pushes.
                "sub rsp, 8",
                "push r9",
                "push r8",
                "push rcx",
                "push rdx",
                "push rsi",
                // gather_and_exec(path, in_registers, on_stack, kind)
                "mov rsi, rsp",
                "lea rdx, [rbp + 16]",
                "mov ecx, {kind}",
                "call {gather}",
                "leave",
                "ret",
                kind = const $kind,
                gather = sym gather_and_exec,
            )
        }
    };
}

list_entry!(
    /// Interposed `execl(3)`.
    execl,
    EXECL
);
list_entry!(
    /// Interposed `execlp(3)`.
    execlp,
    EXECLP
);
list_entry!(
    /// Interposed `execle(3)`.
    execle,
    EXECLE
);

/// Collects the argument list (and for `execle` the environment after it) and calls the
/// vector form of the same exec.
///
/// # Safety
/// `in_registers` points at the five register arguments and `on_stack` at the caller's
/// stack arguments, as the entry points lay them out; the caller of the `exec` passed a
/// NULL-terminated list.
unsafe extern "C" fn gather_and_exec(
    path: *const c_char,
    in_registers: *const *const c_char,
    on_stack: *const *const c_char,
    kind: c_int,
) -> c_int {
    // SAFETY: index `i` of the caller's argument list after the path lies in one of the two
    // areas, per the calling convention and this function's contract.
    let argument = |i: usize| unsafe {
        if i < IN_REGISTERS {
            *in_registers.add(i)
        } else {
            *on_stack.add(i - IN_REGISTERS)
        }
    };
    let mut argv = Vec::new();
    loop {
        let next = argument(argv.len());
        argv.push(next);
        if next.is_null() {
            break;
        }
    }
    // SAFETY: `argv` is the caller's NULL-terminated list; the vector forms have the
    // preconditions the list forms have.
    unsafe {
        match kind {
            EXECLP => execvp(path, argv.as_ptr()),
            EXECLE => {
                let envp = argument(argv.len()) as *const *const c_char;
                execve(path, argv.as_ptr(), envp)
            }
            _ => execv(path, argv.as_ptr()),
        }
    }
}
