//! The sampler thread: when and whom to signal.
//!
//! On an absolute-deadline schedule it collects the samples its earlier requests produced,
//! cancels requests that went unanswered too long, and sends each target thread without a
//! request in flight a new one. Samples go to the drain in batches. Between ticks it rebuilds
//! the module snapshot when libraries come and go, and frees retired snapshots once no
//! handler can be reading them.

mod blocked;

use blocked::{Blocked, Blocking};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use crate::drain::{DrainMessage, RawSample};
use crate::error::Error;
use crate::modules::{Generation, ModuleRegistry, UnwindSnapshot};
use crate::settings::Mode;
use crate::signal::slot::{Progress, SlotPool, StopReason, UnwindCache};
use crate::signal::{self, futex, Control, CONTROL};
use crate::stats::{Stats, ThreadState};
use crate::thread_start;
use crate::threads::{self, Selector, SyscallFile};

/// A handler normally answers within microseconds of its signal; a thread that waits for a
/// CPU on a busy machine can take milliseconds. Past this a request counts as unanswered.
const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// A stack outside every known mapping makes us re-read `/proc/self/maps`, at most this often.
/// A read can miss a mapping that changes meanwhile (a program that maps and unmaps memory
/// all the time, as tcmalloc does), so a stack can drop out of one read and be back in the
/// next.
const MIN_FORCED_REFRESH_GAP: Duration = Duration::from_millis(10);
/// The memory map the handler bounds stack reads with is re-read at least this often.
const REGIONS_MAX_AGE: Duration = Duration::from_secs(1);
/// Samples sent to the drain together: one wake-up of the drain per batch, not per sample.
const BATCH_SAMPLES: usize = 256;
/// A partial batch is sent after this long, so a dump never misses much.
const BATCH_AGE: Duration = Duration::from_millis(50);
/// How often the sampler looks for stragglers while stopping.
const STOP_POLL: Duration = Duration::from_millis(1);
/// How often `all` and name patterns look for new threads (and renamed ones).
const RESCAN_INTERVAL: Duration = Duration::from_millis(10);
/// How often a sampled thread's name is read again.
const NAME_REFRESH: Duration = Duration::from_millis(50);

/// Who runs the process's sampler: the request word and the unwinder snapshot of `signal`
/// serve one sampler at a time, so a second one is refused rather than allowed to steal the
/// first one's wake-ups.
static OWNER: AtomicU8 = AtomicU8::new(Owner::Nobody as u8);

/// Who may run the sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Owner {
    Nobody = 0,
    /// A [`crate::session::Session`]: the one the preloaded library starts from
    /// `STACKSAMPLE_*`, or one started from Rust.
    Session = 1,
    /// A `Timer` or `Profiler` of the Rust, C or Python API.
    Api = 2,
}

impl Owner {
    fn describe(self) -> &'static str {
        match self {
            Owner::Nobody => "nobody",
            Owner::Session => "a profiling session (LD_PRELOAD or Session::start)",
            Owner::Api => "another Timer or Profiler",
        }
    }
}

/// The right to run the sampler, given back when dropped.
#[derive(Debug)]
pub struct SamplerClaim(());

impl SamplerClaim {
    /// Claims the sampler for `owner`; refused while someone else holds it.
    pub fn take(owner: Owner, action: &'static str) -> Result<SamplerClaim, Error> {
        match OWNER.compare_exchange(
            Owner::Nobody as u8,
            owner as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(SamplerClaim(())),
            Err(holder) => Err(Error::Busy {
                action,
                holder: Self::holder(holder).describe(),
            }),
        }
    }

    fn holder(raw: u8) -> Owner {
        match raw {
            1 => Owner::Session,
            2 => Owner::Api,
            _ => Owner::Nobody,
        }
    }

    /// In a forked child: the parent's claims belong to threads that do not exist here.
    pub fn release_after_fork() {
        OWNER.store(Owner::Nobody as u8, Ordering::Release);
    }
}

impl Drop for SamplerClaim {
    fn drop(&mut self) {
        OWNER.store(Owner::Nobody as u8, Ordering::Release);
    }
}

