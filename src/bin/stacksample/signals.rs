//! Termination signals while `record` waits for its command: SIGINT, SIGTERM, SIGHUP and
//! SIGQUIT (the library writes the profile on each) are blocked in every thread of `record`
//! and taken by one thread with `sigwaitinfo`, which passes them on to the command (it then
//! writes its profile and ends as the signal says).
//!
//! A signal the terminal sent (Ctrl-C, a hang-up: `SI_KERNEL`) went to the whole foreground
//! process group, the command included, so it is not sent a second time. `--duration` sends
//! SIGTERM from here too. The command is never signalled after it was reaped, so a recycled
//! pid cannot receive it.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::failure::Failure;

pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The set of [`FORWARDED`] signals.
fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a sigset_t we own.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the forwarded signals in this thread and every thread started after; call before
/// any thread starts. The command must undo it: see [`unblock_in_child`].
pub fn block() -> Result<(), Failure> {
    change_mask(libc::SIG_BLOCK).map_err(|e| Failure::new(format!("cannot block signals: {e}")))
}

/// Unblocks the forwarded signals in the command between fork and exec (the mask survives
/// exec, and the command must get its signals).
pub fn unblock_in_child(command: &mut Command) {
    // SAFETY: the closure only calls pthread_sigmask, which is async-signal-safe, as the
    // code between fork and exec must be.
    unsafe {
        command.pre_exec(|| change_mask(libc::SIG_UNBLOCK));
    }
}

fn change_mask(how: libc::c_int) -> std::io::Result<()> {
    let set = forwarded_set();
    // SAFETY: valid set, no old mask requested.
    match unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        error => Err(std::io::Error::from_raw_os_error(error)),
    }
}

/// The command's pid while it may be signalled; `None` once it was reaped.
#[derive(Clone)]
pub struct Target {
    pid: Arc<Mutex<Option<i32>>>,
}

impl Target {
    pub fn new(pid: i32) -> Target {
        Target {
            pid: Arc::new(Mutex::new(Some(pid))),
        }
    }

    /// Sends `sig` unless the command was reaped; true when sent.
    pub fn send(&self, sig: libc::c_int) -> bool {
        let Ok(pid) = self.pid.lock() else {
            return false;
        };
        // SAFETY: kill(2) of a child we have not reaped (its pid is still ours).
        pid.is_some_and(|pid| unsafe { libc::kill(pid, sig) } == 0)
    }

    /// Called after the command ended and before it is reaped: no signal is sent after.
    pub fn ended(&self) {
        if let Ok(mut pid) = self.pid.lock() {
            *pid = None;
        }
    }
}

/// Starts the thread that forwards signals to `target`.
pub fn forward(target: Target) -> Result<(), Failure> {
    std::thread::Builder::new()
        .name("forward-signals".to_owned())
        .spawn(move || loop {
            let set = forwarded_set();
            // SAFETY: a zeroed siginfo_t is a valid out-parameter.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid set and out-parameter; the signals are blocked in all threads.
            let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
            if sig > 0 && info.si_code != libc::SI_KERNEL {
                target.send(sig);
            }
        })
        .map(drop)
        .map_err(|e| Failure::new(format!("cannot start the signal thread: {e}")))
}

/// Sends SIGTERM to `target` after `duration` (`record --duration`); the flag tells whether
/// it was sent.
pub fn stop_after(target: Target, duration: Duration) -> Result<Arc<AtomicBool>, Failure> {
    let sent = Arc::new(AtomicBool::new(false));
    let flag = sent.clone();
    std::thread::Builder::new()
        .name("duration".to_owned())
        .spawn(move || {
            std::thread::sleep(duration);
            // Set first: the command may end of it before `send` returns.
            flag.store(true, Ordering::SeqCst);
            if !target.send(libc::SIGTERM) {
                flag.store(false, Ordering::SeqCst);
            }
        })
        .map(|_| sent)
        .map_err(|e| Failure::new(format!("cannot start the timer thread: {e}")))
}

/// Ends `record` by `sig` as the command ended: default action, no core file, unblocked.
pub fn die_by(sig: libc::c_int) -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let mut set = forwarded_set();
    // SAFETY: plain system calls on values we own; `sig` comes from the command's wait status.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    // A signal whose default action does not end the process (SIGCHLD): the shell's code.
    std::process::exit(128 + sig)
}
