//! Layer 8: counts of identical raw stacks in bounded memory, the order samples came in,
//! and the handler's cost. Runs on the drain thread; names come later, once per distinct
//! address, when a profile is built.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::sample::{RawSample, StopReason};

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

/// What [`Aggregate::add`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Counted for a stack seen before.
    Counted,
    /// Counted for a stack not seen before, now the last of the table.
    NewStack,
    /// Dropped: the table is full and the stack is new.
    Dropped,
}

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

    /// Adds a sample. The sample keeps its frames unless they are a new stack's (see
    /// [`SampleBatch`]), the last of [`Aggregate::stacks`].
    pub fn add(&mut self, sample: &mut RawSample) -> Added {
        if let Some(nanos) = sample.handler_nanos {
            self.handler_times.record(nanos);
        }
        let key = StackKey {
            tid: sample.tid,
            generation: sample.generation,
            stop: sample.stop,
            frames: std::mem::take(&mut sample.frames),
        };
        let (index, added) = match self.index.get(&key) {
            Some(&index) => {
                sample.frames = key.frames;
                (index, Added::Counted)
            }
            None if self.stacks.len() >= self.max_stacks => {
                sample.frames = key.frames;
                return Added::Dropped;
            }
            None => {
                let index = self.stacks.len() as u32;
                self.index.insert(key.clone(), index);
                self.stacks.push((key, 0));
                (index, Added::NewStack)
            }
        };
        self.stacks[index as usize].1 += 1;
        if self.timeline.len() < self.timeline_limit {
            self.timeline.push(index);
        }
        added
    }
}

/// Histogram of handler durations: 10 ns buckets up to 100 us, then one overflow bucket.
/// The buckets are allocated at the first sample, so a process that ends without one does
/// not pay the page faults of zeroing them.
#[derive(Default)]
pub struct HandlerTimes {
    buckets: Vec<u64>,
    max: u64,
    total: u64,
}

const BUCKET_NANOS: u64 = 10;
const BUCKETS: usize = 10_000;

impl HandlerTimes {
    pub fn record(&mut self, nanos: u64) {
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
                python: None,
            };
            let expected = if new_stack {
                Added::NewStack
            } else {
                Added::Counted
            };
            assert_eq!(aggregate.add(&mut sample), expected);
            assert_eq!(sample.frames.is_empty(), new_stack);
        }
        assert_eq!(aggregate.stacks.len(), 2);
        assert_eq!(aggregate.stacks[0].1, 2);
        assert_eq!(aggregate.timeline, [0, 0, 1]);
    }
}
