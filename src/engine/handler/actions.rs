//! The program's own actions for the signals we handle, kept without allocating, and the
//! call into them when a signal is not ours.

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::base::error::Error;

/// What the program wants done with SIGPROF signals that are not ours.
pub static PROGRAM_SAMPLE_ACTION: ChainedAction = ChainedAction::new();
/// What the program wants done with the dump signal, which we share with it.
pub static PROGRAM_DUMP_ACTION: ChainedAction = ChainedAction::new();
/// glibc's `__restore_rt`, where every handler installed through glibc returns to; read back
/// from our own installed action (`sa_restorer`).
static SIGRETURN_TRAMPOLINE: AtomicU64 = AtomicU64::new(0);

/// Whether `address` is the signal-return trampoline. Async-signal-safe.
pub(super) fn is_sigreturn_trampoline(address: u64) -> bool {
    address != 0 && address == SIGRETURN_TRAMPOLINE.load(Ordering::Relaxed)
}

extern "C" {
    /// glibc's exported implementation behind `sigaction`.
    #[link_name = "__sigaction"]
    fn glibc_sigaction(
        sig: libc::c_int,
        act: *const libc::sigaction,
        old: *mut libc::sigaction,
    ) -> libc::c_int;
}

/// The kernel's `sigaction`, bypassing our interposer.
///
/// # Safety
/// As for `sigaction(2)`: `act` and `old` are null or valid.
pub unsafe fn real_sigaction(
    sig: libc::c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    // SAFETY: forwarded preconditions.
    unsafe { glibc_sigaction(sig, act, old) }
}

/// Versions of a program's action kept at once: a handler reading one while the program
/// sets this many newer ones in between would see a torn value; nothing else can.
const ACTION_VERSIONS: usize = 16;

/// The program's own action for a signal we installed a handler for. `sigaction`/`signal`
/// calls of the program land here (see `interpose`) instead of replacing our handler. Stored
/// without allocating (the program may set it from a signal handler that interrupted
/// `malloc`): each new action goes into the next of a ring of preallocated versions, and an
/// atomic index names the current one.
pub struct ChainedAction {
    signal: AtomicU32,
    managed: AtomicBool,
    versions: [UnsafeCell<libc::sigaction>; ACTION_VERSIONS],
    /// Index of the current version plus one; 0 while the program has set none.
    current: AtomicUsize,
    /// Our handler's address, once installed.
    ours: AtomicUsize,
    next: AtomicUsize,
}

// SAFETY: a version is written only after `next` hands its index to exactly one writer and
// before `current` publishes it (Release); readers read only the published one (Acquire).
unsafe impl Sync for ChainedAction {}

impl ChainedAction {
    pub const fn new() -> ChainedAction {
        ChainedAction {
            signal: AtomicU32::new(0),
            managed: AtomicBool::new(false),
            versions: [const { UnsafeCell::new(EMPTY_ACTION) }; ACTION_VERSIONS],
            current: AtomicUsize::new(0),
            ours: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        }
    }

    /// The program's current action. Async-signal-safe.
    pub fn load(&self) -> Option<libc::sigaction> {
        let current = self.current.load(Ordering::Acquire);
        let version = self.versions.get(current.checked_sub(1)?)?;
        // SAFETY: published versions are fully written before `current` names them.
        Some(unsafe { *version.get() })
    }

    /// Records the program's new action. Async-signal-safe, allocation-free.
    pub fn store(&self, action: libc::sigaction) {
        let index = self.next.fetch_add(1, Ordering::AcqRel) % ACTION_VERSIONS;
        let Some(version) = self.versions.get(index) else {
            return;
        };
        // SAFETY: `next` gave this index to us alone; see the Sync impl.
        unsafe { *version.get() = action };
        self.current.store(index + 1, Ordering::Release);
    }

    pub fn manages(&self, sig: libc::c_int) -> bool {
        self.managed.load(Ordering::Acquire) && self.signal.load(Ordering::Relaxed) == sig as u32
    }

    /// Puts our handler back if something bypassed `sigaction` (a raw system call, `sigset`)
    /// and replaced it: what it installed becomes the program's action to chain to.
    pub fn ensure_installed(&self) {
        if let Some(theirs) = self.bypassed() {
            self.store(theirs);
            let sig = self.signal.load(Ordering::Relaxed) as libc::c_int;
            let _ = self.install(sig, self.ours.load(Ordering::Relaxed));
        }
    }

