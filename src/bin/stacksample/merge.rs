//! One profile from the profiles of a process tree. Functions are one per name and module
//! across processes, and frames one per function and line, so a function that ran in
//! several processes is one row; modules, addresses and stacks stay per process (stacks
//! kept apart by thread id, unique across the processes of a run). Counters are added, and
//! the header says how many processes it covers. The first profile (the process `record`
//! started) gives the command and interval.

use std::collections::HashMap;

use stacksample::profile::{Frame, Function, Profile};

pub fn merge(mut profiles: Vec<Profile>) -> Option<Profile> {
    if profiles.is_empty() {
        return None;
    }
    let mut merged = profiles.remove(0);
    if profiles.is_empty() {
        return Some(merged);
    }
    let mut tables = Tables::of(&mut merged);
    for profile in profiles {
        tables.append(&mut merged, profile);
    }
    Some(merged)
}

/// The merged profile's functions and frames by identity, to find one already there.
struct Tables {
    functions: HashMap<(String, String), usize>,
    frames: HashMap<(usize, Option<u32>, bool), usize>,
}

impl Tables {
    /// Indexes `profile`'s tables, first making its own functions and frames unique.
    fn of(profile: &mut Profile) -> Tables {
        let mut tables = Tables {
            functions: HashMap::new(),
            frames: HashMap::new(),
        };
        let functions = std::mem::take(&mut profile.functions);
        let frames = std::mem::take(&mut profile.frames);
        let frame_ids = tables.add_tables(profile, functions, frames);
        profile
            .locations
            .iter_mut()
            .for_each(|l| l.frames.iter_mut().for_each(|f| *f = frame_ids[*f]));
        tables
    }

    /// Adds `functions` and `frames` of another profile to `into`, reusing equal ones;
    /// returns the new index of each frame.
    fn add_tables(
        &mut self,
        into: &mut Profile,
        functions: Vec<Function>,
        frames: Vec<Frame>,
    ) -> Vec<usize> {
        let function_ids: Vec<usize> = functions
            .into_iter()
            .map(|function| {
                let key = (function.name.clone(), function.module.clone());
                *self.functions.entry(key).or_insert_with(|| {
                    into.functions.push(function);
                    into.functions.len() - 1
                })
            })
            .collect();
        frames
            .into_iter()
            .map(|mut frame| {
                frame.function = function_ids[frame.function];
                let key = (frame.function, frame.line, frame.inlined);
                *self.frames.entry(key).or_insert_with(|| {
                    into.frames.push(frame);
                    into.frames.len() - 1
                })
            })
            .collect()
    }

    fn append(&mut self, into: &mut Profile, from: Profile) {
        let modules = into.modules.len();
        let locations = into.locations.len();
        let stacks = into.stacks.len() as u32;
        let frame_ids = self.add_tables(into, from.functions, from.frames);
        into.modules.extend(from.modules);
        into.locations
            .extend(from.locations.into_iter().map(|mut location| {
                location.module = location.module.map(|m| m + modules);
                location.frames.iter_mut().for_each(|f| *f = frame_ids[*f]);
                location
            }));
        into.stacks.extend(from.stacks.into_iter().map(|mut stack| {
            stack.locations.iter_mut().for_each(|l| *l += locations);
            stack
        }));
        into.timeline
            .extend(from.timeline.into_iter().map(|s| s + stacks));
        into.profiler_samples += from.profiler_samples;
        into.symbolize_cost.addresses += from.symbolize_cost.addresses;
        into.symbolize_cost.elapsed += from.symbolize_cost.elapsed;
        merge_header(into, from.header);
    }
}

fn merge_header(into: &mut Profile, from: stacksample::profile::Header) {
    let header = &mut into.header;
    // The handler's median over all processes, approximated by the sample-weighted mean.
    let (a, b) = (
        header.counters.taken_by_signal(),
        from.counters.taken_by_signal(),
    );
    header.handler_median_nanos = match (header.handler_median_nanos, from.handler_median_nanos) {
        (Some(x), Some(y)) if a + b > 0 => Some((x * a + y * b) / (a + b)),
        (x, y) => x.or(y),
    };
    header.handler_p99_nanos = header.handler_p99_nanos.max(from.handler_p99_nanos);
    header.handler_max_nanos = header.handler_max_nanos.max(from.handler_max_nanos);
    header.handler_total_nanos += from.handler_total_nanos;
    header.threads.extend(from.threads);
    header.duration = header.duration.max(from.duration);
    header.per_thread |= from.per_thread;
    header.counters.add(&from.counters);
    header.processes += from.processes.max(1);
    if let (Some(table), Some(other)) = (&mut header.stack_table, &from.stack_table) {
        table.stacks += other.stacks;
        table.bytes += other.bytes;
    }
}
