//! The statics a sample request's handler reads: the slot pool, the unwind snapshot, the
//! sampling signal and where fibers start. Each is set on an ordinary thread before a handler
//! can need it.

use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};

use super::slots::SlotPool;
use crate::modules::UnwindSnapshot;

/// The signal that carries sample requests: SIGPROF unless `STACKSAMPLE_SIGNAL` says
/// otherwise; set once, before the handler is installed.
static SAMPLE_SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGPROF);

/// The signal that carries sample requests.
pub fn sample_signal() -> libc::c_int {
    SAMPLE_SIGNAL.load(Ordering::Relaxed)
}

/// Sets the sampling signal, before its handler is installed.
pub fn set_sample_signal(signal: libc::c_int) {
    SAMPLE_SIGNAL.store(signal, Ordering::Relaxed);
}

/// The address every `makecontext` fiber returns to when its function ends (glibc's
/// `__start_context`, which has no exported symbol); 0 while unknown.
static FIBER_START: AtomicU64 = AtomicU64::new(0);

/// Records where fibers start, before the handler is installed.
pub fn set_fiber_start(address: u64) {
    FIBER_START.store(address, Ordering::Relaxed);
}

/// Whether `return_address` is where a fiber's stack begins.
pub(super) fn is_fiber_start(return_address: u64) -> bool {
    let fiber_start = FIBER_START.load(Ordering::Relaxed);
    fiber_start != 0 && return_address == fiber_start
}

/// Preallocated slots, leaked once per process: a late signal may read them at any time.
static POOL: AtomicPtr<SlotPool> = AtomicPtr::new(ptr::null_mut());
/// The unwinder and memory map the handler uses; swapped by the sampler.
static SNAPSHOT: AtomicPtr<UnwindSnapshot> = AtomicPtr::new(ptr::null_mut());
/// The installed slot pool, if `install` ran.
pub fn pool() -> Option<&'static SlotPool> {
    // SAFETY: POOL is null or a leaked pool that is never freed.
    unsafe { POOL.load(Ordering::Acquire).as_ref() }
}

/// The pool as the handler loads it: null, or a leaked pool that is never freed.
pub(super) fn pool_ptr() -> *const SlotPool {
    POOL.load(Ordering::Acquire)
}

/// Makes `pool` the one handlers use, for the life of the process.
pub fn set_pool(pool: &'static SlotPool) {
    POOL.store(pool as *const SlotPool as *mut SlotPool, Ordering::Release);
}

/// Makes `snapshot` the one new handlers use and returns the one it replaces, which the
/// caller may free only once every slot is idle.
pub fn publish_snapshot(snapshot: Box<UnwindSnapshot>) -> Option<Box<UnwindSnapshot>> {
    // SeqCst pairs with the handler's claim and load: either the sampler's later look at the
    // slots sees the handler writing, or the handler's load sees the new snapshot.
    let old = SNAPSHOT.swap(Box::into_raw(snapshot), Ordering::SeqCst);
    // SAFETY: non-null values of SNAPSHOT always come from Box::into_raw in this function.
    (!old.is_null()).then(|| unsafe { Box::from_raw(old) })
}

/// The snapshot as the handler loads it (after claiming its slot; see `publish_snapshot`).
pub(super) fn snapshot_ptr() -> *const UnwindSnapshot {
    SNAPSHOT.load(Ordering::SeqCst)
}

/// The snapshot the handler uses now. Only the sampler thread, which alone replaces and frees
/// snapshots, may call this, and must not keep the reference across a `publish_snapshot`.
pub fn current_snapshot() -> Option<&'static UnwindSnapshot> {
    // SAFETY: see above: the caller is the only thread that frees snapshots.
    unsafe { SNAPSHOT.load(Ordering::SeqCst).as_ref() }
}
