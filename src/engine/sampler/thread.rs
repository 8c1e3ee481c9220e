//! The sampler thread: when and whom to signal, for everyone in the process who samples.
//!
//! One sampler serves every consumer: the preloaded session and any `Timer` or `Profiler`
//! of the API, each with its own threads, interval, counters and drain. It wakes when the
//! earliest consumer is due, collects the samples its earlier requests produced, cancels
//! requests that went unanswered too long, and sends each due thread without a request in
//! flight a new one. A thread that two consumers want at once gets one signal and both get
//! the sample (the sampling signal does not queue, so there is never more than one request
//! per thread). Between ticks it rebuilds the module snapshot when libraries come and go,
//! hands every consumer the new map, and frees retired snapshots once no handler can be
//! reading them.
//!
//! The thread starts with the first consumer and then stays, asleep while nobody samples,
//! so module maps keep one numbering for the life of the process.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::consumer::Consumer;
use super::python::PythonThreads;
use super::scheduling;
use crate::base::clock::{monotonic_nanos, timespec_from_nanos};
use crate::engine::handler::{self, Control, Progress, SlotPool, CONTROL};
use crate::engine::{install, thread_start};
use crate::modules::{Generation, ModuleMap, ModuleRegistry, UnwindSnapshot};
use crate::sample::{RawSample, StopReason};
use crate::stats::{Stats, ThreadState};
use crate::threads;

/// A stack outside every known mapping makes us re-read `/proc/self/maps`, at most this often.
/// A read can miss a mapping that changes meanwhile (a program that maps and unmaps memory
/// all the time, as tcmalloc does), so a stack can drop out of one read and be back in the
/// next.
const MIN_FORCED_REFRESH_GAP: Duration = Duration::from_millis(10);
/// The memory map the handler bounds stack reads with is re-read at least this often.
const REGIONS_MAX_AGE: Duration = Duration::from_secs(1);
/// How often the sampler looks for stragglers while a consumer leaves.
const STOP_POLL: Duration = Duration::from_millis(1);
/// How long the sampler sleeps when nobody samples (a command wakes it sooner).
const IDLE_SLEEP: Duration = Duration::from_secs(3600);
/// What consumers ask of the sampler thread.
pub(super) enum Command {
    /// Start serving a consumer; tell `ready` once its first request can be answered.
    Join {
        consumer: Box<Consumer>,
        ready: Option<Sender<()>>,
    },
    /// Stop serving consumer `id` once its last samples are sent; tell `done` then.
    Leave { id: u64, done: Sender<()> },
    /// Send no request to anyone (while the process image is about to be replaced), or
    /// go on again; tell `done` once in effect.
    Hold { held: bool, done: Sender<()> },
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
    /// Past this long without an answer it is cancelled.
    timeout: u64,
    /// A handler claimed it but had not finished when the timeout passed.
    stuck: bool,
    /// Consumers waiting for this sample (none once they all left).
    recipients: Vec<u64>,
}

pub(super) struct Sampler {
    pool: &'static SlotPool,
    commands: Receiver<Command>,
    consumers: Vec<Consumer>,
    in_flight: Vec<InFlight>,
    /// No requests are sent while set (see [`hold_requests`]).
    held: bool,
    registry: ModuleRegistry,
    /// The map of the current generation, for consumers that join later.
    current_map: Option<Arc<ModuleMap>>,
    /// Replaced snapshots, kept until every handler that may have loaded them is done.
    retired: Vec<Retired>,
    refresh_wanted: bool,
    last_regions_refresh: u64,
    /// The tick interval the thread's scheduling was last asked for.
    scheduled_for: Option<Duration>,
    python: PythonThreads,
}