/// One thread being sampled (or waited for).
struct Target {
    state: ThreadState,
    /// Whether a request to it is in flight.
    busy: bool,
    /// When its name was last read (threads name themselves after they start).
    name_read: u64,
    /// Its CPU time at the last tick (CPU mode).
    cpu_seen: Option<u64>,
    /// When it was last looked at for time spent waiting for a CPU, and that time.
    run_queue_seen: Option<(u64, u64)>,
    /// Its last sample while blocked in a system call, to count again while it stays blocked.
    blocked: Option<Blocked>,
    /// Where to look whether it is blocked (wall mode), opened at its first tick.
    syscall_file: Option<SyscallFile>,
}

impl Target {
    fn new(state: ThreadState, now: u64) -> Target {
        Target {
            state,
            busy: false,
            name_read: now,
            cpu_seen: None,
            run_queue_seen: None,
            blocked: None,
            syscall_file: None,
        }
    }
}

/// A replaced snapshot, boxed at the address a handler may still be reading, and the slots
/// (with their state words) that were being written when it was replaced: only those
/// handlers can have loaded it.
struct Retired {
    _snapshot: Box<UnwindSnapshot>,
    writers: Vec<(usize, u32)>,
}

/// A request sent and not yet collected.
struct InFlight {
    slot: usize,
    armed: u32,
    tid: i32,
    sent_nanos: u64,
    /// A handler claimed it but had not finished when the timeout passed.
    stuck: bool,
}

pub struct Sampler {
    interval: Duration,
    mode: Mode,
    /// Unwinder cache and frame buffer for threads blocked in system calls.
    blocked_cache: UnwindCache,
    blocked_frames: Vec<u64>,
    /// Write the profile this often (`STACKSAMPLE_FLUSH`).
    flush: Option<u64>,
    last_flush: u64,
    response_timeout: u64,
    selector: Selector,
    targets: BTreeMap<i32, Target>,
    last_scan: u64,
    in_flight: Vec<InFlight>,
    registry: ModuleRegistry,
    pool: &'static SlotPool,
    to_drain: Sender<DrainMessage>,
    batch: Vec<RawSample>,
    batch_started: u64,
    stats: Arc<Stats>,
    /// Replaced snapshots, kept until every handler that may have loaded them is done.
    retired: Vec<Retired>,
    refresh_wanted: bool,
    last_regions_refresh: u64,
    /// Told once the first module snapshot is published and requests can be answered.
    ready: Option<Sender<()>>,
    /// Run before anything is first sent to the drain (see `before_first_send`).
    before_first_send: Option<Box<dyn FnOnce() + Send>>,
}

impl Sampler {
    pub fn new(
        interval: Duration,
        mode: Mode,
        flush: Option<Duration>,
        selector: Selector,
        pool: &'static SlotPool,
        to_drain: Sender<DrainMessage>,
        stats: Arc<Stats>,
    ) -> Sampler {
        let targets = selector
            .fixed
            .iter()
            .map(|&tid| {
                let state = if threads::exists(tid) {
                    ThreadState::Sampling
                } else {
                    ThreadState::NotFound
                };
                stats.set_thread_state(tid, state);
                (tid, Target::new(state, 0))
            })
            .collect();
        let timeout = (interval * 2).clamp(MIN_RESPONSE_TIMEOUT, MAX_RESPONSE_TIMEOUT);
        Sampler {
            interval,
            mode,
            blocked_cache: UnwindCache::new_in(),
            blocked_frames: vec![0; pool.max_depth()],
            flush: flush.map(|f| f.as_nanos() as u64),
            last_flush: futex::monotonic_nanos(),
            response_timeout: timeout.as_nanos() as u64,
            selector,
            targets,
            last_scan: 0,
            in_flight: Vec::new(),
            registry: ModuleRegistry::new(),
            pool,
            to_drain,
            batch: Vec::with_capacity(BATCH_SAMPLES),
            batch_started: 0,
            stats,
            retired: Vec::new(),
            refresh_wanted: false,
            last_regions_refresh: 0,
            ready: None,
            before_first_send: None,
        }
    }

