//! The symbolized profile: what every output format renders.
//!
//! Built by the drain at dump time from the raw aggregate: each distinct address is named once,
//! identical symbolized stacks are merged, and per-function totals are derived from it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::drain::Aggregate;
use crate::modules::ModuleMap;
use crate::signal::slot::{SlotPool, StopReason};
use crate::stats::{Stats, ThreadState};
use crate::symbolize::Symbols;

/// Outermost frames of complete stacks: the executable's entry and thread starts.
const ROOT_FUNCTIONS: [&str; 6] = [
    "_start",
    "start_thread",
    "clone",
    "clone3",
    "__clone",
    "__clone3",
];

/// A named frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub function: String,
    /// File name of the module, `[vdso]`, or `?` when no module holds the address.
    pub module: String,
}

/// A distinct symbolized stack and how often it was seen.
#[derive(Debug, Clone)]
pub struct Stack {
    pub tid: i32,
    /// Indices into [`Profile::frames`], root first.
    pub frames: Vec<usize>,
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
#[derive(Debug, Clone)]
pub struct ThreadSummary {
    pub tid: i32,
    pub name: Option<String>,
    pub state: ThreadState,
    pub samples: u64,
}

/// Counters copied from [`Stats`] at dump time.
#[derive(Debug, Clone, Default)]
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
        }
    }
}

/// Facts about the run, printed at the top of the text report.
#[derive(Debug, Clone)]
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
}

/// Per-function counts: the seed API's `get_sorted()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCount {
    pub frame: usize,
    /// Samples with the function anywhere on the stack, once per sample under recursion.
    pub total: u64,
    /// Samples with the function as the leaf.
    pub self_count: u64,
}

#[derive(Debug)]
pub struct Profile {
    pub header: Header,
    pub frames: Vec<Frame>,
    pub stacks: Vec<Stack>,
}

impl Profile {
    /// Names every distinct address of `aggregate` and merges stacks that name the same.
    pub fn build(
        header: Header,
        aggregate: &Aggregate,
        maps: &HashMap<u32, Arc<ModuleMap>>,
        symbols: &mut Symbols,
    ) -> Profile {
        let mut by_generation: HashMap<u32, HashSet<u64>> = HashMap::new();
        for key in aggregate.stacks.keys() {
            let lookups = by_generation.entry(key.generation).or_default();
            lookups.extend(lookup_addresses(&key.frames));
        }
        for (generation, lookups) in &by_generation {
            if let Some(map) = maps.get(generation) {
                symbols.prepare(map, lookups.iter().copied());
            }
        }

        let mut frames = Vec::new();
        let mut frame_ids: HashMap<Frame, usize> = HashMap::new();
        let mut merged: HashMap<(i32, StopReason, Vec<usize>), u64> = HashMap::new();
        for (key, count) in &aggregate.stacks {
            let map = maps.get(&key.generation).map(Arc::as_ref);
            let mut ids: Vec<usize> = lookup_addresses(&key.frames)
                .map(|lookup| {
                    let frame = symbols.frame(map, lookup);
                    *frame_ids.entry(frame.clone()).or_insert_with(|| {
                        frames.push(frame);
                        frames.len() - 1
                    })
                })
                .collect();
            ids.reverse();
            *merged.entry((key.tid, key.stop, ids)).or_insert(0) += count;
        }
        let mut stacks: Vec<Stack> = merged
            .into_iter()
            .map(|((tid, stop, frames), count)| Stack {
                tid,
                frames,
                count,
                stop,
            })
            .collect();
        stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.frames.cmp(&b.frames)));
        Profile {
            header,
            frames,
            stacks,
        }
    }

    pub fn total_samples(&self) -> u64 {
        self.stacks.iter().map(|s| s.count).sum()
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
        let Some(outermost) = stack.frames.first().and_then(|&id| self.frames.get(id)) else {
            return false;
        };
        match stack.stop {
            StopReason::Complete => {
                ROOT_FUNCTIONS.contains(&outermost.function.as_str())
                    || outermost.module.starts_with("libc.so")
            }
            _ => false,
        }
    }

    /// Every function with its total and self counts, largest total first.
    pub fn function_counts(&self) -> Vec<FunctionCount> {
        let mut counts: HashMap<usize, FunctionCount> = HashMap::new();
        let mut seen = HashSet::new();
        for stack in &self.stacks {
            seen.clear();
            for &frame in &stack.frames {
                if seen.insert(frame) {
                    let entry = counts.entry(frame).or_insert(FunctionCount {
                        frame,
                        total: 0,
                        self_count: 0,
                    });
                    entry.total += stack.count;
                }
            }
            if let Some(&leaf) = stack.frames.last() {
                if let Some(entry) = counts.get_mut(&leaf) {
                    entry.self_count += stack.count;
                }
            }
        }
        let mut rows: Vec<FunctionCount> = counts.into_values().collect();
        rows.sort_by(|a, b| {
            (b.total, b.self_count)
                .cmp(&(a.total, a.self_count))
                .then_with(|| {
                    self.frames[a.frame]
                        .function
                        .cmp(&self.frames[b.frame].function)
                })
        });
        rows
    }
}

/// Addresses to look names up at, leaf first: the leaf as is, return addresses minus one so
/// that a call at the very end of a function is not blamed on the next function.
fn lookup_addresses(frames: &[u64]) -> impl Iterator<Item = u64> + '_ {
    frames.iter().enumerate().map(|(depth, &address)| {
        if depth == 0 {
            address
        } else {
            address.saturating_sub(1)
        }
    })
}
