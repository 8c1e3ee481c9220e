//! `stacksample record [options] -- cmd args...`: the command with the library preloaded and
//! the options as `STACKSAMPLE_*` settings (checked by the library's own parser before the
//! command starts); signals forwarded; `record` ends as the command did; then a summary.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use clap::Args;
use stacksample::settings::{self, Format, Settings};

use crate::failure::Failure;
use crate::progress_line::ProgressLine;
use crate::signals::{self, Target};
use crate::{input, library, run_files, summary};

const EXAMPLES: &str = "\
Examples:
  stacksample record -- ls -R /usr                 # main thread, 100 Hz, wall time
  stacksample record -F 999 -t all -- ./server     # every thread at 999 Hz
  stacksample record --mode cpu --thread-name 'worker-*' -- ./app
  stacksample record --duration 30s -f svg,pprof -o /tmp/prof.%p -- ./server
  stacksample record --flush 1s -- ./may-crash     # a crash loses at most 1 s

Files: without -o, a run directory stacksample-<pid>/ holding each process's
stacksample.<pid>.profile.json.gz (always; `stacksample report` renders it in any format)
and one file per --format, and merged.<ext> for a tree of processes. With -o PREFIX,
children (fork) write PREFIX with %p as their pid, or PREFIX.<pid> when it has no %p.
--no-follow leaves children unprofiled; a child that took no sample leaves no files.

Exit status: the command's; when a signal ended it, record ends by the same signal
(a shell shows 128+N). Exit 127: command not found; 126: not executable.";

#[derive(Args)]
#[command(
    about = "Run a command under the profiler, then summarize",
    after_help = EXAMPLES,
    trailing_var_arg = true
)]
pub struct RecordArgs {
    /// Threads: main, all, thread ids, comma-separated (STACKSAMPLE_TID).
    #[arg(short = 't', long = "threads", value_name = "LIST")]
    threads: Option<String>,
    /// Also threads whose name matches this glob, even if named later (STACKSAMPLE_THREAD).
    #[arg(long = "thread-name", value_name = "GLOB")]
    thread_name: Option<String>,
    /// Time between samples: 10ms, 500us (STACKSAMPLE_INTERVAL; default 10ms).
    #[arg(short = 'i', long, value_name = "DURATION", conflicts_with = "freq")]
    interval: Option<String>,
    /// Samples per second per thread, instead of --interval.
    #[arg(short = 'F', long, value_name = "HZ")]
    freq: Option<f64>,
    /// wall: every tick, running or blocked; cpu: only threads that used CPU.
    #[arg(long, value_name = "wall|cpu")]
    mode: Option<String>,
    /// Frames kept per sample (STACKSAMPLE_MAXDEPTH; default 128).
    #[arg(long = "max-depth", value_name = "N")]
    max_depth: Option<usize>,
    /// Formats written besides the profile file: txt,folded,svg,pprof,json,speedscope.
    #[arg(short = 'f', long = "format", value_name = "LIST")]
    format: Option<String>,
    /// Output path prefix; %p is the pid (STACKSAMPLE_OUTPUT; default stacksample.%p).
    #[arg(short = 'o', long, value_name = "PREFIX")]
    output: Option<String>,
    /// Do not profile forked children.
    #[arg(long = "no-follow")]
    no_follow: bool,
    /// Also write the profile this often (STACKSAMPLE_FLUSH), e.g. 1s.
    #[arg(long, value_name = "DURATION")]
    flush: Option<String>,
    /// A root frame per thread in folded and flame-graph output.
    #[arg(long = "per-thread")]
    per_thread: bool,
    /// Source files and lines from debug information, and the inlined functions of separate
    /// debug files (slower dump).
    #[arg(long)]
    lines: bool,
    /// Stop the command with SIGTERM after this time (it writes its profile first); record
    /// then exits 0.
    #[arg(short = 'd', long, value_name = "DURATION")]
    duration: Option<String>,
    /// Print no summary.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Rows in each table of the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// The command and its arguments.
    #[arg(required = true, allow_hyphen_values = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// The longest --duration: a day.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub fn run(args: RecordArgs) -> Result<ExitCode, Failure> {
    let library = library::find()?;
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::new(format!("cannot read the current directory: {e}")))?;
    let run_dir = match args.output.is_some() || inherited("OUTPUT").is_some() {
        true => None,
        false => Some(run_files::create_dir(&cwd)?),
    };
    let mut vars = settings_vars(&args, &cwd, run_dir.as_deref())?;
    let progress = (!args.quiet)
        .then(|| {
            let file = format!(".stacksample-progress-{}", std::process::id());
            ProgressLine::start(
                run_dir
                    .as_deref()
                    .unwrap_or(&std::env::temp_dir())
                    .join(file),
            )
        })
        .flatten();
    if let Some(progress) = &progress {
        let path = progress.path().to_string_lossy().into_owned();
        vars.push((format!("{}PROGRESS", settings::PREFIX), path));
    }
    let checked = Settings::from_vars(inherited_and(&vars), 0, &cwd)
        .map_err(|error| flag_failure(error, &args))?;
    let duration = args
        .duration
        .as_deref()
        .map(|d| settings::parse_duration("--duration", d, Duration::from_millis(1)..=MAX_DURATION))
        .transpose()?;

    let started = SystemTime::now();
    let ended = run_command(command(&args, &library, &vars), &args.command[0], duration);
    drop(progress);
    let ended = ended.inspect_err(|_| {
        run_dir
            .iter()
            .for_each(|dir| run_files::remove_if_empty(dir))
    })?;
    let written = Settings::from_vars(inherited_and(&vars), ended.pid, &cwd)?;
    let prefixes = input::written_since(&written, started);
    let run = run_files::finish(&prefixes, &checked.formats, run_dir.as_deref());
    if !args.quiet {
        summary::print_after_run(&run, run_dir.as_deref(), args.top);
    }
    Ok(exit_like(ended.status, ended.stopped_by_duration))
}

