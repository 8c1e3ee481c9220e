//! [`Profiler`]: counts how often each symbol is on a thread's stack.
//!
//! It samples like a [`super::Timer`] (same options, same engine), but its consumer is the
//! engine's own drain rather than a callback: samples are aggregated by raw address and
//! named only when a result is asked for, so the cost per sample stays that of the preloaded
//! library, and every output format the library writes is available.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::base::error::Error;
use crate::engine::handler::SlotPool;
use crate::output;
use crate::profile::Profile;
use crate::python::is_python_frame;
use crate::run::{spawn_drain, DrainMessage, DumpContext};
use crate::settings::{Format, Settings, ThreadChoice};
use crate::stats::Stats;
use crate::threads;

use super::entries::{api_name, runtime_start, EntryKind};
use super::python;
use super::run::{already_running, run_option_setters, RunOptions, SamplingRun};

/// Batches of samples the drain may be behind by before new ones are dropped (and counted).
const DRAIN_BACKLOG: usize = 64;
/// Naming the addresses of a large program the first time can take seconds.
const PROFILE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often one symbol was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolCount {
    /// Samples with the symbol anywhere on the stack (once per sample under recursion).
    pub count: u64,
    /// Samples with the symbol as the innermost frame.
    pub self_count: u64,
    /// The symbol's name; `?` only when nothing at all is known about the address.
    pub name: String,
    /// File name of its module (`python` for a Python frame).
    pub module: String,
    /// What ran here: native code, the interpreter's, or a Python function.
    pub kind: EntryKind,
    /// Source file, when known (a Python frame's `co_filename`).
    pub file: Option<String>,
    /// A Python frame's line: Python functions are counted per line, as stacks name them.
    pub line: Option<u32>,
}

impl SymbolCount {
    /// Code of the CPython interpreter: the seed's `is_python`.
    pub fn is_python(&self) -> bool {
        self.kind == EntryKind::Interpreter
    }
}

/// A distinct stack and how often it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedStack {
    /// Function names, outermost (root) first.
    pub names: Vec<String>,
    pub count: u64,
}

/// Samples a thread and counts symbols.
///
/// ```
/// use std::time::{Duration, Instant};
/// use stacksample::api::Profiler;
///
/// #[inline(never)]
/// fn busy(until: Instant) -> u64 {
///     let mut x = 1u64;
///     while Instant::now() < until {
///         x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
///     }
///     x
/// }
///
/// let mut profiler = Profiler::new(stacksample::current_tid());
/// profiler.interval(Duration::from_millis(1));
/// {
///     let _scope = profiler.scope()?;
///     busy(Instant::now() + Duration::from_millis(200));
/// }
/// let sorted = profiler.sorted()?;
/// assert!(sorted.iter().any(|(_, symbol)| symbol.name.ends_with("busy")));
/// assert!(sorted.windows(2).all(|w| w[0].1.count >= w[1].1.count));
/// # Ok::<(), stacksample::Error>(())
/// ```
pub struct Profiler {
    options: RunOptions,
    /// Counters of every run, reported in the text output's header.
    stats: Arc<Stats>,
    run: Option<SamplingRun>,
    /// The drain, made at the first `start` and kept so results stay available after `join`.
    drain: Option<DrainThread>,
}

