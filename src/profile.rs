//! The symbolized profile: what every output format renders.
//!
//! Built by the drain at dump time from the raw aggregate: each distinct address becomes a
//! [`Location`] with one or more [`Frame`]s (inlined functions expand into frames of their
//! own), frames point at [`Function`]s, and identical symbolized stacks are merged.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::drain::{Aggregate, StackTable};
use crate::heap::HeapUsage;
use crate::modules::{ModuleInfo, ModuleMap};
use crate::sampler::scheduling::SamplerScheduling;
use crate::settings::Mode;
use crate::signal::slot::{SlotPool, StopReason};
use crate::stats::{Stats, ThreadState};
use crate::symbolize::{SourceFrame, Symbols};

/// Outermost frames of complete stacks: the executable's entry and thread starts.
const ROOT_FUNCTIONS: [&str; 6] = [
    "_start",
    "start_thread",
    "clone",
    "clone3",
    "__clone",
    "__clone3",
];

/// A function: the unit of the text report's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    /// File name of the module, `[vdso]`, `[jit]`, `[anon]`.
    pub module: String,
    /// Source file, when debug information has it.
    pub file: Option<String>,
    /// Start address as stated in the module, when a symbol covers it.
    pub start: Option<u64>,
}

/// A position in a function: a source line (when known), possibly inlined into its caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// Index into [`Profile::functions`].
    pub function: usize,
    pub line: Option<u32>,
    pub inlined: bool,
}

/// A loaded object, as pprof's mappings describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    pub path: Option<String>,
    /// Lowercase hex GNU build id.
    pub build_id: Option<String>,
    /// First executable segment: runtime range and its offset in the file.
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    /// The program's executable (pprof lists it first).
    pub executable: bool,
    /// Load bias: runtime address minus the address stated in the file.
    pub bias: u64,
}

/// An instruction address and the frames it stands for (more than one when inlined).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Location {
    /// Runtime address looked up (for callers: the return address minus one).
    pub address: u64,
    /// Index into [`Profile::modules`].
    pub module: Option<usize>,
    /// Indices into [`Profile::frames`], outermost (the real function) first.
    pub frames: Vec<usize>,
}

/// A distinct symbolized stack and how often it was seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stack {
    pub tid: i32,
    /// Indices into [`Profile::locations`], root first.
    pub locations: Vec<usize>,
    pub count: u64,
    /// Why unwinding ended; [`StopReason::DepthLimit`] means outer frames are missing.
    pub stop: StopReason,
}

impl Stack {
    /// Cut at the depth limit.
    pub fn truncated(&self) -> bool {
        self.stop == StopReason::DepthLimit
    }
}

/// One of the threads the user asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadSummary {
    pub tid: i32,
    pub name: Option<String>,
    pub state: ThreadState,
    pub samples: u64,
    /// CPU time the thread had used, last time it was seen alive.
    pub cpu_nanos: Option<u64>,
}

/// Counters copied from [`Stats`] at dump time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    pub requested: u64,
    pub taken: u64,
    pub no_response: u64,
    pub stuck: u64,
    pub slots_busy: u64,
    pub send_failed: u64,
    pub late_signals: u64,
    pub missed_deadlines: u64,
    pub drain_busy: u64,
    pub table_full: u64,
    pub depth_limit: u64,
    pub unwind_error: u64,
    pub unknown_stack: u64,
    pub stack_too_small: u64,
    pub blocked_unwound: u64,
    pub blocked_repeated: u64,
    pub idle_skipped: u64,
    pub between_calls: u64,
}

impl Counters {
    pub fn read(stats: &Stats, pool: &SlotPool) -> Counters {
        Counters {
            requested: Stats::get(&stats.requested),
            taken: Stats::get(&stats.taken),
            no_response: Stats::get(&stats.no_response),
            stuck: Stats::get(&stats.stuck),
            slots_busy: Stats::get(&stats.slots_busy),
            send_failed: Stats::get(&stats.send_failed),
            late_signals: pool.late_signals.load(Ordering::Relaxed),
            missed_deadlines: Stats::get(&stats.missed_deadlines),
            drain_busy: Stats::get(&stats.drain_busy),
            table_full: Stats::get(&stats.table_full),
            depth_limit: Stats::get(&stats.depth_limit),
            unwind_error: Stats::get(&stats.unwind_error),
            unknown_stack: Stats::get(&stats.unknown_stack),
            stack_too_small: Stats::get(&stats.stack_too_small),
            blocked_unwound: Stats::get(&stats.blocked_unwound),
            blocked_repeated: Stats::get(&stats.blocked_repeated),
            idle_skipped: Stats::get(&stats.idle_skipped),
            between_calls: Stats::get(&stats.between_calls),
        }
    }