impl Sampler {
    pub(super) fn new(pool: &'static SlotPool, commands: Receiver<Command>) -> Sampler {
        Sampler {
            pool,
            commands,
            consumers: Vec::new(),
            in_flight: Vec::new(),
            held: false,
            registry: ModuleRegistry::new(),
            current_map: None,
            retired: Vec::new(),
            refresh_wanted: false,
            last_regions_refresh: 0,
            scheduled_for: None,
            python: PythonThreads::default(),
        }
    }

    /// Serves consumers for the life of the process. The module snapshot is built by the
    /// first tick, before its first request: the program starts without waiting for it,
    /// and one that ends before the first tick (a build's many short child processes) never
    /// pays for it. A bug that panics loses one round, not the process's sampling.
    pub(super) fn run(mut self) {
        threads::register_own_thread();
        scheduling::wake_on_time();
        let mut reported = false;
        loop {
            let round = panic::catch_unwind(AssertUnwindSafe(|| self.round()));
            if round.is_err() && !reported {
                reported = true;
                eprintln!("stacksample: internal error (panic) in the sampler thread; sampling goes on, the profile may miss samples");
            }
        }
    }

    /// Answers what was asked, then ticks if a consumer is due, else sleeps until one is.
    fn round(&mut self) {
        let requests = CONTROL.take();
        if requests & Control::DUMP != 0 {
            self.dump();
        }
        self.run_commands();
        let now = monotonic_nanos();
        let leaving = self.consumers.iter().any(|c| c.leaving.is_some());
        if leaving {
            self.collect(now);
            self.finish_leaving(now);
        }
        let due = self.staying().map(|c| c.next_due).min();
        match due {
            Some(due) if now >= due => self.tick(now),
            _ => {
                let idle = now + IDLE_SLEEP.as_nanos() as u64;
                let mut wake = due.unwrap_or(idle);
                if leaving {
                    wake = wake.min(now + STOP_POLL.as_nanos() as u64);
                }
                CONTROL.sleep_until(&timespec_from_nanos(wake));
            }
        }
    }

    /// Forwards a dump request to the consumers that write profiles on request.
    fn dump(&mut self) {
        for consumer in self.consumers.iter_mut().filter(|c| c.answers_dumps) {
            consumer.dump();
        }
    }

