//! The drain thread: receives raw samples, counts identical stacks, and writes profiles.
//!
//! Samples arrive over a bounded channel from the sampler, together with the module map of
//! each generation and dump requests. Aggregation is by raw addresses in bounded memory;
//! names are looked up only when a profile is written, once per distinct address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::modules::ModuleMap;
use crate::output;
use crate::profile::{Counters, Header, Profile, ThreadSummary};
use crate::settings::{Format, Settings};
use crate::signal::futex;
use crate::signal::slot::{SlotPool, StopReason};
use crate::stats::Stats;
use crate::symbolize::{SymbolOptions, Symbols};
use crate::threads;

/// One sample as the handler took it.
#[derive(Debug, Clone)]
pub struct RawSample {
    pub tid: i32,
    pub generation: u32,
    /// Leaf first: the interrupted instruction, then return addresses.
    pub frames: Box<[u64]>,
    pub stop: StopReason,
    /// Time the signal handler took; `None` for a blocked thread sampled without a signal.
    pub handler_nanos: Option<u64>,
}

impl RawSample {
    /// Keeps the `max_depth` innermost frames; a stack cut here counts as cut at the limit.
    pub fn truncate(&mut self, max_depth: usize) {
        if self.frames.len() > max_depth {
            self.frames = self.frames[..max_depth].into();
            self.stop = StopReason::DepthLimit;
        }
    }
}

/// Samples sent to a drain together, in the order they were taken. The sampler thread
/// allocated them, and dropping the batch sends that memory back to it, to be freed or
/// reused there. Freed on the receiving thread instead, they took the sampler's malloc arena
/// lock: a drain that the program's busy threads preempt while holding it (it runs at the
/// program's priority) kept the sampler waiting for milliseconds, and its ticks were late.
pub struct SampleBatch {
    samples: Vec<RawSample>,
    home: Sender<Vec<RawSample>>,
}

impl SampleBatch {
    pub fn new(samples: Vec<RawSample>, home: Sender<Vec<RawSample>>) -> SampleBatch {
        SampleBatch { samples, home }
    }
}

impl std::ops::Deref for SampleBatch {
    type Target = Vec<RawSample>;

    fn deref(&self) -> &Vec<RawSample> {
        &self.samples
    }
}

impl std::ops::DerefMut for SampleBatch {
    fn deref_mut(&mut self) -> &mut Vec<RawSample> {
        &mut self.samples
    }
}

impl Drop for SampleBatch {
    fn drop(&mut self) {
        // A sampler that is gone, or has more returned batches than it took back, lets
        // this thread free the batch.
        let _ = self.home.try_send(std::mem::take(&mut self.samples));
    }
}

/// What the sampler and the session send to the drain.
pub enum DrainMessage {
    /// Samples in the order they were taken.
    Samples(SampleBatch),
    /// The module map of a new generation; sent before any sample of it.
    Modules(Arc<ModuleMap>),
    /// Write the profile now; report the result on `done` if given.
    Dump {
        done: Option<Sender<Result<(), Error>>>,
    },
    /// Build the profile of what was taken so far and send it back (the API's `Profiler`).
    Profile { reply: Sender<Profile> },
}

/// The drain's table of distinct stacks (by address, before naming), as the report states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackTable {
    pub stacks: usize,
    /// `STACKSAMPLE_MAX_STACKS`.
    pub max_stacks: usize,
    /// About how much memory it holds.
    pub bytes: usize,
}

/// Identity of an aggregated stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackKey {
    pub tid: i32,
    pub generation: u32,
    pub stop: StopReason,
    pub frames: Box<[u64]>,
}

/// Samples whose order is kept for timeline views (4 bytes each); later ones are counted
/// but not placed on the timeline.
pub const MAX_TIMELINE: usize = 4_000_000;

