//! Signals: installing the handlers, asking a thread for a sample, and the few statics that
//! signal context reads. The handler itself lives in `handler`; the slot state machine in
//! [`slot`].
//!
//! A sample request is a thread-directed SIGPROF queued with `rt_tgsigqueueinfo` (the
//! `tgkill` system call with a payload): its value names the slot and the armed sequence
//! number, so the handler can tell our signals from the program's own SIGPROF and from our
//! own stale requests without any shared guesswork.

pub mod futex;
mod handler;
mod interpose;
pub mod slot;

use std::cell::UnsafeCell;
use std::io;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use crate::error::Error;
use crate::modules::UnwindSnapshot;
use slot::SlotPool;

/// The signal that carries sample requests: SIGPROF unless `STACKSAMPLE_SIGNAL` says
/// otherwise; set once, before the handler is installed.
static SAMPLE_SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGPROF);

/// The signal that carries sample requests.
pub fn sample_signal() -> libc::c_int {
    SAMPLE_SIGNAL.load(Ordering::Relaxed)
}

/// Upper 24 bits of a request's value; the rest is slot index (8 bits) and armed word.
const REQUEST_MAGIC: u64 = 0x5ac_5a3;

/// Preallocated slots, leaked once per process: a late signal may read them at any time.
static POOL: AtomicPtr<SlotPool> = AtomicPtr::new(ptr::null_mut());
/// The unwinder and memory map the handler uses; swapped by the sampler.
static SNAPSHOT: AtomicPtr<UnwindSnapshot> = AtomicPtr::new(ptr::null_mut());
/// What the program wants done with SIGPROF signals that are not ours.
static PROGRAM_SAMPLE_ACTION: ChainedAction = ChainedAction::new();
/// What the program wants done with the dump signal, which we share with it.
static PROGRAM_DUMP_ACTION: ChainedAction = ChainedAction::new();
/// Requests to the sampler thread from signal context and from other threads.
pub static CONTROL: Control = Control::new();
/// Signals that end the program by default; while the program leaves them at the default we
/// write the profile first, then let them end it.
const TERMINATION_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
/// Our stand-in default actions for [`TERMINATION_SIGNALS`], in the same order.
static TERMINATION_ACTIONS: [ChainedAction; 4] = [
    ChainedAction::new(),
    ChainedAction::new(),
    ChainedAction::new(),
    ChainedAction::new(),
];
/// Profiles written so far (a futex word: a terminating thread waits for the next one).
static DUMPS_WRITTEN: AtomicU32 = AtomicU32::new(0);
/// Whether a sampler is running to take a dump request, and in which process.
static SAMPLING: AtomicBool = AtomicBool::new(false);
static SAMPLING_PID: AtomicI32 = AtomicI32::new(0);
/// How long a terminating signal waits for its profile before ending the program anyway.
const TERMINATION_DUMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// glibc's `__restore_rt`, where every handler installed through glibc returns to; read back
/// from our own installed action (`sa_restorer`).
static SIGRETURN_TRAMPOLINE: AtomicU64 = AtomicU64::new(0);

/// Whether `address` is the signal-return trampoline. Async-signal-safe.
fn is_sigreturn_trampoline(address: u64) -> bool {
    address != 0 && address == SIGRETURN_TRAMPOLINE.load(Ordering::Relaxed)
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
    next: AtomicUsize,
}

// SAFETY: a version is written only after `next` hands its index to exactly one writer and
// before `current` publishes it (Release); readers read only the published one (Acquire).
unsafe impl Sync for ChainedAction {}

impl ChainedAction {
    const fn new() -> ChainedAction {
        ChainedAction {
            signal: AtomicU32::new(0),
            managed: AtomicBool::new(false),
            versions: [const { UnsafeCell::new(EMPTY_ACTION) }; ACTION_VERSIONS],
            current: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        }
    }

    /// The program's current action. Async-signal-safe.
    fn load(&self) -> Option<libc::sigaction> {
        let current = self.current.load(Ordering::Acquire);
        let version = self.versions.get(current.checked_sub(1)?)?;
        // SAFETY: published versions are fully written before `current` names them.
        Some(unsafe { *version.get() })
    }

    /// Records the program's new action. Async-signal-safe, allocation-free.
    fn store(&self, action: libc::sigaction) {
        let index = self.next.fetch_add(1, Ordering::AcqRel) % ACTION_VERSIONS;
        // SAFETY: `next` gave this index to us alone; see the Sync impl.
        unsafe { *self.versions[index].get() = action };
        self.current.store(index + 1, Ordering::Release);
    }

    fn manages(&self, sig: libc::c_int) -> bool {
        self.managed.load(Ordering::Acquire) && self.signal.load(Ordering::Relaxed) == sig as u32
    }

