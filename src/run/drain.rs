//! The drain thread: receives raw samples, counts identical stacks, and writes profiles.
//!
//! Samples arrive over a bounded channel from the sampler, together with the module map of
//! each generation and dump requests. Aggregation is by raw addresses in bounded memory;
//! names are looked up only when a profile is written, once per distinct address, except
//! that code outside every module makes it look at the JIT's perf map while the program
//! runs (the program may remove the file before the end).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::aggregate::{Added, Aggregate};
use crate::base::clock::monotonic_nanos;
use crate::base::error::Error;
use crate::base::heap;
use crate::base::thread::{pid, spawn};
use crate::engine::handler::{note_dump_written, set_dump_writer, SlotPool};
use crate::engine::{current_scheduling, schedule_normal, Delivery, SampleSink};
use crate::modules::ModuleMap;
use crate::output;
use crate::output::naming::{self, Ownership};
use crate::profile::{lookup_addresses, Header, Profile, ThreadSummary};
use crate::python::Spliced;
use crate::settings::{Format, Settings};
use crate::stats::{Counters, Stats};
use crate::symbolize::{SymbolOptions, Symbols};
use crate::threads;

use super::progress::ProgressCounter;

/// What the sampler and the session send to the drain.
pub enum DrainMessage {
    /// Samples, module maps and dump requests from the sampler, in order.
    Engine(Delivery),
    /// Write the profile now and report the result on `done` (the end of a session).
    Dump { done: Sender<Result<(), Error>> },
    /// Build the profile of what was taken so far and send it back (the API's `Profiler`).
    Profile { reply: Sender<Profile> },
}

impl SampleSink for Sender<DrainMessage> {
    fn offer(&self, delivery: Delivery) -> Result<(), Delivery> {
        match self.try_send(DrainMessage::Engine(delivery)) {
            Err(TrySendError::Full(DrainMessage::Engine(delivery))) => Err(delivery),
            _ => Ok(()),
        }
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
    /// The drain writes the profile a termination signal or `_exit` waits for, which watch
    /// its progress (`handler::dump_and_wait`).
    pub answers_dumps: bool,
    /// Where this image writes, chosen at its first dump (`output::naming`).
    written_prefix: Arc<OnceLock<PathBuf>>,
}

impl DumpContext {
    /// The context of a profile of this process that starts now.
    pub fn new(settings: Settings, stats: Arc<Stats>, pool: &'static SlotPool) -> DumpContext {
        DumpContext {
            settings,
            pid: pid(),
            command: threads::command_line(),
            started_nanos: monotonic_nanos(),
            stats,
            pool,
            answers_dumps: false,
            written_prefix: Arc::default(),
        }
    }

