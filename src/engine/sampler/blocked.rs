//! Threads that are blocked in a system call (wall mode) or idle (CPU mode): sampled without
//! a signal, or not at all, so the program's blocking calls never see EINTR from us.

use std::sync::Arc;
use std::time::Duration;

use super::frame_pointer::FramePointerSearch;
use crate::base::clock::monotonic_nanos;
use crate::engine::handler::{self, Registers, UnwindCache, UNKNOWN_FRAME_POINTER};
use crate::modules::ModuleMap;
use crate::sample::{PythonStack, RawSample, StopReason};
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

/// What the sampler has seen of one thread's use of its time, between ticks.
#[derive(Default)]
pub(super) struct ThreadWatch {
    /// Its CPU time at the last tick.
    cpu_seen: Option<u64>,
    /// What it had done when last looked at for time spent waiting for a CPU.
    run_queue_seen: Option<RunQueueLook>,
    /// Its last sample while blocked in a system call, to count again while it stays blocked.
    blocked: Option<Blocked>,
    /// Where to look whether it is blocked, opened at its first tick.
    syscall_file: Option<SyscallFile>,
}

impl ThreadWatch {
    /// The thread was sampled by a signal: it is not (or no longer) in the call last seen.
    pub(super) fn forget_blocked(&mut self) {
        self.blocked = None;
    }
}

/// A look at how a thread used its time: when, how long it had waited for a CPU by then,
/// and how often it had blocked or slept.
struct RunQueueLook {
    at: u64,
    waited: u64,
    voluntary_switches: u64,
}

/// A sample of a thread blocked in a system call, and how to tell the call has not ended.
struct Blocked {
    call: String,
    cpu: u64,
    sample: RawSample,
}

/// What [`BlockedSampler::sample`] did.
pub(super) enum Blocking {
    /// Sampled without a signal.
    Sampled(RawSample),
    /// Running: signal it.
    Running,
    /// Mostly blocked but caught between calls: skipped this tick.
    BetweenCalls,
}

/// One consumer's means of sampling threads without a signal: an unwinder cache and frame
/// buffer of its own, what finding frame pointers needs, and the time each tick may still
/// spend waiting for a thread to block.
pub(super) struct BlockedSampler {
    interval: Duration,
    cache: UnwindCache,
    frames: Vec<u64>,
    wait_left: Duration,
    /// The latest module map: the functions frame pointers are checked against.
    map: Option<Arc<ModuleMap>>,
    search_cache: UnwindCache,
    search_window: Vec<u8>,
}

/// One thread as [`BlockedSampler`] looks at it: its id, what was seen of it, and how many
/// threads its consumer samples (few keep their `/proc` file open).
pub(super) struct Watched<'w> {
    pub(super) tid: i32,
    pub(super) watch: &'w mut ThreadWatch,
    pub(super) sampled_threads: usize,
}

impl BlockedSampler {
    pub(super) fn new(interval: Duration, max_depth: usize) -> BlockedSampler {
        BlockedSampler {
            interval,
            cache: UnwindCache::new_in(),
            frames: vec![0; max_depth],
            wait_left: Duration::ZERO,
            map: None,
            search_cache: UnwindCache::new_in(),
            search_window: Vec::new(),
        }
    }

    pub(super) fn set_map(&mut self, map: Arc<ModuleMap>) {
        self.map = Some(map);
    }

    /// CPU mode: whether thread `tid` used enough CPU since its last sample to be sampled
    /// again. Taking a sample itself costs the thread a little CPU (signal delivery and the
    /// handler), so a blocked thread must not count that as use.
    pub(super) fn used_cpu(&self, thread: &mut Watched) -> bool {
        let threshold = (self.interval.as_nanos() as u64 / 20).max(MIN_CPU_USE.as_nanos() as u64);
        let Some(now) = threads::cpu_time(thread.tid) else {
            return false;
        };
        // The first look only sets the baseline.
        let Some(before) = thread.watch.cpu_seen else {
            thread.watch.cpu_seen = Some(now);
            return false;
        };
        if now.saturating_sub(before) < threshold {
            return false;
        }
        // Used CPU, but blocked now: a signal would interrupt its call (EINTR) and the
        // sample would show the call, not where the time went. Next tick.
        if matches!(syscall_state(thread), Some(SyscallState::Blocked { .. })) {
            return false;
        }
        thread.watch.cpu_seen = Some(now);
        true
    }

