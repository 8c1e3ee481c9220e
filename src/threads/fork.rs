//! The fork guard: no lock of ours that a fork could freeze in the child is held across
//! `fork`, and the hook a forked child runs once the guard is released.

use std::sync::{Once, OnceLock};

/// Held around every call of ours that takes a lock a fork could freeze in the child: the
/// loader's lock (`dl_iterate_phdr`) and the list of started threads. `fork` takes it first
/// (a `pthread_atfork` prepare handler), so no such call is half done in the child.
static FORK_GUARD: ForkGuard =
    ForkGuard(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

struct ForkGuard(std::cell::UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: the mutex is only used through pthread_mutex_lock/unlock, which synchronise.
unsafe impl Sync for ForkGuard {}

/// Runs `body` with the fork guard held.
pub fn with_fork_guard<T>(body: impl FnOnce() -> T) -> T {
    lock_fork_guard();
    let result = body();
    unlock_fork_guard();
    result
}

/// What a forked child runs after the fork guard is released (the preloaded library's
/// follow-the-child logic); nothing if unset.
static FORK_CHILD_HOOK: OnceLock<extern "C" fn()> = OnceLock::new();
static FORK_HANDLERS: Once = Once::new();

/// Sets what a forked child runs (once per process; later calls are ignored).
pub fn set_fork_child_hook(hook: extern "C" fn()) {
    let _ = FORK_CHILD_HOOK.set(hook);
}

/// Registers the fork guard's `pthread_atfork` handlers, once per process (twice would lock
/// the guard twice in `fork`).
pub fn install_fork_handlers() {
    FORK_HANDLERS.call_once(|| {
        // SAFETY: registering plain extern "C" functions; they stay valid (the library is
        // never unloaded).
        unsafe {
            libc::pthread_atfork(
                Some(lock_fork_guard),
                Some(unlock_fork_guard),
                Some(after_fork_in_child),
            )
        };
    });
}

extern "C" fn after_fork_in_child() {
    unlock_fork_guard();
    if let Some(hook) = FORK_CHILD_HOOK.get() {
        hook();
    }
}

/// `pthread_atfork` prepare handler: no guarded call is in progress once this returns.
extern "C" fn lock_fork_guard() {
    // SAFETY: a statically initialised default mutex.
    unsafe { libc::pthread_mutex_lock(FORK_GUARD.0.get()) };
}

/// `pthread_atfork` parent and child handler (the forking thread holds the guard).
extern "C" fn unlock_fork_guard() {
    // SAFETY: called by the thread that locked it (the forking thread, in parent or child).
    unsafe { libc::pthread_mutex_unlock(FORK_GUARD.0.get()) };
}
