//! The profiler's own threads (the sampler, each drain), which are never sampled.

use std::sync::atomic::{AtomicI32, Ordering};

use super::proc::current_tid;

/// Threads of the profiler itself (the sampler, the session's drain, each `Profiler`'s drain),
/// never sampled.
static OWN_THREADS: [AtomicI32; 8] = [const { AtomicI32::new(0) }; 8];

/// Records the calling thread as one of the profiler's own.
pub fn register_own_thread() {
    let tid = current_tid();
    for slot in &OWN_THREADS {
        if slot
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

/// Forgets the calling thread as one of the profiler's own (it is about to exit).
pub fn unregister_own_thread() {
    let tid = current_tid();
    for slot in &OWN_THREADS {
        let _ = slot.compare_exchange(tid, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// In a forked child: the profiler threads of the parent do not exist here.
pub fn forget_own_threads() {
    for slot in &OWN_THREADS {
        slot.store(0, Ordering::Release);
    }
}

pub fn is_own_thread(tid: i32) -> bool {
    OWN_THREADS
        .iter()
        .any(|slot| slot.load(Ordering::Acquire) == tid)
}
