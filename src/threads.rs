//! Threads of this process: ids, existence, names. Ordinary threads only.

/// Kernel id of the calling thread.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Whether `tid` is a live thread of this process (signal 0 checks without sending).
pub fn exists(tid: i32) -> bool {
    // SAFETY: tgkill with signal 0 performs only the permission and existence checks.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) == 0 }
}

/// The thread's name from `/proc/self/task/<tid>/comm`, if it still exists.
pub fn name(tid: i32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

/// The command line of this process, arguments joined by spaces, on one line (control
/// characters such as newlines in `python -c` scripts are escaped).
pub fn command_line() -> String {
    let raw = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let joined = raw
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    let mut line = String::with_capacity(joined.len());
    for c in joined.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// Blocks `signals` in the calling thread, so the profiler's own threads never take the
/// program's process-directed signals or our sampling signal.
pub fn block_signals(signals: &[libc::c_int]) {
    // SAFETY: sigset_t is plain data; the calls only touch `set`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