    /// Puts our handler back if something bypassed `sigaction` (a raw system call, `sigset`)
    /// and replaced it: what it installed becomes the program's action to chain to.
    fn ensure_installed(&self, handler: usize) {
        if !self.managed.load(Ordering::Acquire) {
            return;
        }
        let sig = self.signal.load(Ordering::Relaxed) as libc::c_int;
        let mut current = empty_action();
        // SAFETY: querying with a null new action only writes `current`.
        if unsafe { interpose::real_sigaction(sig, ptr::null(), &mut current) } != 0
            || current.sa_sigaction == handler
        {
            return;
        }
        self.store(current);
        let _ = self.install(sig, handler);
    }

    fn install(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut ours = empty_action();
        ours.sa_sigaction = handler;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `ours` is a fully initialised action whose handler is an extern "C"
        // SA_SIGINFO function of this library, which is never unloaded while it is installed.
        if unsafe { interpose::real_sigaction(sig, &ours, ptr::null_mut()) } != 0 {
            return Err(Error::last_os("install the signal handler"));
        }
        Ok(())
    }

    /// Installs `handler` for `sig` only if the program left it at the default action (and
    /// is not the dump signal); the program taking the signal later makes us step aside.
    fn take_over_default(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut current = empty_action();
        // SAFETY: querying with a null new action only writes `current`.
        if unsafe { interpose::real_sigaction(sig, ptr::null(), &mut current) } != 0 {
            return Err(Error::last_os("read the current signal action"));
        }
        if current.sa_sigaction != libc::SIG_DFL || PROGRAM_DUMP_ACTION.manages(sig) {
            return Ok(());
        }
        self.take_over(sig, handler)
    }

    /// Gives the signal back to the program: installs `action` for real.
    fn step_aside(&self, sig: libc::c_int, action: &libc::sigaction) -> libc::c_int {
        self.managed.store(false, Ordering::Release);
        // SAFETY: `action` is the program's valid action.
        unsafe { interpose::real_sigaction(sig, action, ptr::null_mut()) }
    }