    /// Has `run` send on `ready` once sampling can begin (the first snapshot takes a while
    /// to build for a large program).
    pub fn notify_ready(&mut self, ready: Sender<()>) {
        self.ready = Some(ready);
    }

    /// Has `run` call `start` before it first sends anything to the drain, so a drain thread
    /// is only started when there is something for it (the first tick, a dump request).
    pub fn before_first_send(&mut self, start: Box<dyn FnOnce() + Send>) {
        self.before_first_send = Some(start);
    }

    /// Every message to the drain follows a tick, a dump request or the wait for readiness;
    /// each of them calls this first.
    fn first_send(&mut self) {
        if let Some(start) = self.before_first_send.take() {
            start();
        }
    }

    /// Samples until asked to stop, then collects what is still in flight and hands the
    /// last batch to the drain. The module snapshot is built by the first tick, before its
    /// first request: the program starts without waiting for it, and one that ends before
    /// the first tick (a build's many short child processes) never pays for it.
    pub fn run(mut self) {
        threads::register_own_thread();
        threads::wake_on_time();
        thread_start::watch(self.selector.is_dynamic());
        signal::set_sampling(true);
        if let Some(ready) = self.ready.take() {
            // Someone waits for sampling to begin: the snapshot is built now, not by the
            // first tick.
            self.first_send();
            self.refresh_modules(futex::monotonic_nanos());
            let _ = ready.send(());
        }
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
        thread_start::watch(false);
        signal::set_sampling(false);
        self.drain_in_flight();
        self.send_batch();
        // A handler still stuck (its thread stopped mid-sample) may yet read these.
        std::mem::forget(std::mem::take(&mut self.retired));
        threads::unregister_own_thread();
    }

