//! Threads that are blocked in a system call (wall mode) or idle (CPU mode): sampled without
//! a signal, or not at all, so the program's blocking calls never see EINTR from us.

use std::time::Duration;

use super::consumer::{Consumer, RunQueueLook};
use crate::drain::RawSample;
use crate::signal::slot::StopReason;
use crate::signal::{self, Registers};
use crate::stats::Stats;
use crate::threads::{self, SyscallFile, SyscallState};

/// A thread that is mostly blocked but running when looked at is looked at again this many
/// times, this far apart, before the tick gives up on it.
const BLOCK_WAIT_TRIES: usize = 4;
const BLOCK_WAIT: Duration = Duration::from_micros(50);
/// The waits of one tick, all threads together, take at most this share of the interval: a
/// tick that waited longer would make the next one late for every thread.
const BLOCK_WAIT_SHARE: u32 = 4;
/// CPU mode samples a thread once it has used this much CPU (or 5% of the interval, if
/// more) since its last sample: well above what taking a sample costs it.
const MIN_CPU_USE: Duration = Duration::from_micros(50);
/// Threads whose `/proc/.../syscall` file stays open between ticks (descriptors are the
/// program's to count on; a few are a fair price for saving an open per tick).
const MAX_OPEN_SYSCALL_FILES: usize = 8;

/// A sample of a thread blocked in a system call, and how to tell the call has not ended.
pub(super) struct Blocked {
    call: String,
    cpu: u64,
    sample: RawSample,
}

/// What `sample_blocked` did.
pub(super) enum Blocking {
    /// Sampled without a signal.
    Sampled,
    /// Running: signal it.
    Running,
    /// Mostly blocked but caught between calls: skipped this tick.
    BetweenCalls,
}

impl Consumer {
    /// CPU mode: whether thread `tid` used enough CPU since its last sample to be sampled
    /// again. Taking a sample itself costs the thread a little CPU (signal delivery and the
    /// handler), so a blocked thread must not count that as use.
    pub(super) fn used_cpu(&mut self, tid: i32) -> bool {
        let threshold = (self.interval.as_nanos() as u64 / 20).max(MIN_CPU_USE.as_nanos() as u64);
        let Some(target) = self.targets.get_mut(&tid) else {
            return false;
        };
        let Some(now) = threads::cpu_time(tid) else {
            return false;
        };
        // The first look only sets the baseline.
        let Some(before) = target.cpu_seen else {
            target.cpu_seen = Some(now);
            return false;
        };
        if now.saturating_sub(before) < threshold {
            return false;
        }
        // Used CPU, but blocked now: a signal would interrupt its call (EINTR) and the
        // sample would show the call, not where the time went. Next tick.
        if matches!(self.syscall_state(tid), Some(SyscallState::Blocked { .. })) {
            return false;
        }
        if let Some(target) = self.targets.get_mut(&tid) {
            target.cpu_seen = Some(now);
        }
        true
    }

    /// Starts a tick's budget for waiting on threads between two calls.
    pub(super) fn reset_block_wait(&mut self) {
        self.block_wait_left = self.interval / BLOCK_WAIT_SHARE;
    }

    /// Wall mode: samples a thread blocked in a system call without a signal, which would
    /// make calls such as `nanosleep` or `poll` return EINTR. While it stays in the same call
    /// and uses no CPU, its last stack is counted again; otherwise the stack is unwound from
    /// the registers the kernel reports, and kept only if the thread did not move meanwhile.
    ///
    /// A thread that used little CPU since its last tick but is running right now is most
    /// likely between two calls: a signal sent now would land in the next one. It is given
    /// a moment to block (within the tick's budget); if it does not, this tick skips it
    /// (counted).
    pub(super) fn sample_blocked(&mut self, tid: i32) -> Blocking {
        let Some(cpu_now) = threads::cpu_time(tid) else {
            return Blocking::Running;
        };
        let cpu_before = self
            .targets
            .get_mut(&tid)
            .and_then(|t| t.cpu_seen.replace(cpu_now));
        let mostly_blocked = cpu_before.is_some_and(|before| {
            cpu_now.saturating_sub(before) < self.interval.as_nanos() as u64 / 2
        });
        let mut state = self.syscall_state(tid);
        // Little CPU but not in a call: on a busy machine that may be a busy thread waiting
        // for a CPU, sampled like any running thread.
        let mostly_blocked = mostly_blocked
            && !(matches!(state, Some(SyscallState::Running))
                && self.starved_while_busy(tid, cpu_now));
        for _ in 0..BLOCK_WAIT_TRIES {
            if !mostly_blocked
                || matches!(state, Some(SyscallState::Blocked { .. }))
                || self.block_wait_left < BLOCK_WAIT
            {
                break;
            }
            self.block_wait_left -= BLOCK_WAIT;
            std::thread::sleep(BLOCK_WAIT);
            state = self.syscall_state(tid);
        }
        match state {
            Some(SyscallState::Blocked { line, sp, pc }) => {
                if self.sample_blocked_in(tid, line, sp, pc) {
                    Blocking::Sampled
                } else {
                    Blocking::BetweenCalls
                }
            }
            _ if mostly_blocked => Blocking::BetweenCalls,
            _ => Blocking::Running,
        }
    }

