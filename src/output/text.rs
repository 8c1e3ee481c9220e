//! `<prefix>.txt`: what took the time first, then how the run went. Two title lines (the
//! program, the samples, what was lost), the functions by self samples, the functions by
//! total samples, then `## counters`: what was sampled, and what was lost and why, written as
//! sums that add up; with more than one thread sampled, a section per thread with its own
//! tables.

use std::io::{self, Write};
use std::time::Duration;

use super::writer::Writer;
use crate::profile::{FunctionCount, Profile};
use crate::stats::Counters;
use crate::stats::SamplerScheduling;
use crate::stats::ThreadState;

/// `rows`: functions in each table (`--top`).
pub struct Text {
    pub rows: usize,
}

impl Writer for Text {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        write_title(profile, out)?;
        write_function_tables(profile, None, self.rows, "", out)?;
        write_counters(profile, out)?;
        let sampled = samples_by_thread(profile);
        if sampled.len() > 1 {
            for (tid, samples) in sampled {
                writeln!(
                    out,
                    "\n## thread {}: {samples} samples",
                    profile.thread_label(tid)
                )?;
                let rows = THREAD_ROWS.min(self.rows);
                write_function_tables(profile, Some(tid), rows, "", out)?;
            }
        }
        Ok(())
    }
}

/// Samples of each thread in the profile (after any filter), in the header's order.
fn samples_by_thread(profile: &Profile) -> Vec<(i32, u64)> {
    let mut counts: Vec<(i32, u64)> = Vec::new();
    for thread in &profile.header.threads {
        if !counts.iter().any(|&(tid, _)| tid == thread.tid) {
            counts.push((thread.tid, 0));
        }
    }
    for stack in &profile.stacks {
        match counts.iter_mut().find(|(tid, _)| *tid == stack.tid) {
            Some((_, n)) => *n += stack.count,
            None => counts.push((stack.tid, stack.count)),
        }
    }
    counts.retain(|&(_, n)| n > 0);
    counts
}

/// Rows in each thread's own tables.
const THREAD_ROWS: usize = 20;

/// What was run and what the profile holds, in two lines.
fn write_title(profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
    let h = &profile.header;
    let processes = match h.processes {
        0 | 1 => format!("pid {}", h.pid),
        n => format!("{n} processes"),
    };
    writeln!(
        out,
        "# stacksample {} profile of `{}` ({processes}): {} samples in {:.3} s, every {}, {} mode",
        env!("CARGO_PKG_VERSION"),
        h.command,
        run_samples(profile),
        h.duration.as_secs_f64(),
        human(h.interval),
        h.mode.name(),
    )?;
    writeln!(
        out,
        "# {} (the counters below say why)",
        lost_summary(profile)
    )?;
    if let Some(shown) = shown(profile) {
        writeln!(out, "# {shown}")?;
    }
    writeln!(out)
}

/// Samples in the profile of the run, before `report`'s filters.
fn run_samples(profile: &Profile) -> u64 {
    match &profile.header.filtered {
        Some(selection) => selection.samples,
        None => profile.total_samples(),
    }
}

/// Samples whose stacks are incomplete, before `report`'s filters.
fn run_incomplete(profile: &Profile) -> u64 {
    match &profile.header.filtered {
        Some(selection) => selection.incomplete,
        None => profile.incomplete_samples(),
    }
}

/// What `report`'s filters left, when they were used.
fn shown(profile: &Profile) -> Option<String> {
    let selection = profile.header.filtered.as_ref()?;
    Some(format!(
        "shown: {} of {} samples after {}; the tables are of these, the counters of the whole run",
        profile.total_samples(),
        selection.samples,
        selection.filters
    ))
}

/// One line of what the profile lacks: missed ticks, dropped samples, cut stacks.
pub fn lost_summary(profile: &Profile) -> String {
    let c = &profile.header.counters;
    format!(
        "lost: {} of {} ticks missed, {} samples dropped, {} stacks cut short, {} incomplete",
        c.missed(),
        c.ticks(),
        c.dropped(profile.profiler_samples),
        cut_short(c),
        run_incomplete(profile)
    )
}

fn cut_short(c: &Counters) -> u64 {
    c.depth_limit + c.unwind_error + c.unknown_stack + c.no_handler_stack
}

/// The table of functions by self samples, then by total samples, for thread `tid` if
/// given (percentages of its samples), `rows` rows each, every line after `indent`. The
/// self table leaves out functions that were never the leaf.
pub fn write_function_tables(
    profile: &Profile,
    tid: Option<i32>,
    rows: usize,
    indent: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    let samples: u64 = profile
        .stacks
        .iter()
        .filter(|s| tid.is_none_or(|tid| s.tid == tid))
        .map(|s| s.count)
        .sum();
    let table = Table {
        profile,
        counts: profile.function_counts(tid),
        samples: samples.max(1) as f64,
        rows,
        indent,
    };
    table.write(By::SelfCount, out)?;
    writeln!(out)?;
    table.write(By::Total, out)
}

