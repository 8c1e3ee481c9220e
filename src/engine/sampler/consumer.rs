//! One user of the sampler (the preloaded session, a `Timer`, a `Profiler`): which threads
//! it wants sampled, on what schedule, and where its samples and module maps go. Every
//! consumer keeps its own counters, so each profile says what it lost.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::blocked::{BlockedSampler, Blocking, ThreadWatch, Watched};
use crate::base::clock::monotonic_nanos;
use crate::engine::sink::{Delivery, SampleSink};
use crate::modules::ModuleMap;
use crate::sample::{PythonStack, RawSample, SampleBatch, StopReason};
use crate::settings::Mode;
use crate::stats::{Stats, ThreadState};
use crate::threads::{self, Selector};

/// A handler normally answers within microseconds of its signal; a thread that waits for a
/// CPU on a busy machine can take milliseconds. Past this a request counts as unanswered.
const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// Samples sent to the drain together: one wake-up of the drain per batch, not per sample.
const BATCH_SAMPLES: usize = 256;
/// Batches the drain may have finished with before the sampler takes them back; more are
/// freed by the drain.
const RETURNED_BATCHES: usize = 64;
/// A partial batch is sent after this long, so a dump never misses much.
const BATCH_AGE: Duration = Duration::from_millis(50);
/// How often `all` and name patterns look for new threads (and renamed ones).
const RESCAN_INTERVAL: Duration = Duration::from_millis(10);
/// How often a sampled thread's name is read again.
const NAME_REFRESH: Duration = Duration::from_millis(50);

/// What a user of the sampler asks for.
pub struct ConsumerOptions {
    pub interval: Duration,
    pub mode: Mode,
    /// Write the profile this often (`STACKSAMPLE_FLUSH`).
    pub flush: Option<Duration>,
    pub selector: Selector,
    /// Frames kept per stack, innermost first.
    pub max_depth: usize,
    /// Read the Python frames of CPython threads with each sample.
    pub python: bool,
    /// Samples, module maps and dump requests go here.
    pub sink: Box<dyn SampleSink>,
    pub stats: Arc<Stats>,
    /// Whether the dump signal and terminating signals ask this consumer for a profile
    /// (the preloaded session's files).
    pub answers_dumps: bool,
    /// Run before anything is first sent to the drain (the session starts its drain thread
    /// only once there is something for it).
    pub before_first_send: Option<Box<dyn FnOnce() + Send>>,
}

impl ConsumerOptions {
    /// `selector`'s threads every `interval`, in wall mode, with no flushes and no part in
    /// dump requests.
    pub fn new(
        selector: Selector,
        interval: Duration,
        max_depth: usize,
        sink: Box<dyn SampleSink>,
        stats: Arc<Stats>,
    ) -> ConsumerOptions {
        ConsumerOptions {
            interval,
            mode: Mode::Wall,
            flush: None,
            selector,
            max_depth,
            python: true,
            sink,
            stats,
            answers_dumps: false,
            before_first_send: None,
        }
    }
}

/// One thread being sampled (or waited for).
pub(super) struct Target {
    pub(super) state: ThreadState,
    /// Whether this consumer waits for a sample of it.
    busy: bool,
    /// When its name was last read (threads name themselves after they start).
    name_read: u64,
    /// What was seen of its use of time, to sample it without a signal while it blocks.
    watch: ThreadWatch,
}

impl Target {
    fn new(state: ThreadState, now: u64) -> Target {
        Target {
            state,
            busy: false,
            name_read: now,
            watch: ThreadWatch::default(),
        }
    }
}

