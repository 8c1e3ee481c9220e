//! `pthread_create` as the program sees it with the library loaded: each new thread reports
//! its id as it starts, so `STACKSAMPLE_TID=all` and name patterns sample threads that live
//! for less than a rescan of `/proc/self/task`.
//!
//! While no session wants new threads, calls go straight to glibc.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::base::glibc;
use crate::threads;

type StartRoutine = extern "C" fn(*mut c_void) -> *mut c_void;
type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartRoutine,
    *mut c_void,
) -> libc::c_int;

/// glibc's `pthread_create`, looked up once (at load time, or at the first call if that
/// comes first: our own constructor starts threads).
static GLIBC_PTHREAD_CREATE: AtomicUsize = AtomicUsize::new(0);
/// Whether a session wants to hear of new threads.
static WATCHING: AtomicBool = AtomicBool::new(false);
/// Threads started since the sampler last looked; bounded, overflow is found by rescans.
static STARTED: Mutex<Vec<i32>> = Mutex::new(Vec::new());
const MAX_PENDING: usize = 4096;

#[ctor::ctor]
fn resolve_at_load() {
    glibc_pthread_create();
}

fn glibc_pthread_create() -> usize {
    glibc::next_definition(&GLIBC_PTHREAD_CREATE, c"pthread_create")
}

/// Starts or stops collecting the ids of new threads.
pub fn watch(enabled: bool) {
    WATCHING.store(enabled, Ordering::Release);
    if !enabled {
        take_started();
    }
}

/// Ids of the threads started since the last call.
pub fn take_started() -> Vec<i32> {
    threads::with_fork_guard(|| {
        STARTED
            .lock()
            .map(|mut started| std::mem::take(&mut *started))
            .unwrap_or_default()
    })
}

/// What the trampoline needs to run the program's thread.
struct Start {
    routine: StartRoutine,
    argument: *mut c_void,
}

extern "C" fn announce_then_run(start: *mut c_void) -> *mut c_void {
    // SAFETY: `start` is the Box<Start> leaked by pthread_create below, handed to us alone.
    let start = unsafe { Box::from_raw(start as *mut Start) };
    if WATCHING.load(Ordering::Acquire) {
        let tid = threads::current_tid();
        threads::with_fork_guard(|| {
            if let Ok(mut started) = STARTED.lock() {
                if started.len() < MAX_PENDING {
                    started.push(tid);
                }
            }
        });
    }
    (start.routine)(start.argument)
}

/// Interposed `pthread_create(3)`.
///
/// # Safety
/// As for `pthread_create(3)`.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: StartRoutine,
    argument: *mut c_void,
) -> libc::c_int {
    let glibc = glibc_pthread_create();
    if glibc == 0 {
        return libc::EAGAIN;
    }
    // SAFETY: the address is glibc's pthread_create, which has this signature.
    let glibc: PthreadCreate = unsafe { std::mem::transmute::<usize, PthreadCreate>(glibc) };
    // A thread the profiler's own threads start (the sampler starts the drain) is the
    // profiler's too, never sampled.
    if !WATCHING.load(Ordering::Acquire) || threads::is_own_thread(threads::current_tid()) {
        // SAFETY: forwarded preconditions.
        return unsafe { glibc(thread, attr, routine, argument) };
    }
    let start = Box::into_raw(Box::new(Start { routine, argument }));
    // SAFETY: forwarded preconditions; the trampoline takes ownership of `start`.
    let result = unsafe { glibc(thread, attr, announce_then_run, start as *mut c_void) };
    if result != 0 {
        // SAFETY: the thread was not created, so `start` is still ours.
        drop(unsafe { Box::from_raw(start) });
    }
    result
}