/// Counts of distinct raw stacks, the order samples came in, and the handler's cost.
pub struct Aggregate {
    /// Distinct stacks and their counts, in order of first appearance.
    pub stacks: Vec<(StackKey, u64)>,
    index: HashMap<StackKey, u32>,
    /// Index into `stacks` of each sample, in the order taken (up to [`MAX_TIMELINE`]).
    pub timeline: Vec<u32>,
    pub handler_times: HandlerTimes,
    /// Distinct stacks kept (`STACKSAMPLE_MAX_STACKS`).
    max_stacks: usize,
    /// Samples kept on the timeline: [`MAX_TIMELINE`] when a format shows it, else none, so
    /// a long run's memory stays flat.
    timeline_limit: usize,
}

impl Aggregate {
    pub fn new(max_stacks: usize, keep_timeline: bool) -> Aggregate {
        Aggregate {
            stacks: Vec::new(),
            index: HashMap::new(),
            timeline: Vec::new(),
            handler_times: HandlerTimes::default(),
            max_stacks,
            timeline_limit: if keep_timeline { MAX_TIMELINE } else { 0 },
        }
    }

    /// About how many bytes the table holds: each stack's frames twice (the list's and the
    /// index's keys), the slots of the list and of the index (a hash table keeps up to an
    /// eighth of its slots free and grows by doubling), and the timeline.
    fn table_bytes(&self) -> usize {
        let frames: usize = self
            .stacks
            .iter()
            .map(|(key, _)| std::mem::size_of_val(&*key.frames))
            .sum();
        let list = self.stacks.capacity() * std::mem::size_of::<(StackKey, u64)>();
        let buckets = match self.index.capacity() {
            0 => 0,
            capacity => (capacity * 8 / 7 + 1).next_power_of_two(),
        };
        let index = buckets * (std::mem::size_of::<(StackKey, u32)>() + 1);
        2 * frames + list + index + self.timeline.capacity() * std::mem::size_of::<u32>()
    }

    /// The table's size, for the report.
    pub fn table(&self) -> StackTable {
        StackTable {
            stacks: self.stacks.len(),
            max_stacks: self.max_stacks,
            bytes: self.table_bytes(),
        }
    }

    /// Adds a sample; false when the table is full and the sample was dropped. The sample
    /// keeps its frames unless they are a new stack's (see [`SampleBatch`]).
    fn add(&mut self, sample: &mut RawSample) -> bool {
        if let Some(nanos) = sample.handler_nanos {
            self.handler_times.record(nanos);
        }
        let key = StackKey {
            tid: sample.tid,
            generation: sample.generation,
            stop: sample.stop,
            frames: std::mem::take(&mut sample.frames),
        };
        let index = match self.index.get(&key) {
            Some(&index) => {
                sample.frames = key.frames;
                index
            }
            None if self.stacks.len() >= self.max_stacks => {
                sample.frames = key.frames;
                return false;
            }
            None => {
                let index = self.stacks.len() as u32;
                self.index.insert(key.clone(), index);
                self.stacks.push((key, 0));
                index
            }
        };
        self.stacks[index as usize].1 += 1;
        if self.timeline.len() < self.timeline_limit {
            self.timeline.push(index);
        }
        true
    }
}

/// Histogram of handler durations: 10 ns buckets up to 100 us, then one overflow bucket.
/// The buckets (80 KB) are allocated at the first sample: zeroing them at the start of a
/// process that ends without one cost it 20 page faults.
#[derive(Default)]
pub struct HandlerTimes {
    buckets: Vec<u64>,
    max: u64,
    total: u64,
}

const BUCKET_NANOS: u64 = 10;
const BUCKETS: usize = 10_000;

impl HandlerTimes {
    fn record(&mut self, nanos: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS + 1];
        }
        let bucket = ((nanos / BUCKET_NANOS) as usize).min(BUCKETS);
        self.buckets[bucket] += 1;
        self.max = self.max.max(nanos);
        self.total = self.total.saturating_add(nanos);
    }

    /// The `q` quantile (0..=1) in nanoseconds, at bucket resolution.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(if bucket == BUCKETS {
                    self.max
                } else {
                    bucket as u64 * BUCKET_NANOS + BUCKET_NANOS / 2
                });
            }
        }
        Some(self.max)
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Everything a dump needs besides the samples.
#[derive(Clone)]
pub struct DumpContext {
    pub settings: Settings,
    pub pid: i32,
    pub command: String,
    pub started_nanos: u64,
    pub stats: Arc<Stats>,
    pub pool: &'static SlotPool,
}