pub(super) struct Consumer {
    pub(super) id: u64,
    pub(super) interval: Duration,
    pub(super) mode: Mode,
    pub(super) answers_dumps: bool,
    /// When the sampler took it on: requests sent before then were unwound with module
    /// maps it may not have, so it does not share them.
    pub(super) joined: u64,
    /// Asked to leave: who waits for that, and since when.
    pub(super) leaving: Option<(Sender<()>, u64)>,
    /// When its next tick is due.
    pub(super) next_due: u64,
    pub(super) response_timeout: u64,
    max_depth: usize,
    pub(super) python: bool,
    flush: Option<u64>,
    last_flush: u64,
    pub(super) selector: Selector,
    pub(super) targets: BTreeMap<i32, Target>,
    last_scan: u64,
    sink: Box<dyn SampleSink>,
    before_first_send: Option<Box<dyn FnOnce() + Send>>,
    /// Maps and dump requests its drain had no room for yet, in order; the sampler never
    /// waits for a consumer, so one that falls behind cannot hold up the others.
    outbox: VecDeque<Delivery>,
    batch: Vec<RawSample>,
    batch_started: u64,
    /// Batches the drain is done with come back here, to be freed or reused on this thread.
    returned: Receiver<Vec<RawSample>>,
    return_address: Sender<Vec<RawSample>>,
    pub(super) stats: Arc<Stats>,
    /// Samples threads blocked in system calls without a signal.
    blocked: BlockedSampler,
    /// A sample of it was on a stack outside every known mapping.
    pub(super) saw_unknown_stack: bool,
}

impl Consumer {
    pub(super) fn new(id: u64, options: ConsumerOptions) -> Consumer {
        let now = monotonic_nanos();
        let targets = options
            .selector
            .fixed
            .iter()
            .map(|&tid| {
                let state = if threads::exists(tid) {
                    ThreadState::Sampling
                } else {
                    ThreadState::NotFound
                };
                options.stats.set_thread_state(tid, state);
                (tid, Target::new(state, 0))
            })
            .collect();
        let interval = options.interval;
        let timeout = (interval * 2).clamp(MIN_RESPONSE_TIMEOUT, MAX_RESPONSE_TIMEOUT);
        let (return_address, returned) = crossbeam_channel::bounded(RETURNED_BATCHES);
        Consumer {
            id,
            interval,
            mode: options.mode,
            answers_dumps: options.answers_dumps,
            joined: now,
            leaving: None,
            next_due: now + interval.as_nanos() as u64,
            response_timeout: timeout.as_nanos() as u64,
            max_depth: options.max_depth,
            python: options.python,
            flush: options.flush.map(|f| f.as_nanos() as u64),
            last_flush: now,
            selector: options.selector,
            targets,
            last_scan: 0,
            sink: options.sink,
            before_first_send: options.before_first_send,
            outbox: VecDeque::new(),
            batch: Vec::with_capacity(BATCH_SAMPLES),
            batch_started: 0,
            returned,
            return_address,
            stats: options.stats,
            blocked: BlockedSampler::new(interval, options.max_depth),
            saw_unknown_stack: false,
        }
    }

    /// Starts its schedule: the sampler took it on at `now`.
    pub(super) fn start_at(&mut self, now: u64) {
        self.joined = now;
        self.next_due = now + self.interval.as_nanos() as u64;
    }

    /// Moves the schedule past `now`, counting the ticks the sampler was too late for.
    pub(super) fn advance_schedule(&mut self, now: u64) {
        let interval = self.interval.as_nanos() as u64;
        if now > self.next_due + interval {
            let missed = (now - self.next_due) / interval;
            let threads = self
                .targets
                .values()
                .filter(|t| t.state == ThreadState::Sampling)
                .count() as u64;
            Stats::add(&self.stats.missed_deadlines, missed * threads);
            self.next_due += missed * interval;
        }
        self.next_due += interval;
    }