    fn run_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Join { consumer, ready } => self.add_consumer(*consumer, ready),
                Command::Leave { id, done } => {
                    let now = monotonic_nanos();
                    if let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) {
                        consumer.leaving = Some((done, now));
                    }
                }
                Command::Hold { held, done } => {
                    self.held = held;
                    let _ = done.send(());
                }
            }
        }
    }

    /// Dump requests are answered while someone writes profiles on request; new threads are
    /// announced while someone samples every thread or threads by name.
    fn update_process_flags(&self) {
        handler::set_sampling(self.consumers.iter().any(|c| c.answers_dumps));
        thread_start::watch(self.consumers.iter().any(|c| c.selector.is_dynamic()));
    }

    fn add_consumer(&mut self, mut consumer: Consumer, ready: Option<Sender<()>>) {
        let now = monotonic_nanos();
        if self.current_map.is_some() {
            // The stacks of threads started since the last read must be known to the
            // handler, or their first samples would be leaf-only.
            self.refresh_regions(now);
        } else if ready.is_some() {
            // Someone waits for sampling to begin: the snapshot is built now.
            self.refresh_modules(now);
        }
        consumer.start_at(monotonic_nanos());
        if let Some(map) = &self.current_map {
            consumer.send_map(map.clone());
        }
        self.consumers.push(consumer);
        self.update_process_flags();
        if let Some(ready) = ready {
            let _ = ready.send(());
        }
    }

    /// Lets go of consumers that asked to leave once the samples they wait for are in, or
    /// their response timeout has passed; meanwhile the others are served as usual.
    fn finish_leaving(&mut self, now: u64) {
        let mut index = 0;
        while index < self.consumers.len() {
            let consumer = &self.consumers[index];
            let Some((_, since)) = &consumer.leaving else {
                index += 1;
                continue;
            };
            let id = consumer.id;
            let waiting = self
                .in_flight
                .iter()
                .any(|r| !r.stuck && r.recipients.contains(&id));
            if waiting && now.saturating_sub(*since) <= consumer.response_timeout {
                index += 1;
                continue;
            }
            let consumer = self.consumers.swap_remove(index);
            self.let_go(consumer);
        }
    }

    /// The last of a leaving consumer: what its requests still hold is taken or counted as
    /// lost, its last batch is sent, and it is told so.
    fn let_go(&mut self, mut consumer: Consumer) {
        let pool = self.pool;
        let mut index = 0;
        while index < self.in_flight.len() {
            let request = &mut self.in_flight[index];
            let Some(at) = request.recipients.iter().position(|&r| r == consumer.id) else {
                index += 1;
                continue;
            };
            let slot = &pool.slots[request.slot];
            // Cancel a request nobody else waits for; look at one shared with others.
            let alone = request.recipients.len() == 1;
            let progress = if alone {
                slot.cancel(request.armed)
            } else {
                slot.progress(request.armed)
            };
            request.recipients.swap_remove(at);
            match progress {
                Progress::Done if alone => {
                    let request = self.in_flight.swap_remove(index);
                    match finished_sample(pool, &request, &mut self.python) {
                        Some(sample) => consumer.receive(sample, request.stuck),
                        None => consumer.no_response(request.tid),
                    }
                    continue;
                }
                Progress::Cancelled => {
                    let tid = request.tid;
                    self.in_flight.swap_remove(index);
                    consumer.no_response(tid);
                    continue;
                }
                // Shared and done: the others get it at the next collect, this one now.
                Progress::Done => match copy_sample(pool, request, &mut self.python) {
                    Some(sample) => consumer.receive(sample, request.stuck),
                    None => consumer.no_response(request.tid),
                },
                // A handler writing keeps the request in flight, so its slot is freed when
                // it is done.
                Progress::Writing => consumer.given_up(&consumer.stats.stuck),
                Progress::Waiting => consumer.given_up(&consumer.stats.no_response),
            }
            index += 1;
        }
        consumer.send_batch();
        self.update_process_flags();
        if let Some((done, _)) = consumer.leaving.take() {
            let _ = done.send(());
        }
    }

    fn tick(&mut self, now: u64) {
        self.python.start_tick();
        self.collect(now);
        self.refresh_modules(now);
        self.schedule_for_consumers();
        let started = if self.consumers.iter().any(|c| c.selector.is_dynamic()) {
            thread_start::take_started()
        } else {
            Vec::new()
        };
        install::ensure_installed();
        for index in 0..self.consumers.len() {
            let consumer = &mut self.consumers[index];
            if consumer.leaving.is_some() {
                continue;
            }
            consumer.add_started(&started);
            consumer.rescan(now);
            if consumer.next_due <= now {
                consumer.advance_schedule(now);
                consumer.start_tick();
                consumer.flush_if_due(now);
                if !self.held {
                    let tids: Vec<i32> = consumer.targets.keys().copied().collect();
                    for tid in tids {
                        self.request(index, tid, now);
                    }
                }
            }
            let consumer = &mut self.consumers[index];
            consumer.send_old_batch(now);
            self.refresh_wanted |= std::mem::take(&mut consumer.saw_unknown_stack);
        }
        let pool = self.pool;
        self.retired.retain(|r| {
            r.writers
                .iter()
                .any(|&(slot, word)| pool.still_writing(slot, word))
        });
    }

    /// The consumers not asked to leave.
    fn staying(&self) -> impl Iterator<Item = &Consumer> {
        self.consumers.iter().filter(|c| c.leaving.is_none())
    }

    /// Asks for the scheduling the shortest interval among the consumers needs. Done after
    /// the modules are read, so the first tick's long read of them is not held to a tick's
    /// budget.
    fn schedule_for_consumers(&mut self) {
        let shortest = self.staying().map(|c| c.interval).min();
        if let Some(interval) = shortest.filter(|&s| Some(s) != self.scheduled_for) {
            self.scheduled_for = Some(interval);
            scheduling::schedule_ticks(interval);
        }
    }

    /// Collects finished requests and cancels those past their timeout.
    fn collect(&mut self, now: u64) {
        let mut index = 0;
        while index < self.in_flight.len() {
            let request = &self.in_flight[index];
            let slot = &self.pool.slots[request.slot];
            let overdue = now.saturating_sub(request.sent_nanos) > request.timeout;
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
                    for consumer in self.recipients(&request.recipients) {
                        consumer.no_response(request.tid);
                    }
                    continue;
                }
                Progress::Writing if overdue && !request.stuck => {
                    // The handler holds the slot until it finishes; the thread may have a
                    // new request meanwhile, in another slot.
                    let request = &mut self.in_flight[index];
                    request.stuck = true;
                    let (tid, recipients) = (request.tid, request.recipients.clone());
                    for consumer in self.recipients(&recipients) {
                        consumer.set_busy(tid, false);
                    }
                }
                Progress::Waiting | Progress::Writing => {}
            }
            index += 1;
        }
    }

    /// The consumers among `ids` that are still here.
    fn recipients<'a>(&'a mut self, ids: &'a [u64]) -> impl Iterator<Item = &'a mut Consumer> {
        self.consumers
            .iter_mut()
            .filter(move |consumer| ids.contains(&consumer.id))
    }

    /// Hands a finished sample to every consumer that waited for it.
    fn take_sample(&mut self, request: &InFlight) {
        let Some(sample) = finished_sample(self.pool, request, &mut self.python) else {
            for consumer in self.recipients(&request.recipients) {
                consumer.no_response(request.tid);
            }
            return;
        };
        if sample.stop == StopReason::UnknownStack {
            self.refresh_wanted = true;
        }
        for consumer in self.recipients(&request.recipients) {
            consumer.receive(sample.clone(), request.stuck);
        }
    }

    /// Consumer `index` wants thread `tid` sampled: shares the request in flight to it, or
    /// sends a new one.
    fn request(&mut self, index: usize, tid: i32, now: u64) {
        // Python frames if any consumer may want them (one that shares the request later,
        // too); those who do not drop them.
        let python_wanted = self.consumers.iter().any(|c| c.python);
        let consumer = &mut self.consumers[index];
        let python = &mut self.python;
        let wants_python = consumer.python;
        let mut read_python = || {
            wants_python
                .then(|| python.read_blocked(tid, now))
                .flatten()
        };
        if !consumer.wants_signal(tid, &mut read_python) {
            return;
        }
        let id = consumer.id;
        // The sampling signal does not queue: while one to this thread is on its way,
        // another would be lost. A request sent before this consumer joined may have been
        // unwound with a module map it never got, so it waits for the next one instead.
        if let Some(pending) = self.in_flight.iter_mut().find(|r| r.tid == tid && !r.stuck) {
            if pending.sent_nanos >= consumer.joined {
                if !pending.recipients.contains(&id) {
                    pending.recipients.push(id);
                }
                Stats::add(&consumer.stats.requested, 1);
                Stats::add(&consumer.stats.in_flight, 1);
                consumer.set_busy(tid, true);
            } else {
                Stats::add(&consumer.stats.previous_unanswered, 1);
            }
            return;
        }
        let Some((slot_index, slot)) = self.pool.idle_slot() else {
            Stats::add(&consumer.stats.slots_busy, 1);
            return;
        };
        let python = python_wanted
            .then(|| self.python.target(tid, now))
            .flatten();
        let Some(armed) = slot.arm(python, self.pool.max_depth()) else {
            Stats::add(&consumer.stats.slots_busy, 1);
            return;
        };
        Stats::add(&consumer.stats.requested, 1);
        if let Err(error) = handler::request_sample(tid, slot_index, armed) {
            // Nothing was queued, so nothing can claim the request.
            slot.cancel(armed);
            if error.raw_os_error() == Some(libc::ESRCH) {
                Stats::add(&consumer.stats.thread_gone, 1);
                consumer.set_state(tid, ThreadState::Exited);
            } else {
                Stats::add(&consumer.stats.send_failed, 1);
            }
            return;
        }
        Stats::add(&consumer.stats.in_flight, 1);
        consumer.set_busy(tid, true);
        self.in_flight.push(InFlight {
            slot: slot_index,
            armed,
            tid,
            sent_nanos: now,
            timeout: consumer.response_timeout,
            stuck: false,
            recipients: vec![id],
        });
    }

    /// Rebuilds the snapshot when libraries come or go; otherwise re-reads the memory map
    /// when a stack was outside it (at most every 10 ms) or a second has passed, so stack
    /// reads are bounded by mappings at most that old.
    fn refresh_modules(&mut self, now: u64) {
        let registry = &mut self.registry;
        let rebuilt = registry
            .changed()
            .then(|| scheduling::unbudgeted(|| registry.refresh()))
            .flatten();
        if let Some(generation) = rebuilt {
            self.last_regions_refresh = now;
            self.publish(generation);
            return;
        }
        let since = now.saturating_sub(self.last_regions_refresh);
        let wanted = self.refresh_wanted && since >= MIN_FORCED_REFRESH_GAP.as_nanos() as u64;
        if wanted || since >= REGIONS_MAX_AGE.as_nanos() as u64 {
            self.refresh_regions(now);
        }
    }

    /// Re-reads the memory map the handler bounds stack reads with.
    fn refresh_regions(&mut self, now: u64) {
        let Some(current) = handler::current_snapshot() else {
            return;
        };
        let fresh = current.with_fresh_regions();
        self.refresh_wanted = false;
        self.last_regions_refresh = now;
        self.replace_snapshot(fresh);
    }

    /// Makes a new module generation current: every consumer's map, then the handler's
    /// snapshot.
    fn publish(&mut self, generation: Generation) {
        // Samples of older generations and then the new map go first on each channel, so
        // every drain knows a map before any sample that needs it.
        for consumer in &mut self.consumers {
            consumer.send_map(generation.map.clone());
        }
        self.python.note_map(&generation.map);
        self.current_map = Some(generation.map);
        self.replace_snapshot(generation.snapshot);
    }

    /// Hands the handler a new snapshot and retires the old one.
    fn replace_snapshot(&mut self, snapshot: Box<UnwindSnapshot>) {
        if let Some(old) = handler::publish_snapshot(snapshot) {
            let writers = self.pool.writing();
            if !writers.is_empty() {
                self.retired.push(Retired {
                    _snapshot: old,
                    writers,
                });
            }
        }
    }
}

/// Copies a finished sample out of its slot, which stays finished, and names its Python
/// frames.
fn copy_sample(
    pool: &SlotPool,
    request: &InFlight,
    python: &mut PythonThreads,
) -> Option<RawSample> {
    let data = pool.slots[request.slot].finished(request.armed)?;
    let depth = data.depth.min(data.frames.len());
    Some(RawSample {
        tid: request.tid,
        generation: data.generation,
        frames: data.frames[..depth].into(),
        stop: data.stop,
        handler_nanos: Some(data.handler_nanos),
        python: data.python_target.and(data.python.as_ref()).map(|read| {
            python.name_chain(&read.frames[..read.depth.min(read.frames.len())], read.stop)
        }),
    })
}

/// Copies a finished sample out of its slot and frees the slot.
fn finished_sample(
    pool: &SlotPool,
    request: &InFlight,
    python: &mut PythonThreads,
) -> Option<RawSample> {
    let sample = copy_sample(pool, request, python)?;
    pool.slots[request.slot].release(request.armed);
    Some(sample)
}
