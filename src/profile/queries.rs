//! What the reports ask of a profile: totals, a stack's names, per-function counts, thread
//! labels.

use std::collections::{HashMap, HashSet};

use super::model::*;
use crate::sample::StopReason;

/// Outermost frames of complete stacks: the executable's entry and thread starts.
const ROOT_FUNCTIONS: [&str; 6] = [
    "_start",
    "start_thread",
    "clone",
    "clone3",
    "__clone",
    "__clone3",
];

impl Profile {
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

    /// A stack is complete when it ends where a `makecontext` fiber starts, when its
    /// outermost frame is a known root, or when the unwinder reached the end of the stack
    /// (only CFI that marks the return address undefined does that) inside the C library,
    /// whose stripped builds hide `clone3` and `start_thread`.
    fn reaches_root(&self, stack: &Stack) -> bool {
        if stack.stop == StopReason::FiberStart {
            return true;
        }
        let outermost = if self.leaf_first {
            self.stack_frames(stack).last()
        } else {
            self.stack_frames(stack).next()
        };
        let Some(outermost) = outermost else {
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
                if leaf.is_none() || !self.leaf_first {
                    leaf = Some(frame.function);
                }
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