/// How the command ended.
struct Ended {
    pid: i32,
    status: ExitStatus,
    stopped_by_duration: bool,
}

/// Runs the command with signals forwarded (and SIGTERM after `duration`) until it ends.
fn run_command(
    mut command: Command,
    program: &OsString,
    duration: Option<Duration>,
) -> Result<Ended, Failure> {
    signals::block()?;
    let mut child = command.spawn().map_err(|e| spawn_failure(program, e))?;
    let pid = child.id() as i32;
    let target = Target::new(pid);
    signals::forward(target.clone())?;
    let stopper = duration
        .map(|duration| signals::stop_after(target.clone(), duration))
        .transpose()?;
    wait_until_ended(pid);
    target.ended();
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("cannot wait for the command: {e}")))?;
    Ok(Ended {
        pid,
        status,
        stopped_by_duration: stopper.is_some_and(|sent| sent.load(Ordering::SeqCst)),
    })
}

/// `STACKSAMPLE_*` settings from the options; the profile file is always asked for, and
/// the output prefix is made absolute so that `dump` finds it in the process's environment
/// even after the command changed directory.
fn settings_vars(
    args: &RecordArgs,
    cwd: &Path,
    run_dir: Option<&Path>,
) -> Result<Vec<(String, String)>, Failure> {
    let mut vars = Vec::new();
    let mut set = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            vars.push((format!("{}{name}", settings::PREFIX), value));
        }
    };
    set("TID", args.threads.clone());
    set("THREAD", args.thread_name.clone());
    set("INTERVAL", args.interval.clone());
    set("INTERVAL", args.freq.map(interval_of_rate).transpose()?);
    set("MODE", args.mode.clone());
    set("MAXDEPTH", args.max_depth.map(|d| d.to_string()));
    let output = args.output.clone().or_else(|| inherited("OUTPUT"));
    let output = match run_dir {
        Some(dir) => dir.join(settings::DEFAULT_OUTPUT),
        None => cwd.join(output.as_deref().unwrap_or(settings::DEFAULT_OUTPUT)),
    };
    set("OUTPUT", Some(output.to_string_lossy().into_owned()));
    set("FOLLOW", args.no_follow.then(|| "0".to_owned()));
    set("FLUSH", args.flush.clone());
    set("PER_THREAD", args.per_thread.then(|| "1".to_owned()));
    set("LINES", args.lines.then(|| "1".to_owned()));
    let default_formats = || {
        let names: Vec<&str> = Format::DEFAULT.iter().map(|f| f.name()).collect();
        names.join(",")
    };
    let formats = args
        .format
        .clone()
        .or_else(|| inherited("FORMAT"))
        .unwrap_or_else(default_formats);
    set(
        "FORMAT",
        Some(format!("{formats},{}", Format::Profile.name())),
    );
    Ok(vars)
}

