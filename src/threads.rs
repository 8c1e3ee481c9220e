//! Threads of this process: ids, existence, names, which ones to sample. Ordinary threads
//! only.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Once, OnceLock};

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

/// What `/proc/self/task/<tid>/syscall` says about a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallState {
    /// Running, or not in a system call.
    Running,
    /// Blocked in a system call: the whole line (number and arguments identify the call),
    /// and the user stack and instruction pointers at its entry.
    Blocked { line: String, sp: u64, pc: u64 },
}

/// `/proc/self/task/<tid>/syscall`, kept open: the kernel regenerates it on every read, so
/// one open per thread and a positioned read per look is all it costs.
pub struct SyscallFile(std::fs::File);

impl SyscallFile {
    pub fn open(tid: i32) -> Option<SyscallFile> {
        std::fs::File::open(format!("/proc/self/task/{tid}/syscall"))
            .ok()
            .map(SyscallFile)
    }

    /// Whether the thread is blocked in a system call, and where.
    pub fn state(&self) -> Option<SyscallState> {
        use std::os::unix::fs::FileExt;
        let mut buffer = [0u8; 256];
        let length = self.0.read_at(&mut buffer, 0).ok()?;
        parse_syscall_line(std::str::from_utf8(buffer.get(..length)?).ok()?)
    }
}

fn parse_syscall_line(line: &str) -> Option<SyscallState> {
    let line = line.trim_end();
    let fields: Vec<&str> = line.split(' ').collect();
    // "nr arg1 .. arg6 sp pc"; "running", or "-1 sp pc" when not in a system call.
    if fields.len() != 9 {
        return Some(SyscallState::Running);
    }
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    Some(SyscallState::Blocked {
        line: line.to_owned(),
        sp: hex(fields[7])?,
        pc: hex(fields[8])?,
    })
}

/// CPU time thread `tid` has used, in nanoseconds.
pub fn cpu_time(tid: i32) -> Option<u64> {
    // The kernel's clock id for a thread's CPU clock: CPUCLOCK_SCHED (2) | per-thread (4).
    let clock = ((!tid) << 3) | 6;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid out-pointer; an exited thread gives EINVAL.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    (rc == 0).then(|| now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}

/// The calling thread's nice value.
pub fn priority() -> libc::c_int {
    // SAFETY: getpriority on this thread's id only reads its nice value.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, current_tid() as libc::id_t) }
}

/// Nanoseconds thread `tid` has spent runnable but waiting for a CPU (the second field of
/// `/proc/self/task/<tid>/schedstat`).
pub fn run_queue_wait(tid: i32) -> Option<u64> {
    let schedstat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// Times thread `tid` gave up its CPU of its own accord, to block or sleep (the
/// `voluntary_ctxt_switches` line of `/proc/self/task/<tid>/status`).
pub fn voluntary_switches(tid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
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

/// Blocks every signal that can be blocked and is not a fault in the calling thread, so a
/// process-directed signal (a program's `SIGALRM` timer, `kill -USR2`) is delivered to one of
/// the program's own threads, never to a profiler thread where its handler would run on a
/// thread it does not know. Returns the mask before, for `restore_signal_mask`.
pub fn block_async_signals() -> libc::sigset_t {
    const FAULTS: [libc::c_int; 6] = [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    // SAFETY: sigset_t is plain data; the calls only touch `set` and `previous`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for sig in FAULTS {
            libc::sigdelset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
        previous
    }
}

/// Puts back a mask saved by `block_async_signals`.
pub fn restore_signal_mask(previous: &libc::sigset_t) {
    // SAFETY: `previous` is a valid signal set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
}

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

/// Which threads to sample: fixed ids, and/or every thread, and/or threads by name.
#[derive(Debug, Clone)]
pub struct Selector {
    pub fixed: Vec<i32>,
    pub all: bool,
    pub pattern: Option<glob::Pattern>,
}

impl Selector {
    /// Whether the set of threads can change while the program runs.
    pub fn is_dynamic(&self) -> bool {
        self.all || self.pattern.is_some()
    }

    /// Live threads of this process that match, other than the profiler's own.
    pub fn scan(&self) -> Vec<i32> {
        if !self.is_dynamic() {
            return Vec::new();
        }
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&tid| !is_own_thread(tid))
            .filter(|&tid| self.all || self.name_matches(tid))
            .collect()
    }

    /// Whether thread `tid`'s current name matches the pattern.
    pub fn name_matches(&self, tid: i32) -> bool {
        match (&self.pattern, name(tid)) {
            (Some(pattern), Some(name)) => pattern.matches(&name),
            _ => false,
        }
    }
}

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
