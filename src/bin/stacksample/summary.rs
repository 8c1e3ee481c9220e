//! The summary `record` and `dump` print on stderr (stdout stays the command's): samples
//! taken and lost, the signal handler's measured cost, the hottest functions by self and by
//! total samples, and the files to open.

use std::path::{Path, PathBuf};

use stacksample::output;
use stacksample::profile::Profile;
use stacksample::settings::Format;

use crate::run_files::Written;

/// Prints the summary of a finished run; `dir` is its run directory, if it has one.
pub fn print_after_run(written: &Written, dir: Option<&Path>, rows: usize) {
    let Some(profile) = &written.profile else {
        eprintln!("{}", NO_PROFILE);
        return;
    };
    eprint!("{}", render(profile, &written.files, rows));
    if let Some(dir) = dir {
        eprintln!(
            "  run directory: {}/ ({} process{} with samples, each one's files inside)",
            dir.display(),
            written.processes,
            if written.processes == 1 { "" } else { "es" }
        );
    }
}

const NO_PROFILE: &str = "\
stacksample: no profile was written. The library was not loaded or could not write:
  - a statically linked or setuid program ignores LD_PRELOAD;
  - SIGKILL (or a crash without --flush) ends a program before it can write;
  - a `stacksample:` line above says what else went wrong.";

/// The summary text of `profile` (of one process, or merged from several).
pub fn render(profile: &Profile, files: &[PathBuf], rows: usize) -> String {
    let mut out = String::new();
    let header = &profile.header;
    let processes = header.processes.max(1);
    let samples = profile.total_samples();
    let seconds = header.duration.as_secs_f64();
    let threads = header.threads.iter().filter(|t| t.samples > 0).count();
    out += &format!(
        "stacksample: {}: {samples} samples in {seconds:.2} s every {:?} ({} mode; {threads} thread{} sampled in {processes} process{})\n",
        header.command,
        header.interval,
        header.mode.name(),
        if threads == 1 { "" } else { "s" },
        if processes == 1 { "" } else { "es" },
    );
    out += &format!("  {}\n", output::lost_summary(profile));
    out += &overhead(profile);
    if samples == 0 {
        out += NO_SAMPLES;
    } else {
        let mut tables = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = output::write_function_tables(profile, None, rows, "  ", &mut tables);
        out += &String::from_utf8_lossy(&tables);
    }
    if !files.is_empty() {
        out += "  files:\n";
        for file in files {
            out += &format!("    {}\n", file.display());
        }
    }
    out
}

const NO_SAMPLES: &str = concat!(
    "  no samples: the program ended before the first tick (raise the rate with -F), the\n",
    "  chosen threads did not exist or were idle (cpu mode skips threads that used no CPU),\n",
    "  or every request was lost (see `lost`).\n",
);

/// The time the handler measured itself, against the CPU time of the threads it sampled.
fn overhead(profile: &Profile) -> String {
    let header = &profile.header;
    let Some(median) = header.handler_median_nanos else {
        return "  overhead: no sample taken by the signal handler\n".to_owned();
    };
    let share = profile
        .handler_share_of_thread_cpu()
        .map_or("an unknown share".to_owned(), |share| {
            format!("{:.2}%", share * 100.0)
        });
    format!(
        "  overhead: signal handler {:.1} ms in all (median {:.1} us, p99 {:.1} us), {share} of the sampled threads' CPU time\n",
        header.handler_total_nanos as f64 / 1e6,
        median as f64 / 1e3,
        header.handler_p99_nanos.unwrap_or(median) as f64 / 1e3,
    )
}

/// The files a prefix has, for formats that exist on disk.
pub fn existing_files(prefix: &Path) -> Vec<PathBuf> {
    Format::ALL
        .iter()
        .map(|&f| output::with_extension(prefix, output::extension(f)))
        .filter(|path| path.is_file())
        .collect()
}