/// An invalid setting told as the flag and the value the user typed, when a flag gave it
/// (the library's parser names the `STACKSAMPLE_*` variable).
fn flag_failure(error: stacksample::Error, args: &RecordArgs) -> Failure {
    let stacksample::Error::Setting {
        name,
        problem,
        hint,
        ..
    } = &error
    else {
        return error.into();
    };
    let flags = [
        ("TID", "-t/--threads", args.threads.clone()),
        ("THREAD", "--thread-name", args.thread_name.clone()),
        ("INTERVAL", "-i/--interval", args.interval.clone()),
        ("INTERVAL", "-F/--freq", args.freq.map(|hz| hz.to_string())),
        ("MODE", "--mode", args.mode.clone()),
        (
            "MAXDEPTH",
            "--max-depth",
            args.max_depth.map(|d| d.to_string()),
        ),
        ("OUTPUT", "-o/--output", args.output.clone()),
        ("FLUSH", "--flush", args.flush.clone()),
        ("FORMAT", "-f/--format", args.format.clone()),
    ];
    let var = name.strip_prefix(settings::PREFIX);
    let given = flags
        .into_iter()
        .find_map(|(flag_var, flag, value)| Some((flag, value.filter(|_| var == Some(flag_var))?)));
    match given {
        Some((flag, value)) => {
            Failure::new(format!("{flag} {value:?}: {problem}")).hint(hint.clone())
        }
        None => error.into(),
    }
}

/// A setting from this environment (`STACKSAMPLE_<name>`) that an option may extend.
fn inherited(name: &str) -> Option<String> {
    std::env::var(format!("{}{name}", settings::PREFIX)).ok()
}

/// `--freq` as an interval in whole nanoseconds.
fn interval_of_rate(hz: f64) -> Result<String, Failure> {
    if !(hz.is_finite() && hz > 0.0) {
        return Err(Failure::new(format!("--freq {hz}: not a positive rate"))
            .hint("give samples per second, such as 99 or 999"));
    }
    Ok(format!("{}ns", (1e9 / hz).round() as u64))
}

/// The `STACKSAMPLE_*` variables of this environment overridden by `vars`, as the command
/// will see them.
fn inherited_and(vars: &[(String, String)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(settings::PREFIX))
        .filter(|(k, _)| !vars.iter().any(|(name, _)| name == k))
        .collect();
    all.extend(vars.iter().cloned());
    all
}

fn command(args: &RecordArgs, library: &Path, vars: &[(String, String)]) -> Command {
    let mut preload = library.as_os_str().to_owned();
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(" ");
        preload.push(existing);
    }
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("LD_PRELOAD", preload)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    signals::unblock_in_child(&mut command);
    command
}

fn spawn_failure(program: &OsString, error: std::io::Error) -> Failure {
    let name = PathBuf::from(program).display().to_string();
    match error.kind() {
        std::io::ErrorKind::NotFound => Failure::new(format!("command not found: {name}"))
            .hint("check the spelling, or give its path; PATH is searched for names without '/'")
            .code(127),
        std::io::ErrorKind::PermissionDenied => {
            Failure::new(format!("cannot run {name}: permission denied"))
                .hint("it must be an executable file (chmod +x)")
                .code(126)
        }
        _ => Failure::new(format!("cannot run {name}: {error}")).code(126),
    }
}

/// Waits until the command has ended, without reaping it (`WNOWAIT`), so its pid stays ours
/// while the signal thread may still send to it.
fn wait_until_ended(pid: i32) {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid out-parameter.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        let interrupted = std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
        if rc == 0 || !interrupted {
            return;
        }
    }
}

/// The command's exit status as ours: its code, or death by the same signal; 0 when it
/// was stopped by `--duration`'s SIGTERM.
fn exit_like(status: ExitStatus, stopped_by_duration: bool) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(code as u8);
    }
    match status.signal() {
        Some(libc::SIGTERM) if stopped_by_duration => ExitCode::SUCCESS,
        Some(sig) => signals::die_by(sig),
        None => ExitCode::FAILURE,
    }
}