    /// Sleeps to `deadline`, forwarding dump requests on the way.
    fn sleep_until(&mut self, deadline: u64) -> Wake {
        let deadline_ts = futex::timespec_from_nanos(deadline);
        loop {
            let requests = CONTROL.take();
            if requests & Control::DUMP != 0 {
                self.first_send();
                self.send_batch();
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
        self.first_send();
        let now = futex::monotonic_nanos();
        self.collect(now);
        self.refresh_modules(now);
        self.add_started();
        self.rescan(now);
        signal::ensure_installed();
        self.flush_if_due(now);
        let tids: Vec<i32> = self.targets.keys().copied().collect();
        for tid in tids {
            self.request(tid, now);
        }
        if !self.batch.is_empty()
            && now.saturating_sub(self.batch_started) >= BATCH_AGE.as_nanos() as u64
        {
            self.send_batch();
        }
        let pool = self.pool;
        self.retired.retain(|r| {
            r.writers
                .iter()
                .any(|&(slot, word)| pool.still_writing(slot, word))
        });
    }

    fn flush_if_due(&mut self, now: u64) {
        let Some(flush) = self.flush else {
            return;
        };
        if now.saturating_sub(self.last_flush) >= flush {
            self.last_flush = now;
            self.send_batch();
            let _ = self.to_drain.send(DrainMessage::Dump { done: None });
        }
    }

    /// Collects finished requests and cancels those past the timeout.
    fn collect(&mut self, now: u64) {
        let mut index = 0;
        while index < self.in_flight.len() {
            let request = &self.in_flight[index];
            let slot = &self.pool.slots[request.slot];
            let overdue = now.saturating_sub(request.sent_nanos) > self.response_timeout;
            let progress = match slot.progress(request.armed) {
                Progress::Waiting if overdue => slot.cancel(request.armed),
                progress => progress,
            };
            match progress {
                Progress::Done => {
                    let request = self.in_flight.swap_remove(index);
                    self.take_sample(&request);
                    continue;
                }
                Progress::Cancelled => {
                    let request = self.in_flight.swap_remove(index);
                    self.no_response(request.tid);
                    continue;
                }
                Progress::Writing if overdue && !request.stuck => {
                    // The handler holds the slot until it finishes; the thread may have a
                    // new request meanwhile, in another slot.
                    self.in_flight[index].stuck = true;
                    let tid = self.in_flight[index].tid;
                    self.set_busy(tid, false);
                }
                Progress::Waiting | Progress::Writing => {}
            }
            index += 1;
        }
    }

    fn no_response(&mut self, tid: i32) {
        Stats::add(&self.stats.no_response, 1);
        self.set_busy(tid, false);
        if !threads::exists(tid) {
            self.set_state(tid, ThreadState::Exited);
        }
    }

    /// Re-reads a sampled thread's name now and then, so the report has the name it ends
    /// with, not the one it started with.
    fn refresh_name(&mut self, tid: i32) {
        let now = futex::monotonic_nanos();
        let Some(target) = self.targets.get_mut(&tid) else {
            return;
        };
        if now.saturating_sub(target.name_read) >= NAME_REFRESH.as_nanos() as u64 {
            target.name_read = now;
            self.stats.set_thread_state(tid, ThreadState::Sampling);
        }
    }

    fn set_busy(&mut self, tid: i32, busy: bool) {
        if let Some(target) = self.targets.get_mut(&tid) {
            target.busy = busy;
        }
    }

    /// Adds threads that `all` or the name pattern now selects.
    fn rescan(&mut self, now: u64) {
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
    fn add_started(&mut self) {
        if !self.selector.is_dynamic() {
            return;
        }
        for tid in thread_start::take_started() {
            if self.selector.all || self.selector.name_matches(tid) {
                self.add_target(tid);
            }
        }
    }

    fn add_target(&mut self, tid: i32) {
        if let Entry::Vacant(entry) = self.targets.entry(tid) {
            entry.insert(Target::new(ThreadState::Sampling, futex::monotonic_nanos()));
            self.stats.set_thread_state(tid, ThreadState::Sampling);
        }
    }

    /// Waits (polling) up to the response timeout for requests still in flight when stopping;
    /// what is left is counted as lost.
    fn drain_in_flight(&mut self) {
        let started = futex::monotonic_nanos();
        loop {
            let now = futex::monotonic_nanos();
            self.collect(now);
            if self.in_flight.iter().all(|r| r.stuck)
                || now.saturating_sub(started) > self.response_timeout
            {
                break;
            }
            std::thread::sleep(STOP_POLL);
        }
        for request in std::mem::take(&mut self.in_flight) {
            let slot = &self.pool.slots[request.slot];
            match slot.cancel(request.armed) {
                Progress::Done => self.take_sample(&request),
                Progress::Cancelled => Stats::add(&self.stats.no_response, 1),
                Progress::Waiting | Progress::Writing => Stats::add(&self.stats.stuck, 1),
            }
        }
    }

    /// Rebuilds the snapshot when libraries come or go; otherwise re-reads the memory map
    /// when a stack was outside it (at most every 10 ms) or a second has passed, so stack
    /// reads are bounded by mappings at most that old.
    fn refresh_modules(&mut self, now: u64) {
        if let Some(generation) = self.registry.refresh() {
            self.last_regions_refresh = now;
            self.publish(Some(generation));
            return;
        }
        let since = now.saturating_sub(self.last_regions_refresh);
        let wanted = self.refresh_wanted && since >= MIN_FORCED_REFRESH_GAP.as_nanos() as u64;
        if !wanted && since < REGIONS_MAX_AGE.as_nanos() as u64 {
            return;
        }
        let Some(current) = signal::current_snapshot() else {
            return;
        };
        let fresh = current.with_fresh_regions();
        self.refresh_wanted = false;
        self.last_regions_refresh = now;
        self.replace_snapshot(fresh);
    }

    /// Makes a new module generation current: the drain's map, then the handler's snapshot.
    fn publish(&mut self, generation: Option<Generation>) {
        let Some(generation) = generation else {
            return;
        };
        // Samples of older generations and then the new map go first on the same channel,
        // so the drain knows every map before any sample that needs it.
        self.send_batch();
        let _ = self.to_drain.send(DrainMessage::Modules(generation.map));
        self.replace_snapshot(generation.snapshot);
    }

    /// Hands the handler a new snapshot and retires the old one.
    fn replace_snapshot(&mut self, snapshot: Box<UnwindSnapshot>) {
        if let Some(old) = signal::publish_snapshot(snapshot) {
            let writers = self.pool.writing();
            if !writers.is_empty() {
                self.retired.push(Retired {
                    _snapshot: old,
                    writers,
                });
            }
        }
    }

    /// Sends thread `tid` a new request unless one is in flight.
    fn request(&mut self, tid: i32, now: u64) {
        let Some(target) = self.targets.get(&tid) else {
            return;
        };
        match target.state {
            ThreadState::Exited => return,
            _ if target.busy => return,
            ThreadState::NotFound if !threads::exists(tid) => return,
            ThreadState::NotFound => self.set_state(tid, ThreadState::Sampling),
            ThreadState::Sampling => {}
        }
        if self.mode == Mode::Cpu && !self.used_cpu(tid) {
            Stats::add(&self.stats.idle_skipped, 1);
            return;
        }
        if self.mode == Mode::Wall {
            match self.sample_blocked(tid) {
                Blocking::Sampled => return,
                Blocking::BetweenCalls => {
                    Stats::add(&self.stats.between_calls, 1);
                    return;
                }
                Blocking::Running => {}
            }
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
            // Nothing was queued, so nothing can claim the request.
            slot.cancel(armed);
            if error.raw_os_error() == Some(libc::ESRCH) {
                self.set_state(tid, ThreadState::Exited);
            } else {
                Stats::add(&self.stats.send_failed, 1);
            }
            return;
        }
        self.set_busy(tid, true);
        self.in_flight.push(InFlight {
            slot: slot_index,
            armed,
            tid,
            sent_nanos: now,
            stuck: false,
        });
    }

    /// Records a thread's new state; a thread that exited is forgotten unless the user named
    /// it, so a later thread that reuses its id starts afresh.
    fn set_state(&mut self, tid: i32, state: ThreadState) {
        self.stats.set_thread_state(tid, state);
        let fixed = self.selector.fixed.contains(&tid);
        let in_flight = self.in_flight.iter().any(|r| r.tid == tid);
        if state == ThreadState::Exited && !fixed && !in_flight {
            self.targets.remove(&tid);
        } else if let Some(target) = self.targets.get_mut(&tid) {
            target.state = state;
        }
    }

    /// Copies a finished sample out of its slot, frees the slot, and batches the sample.
    fn take_sample(&mut self, request: &InFlight) {
        let slot = &self.pool.slots[request.slot];
        let Some(data) = slot.finished(request.armed) else {
            return;
        };
        let depth = data.depth.min(data.frames.len());
        let sample = RawSample {
            tid: request.tid,
            generation: data.generation,
            frames: data.frames[..depth].into(),
            stop: data.stop,
            handler_nanos: Some(data.handler_nanos),
        };
        slot.release(request.armed);
        if !request.stuck {
            self.set_busy(request.tid, false);
        }
        if let Some(target) = self.targets.get_mut(&request.tid) {
            target.blocked = None;
        }
        self.refresh_name(request.tid);
        self.record(sample);
    }

    /// Counts a sample and what it lost, and batches it for the drain.
    fn record(&mut self, sample: RawSample) {
        Stats::add(&self.stats.taken, 1);
        let counter = match sample.stop {
            StopReason::Complete => None,
            StopReason::DepthLimit => Some(&self.stats.depth_limit),
            StopReason::UnwindError => Some(&self.stats.unwind_error),
            StopReason::UnknownStack => {
                self.refresh_wanted = true;
                Some(&self.stats.unknown_stack)
            }
            StopReason::StackTooSmall => Some(&self.stats.stack_too_small),
        };
        if let Some(counter) = counter {
            Stats::add(counter, 1);
        }
        if self.batch.is_empty() {
            self.batch_started = futex::monotonic_nanos();
        }
        self.batch.push(sample);
        if self.batch.len() >= BATCH_SAMPLES {
            self.send_batch();
        }
    }

    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_SAMPLES));
        let count = batch.len() as u64;
        if let Err(TrySendError::Full(_)) = self.to_drain.try_send(DrainMessage::Samples(batch)) {
            Stats::add(&self.stats.drain_busy, count);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Deadline,
    Stop,
}