/// How long the sampler waits for a new drain thread to register as the profiler's own.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(1);

/// The drain of a profiling session, started on its own thread only when the sampler is
/// about to send it something (its first tick, or a dump request): a process that ends
/// before its first tick, as a build's many short child processes do, never starts it, and
/// its profile (of no samples) is written by the thread that finishes the session.
pub struct LazyDrain {
    state: Mutex<Option<Unstarted>>,
}

/// What the drain thread starts from.
struct Unstarted {
    context: DumpContext,
    messages: Receiver<DrainMessage>,
    /// Nice value of the thread that started the session: the drain thread is started from
    /// the sampler thread, whose raised priority it must not inherit.
    priority: libc::c_int,
}

impl LazyDrain {
    pub fn new(context: DumpContext, messages: Receiver<DrainMessage>) -> Arc<LazyDrain> {
        let unstarted = Unstarted {
            context,
            messages,
            priority: threads::priority(),
        };
        Arc::new(LazyDrain {
            state: Mutex::new(Some(unstarted)),
        })
    }

    /// Starts the drain thread unless it runs already. If it cannot be started, what was
    /// sent stays queued and `dump_if_unstarted` writes the profile from it.
    pub fn start(&self) -> Result<(), Error> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(unstarted) = state.as_ref() else {
            return Ok(());
        };
        let context = unstarted.context.clone();
        let messages = unstarted.messages.clone();
        let priority = unstarted.priority;
        let (registered, registration) = crossbeam_channel::bounded(1);
        crate::session::spawn("stacksample-drain", move || {
            threads::register_own_thread();
            let _ = registered.send(());
            crate::sampler::scheduling::schedule_normal(priority, None);
            // The symbolizer is not Send, so the drain is made on its own thread.
            Drain::new(context).run(messages);
            threads::unregister_own_thread();
        })?;
        // Until it is registered a rescan of `all` threads would take it for the program's.
        let _ = registration.recv_timeout(REGISTRATION_TIMEOUT);
        *state = None;
        Ok(())
    }

    /// What the sampler runs before it first sends anything: starts the drain thread. If the
    /// thread cannot be started, the queue fills and later batches are dropped and counted;
    /// the profile of what was queued is still written at the end.
    pub fn starter(self: &Arc<Self>) -> Box<dyn FnOnce() + Send> {
        let drain = self.clone();
        Box::new(move || {
            if let Err(error) = drain.start() {
                eprintln!("{error}; the profile keeps only the first samples");
            }
        })
    }

    /// If the drain thread was never started, writes the profile on the calling thread from
    /// what was queued (nothing, unless starting the thread failed); `None` when the drain
    /// thread runs and must be asked for the dump.
    pub fn dump_if_unstarted(&self) -> Option<Result<(), Error>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let unstarted = state.as_ref()?;
        let mut drain = Drain::new(unstarted.context.clone());
        for message in unstarted.messages.try_iter() {
            drain.handle(message);
        }
        Some(drain.dump())
    }
}

pub struct Drain {
    context: DumpContext,
    aggregate: Aggregate,
    maps: HashMap<u32, Arc<ModuleMap>>,
    symbols: Symbols,
}

impl Drain {
    pub fn new(context: DumpContext) -> Drain {
        let symbols = Symbols::new(&SymbolOptions {
            lines: context.settings.lines,
            debug_dirs: context.settings.debug_dirs.clone(),
        });
        let settings = &context.settings;
        let keep_timeline = settings.formats.contains(&Format::Speedscope);
        let aggregate = Aggregate::new(settings.max_stacks, keep_timeline);
        Drain {
            context,
            aggregate,
            maps: HashMap::new(),
            symbols,
        }
    }

    /// Handles messages until every sender is gone.
    pub fn run(mut self, messages: Receiver<DrainMessage>) {
        for message in messages {
            self.handle(message);
        }
    }