    /// What is installed instead of our handler, if something bypassed `sigaction` while we
    /// manage the signal.
    fn bypassed(&self) -> Option<libc::sigaction> {
        if !self.managed.load(Ordering::Acquire) {
            return None;
        }
        let sig = self.signal.load(Ordering::Relaxed) as libc::c_int;
        let mut current = empty_action();
        // SAFETY: querying with a null new action only writes `current`.
        let queried = unsafe { real_sigaction(sig, ptr::null(), &mut current) } == 0;
        (queried && current.sa_sigaction != self.ours.load(Ordering::Relaxed)).then_some(current)
    }

    /// Steps aside, without installing anything, if the program installed its own action
    /// behind `sigaction`'s back (`sigset` does): the signal is the program's from then on.
    /// True if it did.
    pub fn yield_if_bypassed(&self) -> bool {
        let bypassed = self.bypassed().is_some();
        if bypassed {
            self.managed.store(false, Ordering::Release);
        }
        bypassed
    }

    fn install(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut ours = empty_action();
        ours.sa_sigaction = handler;
        // SA_ONSTACK: a thread with an alternate signal stack takes our signals' frames there,
        // off a fiber's or goroutine's small stack (Go asks it of every handler).
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        // SAFETY: `ours` is a fully initialised action whose handler is an extern "C"
        // SA_SIGINFO function of this library, which is never unloaded while it is installed.
        if unsafe { real_sigaction(sig, &ours, ptr::null_mut()) } != 0 {
            return Err(Error::last_os("install the signal handler"));
        }
        Ok(())
    }

    /// Installs `handler` for `sig` only if the program left it at the default action (and
    /// is not the dump signal); the program taking the signal later makes us step aside.
    pub fn take_over_default(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut current = empty_action();
        // SAFETY: querying with a null new action only writes `current`.
        if unsafe { real_sigaction(sig, ptr::null(), &mut current) } != 0 {
            return Err(Error::last_os("read the current signal action"));
        }
        if current.sa_sigaction != libc::SIG_DFL || PROGRAM_DUMP_ACTION.manages(sig) {
            return Ok(());
        }
        self.take_over(sig, handler)
    }

    /// Gives the signal back to the program: installs `action` for real.
    pub fn step_aside(&self, sig: libc::c_int, action: &libc::sigaction) -> libc::c_int {
        self.managed.store(false, Ordering::Release);
        // SAFETY: `action` is the program's valid action.
        unsafe { real_sigaction(sig, action, ptr::null_mut()) }
    }

    /// As `take_over`, unless the program ignores `sig` (it may have inherited SIG_IGN): a
    /// handler of ours would make the signal interrupt its system calls.
    pub fn take_over_unless_ignored(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut current = empty_action();
        // SAFETY: querying with a null new action only writes `current`.
        if unsafe { real_sigaction(sig, ptr::null(), &mut current) } != 0 {
            return Err(Error::last_os("read the current signal action"));
        }
        if current.sa_sigaction == libc::SIG_IGN {
            return Ok(());
        }
        self.take_over(sig, handler)
    }

    /// Installs `handler` for `sig`, keeping the current action to chain to.
    pub fn take_over(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut previous = empty_action();
        // SAFETY: querying with a null new action only writes `previous`.
        if unsafe { real_sigaction(sig, ptr::null(), &mut previous) } != 0 {
            return Err(Error::last_os("read the current signal action"));
        }
        self.store(previous);
        self.signal.store(sig as u32, Ordering::Relaxed);
        self.ours.store(handler, Ordering::Relaxed);
        self.install(sig, handler)?;
        let mut installed = empty_action();
        // SAFETY: querying with a null new action only writes `installed`.
        if unsafe { real_sigaction(sig, ptr::null(), &mut installed) } == 0 {
            let restorer = installed.sa_restorer.map_or(0, |f| f as usize as u64);
            SIGRETURN_TRAMPOLINE.store(restorer, Ordering::Relaxed);
        }
        self.managed.store(true, Ordering::Release);
        Ok(())
    }
}

/// SIG_DFL, empty mask, no flags.
const EMPTY_ACTION: libc::sigaction = libc::sigaction {
    sa_sigaction: libc::SIG_DFL,
    // SAFETY: sigset_t is plain data; all-zero is the empty set.
    sa_mask: unsafe { std::mem::zeroed() },
    sa_flags: 0,
    sa_restorer: None,
};

/// A fresh SIG_DFL action.
pub fn empty_action() -> libc::sigaction {
    EMPTY_ACTION
}

/// Calls the handler the program installed for `sig`, if it installed one.
pub(super) fn chain(
    action: &ChainedAction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let Some(program) = action.load() else {
        return;
    };
    let handler = program.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        return;
    }
    if program.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program registered this address as an SA_SIGINFO handler.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        handler(sig, info, context);
    } else {
        // SAFETY: the program registered this address as a plain signal handler.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        handler(sig);
    }
}
