//! Threads and processes of the profiler itself: its threads start with the program's
//! signals blocked, and `pid()` names the process (which changes in a forked child).

use std::thread::JoinHandle;

use super::error::Error;

/// This process's id. Async-signal-safe.
pub fn pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Starts a profiler thread with every asynchronous signal blocked from its first
/// instruction (it inherits the mask), so none of the program's signals is delivered to it.
pub fn spawn<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    let previous = block_async_signals();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body);
    restore_signal_mask(&previous);
    spawned.map_err(|source| Error::System {
        action: "start a profiler thread",
        source,
    })
}

/// Blocks every signal that can be blocked and is not a fault in the calling thread, so a
/// process-directed signal (a program's `SIGALRM` timer, `kill -USR2`) is delivered to one of
/// the program's own threads, never to a profiler thread where its handler would run on a
/// thread it does not know. Returns the mask before, for `restore_signal_mask`.
pub fn block_async_signals() -> libc::sigset_t {
    const FAULTS: [libc::c_int; 6] = [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    // SAFETY: sigset_t is plain data; the calls only touch `set` and `previous`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for sig in FAULTS {
            libc::sigdelset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
        previous
    }
}

/// Puts back a mask saved by `block_async_signals`.
pub fn restore_signal_mask(previous: &libc::sigset_t) {
    // SAFETY: `previous` is a valid signal set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
}
