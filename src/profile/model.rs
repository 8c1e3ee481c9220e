//! The symbolized profile's types: what every output format renders, and what the
//! `.profile.json.gz` file saves.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::StackTable;
use crate::base::heap::HeapUsage;
use crate::sample::StopReason;
use crate::settings::Mode;
use crate::stats::{Counters, SamplerScheduling, ThreadState};

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
    /// Processes whose profiles were merged into this one (`stacksample report` of a tree).
    #[serde(default = "one")]
    pub processes: usize,
    /// What `report`'s filters kept; `None`: the whole run.
    #[serde(default)]
    pub filtered: Option<Selection>,
}

fn one() -> usize {
    1
}

/// The run before `report`'s filters, so the counters stay those of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Selection {
    /// Samples in the profile before filtering.
    pub samples: u64,
    /// Incomplete samples before filtering.
    pub incomplete: u64,
    /// The filters, as typed (`--include 'x' --invert`).
    pub filters: String,
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
    /// Stacks hold their leaf first (`report --invert` or `--callers`): the leaf, for self
    /// counts, is then the first frame, and the root the last.
    #[serde(default)]
    pub leaf_first: bool,
}