    /// Whether thread `tid` spent at least half the time since it was last looked at here
    /// runnable but waiting for a CPU, and never blocked or slept meanwhile: a busy thread
    /// that a loaded machine keeps from running. One that blocked may be runnable on its way
    /// out of a call a signal would still interrupt (a `poll` that just timed out returns
    /// EINTR if a signal is pending by then), so it is not taken for busy; nor is one that
    /// has run less than [`MIN_CPU_USE`] since it was last seen blocked in a call, because
    /// it may not have left that call yet (it can wait for a CPU on its way out for longer
    /// than a tick). False at the first look.
    fn starved_while_busy(&mut self, tid: i32, cpu_now: u64) -> bool {
        let at = crate::signal::futex::monotonic_nanos();
        let (Some(waited), Some(voluntary_switches)) = (
            threads::run_queue_wait(tid),
            threads::voluntary_switches(tid),
        ) else {
            return false;
        };
        let Some(target) = self.targets.get_mut(&tid) else {
            return false;
        };
        let leaving_a_call = target.blocked.as_ref().is_some_and(|blocked| {
            cpu_now.saturating_sub(blocked.cpu) < MIN_CPU_USE.as_nanos() as u64
        });
        let look = RunQueueLook {
            at,
            waited,
            voluntary_switches,
        };
        let before = target.run_queue_seen.replace(look);
        !leaving_a_call
            && before.is_some_and(|before| {
                voluntary_switches == before.voluntary_switches
                    && waited.saturating_sub(before.waited).saturating_mul(2)
                        >= at.saturating_sub(before.at)
            })
    }

    /// Reads `/proc/self/task/<tid>/syscall`, keeping it open while few threads are sampled
    /// (an open file is a descriptor the program may not expect to see taken).
    fn syscall_state(&mut self, tid: i32) -> Option<SyscallState> {
        let keep_open = self.targets.len() <= MAX_OPEN_SYSCALL_FILES;
        let target = self.targets.get_mut(&tid)?;
        if !keep_open {
            target.syscall_file = None;
            return SyscallFile::open(tid)?.state();
        }
        if target.syscall_file.is_none() {
            target.syscall_file = SyscallFile::open(tid);
        }
        target.syscall_file.as_ref()?.state()
    }

    /// Samples thread `tid`, blocked in the call `line` entered at `sp`/`pc`; false if it
    /// moved while being unwound.
    fn sample_blocked_in(&mut self, tid: i32, line: String, sp: u64, pc: u64) -> bool {
        let Some(cpu) = threads::cpu_time(tid) else {
            return false;
        };
        let Some(target) = self.targets.get_mut(&tid) else {
            return false;
        };
        if let Some(blocked) = target
            .blocked
            .as_ref()
            .filter(|b| b.call == line && b.cpu == cpu)
        {
            let again = blocked.sample.clone();
            Stats::add(&self.stats.blocked_repeated, 1);
            self.record(again);
            return true;
        }
        let Some(snapshot) = signal::current_snapshot() else {
            return false;
        };
        let registers = Registers { ip: pc, sp, bp: 0 };
        let (depth, stop) = signal::unwind_blocked(
            snapshot,
            registers,
            &mut self.blocked_cache,
            &mut self.blocked_frames,
        );
        let still = self.syscall_state(tid);
        let unchanged = matches!(&still, Some(SyscallState::Blocked { line: now, .. }) if *now == line)
            && threads::cpu_time(tid) == Some(cpu);
        if !unchanged {
            return false;
        }
        let sample = RawSample {
            tid,
            generation: snapshot.generation,
            frames: self.blocked_frames[..depth.min(self.blocked_frames.len())].into(),
            stop,
            handler_nanos: None,
        };
        // A stack outside the known mappings is unwound again once the maps are re-read.
        if let Some(target) = self
            .targets
            .get_mut(&tid)
            .filter(|_| stop != StopReason::UnknownStack)
        {
            target.blocked = Some(Blocked {
                call: line,
                cpu,
                sample: sample.clone(),
            });
        }
        Stats::add(&self.stats.blocked_unwound, 1);
        self.record(sample);
        true
    }
}