/// The count a function table is sorted by, and shows first.
#[derive(Clone, Copy)]
enum By {
    SelfCount,
    Total,
}

impl By {
    /// The leading count of `row`, then the other.
    fn counts(self, row: &FunctionCount) -> (u64, u64) {
        match self {
            By::SelfCount => (row.self_count, row.total),
            By::Total => (row.total, row.self_count),
        }
    }
}

/// The per-function counts of a function table.
struct Table<'p> {
    profile: &'p Profile,
    counts: Vec<FunctionCount>,
    samples: f64,
    rows: usize,
    indent: &'p str,
}

impl Table<'_> {
    fn write(&self, by: By, out: &mut dyn Write) -> io::Result<()> {
        let indent = self.indent;
        let (heading, first, second) = match by {
            By::SelfCount => (
                "self samples: the function itself was running",
                "self",
                "total",
            ),
            By::Total => (
                "total samples: the function was on the stack",
                "total",
                "self",
            ),
        };
        writeln!(out, "{indent}## functions by {heading}")?;
        writeln!(
            out,
            "{indent}{first:>8} {:>7} {second:>8} {:>7}  function  [module]",
            format!("{first}%"),
            format!("{second}%")
        )?;
        let mut rows: Vec<&FunctionCount> = self
            .counts
            .iter()
            .filter(|row| by.counts(row).0 > 0)
            .collect();
        rows.sort_by(|a, b| {
            by.counts(b)
                .cmp(&by.counts(a))
                .then_with(|| self.name(a).cmp(&self.name(b)))
        });
        for row in rows.into_iter().take(self.rows) {
            let (first, second) = by.counts(row);
            writeln!(
                out,
                "{indent}{first:>8} {:>6.2}% {second:>8} {:>6.2}%  {}",
                self.percent(first),
                self.percent(second),
                self.name(row)
            )?;
        }
        Ok(())
    }

    fn percent(&self, count: u64) -> f64 {
        100.0 * count as f64 / self.samples
    }

    fn name(&self, row: &FunctionCount) -> String {
        let function = &self.profile.functions[row.function];
        format!("{}  [{}]", function.name, function.module)
    }
}

/// `## counters`: the run, and what was sampled and lost, as sums.
fn write_counters(profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
    let h = &profile.header;
    let c = &h.counters;
    writeln!(out, "\n## counters")?;
    writeln!(out, "command:      {}", h.command)?;
    match h.processes {
        0 | 1 => writeln!(out, "pid:          {}", h.pid)?,
        n => writeln!(
            out,
            "pid:          {} and {} more processes; the counts below are their sums",
            h.pid,
            n - 1
        )?,
    }
    for thread in &h.threads {
        let name = thread.name.as_deref().unwrap_or("-");
        let state = match thread.state {
            ThreadState::Sampling => "",
            ThreadState::Exited => ", exited",
            ThreadState::NotFound => ", never found in this process",
        };
        writeln!(
            out,
            "thread:       {} ({name}): {} samples{state}",
            thread.tid, thread.samples
        )?;
    }
    writeln!(
        out,
        "interval:     {} ({:.0} Hz)",
        human(h.interval),
        1.0 / h.interval.as_secs_f64()
    )?;
    writeln!(out, "duration:     {:.3} s", h.duration.as_secs_f64())?;
    writeln!(out, "mode:         {}", h.mode.name())?;
    if let Some(shown) = shown(profile) {
        writeln!(out, "{shown}")?;
    }
    for line in counter_lines(c, run_samples(profile), profile.profiler_samples) {
        writeln!(out, "{line}")?;
    }
    if h.mode == crate::settings::Mode::Cpu {
        writeln!(
            out,
            "idle:         {} thread ticks not requested: the thread had used no CPU since the last",
            c.idle_skipped
        )?;
    }
    if let Some(scheduling) = &h.sampler_scheduling {
        writeln!(out, "sampler:      {}", describe_scheduling(scheduling))?;
    }
    if let Some(table) = &h.stack_table {
        writeln!(
            out,
            "stacks:       {} distinct by address (at most {} kept per process); the table holds about {} bytes",
            table.stacks, table.max_stacks, table.bytes
        )?;
    }
    if let Some(heap) = &h.profiler_heap {
        writeln!(
            out,
            "heap:         {} bytes live, {} at most (the profiler's own allocations)",
            heap.live, heap.peak
        )?;
    }
    writeln!(
        out,
        "truncated:    {} at depth limit {}; {} stopped at a frame that could not be unwound; {} on an unknown stack (leaf only); {} without a stack of the library's to unwind on (leaf only)",
        c.depth_limit, h.max_depth, c.unwind_error, c.unknown_stack, c.no_handler_stack
    )?;
    writeln!(
        out,
        "incomplete:   {} samples whose stack does not reach _start, a thread start or a fiber start",
        run_incomplete(profile)
    )?;
    writeln!(out, "handler time: {}", handler_time(profile))?;
    let cost = &profile.symbolize_cost;
    writeln!(
        out,
        "symbolized:   {} distinct addresses in {:.1} ms",
        cost.addresses,
        cost.elapsed.as_secs_f64() * 1e3
    )
}

