//! `stacksample dump PID`: sends a running process its dump signal and waits until the
//! profile files are replaced (each write renames a new file into place, so the file's
//! identity changes), then prints the summary.
//!
//! The library is known to be loaded from `/proc/PID/maps`; the dump signal, output prefix
//! and formats come from the process's own `STACKSAMPLE_*` variables (`/proc/PID/environ`,
//! when readable), resolved by the library's parser from the directory it started in.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use stacksample::output::{self, naming, profile_file};
use stacksample::settings::{self, Format, Settings};

use crate::failure::Failure;
use crate::summary;

const EXAMPLES: &str = "\
Examples:
  stacksample dump 1234                   # write the profile of process 1234 now
  stacksample dump --output /tmp/prof.%p 1234
  kill -USR2 1234                         # the same without waiting for the files

The process must have been started with `stacksample record` or LD_PRELOAD=libstacksample.so;
its dump signal (STACKSAMPLE_DUMP_SIGNAL, default SIGUSR2) must not be `none`.";

#[derive(Args)]
#[command(about = "Ask a running process to write its profile now", after_help = EXAMPLES)]
pub struct DumpArgs {
    /// The process.
    pid: i32,
    /// The process's output prefix, when it cannot be read from the process (another user,
    /// or it changed directory before its shell's PWD was set).
    #[arg(short = 'o', long, value_name = "PREFIX")]
    output: Option<String>,
    /// How long to wait for the files.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    timeout: String,
    /// Print no summary.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Rows in each table of the summary.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
}

pub fn run(args: DumpArgs) -> Result<(), Failure> {
    let timeout = settings::parse_duration(
        "--timeout",
        &args.timeout,
        Duration::from_millis(1)..=Duration::from_secs(3600),
    )?;
    ensure_library_loaded(args.pid)?;
    let candidates = process_settings(args.pid, args.output.as_deref())?;
    let settings = &candidates[0];
    let Some(signal) = settings.dump_signal else {
        return Err(Failure::new(format!(
            "process {} has its dump signal turned off (STACKSAMPLE_DUMP_SIGNAL=none)",
            args.pid
        ))
        .hint("its profile is written when it exits (or with STACKSAMPLE_FLUSH periodically)"));
    };
    // The file whose replacement says the dump is complete: the last format written (the
    // profile file when asked for). After an exec, or when its pid was used before, the
    // process writes beside the earlier profile under a numbered prefix.
    let format = settings.formats.last().copied().unwrap_or(Format::Txt);
    let prefixes: Vec<PathBuf> = candidates
        .iter()
        .flat_map(|settings| naming::image_prefixes(&settings.output_prefix, format))
        .collect();
    let watched: Vec<PathBuf> = prefixes
        .iter()
        .map(|prefix| output::with_extension(prefix, output::extension(format)))
        .collect();
    let before: Vec<_> = watched.iter().map(|path| identity(path)).collect();
    // SAFETY: kill(2) with a pid and signal number; no memory is shared.
    if unsafe { libc::kill(args.pid, signal) } != 0 {
        let error = std::io::Error::last_os_error();
        return Err(
            Failure::new(format!("cannot signal process {}: {error}", args.pid))
                .hint("run as the process's user (or root)"),
        );
    }
    let written = wait_for_new(&watched, &before, timeout, args.pid)?;
    if !args.quiet {
        print_summary(&prefixes[written], args.top);
    }
    Ok(())
}

fn ensure_library_loaded(pid: i32) -> Result<(), Failure> {
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::new(format!("no process {pid}")),
        _ => Failure::new(format!("cannot read {maps_path}: {e}"))
            .hint("run as the process's user (or root)"),
    })?;
    if maps.lines().any(|line| line.contains("/libstacksample.so")) {
        return Ok(());
    }
    let failure = Failure::new(format!(
        "process {pid} does not have libstacksample.so loaded"
    ));
    Err(match recorded_command(pid) {
        Some(command) => failure.hint(format!(
            "{pid} is `stacksample record`; the command it runs is process {command}: `stacksample dump {command}`"
        )),
        None => failure.hint("start it with `stacksample record -- COMMAND` or LD_PRELOAD=/path/to/libstacksample.so COMMAND"),
    })
}

