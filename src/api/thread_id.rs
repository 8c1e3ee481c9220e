//! Thread ids as callers have them: a kernel id (`gettid()`, Python's
//! `threading.get_native_id()`) or a `pthread_t` (`pthread_self()`, Python's
//! `threading.get_ident()`, which the seed API's users pass).
//!
//! A `pthread_t` is glibc's thread descriptor address. Its kernel id is read with
//! `pthread_getcpuclockid`, whose clock id encodes the thread id the way the kernel defines
//! per-thread CPU clocks (`~tid << 3 | 6`), so no glibc structure layout is assumed. glibc
//! dereferences the descriptor, so it is first checked to be readable memory; a descriptor
//! of an ended thread holds tid 0 and is refused by glibc itself.

use crate::base::error::Error;
use crate::modules::read_memory;
use crate::threads;

/// Bytes of a thread descriptor that must be readable before glibc is handed it (glibc's
/// `struct pthread` keeps the tid well inside its first kilobyte).
const DESCRIPTOR_PROBE: usize = 1024;
/// Low bits of a per-thread CPU clock id: per-thread flag (4) and the scheduler clock (2).
const THREAD_SCHED_CLOCK: libc::clockid_t = 6;

/// The kernel thread id of `id`, a kernel id or a `pthread_t` of a thread of this process.
pub fn kernel_tid(id: u64) -> Result<i32, Error> {
    if let Ok(tid) = i32::try_from(id) {
        if tid > 0 && threads::exists(tid) {
            return Ok(tid);
        }
    }
    pthread_kernel_tid(id)
        .filter(|&tid| threads::exists(tid))
        .ok_or_else(|| {
            Error::argument(
                "thread id",
                id,
                "not a thread of this process: pass a kernel id (gettid, get_native_id) or a pthread_t (pthread_self, get_ident) of a running thread",
            )
        })
}

fn pthread_kernel_tid(id: u64) -> Option<i32> {
    if id == 0 || !readable(id, DESCRIPTOR_PROBE) {
        return None;
    }
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `id` points at readable memory of at least the probed size (checked above),
    // which is all glibc reads; a descriptor of an ended thread makes it return ESRCH.
    if unsafe { libc::pthread_getcpuclockid(id as libc::pthread_t, &mut clock) } != 0 {
        return None;
    }
    (clock & 7 == THREAD_SCHED_CLOCK).then_some(!(clock >> 3))
}

/// Whether `[address, address + len)` of this process can be read.
fn readable(address: u64, len: usize) -> bool {
    read_memory(address, &mut vec![0u8; len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pthread_ids_and_kernel_ids_name_the_same_thread() {
        let own = threads::current_tid();
        // SAFETY: pthread_self has no preconditions.
        let pthread = unsafe { libc::pthread_self() } as u64;
        assert_eq!(kernel_tid(own as u64).unwrap(), own);
        assert_eq!(kernel_tid(pthread).unwrap(), own);
        let (sender, receiver) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            // SAFETY: as above.
            let pthread = unsafe { libc::pthread_self() } as u64;
            sender.send((pthread, threads::current_tid())).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
        });
        let (pthread, tid) = receiver.recv().unwrap();
        assert_eq!(kernel_tid(pthread).unwrap(), tid);
        other.join().unwrap();
    }

    #[test]
    fn unknown_ids_are_refused() {
        assert!(kernel_tid(0).is_err());
        assert!(kernel_tid(16).is_err());
        assert!(kernel_tid(i32::MAX as u64).is_err());
    }
}
