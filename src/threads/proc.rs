//! What the kernel tells about the threads of this process: ids, existence, names, CPU
//! time, scheduling, whether a thread is blocked in a system call, and when the process
//! started.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::base::clock::timespec_nanos;
use crate::base::file::{self, CheckedFile};
use crate::base::thread::pid;

/// Kernel id of the calling thread.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Whether `tid` is a live thread of this process (signal 0 checks without sending).
pub fn exists(tid: i32) -> bool {
    // SAFETY: tgkill with signal 0 performs only the permission and existence checks.
    unsafe { libc::syscall(libc::SYS_tgkill, pid(), tid, 0) == 0 }
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
/// one open per thread and a positioned read per look is all it costs. The descriptor is
/// checked before each use (the program may close it); one it lost is opened again.
pub struct SyscallFile {
    tid: i32,
    file: CheckedFile,
}

impl SyscallFile {
    pub fn open(tid: i32) -> Option<SyscallFile> {
        let file = CheckedFile::open(&Self::path(tid)).ok()?;
        Some(SyscallFile { tid, file })
    }

    fn path(tid: i32) -> PathBuf {
        PathBuf::from(format!("/proc/self/task/{tid}/syscall"))
    }

    /// Whether the thread is blocked in a system call, and where.
    pub fn state(&mut self) -> Option<SyscallState> {
        let mut buffer = [0u8; 256];
        let length = match self.file.read_at(&mut buffer, 0) {
            Ok(length) => length,
            Err(_) => {
                self.file = CheckedFile::open(&Self::path(self.tid)).ok()?;
                self.file.read_at(&mut buffer, 0).ok()?
            }
        };
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
    (rc == 0).then(|| timespec_nanos(&now))
}

/// The calling thread's nice value.
pub fn priority() -> libc::c_int {
    // SAFETY: getpriority on this thread's id only reads its nice value.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, current_tid() as libc::id_t) }
}

/// Nanoseconds thread `tid` has spent runnable but waiting for a CPU (the second field of
/// `/proc/self/task/<tid>/schedstat`).
pub fn run_queue_wait(tid: i32) -> Option<u64> {
    let schedstat = file::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// Times thread `tid` gave up its CPU of its own accord, to block or sleep (the
/// `voluntary_ctxt_switches` line of `/proc/self/task/<tid>/status`).
pub fn voluntary_switches(tid: i32) -> Option<u64> {
    let status = file::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// The thread's name from `/proc/self/task/<tid>/comm`, if it still exists.
pub fn name(tid: i32) -> Option<String> {
    let comm = file::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

/// The command line of this process, arguments joined by spaces, on one line (control
/// characters such as newlines in `python -c` scripts are escaped).
pub fn command_line() -> String {
    let raw = file::read("/proc/self/cmdline").unwrap_or_default();
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

/// When this process started (an `exec` keeps it), from `/proc/self/stat`, to within the
/// kernel's 10 ms tick.
pub fn process_started() -> Option<SystemTime> {
    let stat = file::read_to_string("/proc/self/stat").ok()?;
    // Field 22, counted after the command name, which may hold spaces and parentheses.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hertz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    let mut since_boot = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `since_boot` is a valid out-pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut since_boot) } != 0 {
        return None;
    }
    let started_since_boot = Duration::from_millis(ticks.checked_mul(1000)? / hertz.max(1));
    let age = Duration::from_nanos(timespec_nanos(&since_boot)).checked_sub(started_since_boot)?;
    SystemTime::now().checked_sub(age)
}
