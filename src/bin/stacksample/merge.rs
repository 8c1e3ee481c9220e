//! One profile from the profiles of a process tree: tables appended with their indices
//! shifted, stacks kept apart by thread id (unique across the processes of a run), counters
//! added. The first profile (the process `record` started) gives the command and interval.

use stacksample::profile::Profile;

pub fn merge(mut profiles: Vec<Profile>) -> Option<Profile> {
    if profiles.is_empty() {
        return None;
    }
    let mut merged = profiles.remove(0);
    for profile in profiles {
        append(&mut merged, profile);
    }
    Some(merged)
}

fn append(into: &mut Profile, from: Profile) {
    let functions = into.functions.len();
    let frames = into.frames.len();
    let modules = into.modules.len();
    let locations = into.locations.len();
    let stacks = into.stacks.len() as u32;

    into.functions.extend(from.functions);
    into.frames.extend(from.frames.into_iter().map(|mut frame| {
        frame.function += functions;
        frame
    }));
    into.modules.extend(from.modules);
    into.locations
        .extend(from.locations.into_iter().map(|mut location| {
            location.module = location.module.map(|m| m + modules);
            location.frames.iter_mut().for_each(|f| *f += frames);
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
}