    /// Thread `tid` is due: whether it needs a signal. A thread sampled another way (blocked
    /// in a call, its Python frames read by `python`), idle in CPU mode, gone, or still
    /// waited for does not.
    pub(super) fn wants_signal(
        &mut self,
        tid: i32,
        python: &mut dyn FnMut() -> Option<PythonStack>,
    ) -> bool {
        let Some(target) = self.targets.get(&tid) else {
            return false;
        };
        match target.state {
            ThreadState::Exited => return false,
            _ if target.busy => {
                Stats::add(&self.stats.previous_unanswered, 1);
                return false;
            }
            ThreadState::NotFound if !threads::exists(tid) => return false,
            ThreadState::NotFound => self.set_state(tid, ThreadState::Sampling),
            ThreadState::Sampling => {}
        }
        let sampled_threads = self.targets.len();
        let Some(target) = self.targets.get_mut(&tid) else {
            return false;
        };
        let mut thread = Watched {
            tid,
            watch: &mut target.watch,
            sampled_threads,
        };
        match self.mode {
            Mode::Cpu if !self.blocked.used_cpu(&mut thread) => {
                Stats::add(&self.stats.idle_skipped, 1);
                false
            }
            Mode::Cpu => true,
            Mode::Wall => match self.blocked.sample(&mut thread, &self.stats, python) {
                Blocking::Sampled(sample) => {
                    // A thread blocked for its whole life is never answered: its name (set
                    // after it started, as most are) is read again here.
                    self.refresh_name(tid);
                    self.record(sample);
                    false
                }
                Blocking::BetweenCalls => {
                    Stats::add(&self.stats.between_calls, 1);
                    false
                }
                Blocking::Running => true,
            },
        }
    }

    /// Starts a tick: its budget for waiting on threads between two calls is full again.
    pub(super) fn start_tick(&mut self) {
        self.blocked.reset_wait();
    }

    /// A finished sample of one of its requests; `stuck` if the request had been given up.
    pub(super) fn receive(&mut self, mut sample: RawSample, stuck: bool) {
        let tid = sample.tid;
        Stats::sub(&self.stats.in_flight, 1);
        sample.truncate(self.max_depth);
        if !self.python {
            sample.python = None;
        }
        if !stuck {
            self.set_busy(tid, false);
        }
        if let Some(target) = self.targets.get_mut(&tid) {
            target.watch.forget_blocked();
        }
        self.refresh_name(tid);
        self.record(sample);
    }

    /// One of its requests went unanswered.
    pub(super) fn no_response(&mut self, tid: i32) {
        Stats::add(&self.stats.no_response, 1);
        Stats::sub(&self.stats.in_flight, 1);
        self.set_busy(tid, false);
        if !threads::exists(tid) {
            self.set_state(tid, ThreadState::Exited);
        }
    }

    /// A request of its own given up at leaving, counted by `counter`.
    pub(super) fn given_up(&self, counter: &AtomicU64) {
        Stats::add(counter, 1);
        Stats::sub(&self.stats.in_flight, 1);
    }

    pub(super) fn set_busy(&mut self, tid: i32, busy: bool) {
        if let Some(target) = self.targets.get_mut(&tid) {
            target.busy = busy;
        }
    }

    /// Records a thread's new state; a thread that exited is forgotten unless the user named
    /// it, so a later thread that reuses its id starts afresh (a late sample of the old one
    /// is still counted).
    pub(super) fn set_state(&mut self, tid: i32, state: ThreadState) {
        self.stats.set_thread_state(tid, state);
        let fixed = self.selector.fixed.contains(&tid);
        if state == ThreadState::Exited && !fixed {
            self.targets.remove(&tid);
        } else if let Some(target) = self.targets.get_mut(&tid) {
            target.state = state;
        }
    }

    /// Re-reads a sampled thread's name now and then, so the report has the name it ends
    /// with, not the one it started with.
    fn refresh_name(&mut self, tid: i32) {
        let now = monotonic_nanos();
        let Some(target) = self.targets.get_mut(&tid) else {
            return;
        };
        if now.saturating_sub(target.name_read) >= NAME_REFRESH.as_nanos() as u64 {
            target.name_read = now;
            self.stats.set_thread_state(tid, ThreadState::Sampling);
        }
    }

    /// Adds threads that `all` or the name pattern now selects.
    pub(super) fn rescan(&mut self, now: u64) {
        if !self.selector.is_dynamic()
            || now.saturating_sub(self.last_scan) < RESCAN_INTERVAL.as_nanos() as u64
        {
            return;
        }
        self.last_scan = now;
        for tid in self.selector.scan() {
            self.add_target(tid);
        }
    }