/// The lines that account for every thread tick: requested = taken + missed, taken = by
/// signal + without, in profile = taken - dropped (- still on the way to the drain, in a
/// profile written while sampling).
fn counter_lines(c: &Counters, in_profile: u64, in_profiler: u64) -> Vec<String> {
    let dropped = c.dropped(in_profiler);
    let on_the_way = c.taken.saturating_sub(dropped + in_profile);
    let on_the_way = match on_the_way {
        0 => String::new(),
        n => format!(" - {n} still on the way to the drain"),
    };
    let mut lines = vec![
        format!(
            "requested:    {} thread ticks = {} taken + {} missed",
            c.ticks(),
            c.taken,
            c.missed()
        ),
        format!(
            "taken:        {} = {} answered signals + {} blocked threads unwound without a signal + {} still-blocked samples repeated; {} of those unwinds found the frame pointer on the stack",
            c.taken,
            c.taken_by_signal(),
            c.blocked_unwound,
            c.blocked_repeated,
            c.blocked_frame_pointer_found
        ),
        format!(
            "signals:      {} sent = {} answered + {} unanswered",
            c.requested,
            c.taken_by_signal(),
            c.no_response + c.stuck + c.thread_gone + c.send_failed + c.in_flight
        ),
        format!(
            "samples:      {in_profile} in profile = {} taken - {dropped} dropped{on_the_way}",
            c.taken
        ),
        format!("missed:       {}", missed(c)),
        format!("dropped:      {}", dropped_reasons(c, in_profiler)),
        format!(
            "late signals: {} arrived after their request was given up (already counted as missed)",
            c.late_signals
        ),
    ];
    if c.python_whole + c.python_partial > 0 {
        lines.push(format!(
            "python:       {} samples with Python frames = {} whole + {} partial (the frame chain changed under the read, or its activations did not pair with the native stack's); {} frames of code freed before it was named",
            c.python_whole + c.python_partial,
            c.python_whole,
            c.python_partial,
            c.python_freed
        ));
    }
    lines
}

/// Thread ticks that produced no sample, by reason; the reasons add up to the first number.
fn missed(c: &Counters) -> String {
    format!(
        "{} (sampler behind schedule: {}, blocked thread between calls: {}, slots busy: {}, earlier request unanswered: {}, no response in time: {}, handler unfinished: {}, thread gone: {}, send failed: {}, in flight when written: {})",
        c.missed(),
        c.missed_deadlines,
        c.between_calls,
        c.slots_busy,
        c.previous_unanswered,
        c.no_response,
        c.stuck,
        c.thread_gone,
        c.send_failed,
        c.in_flight
    )
}

/// Samples taken but not in the profile, by reason.
fn dropped_reasons(c: &Counters, in_profiler: u64) -> String {
    format!(
        "{} (drain behind: {}, distinct-stack table full: {}, thread in the profiler's own code: {})",
        c.dropped(in_profiler),
        c.drain_busy,
        c.table_full,
        in_profiler
    )
}

fn handler_time(profile: &Profile) -> String {
    let h = &profile.header;
    let (Some(median), Some(p99)) = (h.handler_median_nanos, h.handler_p99_nanos) else {
        return "no samples".to_owned();
    };
    let median_of = match h.processes {
        0 | 1 => "median",
        _ => "median (mean of the processes' medians, by samples)",
    };
    format!(
        "{median_of} {:.2} us, p99 {:.2} us, max {:.2} us; total {:.3} ms, {} of the sampled threads' CPU time",
        median as f64 / 1e3,
        p99 as f64 / 1e3,
        h.handler_max_nanos as f64 / 1e3,
        h.handler_total_nanos as f64 / 1e6,
        handler_share(profile)
    )
}

/// Handler time as a share of the CPU time of the threads it ran on.
fn handler_share(profile: &Profile) -> String {
    match profile.handler_share_of_thread_cpu() {
        Some(share) => format!("{:.3}%", share * 100.0),
        None => "an unknown share".to_owned(),
    }
}

/// How the sampler thread ran, which says whether its ticks could be late.
fn describe_scheduling(scheduling: &SamplerScheduling) -> String {
    match scheduling {
        SamplerScheduling::Deadline { budget, period } => format!(
            "deadline scheduling, ahead of the program's threads, at most {} of CPU every {}",
            human(*budget),
            human(*period)
        ),
        SamplerScheduling::Fair { nice, refused } => format!(
            "normal scheduling at nice {nice} (deadline scheduling refused: {refused}); ticks can be late while the program keeps every CPU busy"
        ),
    }
}

fn human(interval: Duration) -> String {
    let micros = interval.as_micros();
    if micros.is_multiple_of(1000) {
        format!("{} ms", micros / 1000)
    } else {
        format!("{micros} us")
    }
}
