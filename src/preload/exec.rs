//! `execve` and friends, and `_exit`, as the program sees them with the library loaded.
//!
//! A new program image starts with SIGPROF at its default action, terminate; a sample
//! request of ours still pending at that moment would kill it. So before the image is
//! replaced, sampling stops, the profile is written (the destructor will not run), and any
//! pending request of ours is discarded. If the exec fails, sampling resumes.
//!
//! Covered: `execve`, `execv`, `execvp`, `execvpe`, `fexecve`, and through `exec_list` the
//! variadic `execl`, `execlp` and `execle`.

use std::ffi::{c_char, c_int};
use std::sync::atomic::AtomicUsize;

use super::lifecycle;
use crate::base::glibc;
use crate::engine::handler;

type ExecPath =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
type ExecFile = unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;

/// glibc's `execvp` and `execvpe` (PATH search and the ENOEXEC shell fallback), looked up
/// at load time: `dlsym` is not safe in a forked child of a threaded program.
static GLIBC_EXECVP: AtomicUsize = AtomicUsize::new(0);
static GLIBC_EXECVPE: AtomicUsize = AtomicUsize::new(0);

#[ctor::ctor]
fn resolve_at_load() {
    glibc::next_definition(&GLIBC_EXECVP, c"execvp");
    glibc::next_definition(&GLIBC_EXECVPE, c"execvpe");
}

/// Stops sampling around an exec and resumes it if the exec returns (it failed). An exec of a
/// path that is not executable fails without replacing anything, so it goes straight through
/// (programs that search PATH themselves try many such paths).
fn around_exec(path: Option<*const c_char>, exec: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: the caller passes a NUL-terminated path (or an invalid one, which access
    // rejects like execve would).
    if path.is_some_and(|path| unsafe { libc::access(path, libc::X_OK) } != 0) {
        return exec();
    }
    let suspended = lifecycle::stop_before_image_ends();
    let result = exec();
    if suspended {
        // SAFETY: __errno_location is always valid for the calling thread.
        let errno = unsafe { *libc::__errno_location() };
        lifecycle::resume_after_failed_exec();
        // SAFETY: as above; the caller reads errno from the failed exec.
        unsafe { *libc::__errno_location() = errno };
    }
    result
}

fn missing_function() -> c_int {
    // SAFETY: __errno_location is always valid for the calling thread.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}

/// Interposed `_exit(2)`: asks for the profile and waits (bounded) until it is written, since
/// the destructor will not run. `_exit` is called from signal handlers and vfork children,
/// so this path only uses atomics and a futex: no join, no lock, no allocation.
///
/// # Safety
/// As for `_exit(2)`.
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    if handler::dump_and_wait() == handler::DumpWait::Abandoned {
        handler::say_no_profile(b"_exit");
    }
    // SAFETY: exit_group ends the process; it does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
    unreachable_exit()
}

/// Interposed `_Exit(3)`: the same as `_exit`.
///
/// # Safety
/// As for `_Exit(3)`.
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    // SAFETY: forwarded preconditions.
    unsafe { _exit(status) }
}

/// exit_group does not return; if it somehow did, end with SIGKILL rather than continue.
fn unreachable_exit() -> ! {
    loop {
        // SAFETY: raising SIGKILL at ourselves ends the process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

/// Interposed `execve(2)`.
///
/// # Safety
/// As for `execve(2)`.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the system call validates the caller's pointers itself (EFAULT).
    around_exec(Some(path), || unsafe {
        libc::syscall(libc::SYS_execve, path, argv, envp) as c_int
    })
}

/// Interposed `execv(3)`.
///
/// # Safety
/// As for `execv(3)`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: `environ` is the process environment glibc maintains; the system call
    // validates the pointers.
    around_exec(Some(path), || unsafe {
        libc::syscall(libc::SYS_execve, path, argv, environ) as c_int
    })
}

/// Interposed `fexecve(3)`.
///
/// # Safety
/// As for `fexecve(3)`.
#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let empty = c"".as_ptr();
    // SAFETY: execveat with AT_EMPTY_PATH runs the file `fd` refers to, as glibc does.
    around_exec(None, || unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty,
            argv,
            envp,
            libc::AT_EMPTY_PATH,
        ) as c_int
    })
}

/// Interposed `execvp(3)`.
///
/// # Safety
/// As for `execvp(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    let glibc = glibc::next_definition(&GLIBC_EXECVP, c"execvp");
    if glibc == 0 {
        return missing_function();
    }
    // SAFETY: the address is glibc's execvp, which has this signature.
    let glibc: ExecFile = unsafe { std::mem::transmute::<usize, ExecFile>(glibc) };
    // SAFETY: forwarded preconditions.
    around_exec(None, || unsafe { glibc(file, argv) })
}

/// Interposed `execvpe(3)`.
///
/// # Safety
/// As for `execvpe(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    let glibc = glibc::next_definition(&GLIBC_EXECVPE, c"execvpe");
    if glibc == 0 {
        return missing_function();
    }
    // SAFETY: the address is glibc's execvpe, which has this signature.
    let glibc: ExecPath = unsafe { std::mem::transmute::<usize, ExecPath>(glibc) };
    // SAFETY: forwarded preconditions.
    around_exec(None, || unsafe { glibc(file, argv, envp) })
}