    /// Requests that produced no sample, for any reason.
    pub fn missed(&self) -> u64 {
        self.no_response
            + self.stuck
            + self.slots_busy
            + self.send_failed
            + self.missed_deadlines
            + self.between_calls
    }

    /// Samples taken but left out of the profile; `in_profiler` is
    /// [`Profile::profiler_samples`].
    pub fn dropped(&self, in_profiler: u64) -> u64 {
        self.drain_busy + self.table_full + in_profiler
    }

    /// Samples taken by a signal handler (the others were blocked threads read from outside).
    pub fn taken_by_signal(&self) -> u64 {
        self.taken
            .saturating_sub(self.blocked_unwound + self.blocked_repeated)
    }
}

/// Facts about the run, printed at the top of the text report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub command: String,
    pub pid: i32,
    pub threads: Vec<ThreadSummary>,
    pub interval: Duration,
    pub max_depth: usize,
    pub duration: Duration,
    pub counters: Counters,
    pub handler_median_nanos: Option<u64>,
    pub handler_p99_nanos: Option<u64>,
    pub handler_max_nanos: u64,
    /// Time spent in the signal handler, all samples together.
    pub handler_total_nanos: u64,
    /// Folded and flame-graph output start each stack with a frame for its thread.
    pub per_thread: bool,
    pub mode: Mode,
    /// How the sampler thread was scheduled (whether its ticks could be late).
    #[serde(default)]
    pub sampler_scheduling: Option<SamplerScheduling>,
    /// The library's own heap (the `heap-stats` feature).
    #[serde(default)]
    pub profiler_heap: Option<HeapUsage>,
    /// The drain's table of distinct stacks by address (none for a folded file).
    #[serde(default)]
    pub stack_table: Option<StackTable>,
}

/// Per-function counts: the seed API's `get_sorted()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCount {
    /// Index into [`Profile::functions`].
    pub function: usize,
    /// Samples with the function anywhere on the stack, once per sample under recursion.
    pub total: u64,
    /// Samples with the function as the leaf.
    pub self_count: u64,
}

/// Cost of naming the addresses of this profile.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SymbolizeCost {
    pub addresses: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Profile {
    pub header: Header,
    pub functions: Vec<Function>,
    pub frames: Vec<Frame>,
    pub modules: Vec<Module>,
    pub locations: Vec<Location>,
    pub stacks: Vec<Stack>,
    /// Index into `stacks` of each sample in the order taken (may end before the last).
    pub timeline: Vec<u32>,
    /// Samples left out because the thread was running the profiler's own code (its exit,
    /// an interposed call), not the program's.
    pub profiler_samples: u64,
    pub symbolize_cost: SymbolizeCost,
}

impl Profile {
    /// Names every distinct address of `aggregate` and merges stacks that name the same.
    pub fn build(
        mut header: Header,
        aggregate: &Aggregate,
        maps: &HashMap<u32, Arc<ModuleMap>>,
        symbols: &mut Symbols,
    ) -> Profile {
        let started = Instant::now();
        let mut by_generation: HashMap<u32, HashSet<u64>> = HashMap::new();
        for (key, _) in &aggregate.stacks {
            let lookups = by_generation.entry(key.generation).or_default();
            lookups.extend(lookup_addresses(&key.frames));
        }
        for (generation, lookups) in &by_generation {
            if let Some(map) = maps.get(generation) {
                symbols.prepare(map, lookups.iter().copied());
            }
        }
        let addresses = by_generation.values().map(HashSet::len).sum();

        let mut builder = Builder::default();
        let mut merged: HashMap<(i32, StopReason, Vec<usize>), usize> = HashMap::new();
        let mut stacks: Vec<Stack> = Vec::new();
        let mut raw_to_merged = Vec::with_capacity(aggregate.stacks.len());
        let mut profiler_samples = 0;
        for (key, count) in &aggregate.stacks {
            let map = maps.get(&key.generation).map(Arc::as_ref);
            let Some(mut locations) = program_locations(&mut builder, map, symbols, &key.frames)
            else {
                profiler_samples += count;
                raw_to_merged.push(NOT_IN_PROFILE);
                continue;
            };
            locations.reverse();
            let index = *merged
                .entry((key.tid, key.stop, locations.clone()))
                .or_insert_with(|| {
                    stacks.push(Stack {
                        tid: key.tid,
                        locations,
                        count: 0,
                        stop: key.stop,
                    });
                    stacks.len() - 1
                });
            stacks[index].count += count;
            raw_to_merged.push(index as u32);
        }
        for thread in &mut header.threads {
            thread.samples = stacks
                .iter()
                .filter(|s| s.tid == thread.tid)
                .map(|s| s.count)
                .sum();
        }
        let timeline = aggregate
            .timeline
            .iter()
            .map(|&raw| raw_to_merged[raw as usize])
            .filter(|&merged| merged != NOT_IN_PROFILE)
            .collect();
        Profile {
            header,
            functions: builder.functions.items,
            frames: builder.frames.items,
            modules: builder.modules,
            locations: builder.locations,
            stacks,
            timeline,
            profiler_samples,
            symbolize_cost: SymbolizeCost {
                addresses,
                elapsed: started.elapsed(),
            },
        }
    }