struct DrainThread {
    to_drain: Option<Sender<DrainMessage>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DrainThread {
    fn drop(&mut self) {
        // The drain ends once every sender is gone (the sampler's went with its run).
        self.to_drain = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Profiler {
    /// A profiler for kernel thread `tid` at the seed API's defaults (50 ms, 100 frames).
    pub fn new(tid: i32) -> Profiler {
        Profiler {
            options: RunOptions::seed_defaults(tid),
            stats: Arc::new(Stats::default()),
            run: None,
            drain: None,
        }
    }

    /// Starts (or resumes) sampling; counts add to those of earlier runs.
    pub fn start(&mut self) -> Result<(), Error> {
        if self.run.is_some() {
            return Err(already_running("profiler"));
        }
        if let Some(to_drain) = self.drain.as_ref().and_then(|d| d.to_drain.clone()) {
            self.run = Some(SamplingRun::start(
                &self.options,
                self.stats.clone(),
                to_drain,
            )?);
            return Ok(());
        }
        let (to_drain, samples) = bounded(DRAIN_BACKLOG);
        let run = SamplingRun::start(&self.options, self.stats.clone(), to_drain.clone())?;
        self.drain = Some(self.spawn_drain(to_drain, samples, run.pool())?);
        self.run = Some(run);
        Ok(())
    }

    /// The drain that aggregates this profiler's samples; it writes no files by itself.
    fn spawn_drain(
        &self,
        to_drain: Sender<DrainMessage>,
        samples: Receiver<DrainMessage>,
        pool: &'static SlotPool,
    ) -> Result<DrainThread, Error> {
        let settings = Settings {
            interval: self.options.interval,
            max_depth: self.options.max_depth,
            dump_signal: None,
            formats: Vec::new(),
            ..Settings::new(vec![ThreadChoice::Tid(self.options.tid)], "".into())
        };
        let context = DumpContext::new(settings, self.stats.clone(), pool);
        let priority = threads::priority();
        let thread = spawn_drain("stacksample-prof", context, samples, priority)?;
        Ok(DrainThread {
            to_drain: Some(to_drain),
            thread: Some(thread),
        })
    }

    /// Stops sampling; the results stay.
    pub fn join(&mut self) {
        if let Some(mut run) = self.run.take() {
            run.stop();
        }
    }

    /// Samples while the returned guard lives.
    pub fn scope(&mut self) -> Result<ProfilerScope<'_>, Error> {
        self.start()?;
        Ok(ProfilerScope { profiler: self })
    }

    /// The symbolized profile of every sample so far, as the output formats render it.
    pub fn profile(&self) -> Result<Profile, Error> {
        let Some(drain) = &self.drain else {
            return Err(Error::argument(
                "profiler",
                "never started",
                "call start() first",
            ));
        };
        let (reply, profile) = bounded(1);
        let unanswered = || Error::System {
            action: "build the profile",
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        };
        drain
            .to_drain
            .as_ref()
            .ok_or_else(unanswered)?
            .send(DrainMessage::Profile { reply })
            .map_err(|_| unanswered())?;
        profile
            .recv_timeout(PROFILE_TIMEOUT)
            .map_err(|_| unanswered())
    }

    /// Each symbol's start address (at run time) with its counts and name.
    pub fn result(&self) -> Result<BTreeMap<u64, SymbolCount>, Error> {
        Ok(symbol_counts(&self.profile()?))
    }

    /// [`Profiler::result`] ordered by count, largest first (ties by name).
    pub fn sorted(&self) -> Result<Vec<(u64, SymbolCount)>, Error> {
        let mut sorted: Vec<(u64, SymbolCount)> = self.result()?.into_iter().collect();
        sorted.sort_by(|(_, a), (_, b)| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        Ok(sorted)
    }

    /// Every distinct stack with its count.
    pub fn stacks(&self) -> Result<Vec<CountedStack>, Error> {
        let profile = self.profile()?;
        Ok(profile
            .stacks
            .iter()
            .map(|stack| CountedStack {
                names: profile.stack_names(stack).map(str::to_owned).collect(),
                count: stack.count,
            })
            .collect())
    }

    /// Writes `<prefix>.<extension>` in each of `formats`, as the preloaded library does.
    pub fn write(&self, prefix: &Path, formats: &[Format]) -> Result<(), Error> {
        output::write_all(prefix, formats, &self.profile()?)
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        self.join();
    }
}

/// Samples until dropped; see [`Profiler::scope`].
pub struct ProfilerScope<'p> {
    profiler: &'p mut Profiler,
}

run_option_setters!(Profiler);

impl Drop for ProfilerScope<'_> {
    fn drop(&mut self) {
        self.profiler.join();
    }
}

/// Per-symbol counts keyed by the symbol's run-time start address; an address no symbol
/// covers is its own key, and a Python frame's key is its id (as in its `StackEntry`).
fn symbol_counts(profile: &Profile) -> BTreeMap<u64, SymbolCount> {
    // Per function: its run-time start address, its kind and its line.
    let mut addresses: HashMap<usize, (u64, EntryKind, Option<u32>)> = HashMap::new();
    for location in &profile.locations {
        let Some(&frame) = location.frames.first() else {
            continue;
        };
        let frame = &profile.frames[frame];
        let module = location.module.map(|module| &profile.modules[module]);
        let start = runtime_start(
            profile.functions[frame.function].start,
            module.map(|m| m.bias),
        );
        let kind = if is_python_frame(location.address) {
            EntryKind::Python
        } else if module.is_some_and(|m| python::is_interpreter_code(&(m.start..m.end))) {
            EntryKind::Interpreter
        } else {
            EntryKind::Native
        };
        let line = frame.line.filter(|_| kind == EntryKind::Python);
        addresses
            .entry(frame.function)
            .or_insert((start.unwrap_or(location.address), kind, line));
    }
    let mut counts = BTreeMap::new();
    for row in profile.function_counts(None) {
        let Some(&(address, kind, line)) = addresses.get(&row.function) else {
            continue;
        };
        let function = &profile.functions[row.function];
        let name = api_name(&function.name);
        let entry = counts.entry(address).or_insert_with(|| SymbolCount {
            count: 0,
            self_count: 0,
            name: name.to_owned(),
            module: function.module.clone(),
            kind,
            file: function.file.clone(),
            line,
        });
        entry.count += row.total;
        entry.self_count += row.self_count;
    }
    counts
}