    /// Installs `handler` for `sig`, keeping the current action to chain to.
    fn take_over(&self, sig: libc::c_int, handler: usize) -> Result<(), Error> {
        let mut previous = empty_action();
        // SAFETY: querying with a null new action only writes `previous`.
        if unsafe { interpose::real_sigaction(sig, ptr::null(), &mut previous) } != 0 {
            return Err(Error::last_os("read the current signal action"));
        }
        self.store(previous);
        self.signal.store(sig as u32, Ordering::Relaxed);
        self.install(sig, handler)?;
        let mut installed = empty_action();
        // SAFETY: querying with a null new action only writes `installed`.
        if unsafe { interpose::real_sigaction(sig, ptr::null(), &mut installed) } == 0 {
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
fn empty_action() -> libc::sigaction {
    EMPTY_ACTION
}

/// Wake-up reasons for the sampler, as bits of a futex word.
pub struct Control(AtomicU32);

impl Control {
    pub const DUMP: u32 = 1;
    /// A consumer joined or left (see `sampler::Subscription`).
    pub const COMMAND: u32 = 2;

    const fn new() -> Control {
        Control(AtomicU32::new(0))
    }

    /// Sets `bits` and wakes the sampler. Async-signal-safe.
    pub fn request(&self, bits: u32) {
        self.0.fetch_or(bits, Ordering::AcqRel);
        futex::wake(&self.0);
    }

    /// Takes and clears every pending request.
    pub fn take(&self) -> u32 {
        self.0.swap(0, Ordering::AcqRel)
    }

    /// Sleeps until `deadline` (CLOCK_MONOTONIC) or until a request arrives.
    pub fn sleep_until(&self, deadline: &libc::timespec) {
        futex::wait_until(&self.0, 0, deadline);
    }
}

/// Called by the drain after each profile it writes.
pub fn note_dump_written() {
    DUMPS_WRITTEN.fetch_add(1, Ordering::AcqRel);
    futex::wake(&DUMPS_WRITTEN);
}

/// In a forked child, before a new session starts: no thread of the parent exists here, so
/// nothing can be writing a slot, and the parent's requests and wake-ups mean nothing.
pub fn reset_after_fork() {
    if let Some(pool) = pool() {
        pool.reset_after_fork();
    }
    CONTROL.take();
    SAMPLING.store(false, Ordering::Release);
    crate::sampler::forget_after_fork();
    crate::threads::forget_own_threads();
    crate::thread_start::watch(false);
}

/// Marks whether a sampler is running (dump requests are only answered while one is).
pub fn set_sampling(running: bool) {
    // SAFETY: getpid has no preconditions.
    SAMPLING_PID.store(unsafe { libc::getpid() }, Ordering::Release);
    SAMPLING.store(running, Ordering::Release);
}

/// Asks for a profile and waits until it is written. Async-signal-safe (atomics and futex).
/// Only the process whose sampler is running takes part: a forked or vfork child sees the
/// parent's flag but is a different process.
pub fn dump_and_wait() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if !SAMPLING.load(Ordering::Acquire) || SAMPLING_PID.load(Ordering::Acquire) != pid {
        return;
    }
    let before = DUMPS_WRITTEN.load(Ordering::Acquire);
    CONTROL.request(Control::DUMP);
    let deadline = futex::monotonic_after(TERMINATION_DUMP_TIMEOUT);
    while DUMPS_WRITTEN.load(Ordering::Acquire) == before {
        if futex::monotonic_nanos() >= timespec_nanos(&deadline) {
            return;
        }
        futex::wait_until(&DUMPS_WRITTEN, before, &deadline);
    }
}

fn timespec_nanos(time: &libc::timespec) -> u64 {
    (time.tv_sec as u64) * 1_000_000_000 + time.tv_nsec as u64
}

/// Puts the default action back for `sig` and sends it again to this thread: delivered when
/// our handler returns, it ends the program as it would have without us.
fn end_with_default_action(sig: libc::c_int) {
    let default = empty_action();
    // SAFETY: installing SIG_DFL with a valid action; tgkill to ourselves. Both are
    // async-signal-safe system calls.
    unsafe {
        interpose::real_sigaction(sig, &default, ptr::null_mut());
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
    }
}

/// Re-installs our handlers if something replaced them behind `sigaction`'s back. The
/// sampler calls this before each round of requests.
pub fn ensure_installed() {
    PROGRAM_SAMPLE_ACTION.ensure_installed(handler::on_sample_signal as *const () as usize);
    PROGRAM_DUMP_ACTION.ensure_installed(handler::on_dump_signal as *const () as usize);
}

/// Slot indices travel in 8 bits of a request's value.
pub const MAX_SLOTS: usize = 256;

/// Installs the sampling handler (and the dump handler) once per process and returns the
/// slot pool. The handlers stay installed for the life of the process (a late request must
/// never meet the default action); a later call reuses them and the pool if it is big enough.
pub fn install(
    slots: usize,
    max_depth: usize,
    sample_signal_number: libc::c_int,
    dump_signal: Option<libc::c_int>,
) -> Result<&'static SlotPool, Error> {
    if slots > MAX_SLOTS {
        return Err(Error::System {
            action: "sample that many threads at once",
            source: io::Error::from(io::ErrorKind::InvalidInput),
        });
    }
    if let Some(pool) = pool() {
        if pool.max_depth() < max_depth
            || pool.slots.len() < slots
            || sample_signal() != sample_signal_number
        {
            return Err(Error::System {
                action:
                    "restart with more threads, a larger STACKSAMPLE_MAXDEPTH or another signal in this process",
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        return Ok(pool);
    }
    let pool: &'static SlotPool = Box::leak(Box::new(SlotPool::new(slots, max_depth)));
    POOL.store(pool as *const SlotPool as *mut SlotPool, Ordering::Release);
    SAMPLE_SIGNAL.store(sample_signal_number, Ordering::Relaxed);
    PROGRAM_SAMPLE_ACTION.take_over(
        sample_signal_number,
        handler::on_sample_signal as *const () as usize,
    )?;
    if let Some(sig) = dump_signal {
        PROGRAM_DUMP_ACTION.take_over(sig, handler::on_dump_signal as *const () as usize)?;
    }
    for (sig, chained) in TERMINATION_SIGNALS.iter().zip(&TERMINATION_ACTIONS) {
        chained.take_over_default(*sig, handler::on_termination_signal as *const () as usize)?;
    }
    Ok(pool)
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
            if handler::decode_request(&info).is_none() && kept < foreign.len() {
                foreign[kept] = info;
                kept += 1;
            }
        }
        for info in &foreign[..kept] {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                libc::getpid(),
                libc::gettid(),
                signal,
                info as *const libc::siginfo_t,
            );
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, ptr::null_mut());
    }
}

/// The installed slot pool, if `install` ran.
pub fn pool() -> Option<&'static SlotPool> {
    // SAFETY: POOL is null or a leaked pool that is never freed.
    unsafe { POOL.load(Ordering::Acquire).as_ref() }
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

/// The snapshot the handler uses now. Only the sampler thread, which alone replaces and frees
/// snapshots, may call this, and must not keep the reference across a `publish_snapshot`.
pub fn current_snapshot() -> Option<&'static UnwindSnapshot> {
    // SAFETY: see above: the caller is the only thread that frees snapshots.
    unsafe { SNAPSHOT.load(Ordering::SeqCst).as_ref() }
}

pub use handler::{unwind_blocked, Registers};

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
            libc::getpid(),
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
            // SAFETY: getpid and getuid have no preconditions.
            pid: unsafe { libc::getpid() },
            // SAFETY: as above.
            uid: unsafe { libc::getuid() },
            value,
            _rest: [0; 96],
        }
    }
}