    pub fn total_samples(&self) -> u64 {
        self.stacks.iter().map(|s| s.count).sum()
    }

    /// Time in the signal handler as a share (0..1) of the CPU time of the threads it
    /// sampled; `None` when their CPU time is unknown.
    pub fn handler_share_of_thread_cpu(&self) -> Option<f64> {
        let sampled_cpu: u64 = self
            .header
            .threads
            .iter()
            .filter(|t| t.samples > 0)
            .filter_map(|t| t.cpu_nanos)
            .sum();
        (sampled_cpu > 0).then(|| self.header.handler_total_nanos as f64 / sampled_cpu as f64)
    }

    /// The frames of a stack, root first, inlined frames after their callers.
    pub fn stack_frames<'p>(&'p self, stack: &'p Stack) -> impl Iterator<Item = &'p Frame> + 'p {
        stack
            .locations
            .iter()
            .flat_map(|&l| self.locations[l].frames.iter())
            .map(|&f| &self.frames[f])
    }

    /// Function names of a stack, root first.
    pub fn stack_names<'p>(&'p self, stack: &'p Stack) -> impl Iterator<Item = &'p str> + 'p {
        self.stack_frames(stack)
            .map(|frame| self.functions[frame.function].name.as_str())
    }

    /// Samples whose stack ends in no known root (unwinding stopped early somewhere).
    pub fn incomplete_samples(&self) -> u64 {
        self.stacks
            .iter()
            .filter(|stack| !self.reaches_root(stack))
            .map(|s| s.count)
            .sum()
    }

    /// A stack is complete when its outermost frame is a known root, or when the unwinder
    /// reached the end of the stack (only CFI that marks the return address undefined does
    /// that) inside the C library, whose stripped builds hide `clone3` and `start_thread`.
    fn reaches_root(&self, stack: &Stack) -> bool {
        let Some(outermost) = self.stack_frames(stack).next() else {
            return false;
        };
        let function = &self.functions[outermost.function];
        stack.stop == StopReason::Complete
            && (ROOT_FUNCTIONS.contains(&function.name.as_str())
                || function.module.starts_with("libc.so"))
    }

    /// Every function with its total and self counts, largest total first; only samples of
    /// thread `tid` if given.
    pub fn function_counts(&self, tid: Option<i32>) -> Vec<FunctionCount> {
        let mut counts: HashMap<usize, FunctionCount> = HashMap::new();
        let mut seen = HashSet::new();
        for stack in self
            .stacks
            .iter()
            .filter(|s| tid.is_none_or(|tid| s.tid == tid))
        {
            seen.clear();
            let mut leaf = None;
            for frame in self.stack_frames(stack) {
                leaf = Some(frame.function);
                if seen.insert(frame.function) {
                    counts
                        .entry(frame.function)
                        .or_insert(FunctionCount {
                            function: frame.function,
                            total: 0,
                            self_count: 0,
                        })
                        .total += stack.count;
                }
            }
            if let Some(entry) = leaf.and_then(|leaf| counts.get_mut(&leaf)) {
                entry.self_count += stack.count;
            }
        }
        let mut rows: Vec<FunctionCount> = counts.into_values().collect();
        rows.sort_by(|a, b| {
            (b.total, b.self_count)
                .cmp(&(a.total, a.self_count))
                .then_with(|| {
                    let name = |row: &FunctionCount| &self.functions[row.function].name;
                    name(a).cmp(name(b))
                })
        });
        rows
    }

    /// `name (tid)` of a thread, as per-thread views title it.
    pub fn thread_label(&self, tid: i32) -> String {
        match self.thread_name(tid) {
            Some(name) => format!("{name} ({tid})"),
            None => format!("thread {tid}"),
        }
    }

    /// Name of thread `tid` as the header knows it.
    pub fn thread_name(&self, tid: i32) -> Option<&str> {
        self.header
            .threads
            .iter()
            .find(|t| t.tid == tid)
            .and_then(|t| t.name.as_deref())
    }
}