    /// Threads that announced themselves as they started (see `thread_start`).
    pub(super) fn add_started(&mut self, started: &[i32]) {
        if !self.selector.is_dynamic() {
            return;
        }
        for &tid in started {
            if self.selector.all || self.selector.name_matches(tid) {
                self.add_target(tid);
            }
        }
    }

    fn add_target(&mut self, tid: i32) {
        if let Entry::Vacant(entry) = self.targets.entry(tid) {
            entry.insert(Target::new(ThreadState::Sampling, monotonic_nanos()));
            self.stats.set_thread_state(tid, ThreadState::Sampling);
        }
    }

    /// Counts a sample and what it lost, and batches it for the drain.
    pub(super) fn record(&mut self, sample: RawSample) {
        Stats::add(&self.stats.taken, 1);
        let counter = match sample.stop {
            StopReason::Complete | StopReason::FiberStart => None,
            StopReason::DepthLimit => Some(&self.stats.depth_limit),
            StopReason::UnwindError => Some(&self.stats.unwind_error),
            StopReason::UnknownStack => {
                self.saw_unknown_stack = true;
                Some(&self.stats.unknown_stack)
            }
            StopReason::NoHandlerStack => Some(&self.stats.no_handler_stack),
        };
        if let Some(counter) = counter {
            Stats::add(counter, 1);
        }
        if self.batch.is_empty() {
            self.batch_started = monotonic_nanos();
        }
        self.batch.push(sample);
        if self.batch.len() >= BATCH_SAMPLES {
            self.send_batch();
        }
    }

    /// Sends a partial batch that has waited long enough.
    pub(super) fn send_old_batch(&mut self, now: u64) {
        if !self.batch.is_empty()
            && now.saturating_sub(self.batch_started) >= BATCH_AGE.as_nanos() as u64
        {
            self.send_batch();
        }
    }

    /// Sends the batch, after anything still waiting in the outbox; a batch the drain has
    /// no room for is dropped and counted.
    pub(super) fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self.reusable_batch();
        let batch = SampleBatch::new(
            std::mem::replace(&mut self.batch, next),
            self.return_address.clone(),
        );
        let count = batch.len() as u64;
        self.flush_outbox();
        self.first_send();
        let sent = self.outbox.is_empty() && self.sink.offer(Delivery::Samples(batch)).is_ok();
        if !sent {
            Stats::add(&self.stats.drain_busy, count);
        }
    }

    /// A batch the drain is done with, emptied (its frames freed here), or a new one.
    fn reusable_batch(&mut self) -> Vec<RawSample> {
        let mut reusable = None;
        while let Ok(mut batch) = self.returned.try_recv() {
            batch.clear();
            if batch.capacity() >= BATCH_SAMPLES {
                reusable.get_or_insert(batch);
            }
        }
        reusable.unwrap_or_else(|| Vec::with_capacity(BATCH_SAMPLES))
    }

    /// Hands the drain a module map; samples taken with older maps go first.
    pub(super) fn send_map(&mut self, map: Arc<ModuleMap>) {
        self.blocked.set_map(map.clone());
        self.send_batch();
        self.post(Delivery::Modules(map));
    }

    /// Asks the drain for a profile, after the samples taken so far.
    pub(super) fn dump(&mut self) {
        self.send_batch();
        self.post(Delivery::Dump);
    }

    /// Sends a message that must not be lost, now or once the drain has room.
    fn post(&mut self, delivery: Delivery) {
        self.outbox.push_back(delivery);
        self.flush_outbox();
    }

    fn flush_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.first_send();
        }
        while let Some(delivery) = self.outbox.pop_front() {
            if let Err(delivery) = self.sink.offer(delivery) {
                self.outbox.push_front(delivery);
                return;
            }
        }
    }

    fn first_send(&mut self) {
        if let Some(start) = self.before_first_send.take() {
            start();
        }
    }

    pub(super) fn flush_if_due(&mut self, now: u64) {
        let Some(flush) = self.flush else {
            return;
        };
        if now.saturating_sub(self.last_flush) >= flush {
            self.last_flush = now;
            self.dump();
        }
    }
}