/// The command a `stacksample record` process `pid` runs, if it is one.
fn recorded_command(pid: i32) -> Option<i32> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    if comm.trim_end() != "stacksample" {
        return None;
    }
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// The process's settings, as its library resolved them at start: one per directory it may
/// have started in, when its output prefix is relative.
fn process_settings(pid: i32, output: Option<&str>) -> Result<Vec<Settings>, Failure> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let mut vars: Vec<(String, String)> = environ
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let (key, value) = std::str::from_utf8(entry).ok()?.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect();
    // A relative prefix is resolved from where the process started, which is either its
    // current directory (unless it changed it) or its shell's PWD (unless something other
    // than a shell started it); `record` passes an absolute prefix.
    let mut start_dirs: Vec<PathBuf> = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .into_iter()
        .collect();
    start_dirs.extend(
        vars.iter()
            .find(|(k, _)| k == "PWD")
            .map(|(_, v)| PathBuf::from(v)),
    );
    start_dirs.dedup();
    if start_dirs.is_empty() {
        start_dirs.push(PathBuf::from("/"));
    }
    vars.retain(|(k, _)| k.starts_with(settings::PREFIX));
    if let Some(output) = output {
        vars.retain(|(k, _)| k != "STACKSAMPLE_OUTPUT");
        vars.push(("STACKSAMPLE_OUTPUT".to_owned(), output.to_owned()));
    }
    start_dirs
        .iter()
        .map(|dir| Settings::from_vars(vars.clone(), pid, dir).map_err(Failure::from))
        .collect()
}

/// Device, inode and modification time: a rewrite renames a new file into place.
type FileIdentity = (u64, u64, i64, i64);

fn identity(path: &Path) -> Option<FileIdentity> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec()))
}

/// Waits until one of `paths` was replaced; returns its index.
fn wait_for_new(
    paths: &[PathBuf],
    before: &[Option<FileIdentity>],
    timeout: Duration,
    pid: i32,
) -> Result<usize, Failure> {
    let asked = Instant::now();
    loop {
        let replaced = paths.iter().zip(before).position(|(path, before)| {
            let now = identity(path);
            now.is_some() && now != *before
        });
        if let Some(index) = replaced {
            return Ok(index);
        }
        if asked.elapsed() > timeout {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(Failure::new(format!(
                "process {pid} did not write {} within {timeout:?}",
                names.join(" or ")
            ))
            .hint("if the process changed directory or its STACKSAMPLE_OUTPUT is not what /proc/PID/environ says, give --output PREFIX; a large binary may need a longer --timeout; its stderr may have a `stacksample:` line"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn print_summary(prefix: &Path, rows: usize) {
    let files = summary::existing_files(prefix);
    let profile_path = output::with_extension(prefix, profile_file::EXTENSION);
    if let Ok(profile) = profile_file::read(&profile_path) {
        eprint!("{}", summary::render(&profile, &files, rows));
        return;
    }
    // Without the profile file, the text report's title and tables say as much.
    let text = output::with_extension(prefix, output::extension(Format::Txt));
    if let Ok(report) = std::fs::read_to_string(&text) {
        eprint!("{}", head_of_report(&report, rows));
    }
    eprintln!("  files:");
    for file in files {
        eprintln!("    {}", file.display());
    }
}

/// The title lines and the first `rows` rows of each function table of a `.txt` report
/// (the process's own tables, not those of its threads), indented as the summary is.
fn head_of_report(report: &str, rows: usize) -> String {
    let mut out = String::new();
    let mut left = usize::MAX;
    for line in report.lines() {
        if line.starts_with("## counters") || line.starts_with("## thread") {
            break;
        }
        if line.starts_with("## functions") {
            // The heading and the column names, then `rows` rows.
            left = rows + 2;
        }
        if left > 0 && !line.is_empty() {
            out += &format!("  {line}\n");
            left -= 1;
        }
    }
    out
}