    /// Starts a tick's budget for waiting on threads between two calls.
    pub(super) fn reset_wait(&mut self) {
        self.wait_left = self.interval / BLOCK_WAIT_SHARE;
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
    pub(super) fn sample(
        &mut self,
        thread: &mut Watched,
        stats: &Stats,
        python: &mut dyn FnMut() -> Option<PythonStack>,
    ) -> Blocking {
        let Some(cpu_now) = threads::cpu_time(thread.tid) else {
            return Blocking::Running;
        };
        let cpu_before = thread.watch.cpu_seen.replace(cpu_now);
        let mostly_blocked = cpu_before.is_some_and(|before| {
            cpu_now.saturating_sub(before) < self.interval.as_nanos() as u64 / 2
        });
        let mut state = syscall_state(thread);
        // Little CPU but not in a call: on a busy machine that may be a busy thread waiting
        // for a CPU, sampled like any running thread.
        let mostly_blocked = mostly_blocked
            && !(matches!(state, Some(SyscallState::Running))
                && starved_while_busy(thread, cpu_now));
        for _ in 0..BLOCK_WAIT_TRIES {
            if !mostly_blocked
                || matches!(state, Some(SyscallState::Blocked { .. }))
                || self.wait_left < BLOCK_WAIT
            {
                break;
            }
            self.wait_left -= BLOCK_WAIT;
            std::thread::sleep(BLOCK_WAIT);
            state = syscall_state(thread);
        }
        match state {
            Some(SyscallState::Blocked { line, sp, pc }) => {
                match self.sample_blocked_in(thread, line, sp, pc, stats, python) {
                    Some(sample) => Blocking::Sampled(sample),
                    None => Blocking::BetweenCalls,
                }
            }
            _ if mostly_blocked => Blocking::BetweenCalls,
            _ => Blocking::Running,
        }
    }

    /// Samples thread `tid`, blocked in the call `line` entered at `sp`/`pc`, with its
    /// Python frames from `python`; `None` if it moved while being read.
    fn sample_blocked_in(
        &mut self,
        thread: &mut Watched,
        line: String,
        sp: u64,
        pc: u64,
        stats: &Stats,
        python: &mut dyn FnMut() -> Option<PythonStack>,
    ) -> Option<RawSample> {
        let cpu = threads::cpu_time(thread.tid)?;
        if let Some(blocked) = thread
            .watch
            .blocked
            .as_mut()
            .filter(|b| b.call == line && b.cpu == cpu)
        {
            // A thread that blocked before its Python state was listed gets its frames now.
            if blocked.sample.python.is_none() {
                blocked.sample.python = python();
            }
            Stats::add(&stats.blocked_repeated, 1);
            return Some(blocked.sample.clone());
        }
        let snapshot = handler::current_snapshot()?;
        let registers = Registers {
            ip: pc,
            sp,
            bp: UNKNOWN_FRAME_POINTER,
        };
        let mut search = FramePointerSearch {
            snapshot,
            map: (self.map.as_deref()).filter(|map| map.generation == snapshot.generation),
            cache: &mut self.search_cache,
            window: &mut self.search_window,
            found: false,
        };
        let (depth, stop) = handler::unwind_blocked(
            snapshot,
            registers,
            &mut self.cache,
            &mut self.frames,
            &mut search,
        );
        let python = python();
        let still = syscall_state(thread);
        let unchanged = matches!(&still, Some(SyscallState::Blocked { line: now, .. }) if *now == line)
            && threads::cpu_time(thread.tid) == Some(cpu);
        if !unchanged {
            return None;
        }
        let sample = RawSample {
            tid: thread.tid,
            generation: snapshot.generation,
            frames: self.frames[..depth.min(self.frames.len())].into(),
            stop,
            handler_nanos: None,
            python,
        };
        // A stack outside the known mappings is unwound again once the maps are re-read.
        if stop != StopReason::UnknownStack {
            thread.watch.blocked = Some(Blocked {
                call: line,
                cpu,
                sample: sample.clone(),
            });
        }
        Stats::add(&stats.blocked_unwound, 1);
        if search.found {
            Stats::add(&stats.blocked_frame_pointer_found, 1);
        }
        Some(sample)
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
fn starved_while_busy(thread: &mut Watched, cpu_now: u64) -> bool {
    let at = monotonic_nanos();
    let (Some(waited), Some(voluntary_switches)) = (
        threads::run_queue_wait(thread.tid),
        threads::voluntary_switches(thread.tid),
    ) else {
        return false;
    };
    let leaving_a_call =
        thread.watch.blocked.as_ref().is_some_and(|blocked| {
            cpu_now.saturating_sub(blocked.cpu) < MIN_CPU_USE.as_nanos() as u64
        });
    let look = RunQueueLook {
        at,
        waited,
        voluntary_switches,
    };
    let before = thread.watch.run_queue_seen.replace(look);
    !leaving_a_call
        && before.is_some_and(|before| {
            voluntary_switches == before.voluntary_switches
                && waited.saturating_sub(before.waited).saturating_mul(2)
                    >= at.saturating_sub(before.at)
        })
}

/// Reads `/proc/self/task/<tid>/syscall`, keeping it open while few threads are sampled
/// (an open file is a descriptor the program may not expect to see taken).
fn syscall_state(thread: &mut Watched) -> Option<SyscallState> {
    if thread.sampled_threads > MAX_OPEN_SYSCALL_FILES {
        thread.watch.syscall_file = None;
        return SyscallFile::open(thread.tid)?.state();
    }
    if thread.watch.syscall_file.is_none() {
        thread.watch.syscall_file = SyscallFile::open(thread.tid);
    }
    thread.watch.syscall_file.as_mut()?.state()
}