    /// The prefix this process image writes under: the settings' prefix unless another
    /// image's profile is there already.
    fn written_prefix(&self) -> &Path {
        self.written_prefix.get_or_init(|| {
            let settings = &self.settings;
            let ownership = Ownership {
                per_process: settings.output_prefix != settings.output_template,
                process_started: threads::process_started(),
            };
            naming::image_prefix(&settings.output_prefix, &settings.formats, &ownership)
        })
    }
}

/// How long starting a drain thread waits for it to register as the profiler's own.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts a drain thread that handles `messages` until every sender is gone, at nice value
/// `priority`. It counts as one of the profiler's own threads before this returns: until
/// then a rescan of `all` threads would take it for the program's.
pub fn spawn_drain(
    name: &str,
    context: DumpContext,
    messages: Receiver<DrainMessage>,
    priority: libc::c_int,
) -> Result<JoinHandle<()>, Error> {
    let (registered, registration) = crossbeam_channel::bounded(1);
    let thread = spawn(name, move || {
        threads::register_own_thread();
        if context.answers_dumps {
            set_dump_writer(threads::current_tid());
        }
        let _ = registered.send(());
        schedule_normal(priority, None);
        // The symbolizer is not Send, so the drain is made on its own thread.
        Drain::new(context).run(messages);
        threads::unregister_own_thread();
    })?;
    let _ = registration.recv_timeout(REGISTRATION_TIMEOUT);
    Ok(thread)
}

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
        spawn_drain(
            "stacksample-drain",
            unstarted.context.clone(),
            unstarted.messages.clone(),
            unstarted.priority,
        )?;
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
    progress: Option<ProgressCounter>,
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
        let progress = settings.progress.as_deref().and_then(|path| {
            ProgressCounter::open(path)
                .map_err(|error| eprintln!("{error}; no progress is shown"))
                .ok()
        });
        Drain {
            context,
            aggregate,
            maps: HashMap::new(),
            symbols,
            progress,
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
            DrainMessage::Engine(Delivery::Samples(mut samples)) => {
                for sample in samples.iter_mut() {
                    // The depth limit counts the frames a reader sees, Python's too.
                    let spliced = self.symbols.python.splice(sample);
                    self.count_python(spliced);
                    sample.truncate(self.context.settings.max_depth);
                    match self.aggregate.add(sample) {
                        Added::Counted => {}
                        Added::NewStack => self.note_new_stack(),
                        Added::Dropped => Stats::add(&self.context.stats.table_full, 1),
                    }
                }
                self.symbols.look_at_perf_map_if_due();
                if let Some(progress) = &self.progress {
                    progress.add(samples.len() as u64);
                }
            }
            DrainMessage::Engine(Delivery::Modules(map)) => {
                // The sampler said already if the interpreter's layout is unknown.
                let _ = self.symbols.python.note_map(&map);
                self.maps.insert(map.generation, map);
            }
            DrainMessage::Engine(Delivery::Dump) => {
                if let Err(error) = self.dump() {
                    eprintln!("{error}");
                }
            }
            DrainMessage::Dump { done } => {
                let _ = done.send(self.dump());
            }
            DrainMessage::Profile { reply } => {
                let _ = reply.send(self.profile());
            }
        }
    }

    fn count_python(&self, spliced: Spliced) {
        let stats = &self.context.stats;
        let (counter, freed) = match spliced {
            Spliced::None => return,
            Spliced::Whole { freed } => (&stats.python_whole, freed),
            Spliced::Partial { freed } => (&stats.python_partial, freed),
        };
        Stats::add(counter, 1);
        Stats::add(&stats.python_freed, freed);
    }

    /// Shows the symbolizer the stack the aggregate just added, so that a JIT's perf map is
    /// read while the program runs: the program may delete or rewrite it before the dump.
    fn note_new_stack(&mut self) {
        let Some((key, _)) = self.aggregate.stacks.last() else {
            return;
        };
        if let Some(map) = self.maps.get(&key.generation) {
            self.symbols.note_stack(map, lookup_addresses(&key.frames));
        }
    }

    /// Writes every format, then tells whoever waits for a profile (a terminating signal).
    fn dump(&mut self) -> Result<(), Error> {
        let profile = self.profile();
        let prefix = self.context.written_prefix();
        let result = output::write_all(prefix, &self.context.settings.formats, &profile);
        note_dump_written();
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
        let elapsed = monotonic_nanos().saturating_sub(context.started_nanos);
        let times = &self.aggregate.handler_times;
        Header {
            command: context.command.clone(),
            pid: context.pid,
            threads,
            interval: context.settings.interval,
            max_depth: context.settings.max_depth,
            duration: Duration::from_nanos(elapsed),
            counters: Counters::read(&context.stats, context.pool.late_signals()),
            handler_median_nanos: times.quantile(0.5),
            handler_p99_nanos: times.quantile(0.99),
            handler_max_nanos: times.max(),
            handler_total_nanos: times.total(),
            per_thread: context.settings.per_thread,
            mode: context.settings.mode,
            sampler_scheduling: current_scheduling(),
            profiler_heap: heap::usage(),
            stack_table: Some(self.aggregate.table()),
            processes: 1,
            filtered: None,
        }
    }
}
