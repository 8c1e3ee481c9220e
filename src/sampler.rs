//! The sampler thread: when and whom to signal.
//!
//! On an absolute-deadline schedule it asks each target thread for a sample, waits on a futex
//! for the handler to publish it (with a timeout), copies it out of the slot and hands it to
//! the drain. Between samples it rebuilds the module snapshot when libraries come and go, and
//! frees retired snapshots once no handler can be reading them.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use crate::drain::{DrainMessage, RawSample};
use crate::modules::{ModuleRegistry, UnwindSnapshot};
use crate::signal::slot::{SampleSlot, SlotPool, StopReason, Wait};
use crate::signal::{self, futex, Control, CONTROL};
use crate::stats::{Stats, ThreadState};
use crate::threads;

/// A handler normally answers in microseconds; a thread that is descheduled on a busy
/// machine can take a few milliseconds. Past this the request counts as unanswered.
const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// A stack outside every known mapping makes us re-read `/proc/self/maps`, at most this often.
const MIN_FORCED_REFRESH_GAP: Duration = Duration::from_millis(100);

/// One thread the user asked for.
struct Target {
    tid: i32,
    state: ThreadState,
}

/// A request whose handler started but has not finished.
struct Stuck {
    slot: usize,
    armed: u32,
    tid: i32,
}

pub struct Sampler {
    interval: Duration,
    response_timeout: Duration,
    targets: Vec<Target>,
    registry: ModuleRegistry,
    pool: &'static SlotPool,
    to_drain: Sender<DrainMessage>,
    stats: Arc<Stats>,
    /// Replaced snapshots, kept boxed at the address a late handler may still be reading
    /// until every slot is idle.
    #[allow(clippy::vec_box)]
    retired: Vec<Box<UnwindSnapshot>>,
    stuck: Vec<Stuck>,
    refresh_wanted: bool,
    last_forced_refresh: Option<u64>,
}

impl Sampler {
    pub fn new(
        interval: Duration,
        tids: &[i32],
        registry: ModuleRegistry,
        pool: &'static SlotPool,
        to_drain: Sender<DrainMessage>,
        stats: Arc<Stats>,
    ) -> Sampler {
        let targets = tids
            .iter()
            .map(|&tid| {
                let state = if threads::exists(tid) {
                    ThreadState::Sampling
                } else {
                    ThreadState::NotFound
                };
                stats.set_thread_state(tid, state);
                Target { tid, state }
            })
            .collect();
        Sampler {
            interval,
            response_timeout: (interval * 2).clamp(MIN_RESPONSE_TIMEOUT, MAX_RESPONSE_TIMEOUT),
            targets,
            registry,
            pool,
            to_drain,
            stats,
            retired: Vec::new(),
            stuck: Vec::new(),
            refresh_wanted: false,
            last_forced_refresh: None,
        }
    }

    /// Samples until asked to stop; stuck requests still unfinished then are counted.
    pub fn run(mut self) {
        threads::block_signals(&[signal::SAMPLE_SIGNAL]);
        let interval = self.interval.as_nanos() as u64;
        let mut deadline = futex::monotonic_nanos();
        loop {
            deadline += interval;
            if self.sleep_until(deadline) == Wake::Stop {
                break;
            }
            let now = futex::monotonic_nanos();
            if now > deadline + interval {
                let missed = (now - deadline) / interval;
                Stats::add(&self.stats.missed_deadlines, missed);
                deadline += missed * interval;
            }
            self.tick();
        }
        self.collect_stuck();
        Stats::add(&self.stats.stuck, self.stuck.len() as u64);
    }

    /// Sleeps to `deadline`, forwarding dump requests on the way.
    fn sleep_until(&mut self, deadline: u64) -> Wake {
        let deadline_ts = futex::timespec_from_nanos(deadline);
        loop {
            let requests = CONTROL.take();
            if requests & Control::DUMP != 0 {
                let _ = self.to_drain.send(DrainMessage::Dump { done: None });
            }
            if requests & Control::STOP != 0 {
                return Wake::Stop;
            }
            if futex::monotonic_nanos() >= deadline {
                return Wake::Deadline;
            }
            CONTROL.sleep_until(&deadline_ts);
        }
    }

