//! Sample requests: a thread-directed signal queued with `rt_tgsigqueueinfo` (the `tgkill`
//! system call with a payload). Its value names the slot and the armed sequence number, so
//! the handler tells our signals from the program's own and from our own stale ones.

use std::io;
use std::ptr;

use super::statics::sample_signal;
use crate::base::thread::pid;

/// Upper 24 bits of a request's value; the rest is slot index (8 bits) and armed word.
const REQUEST_MAGIC: u64 = 0x5ac_5a3;

/// Our requests are queued by this process with `SI_QUEUE` and a value whose upper half is
/// [`REQUEST_MAGIC`]; the lower half names the slot and its armed word.
pub fn decode_request(info: *const libc::siginfo_t) -> Option<(usize, u32)> {
    if info.is_null() {
        return None;
    }
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers; for SI_QUEUE the
    // `_rt` union member (pid, uid, value) is the one filled in.
    let (sender, value) = unsafe {
        let info = &*info;
        if info.si_code != libc::SI_QUEUE {
            return None;
        }
        (info.si_pid(), info.si_value().sival_ptr as u64)
    };
    if sender != pid() || value >> 40 != REQUEST_MAGIC {
        return None;
    }
    let slot_index = ((value >> 32) & 0xff) as usize;
    Some((slot_index, value as u32))
}

/// Queues a sample request for thread `tid` of this process.
pub fn request_sample(tid: i32, slot_index: usize, armed: u32) -> io::Result<()> {
    let value = (REQUEST_MAGIC << 40) | ((slot_index as u64 & 0xff) << 32) | u64::from(armed);
    let signal = sample_signal();
    let info = QueuedSignalInfo::new(signal, value);
    // SAFETY: `info` is a fully initialised 128-byte siginfo laid out as the kernel expects
    // for SI_QUEUE; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid(),
            tid,
            signal,
            &info as *const QueuedSignalInfo,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `siginfo_t` layout of an `SI_QUEUE` signal on Linux x86_64.
#[repr(C)]
struct QueuedSignalInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u8; 96],
}

const _: () = assert!(std::mem::size_of::<QueuedSignalInfo>() == 128);
const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() == 128);

impl QueuedSignalInfo {
    fn new(signo: i32, value: u64) -> QueuedSignalInfo {
        QueuedSignalInfo {
            signo,
            errno: 0,
            code: libc::SI_QUEUE,
            _pad: 0,
            pid: pid(),
            // SAFETY: getuid has no preconditions.
            uid: unsafe { libc::getuid() },
            value,
            _rest: [0; 96],
        }
    }
}
/// Takes a request of ours that is pending on the calling thread (possible only while the
/// thread blocks the sampling signal) so that it cannot outlive an exec. Anything else that
/// was pending is queued again.
pub fn discard_pending_requests() {
    /// Real-time signals queue: a thread that blocked ours may hold several requests.
    const MAX_PENDING: usize = 64;
    let signal = sample_signal();
    // SAFETY: sigset_t and siginfo_t are plain data; the calls only use these locals; the
    // signal mask is restored before returning.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        if libc::sigismember(&pending, signal) != 1 {
            return;
        }
        let mut only_sample: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut only_sample);
        libc::sigaddset(&mut only_sample, signal);
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &only_sample, &mut previous);
        let mut foreign: [libc::siginfo_t; 4] = std::mem::zeroed();
        let mut kept = 0;
        let no_wait = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        for _ in 0..MAX_PENDING {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            if libc::sigtimedwait(&only_sample, &mut info, &no_wait) != signal {
                break;
            }
            if decode_request(&info).is_some() {
                continue;
            }
            if let Some(slot) = foreign.get_mut(kept) {
                *slot = info;
                kept += 1;
            }
        }
        for info in foreign.iter().take(kept) {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid(),
                libc::gettid(),
                signal,
                info as *const libc::siginfo_t,
            );
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, ptr::null_mut());
    }
}
