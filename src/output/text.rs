//! `<prefix>.txt`: a header that says what was sampled and what was lost, then every function
//! with its total and self samples, largest total first; with more than one thread sampled,
//! then a section per thread with its own top functions.

use std::io::{self, Write};
use std::time::Duration;

use super::writer::Writer;
use crate::profile::Profile;
use crate::stats::Counters;
use crate::stats::SamplerScheduling;
use crate::stats::ThreadState;

/// `rows`: functions listed in the main table (`stacksample report --top`).
pub struct Text {
    pub rows: usize,
}

impl Writer for Text {
    fn write(&self, profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
        write_header(profile, out)?;
        write_functions(profile, None, self.rows, out)?;
        let sampled: Vec<_> = profile
            .header
            .threads
            .iter()
            .filter(|t| t.samples > 0)
            .collect();
        if sampled.len() > 1 {
            for thread in sampled {
                writeln!(out)?;
                writeln!(
                    out,
                    "## thread {}: {} samples",
                    profile.thread_label(thread.tid),
                    thread.samples
                )?;
                write_functions(profile, Some(thread.tid), THREAD_ROWS.min(self.rows), out)?;
            }
        }
        Ok(())
    }
}

fn write_header(profile: &Profile, out: &mut dyn Write) -> io::Result<()> {
    let h = &profile.header;
    let c = &h.counters;
    writeln!(out, "# stacksample {} profile", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "command:      {}", h.command)?;
    writeln!(out, "pid:          {}", h.pid)?;
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
    writeln!(
        out,
        "samples:      {} in profile, {} taken of {} requested",
        profile.total_samples(),
        c.taken,
        c.requested
    )?;
    writeln!(
        out,
        "taken by:     {} signals; {} blocked threads unwound without a signal, {} still-blocked samples repeated",
        c.taken_by_signal(),
        c.blocked_unwound,
        c.blocked_repeated
    )?;
    if h.mode == crate::settings::Mode::Cpu {
        writeln!(
            out,
            "idle:         {} thread ticks skipped (no CPU used)",
            c.idle_skipped
        )?;
    }
    writeln!(out, "missed:       {}", missed(c))?;
    if let Some(scheduling) = &h.sampler_scheduling {
        writeln!(out, "sampler:      {}", describe_scheduling(scheduling))?;
    }
    if let Some(table) = &h.stack_table {
        writeln!(
            out,
            "stacks:       {} distinct by address (at most {} kept); the table holds about {} bytes",
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
        "dropped:      {}",
        dropped(c, profile.profiler_samples)
    )?;
    writeln!(
        out,
        "truncated:    {} at depth limit {}; {} stopped at a frame that could not be unwound; {} on an unknown stack (leaf only); {} without a stack of the library's to unwind on (leaf only)",
        c.depth_limit, h.max_depth, c.unwind_error, c.unknown_stack, c.no_handler_stack
    )?;
    writeln!(
        out,
        "incomplete:   {} samples whose stack does not reach _start, a thread start or a fiber start",
        profile.incomplete_samples()
    )?;
    match (h.handler_median_nanos, h.handler_p99_nanos) {
        (Some(median), Some(p99)) => writeln!(
            out,
            "handler time: median {:.2} us, p99 {:.2} us, max {:.2} us; total {:.3} ms, {} of the sampled threads' CPU time",
            median as f64 / 1e3,
            p99 as f64 / 1e3,
            h.handler_max_nanos as f64 / 1e3,
            h.handler_total_nanos as f64 / 1e6,
            handler_share(profile)
        )?,
        _ => writeln!(out, "handler time: no samples")?,
    }
    let cost = &profile.symbolize_cost;
    writeln!(
        out,
        "symbolized:   {} distinct addresses in {:.1} ms",
        cost.addresses,
        cost.elapsed.as_secs_f64() * 1e3
    )?;
    writeln!(out)
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

/// Requests that produced no sample, by reason.
fn missed(c: &Counters) -> String {
    format!(
        "{} (no response in time: {}, handler unfinished: {}, slots busy: {}, send failed: {}, sampler behind schedule: {}, blocked thread between calls: {}; late signals ignored: {})",
        c.missed(),
        c.no_response,
        c.stuck,
        c.slots_busy,
        c.send_failed,
        c.missed_deadlines,
        c.between_calls,
        c.late_signals
    )
}

/// Samples taken but not in the profile, by reason.
fn dropped(c: &Counters, in_profiler: u64) -> String {
    format!(
        "{} (drain behind: {}, distinct-stack table full: {}, thread in the profiler's own code: {})",
        c.dropped(in_profiler),
        c.drain_busy,
        c.table_full,
        in_profiler
    )
}

/// Rows in each thread's own table.
const THREAD_ROWS: usize = 20;

/// The function table, for one thread if `tid` is given, at most `rows` rows; percentages
/// are of that thread's samples.
fn write_functions(
    profile: &Profile,
    tid: Option<i32>,
    rows: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    let samples: u64 = profile
        .stacks
        .iter()
        .filter(|s| tid.is_none_or(|tid| s.tid == tid))
        .map(|s| s.count)
        .sum();
    let total = samples.max(1) as f64;
    writeln!(
        out,
        "{:>8} {:>7} {:>8} {:>7}  function  [module]",
        "total", "total%", "self", "self%"
    )?;
    for row in profile.function_counts(tid).into_iter().take(rows) {
        let function = &profile.functions[row.function];
        writeln!(
            out,
            "{:>8} {:>6.2}% {:>8} {:>6.2}%  {}  [{}]",
            row.total,
            100.0 * row.total as f64 / total,
            row.self_count,
            100.0 * row.self_count as f64 / total,
            function.name,
            function.module
        )?;
    }
    Ok(())
}

fn human(interval: Duration) -> String {
    let micros = interval.as_micros();
    if micros.is_multiple_of(1000) {
        format!("{} ms", micros / 1000)
    } else {
        format!("{micros} us")
    }
}