    fn tick(&mut self) {
        self.refresh_modules();
        for index in 0..self.targets.len() {
            self.sample_target(index);
        }
        self.collect_stuck();
        if !self.retired.is_empty() && self.pool.all_idle() {
            self.retired.clear();
        }
    }

    fn refresh_modules(&mut self) {
        let now = futex::monotonic_nanos();
        let gap = MIN_FORCED_REFRESH_GAP.as_nanos() as u64;
        let force = self.refresh_wanted
            && self
                .last_forced_refresh
                .is_none_or(|last| now.saturating_sub(last) >= gap);
        if force {
            self.refresh_wanted = false;
            self.last_forced_refresh = Some(now);
        }
        let Some(generation) = self.registry.refresh(force) else {
            return;
        };
        // The map goes first on the same channel, so the drain knows it before any sample
        // of its generation arrives.
        let _ = self.to_drain.send(DrainMessage::Modules(generation.map));
        if let Some(old) = signal::publish_snapshot(generation.snapshot) {
            self.retired.push(old);
        }
    }

    fn sample_target(&mut self, index: usize) {
        let tid = self.targets[index].tid;
        match self.targets[index].state {
            ThreadState::Exited => return,
            ThreadState::NotFound if !threads::exists(tid) => return,
            ThreadState::NotFound => self.set_state(index, ThreadState::Sampling),
            ThreadState::Sampling => {}
        }
        let Some((slot_index, slot)) = self.pool.idle_slot() else {
            Stats::add(&self.stats.slots_busy, 1);
            return;
        };
        let Some(armed) = slot.arm() else {
            Stats::add(&self.stats.slots_busy, 1);
            return;
        };
        Stats::add(&self.stats.requested, 1);
        if let Err(error) = signal::request_sample(tid, slot_index, armed) {
            // Nothing was queued, so the cancel below always succeeds.
            slot.wait(armed, Duration::ZERO);
            if error.raw_os_error() == Some(libc::ESRCH) {
                self.set_state(index, ThreadState::Exited);
            } else {
                Stats::add(&self.stats.send_failed, 1);
            }
            return;
        }
        match slot.wait(armed, self.response_timeout) {
            Wait::Done => self.collect(slot, armed, tid),
            Wait::NoResponse => {
                Stats::add(&self.stats.no_response, 1);
                if !threads::exists(tid) {
                    self.set_state(index, ThreadState::Exited);
                }
            }
            Wait::Stuck => self.stuck.push(Stuck {
                slot: slot_index,
                armed,
                tid,
            }),
        }
    }

    fn set_state(&mut self, index: usize, state: ThreadState) {
        self.targets[index].state = state;
        self.stats.set_thread_state(self.targets[index].tid, state);
    }

    /// Collects stuck requests that have finished since.
    fn collect_stuck(&mut self) {
        let pool = self.pool;
        let finished: Vec<Stuck> = {
            let (done, waiting) = std::mem::take(&mut self.stuck)
                .into_iter()
                .partition(|s| pool.slots[s.slot].is_done(s.armed));
            self.stuck = waiting;
            done
        };
        for stuck in finished {
            self.collect(&pool.slots[stuck.slot], stuck.armed, stuck.tid);
        }
    }

    /// Copies a finished sample out of its slot and frees the slot.
    fn collect(&mut self, slot: &SampleSlot, armed: u32, tid: i32) {
        let Some(data) = slot.finished(armed) else {
            return;
        };
        let depth = data.depth.min(data.frames.len());
        let sample = RawSample {
            tid,
            generation: data.generation,
            frames: data.frames[..depth].into(),
            stop: data.stop,
            handler_nanos: data.handler_nanos,
        };
        slot.release(armed);
        Stats::add(&self.stats.taken, 1);
        let counter = match sample.stop {
            StopReason::Complete => None,
            StopReason::DepthLimit => Some(&self.stats.depth_limit),
            StopReason::UnwindError => Some(&self.stats.unwind_error),
            StopReason::UnknownStack => {
                self.refresh_wanted = true;
                Some(&self.stats.unknown_stack)
            }
        };
        if let Some(counter) = counter {
            Stats::add(counter, 1);
        }
        if let Err(TrySendError::Full(_)) = self.to_drain.try_send(DrainMessage::Sample(sample)) {
            Stats::add(&self.stats.drain_busy, 1);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Deadline,
    Stop,
}
