//! What a profiling session is asked to do, resolved: the types every layer above reads, the
//! defaults and the limits. Parsing them from the environment is `env`'s job.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// Sampling faster than this costs more in signal delivery than it tells.
pub const MIN_INTERVAL: Duration = Duration::from_micros(50);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// What every interval (settings, API, command line) must be within.
pub const INTERVAL_RANGE: RangeInclusive<Duration> = MIN_INTERVAL..=MAX_INTERVAL;
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);
/// Deep enough for recursive code; the seed API used 100.
pub const DEFAULT_MAX_DEPTH: usize = 128;
/// Each sample slot preallocates this many frames; keeps slot memory under 512 KiB.
pub const MAX_MAX_DEPTH: usize = 65_536;
/// What every depth limit (settings, API, command line) must be within.
pub const MAX_DEPTH_RANGE: RangeInclusive<usize> = 1..=MAX_MAX_DEPTH;
pub const DEFAULT_OUTPUT: &str = "stacksample.%p";
/// Distinct stacks kept before new ones are dropped (and counted): about 2.6 KB each for
/// stacks 25 frames deep at the moment a profile is written (docs/performance.md, "Memory").
pub const DEFAULT_MAX_STACKS: usize = 100_000;
/// What `STACKSAMPLE_MAX_STACKS` accepts.
pub const MAX_STACKS_RANGE: RangeInclusive<usize> = 100..=10_000_000;

/// Which thread a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadChoice {
    /// The thread that runs `main` (its tid is the pid).
    Main,
    /// A kernel thread id.
    Tid(i32),
    /// Every thread of the process, including those created later.
    All,
}

/// What a sample stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Elapsed time: where each thread is, running or blocked.
    Wall,
    /// CPU time: only threads that used CPU since their last sample are sampled.
    Cpu,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Wall => "wall",
            Mode::Cpu => "cpu",
        }
    }
}

/// An output format; each writes `<prefix>.<extension>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Txt,
    Folded,
    Svg,
    Pprof,
    Json,
    Speedscope,
    /// Everything the other formats are made from, for `stacksample report`.
    Profile,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Txt,
        Format::Folded,
        Format::Svg,
        Format::Pprof,
        Format::Json,
        Format::Speedscope,
        Format::Profile,
    ];
    pub const DEFAULT: [Format; 3] = [Format::Txt, Format::Folded, Format::Svg];

    /// The setting's word for it (`output::extension` gives the file name suffix).
    pub fn name(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Pprof => "pprof",
            Format::Json => "json",
            Format::Speedscope => "speedscope",
            Format::Profile => "profile",
        }
    }
}

/// Resolved settings: every value is valid and every path absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub threads: Vec<ThreadChoice>,
    pub interval: Duration,
    pub max_depth: usize,
    /// Distinct stacks the drain keeps; samples of further stacks are dropped and counted.
    pub max_stacks: usize,
    /// Output path prefix; `.txt` and `.folded` are appended.
    pub output_prefix: PathBuf,
    /// The prefix before `%p` was replaced, for forked children.
    pub output_template: PathBuf,
    /// Signal that asks for a dump, or `None` when turned off.
    pub dump_signal: Option<libc::c_int>,
    /// Signal that carries sample requests (SIGPROF unless the program needs it).
    pub sample_signal: libc::c_int,
    pub formats: Vec<Format>,
    /// File, line and inlined functions from DWARF debug information.
    pub lines: bool,
    /// Extra directories searched for separate debug files (besides /usr/lib/debug).
    pub debug_dirs: Vec<PathBuf>,
    /// Python frames in the stacks of CPython threads (`STACKSAMPLE_PYTHON`).
    pub python: bool,
    /// Also every thread whose name (`comm`) matches this glob, including names set later.
    pub thread_pattern: Option<glob::Pattern>,
    /// A root frame per thread in folded and flame-graph output.
    pub per_thread: bool,
    /// Also write the profile this often, so a crash or SIGKILL loses at most that much.
    pub flush: Option<Duration>,
    pub mode: Mode,
    /// Forked children profile themselves into their own files (else they stay inert).
    pub follow: bool,
    /// The run's shared sample count (`stacksample record` shows it while it runs).
    pub progress: Option<PathBuf>,
}

impl Settings {
    /// The defaults, for `threads`, writing to `output_prefix`.
    pub fn new(threads: Vec<ThreadChoice>, output_prefix: PathBuf) -> Settings {
        Settings {
            threads,
            interval: DEFAULT_INTERVAL,
            max_depth: DEFAULT_MAX_DEPTH,
            max_stacks: DEFAULT_MAX_STACKS,
            output_template: output_prefix.clone(),
            output_prefix,
            dump_signal: Some(libc::SIGUSR2),
            sample_signal: libc::SIGPROF,
            formats: Format::DEFAULT.to_vec(),
            // Off by default: reading DWARF (libc's debug file alone) adds 50 ms or more to
            // every exit, which a build system running thousands of processes pays each time.
            lines: false,
            debug_dirs: Vec::new(),
            python: true,
            thread_pattern: None,
            per_thread: false,
            flush: None,
            mode: Mode::Wall,
            follow: true,
            progress: None,
        }
    }

    /// The settings a forked child `pid` profiles itself with: its own output files (`%p`,
    /// or `.<pid>` appended when the prefix has no `%p`), and only threads it has: the main
    /// thread becomes the forking thread, thread ids of the parent are dropped. `None` when
    /// nothing is left to sample.
    pub fn for_child(&self, pid: i32) -> Option<Settings> {
        let template = self.output_template.to_string_lossy();
        let output_prefix = if template.contains("%p") {
            PathBuf::from(template.replace("%p", &pid.to_string()))
        } else {
            PathBuf::from(format!("{template}.{pid}"))
        };
        let threads: Vec<ThreadChoice> = self
            .threads
            .iter()
            .copied()
            .filter(|t| !matches!(t, ThreadChoice::Tid(_)))
            .collect();
        if threads.is_empty() && self.thread_pattern.is_none() {
            return None;
        }
        Some(Settings {
            threads,
            output_prefix,
            ..self.clone()
        })
    }
}