/// Marks a raw stack that is not in the profile.
const NOT_IN_PROFILE: u32 = u32::MAX;

/// The function through which threads the program creates start (see `thread_start`).
const THREAD_START_TRAMPOLINE: &str = "thread_start::announce_then_run";

/// The locations of a raw stack, leaf first, without the profiler's thread-start
/// trampoline; `None` when the thread was running the profiler's own code.
fn program_locations(
    builder: &mut Builder,
    map: Option<&ModuleMap>,
    symbols: &Symbols,
    frames: &[u64],
) -> Option<Vec<usize>> {
    let mut locations = Vec::with_capacity(frames.len());
    for lookup in lookup_addresses(frames) {
        let in_profiler = map.and_then(|m| m.find(lookup)).is_some_and(|m| m.profiler);
        if !in_profiler {
            locations.push(builder.location(map, symbols, lookup));
            continue;
        }
        let names = symbols.frames(map, lookup);
        if !names
            .iter()
            .any(|f| f.function.ends_with(THREAD_START_TRAMPOLINE))
        {
            return None;
        }
    }
    Some(locations)
}

/// Addresses to look names up at, leaf first: the leaf as is, return addresses minus one so
/// that a call at the very end of a function is not blamed on the next function.
pub(crate) fn lookup_addresses(frames: &[u64]) -> impl Iterator<Item = u64> + '_ {
    frames.iter().enumerate().map(|(depth, &address)| {
        if depth == 0 {
            address
        } else {
            address.saturating_sub(1)
        }
    })
}

/// Items deduplicated by value, in order of first use.
struct Interned<T> {
    items: Vec<T>,
    ids: HashMap<T, usize>,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            items: Vec::new(),
            ids: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interned<T> {
    fn id(&mut self, item: T) -> usize {
        if let Some(&id) = self.ids.get(&item) {
            return id;
        }
        self.items.push(item.clone());
        self.ids.insert(item, self.items.len() - 1);
        self.items.len() - 1
    }
}

/// Collects the functions, frames, modules and locations a profile refers to.
#[derive(Default)]
struct Builder {
    functions: Interned<Function>,
    frames: Interned<Frame>,
    /// Keyed by module object (its `Arc` address, 0 for none) and lookup address.
    location_ids: HashMap<(usize, u64), usize>,
    locations: Vec<Location>,
    module_ids: HashMap<usize, usize>,
    modules: Vec<Module>,
}

impl Builder {
    fn location(&mut self, map: Option<&ModuleMap>, symbols: &Symbols, lookup: u64) -> usize {
        let info = map.and_then(|m| m.find(lookup));
        let key = (info.map_or(0, |m| Arc::as_ptr(m) as usize), lookup);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let module = info.map(|info| self.module(info));
        let frames = symbols
            .frames(map, lookup)
            .iter()
            .map(|source| self.frame(source))
            .collect();
        self.locations.push(Location {
            address: lookup,
            module,
            frames,
        });
        self.location_ids.insert(key, self.locations.len() - 1);
        self.locations.len() - 1
    }

    fn frame(&mut self, source: &SourceFrame) -> usize {
        let function = self.functions.id(Function {
            name: source.function.clone(),
            module: source.module.clone(),
            file: source.file.clone(),
            start: source.start,
        });
        self.frames.id(Frame {
            function,
            line: source.line,
            inlined: source.inlined,
        })
    }

    fn module(&mut self, info: &Arc<ModuleInfo>) -> usize {
        let key = Arc::as_ptr(info) as usize;
        if let Some(&id) = self.module_ids.get(&key) {
            return id;
        }
        let code = info.code.first();
        self.modules.push(Module {
            name: info.name.clone(),
            path: info.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
            build_id: info.build_id.as_deref().map(hex),
            start: code.map_or(0, |c| c.avma.start),
            end: code.map_or(0, |c| c.avma.end),
            file_offset: code.map_or(0, |c| c.file_offset),
            executable: info.executable,
            bias: info.bias,
        });
        self.module_ids.insert(key, self.modules.len() - 1);
        self.modules.len() - 1
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