    fn handle(&mut self, message: DrainMessage) {
        match message {
            DrainMessage::Samples(mut samples) => {
                for sample in samples.iter_mut() {
                    sample.truncate(self.context.settings.max_depth);
                    if !self.aggregate.add(sample) {
                        Stats::add(&self.context.stats.table_full, 1);
                    }
                }
            }
            DrainMessage::Profile { reply } => {
                let _ = reply.send(self.profile());
            }
            DrainMessage::Modules(map) => {
                self.maps.insert(map.generation, map);
            }
            DrainMessage::Dump { done } => {
                let result = self.dump();
                match done {
                    Some(done) => {
                        let _ = done.send(result);
                    }
                    None => {
                        if let Err(error) = result {
                            eprintln!("{error}");
                        }
                    }
                }
            }
        }
    }

    /// Writes every format, then tells whoever waits for a profile (a terminating signal).
    fn dump(&mut self) -> Result<(), Error> {
        let profile = self.profile();
        let settings = &self.context.settings;
        let result = output::write_all(&settings.output_prefix, &settings.formats, &profile);
        crate::signal::note_dump_written();
        result
    }

    fn profile(&mut self) -> Profile {
        let header = self.header();
        Profile::build(header, &self.aggregate, &self.maps, &mut self.symbols)
    }

    fn header(&self) -> Header {
        let context = &self.context;
        let threads = context
            .stats
            .thread_statuses()
            .into_iter()
            .map(|status| ThreadSummary {
                tid: status.tid,
                name: threads::name(status.tid).or(status.name),
                cpu_nanos: threads::cpu_time(status.tid).or(status.cpu_nanos),
                state: status.state,
                // Counted by `Profile::build`, which knows which samples it keeps.
                samples: 0,
            })
            .collect();
        let elapsed = futex::monotonic_nanos().saturating_sub(context.started_nanos);
        let times = &self.aggregate.handler_times;
        Header {
            command: context.command.clone(),
            pid: context.pid,
            threads,
            interval: context.settings.interval,
            max_depth: context.settings.max_depth,
            duration: Duration::from_nanos(elapsed),
            counters: Counters::read(&context.stats, context.pool),
            handler_median_nanos: times.quantile(0.5),
            handler_p99_nanos: times.quantile(0.99),
            handler_max_nanos: times.max(),
            handler_total_nanos: times.total(),
            per_thread: context.settings.per_thread,
            mode: context.settings.mode,
            sampler_scheduling: crate::sampler::scheduling::current(),
            profiler_heap: crate::heap::usage(),
            stack_table: Some(self.aggregate.table()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_time_quantiles() {
        let mut times = HandlerTimes::default();
        assert_eq!(times.quantile(0.5), None);
        for nanos in 1..=100u64 {
            times.record(nanos * 100);
        }
        times.record(5_000_000);
        let median = times.quantile(0.5).unwrap();
        assert!((4_900..=5_200).contains(&median), "{median}");
        assert!(times.quantile(0.99).unwrap() >= 9_900);
        assert_eq!(times.quantile(1.0), Some(5_000_000));
    }

    #[test]
    fn identical_stacks_are_counted_once() {
        let mut aggregate = Aggregate::new(crate::settings::DEFAULT_MAX_STACKS, true);
        // A new stack's frames move into the table; a known one's stay with the sample, to
        // go back to the sampler with its batch.
        for (tid, new_stack) in [(1, true), (1, false), (2, true)] {
            let mut sample = RawSample {
                tid,
                generation: 1,
                frames: vec![0x10, 0x20].into(),
                stop: StopReason::Complete,
                handler_nanos: Some(500),
            };
            assert!(aggregate.add(&mut sample));
            assert_eq!(sample.frames.is_empty(), new_stack);
        }
        assert_eq!(aggregate.stacks.len(), 2);
        assert_eq!(aggregate.stacks[0].1, 2);
        assert_eq!(aggregate.timeline, [0, 0, 1]);
    }
}
