//! Profiles on disk: which files a run wrote (one per process of the tree), and reading a
//! profile from the profile file or, when only that exists, from a `.folded` file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use stacksample::output::{self, naming, profile_file};
use stacksample::profile::{Frame, Function, Header, Location, Profile, Stack, SymbolizeCost};
use stacksample::settings::{Format, Mode, Settings, DEFAULT_MAX_DEPTH};
use stacksample::{Counters, StopReason};

use crate::failure::Failure;

/// File times come from the kernel's coarse clock, up to a tick (10 ms at most) behind the
/// clock `SystemTime::now` reads: a file written just after a run started can look older.
const FILE_CLOCK_LAG: Duration = Duration::from_millis(50);

/// The output prefixes of a run that have a profile file written since `started`: the
/// process itself first, then the images after its execs and its children (by pid, then
/// number), per the output template and naming rules.
pub fn written_since(settings: &Settings, started: SystemTime) -> Vec<PathBuf> {
    let since = started.checked_sub(FILE_CLOCK_LAG).unwrap_or(started);
    let mut prefixes = naming::image_prefixes(&settings.output_prefix, Format::Profile);
    prefixes.extend(children(&settings.output_template, &prefixes));
    prefixes.retain(|prefix| {
        let file = output::with_extension(prefix, profile_file::EXTENSION);
        modified(&file).is_some_and(|time| time >= since)
    });
    prefixes
}

/// Prefixes that forked children used (`%p` replaced by a pid, or `.<pid>` appended), each
/// possibly numbered (`.<n>` appended) by `output::naming`; none of `main`.
fn children(template: &Path, main: &[PathBuf]) -> Vec<PathBuf> {
    let template = template.to_string_lossy();
    let (before, after) = match template.split_once("%p") {
        Some((before, after)) => (before.to_owned(), after.to_owned()),
        None => (format!("{template}."), String::new()),
    };
    let suffix = format!(".{}", profile_file::EXTENSION);
    // `<before>*<after>*<suffix>`, one star where `after` is empty (`**` means directories).
    let middle = match after.as_str() {
        "" => "*".to_owned(),
        after => format!("*{}*", glob::Pattern::escape(after)),
    };
    let pattern = format!(
        "{}{middle}{}",
        glob::Pattern::escape(&before),
        glob::Pattern::escape(&suffix)
    );
    let mut found: Vec<((u64, u64), PathBuf)> = glob::glob(&pattern)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|path| {
            let name = path.to_string_lossy();
            let rest = name.strip_prefix(&before)?.strip_suffix(&suffix)?;
            let order = pid_and_number(rest, &after)?;
            let prefix = PathBuf::from(format!("{before}{rest}"));
            (!main.contains(&prefix)).then_some((order, prefix))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, prefix)| prefix).collect()
}

/// `<pid><after>` or `<pid><after>.<n>` as (pid, n), n = 0 when absent.
fn pid_and_number(rest: &str, after: &str) -> Option<(u64, u64)> {
    let numbered = rest.rsplit_once('.').and_then(|(head, number)| {
        let pid = head.strip_suffix(after)?.parse().ok()?;
        Some((pid, number.parse().ok()?))
    });
    numbered.or_else(|| Some((rest.strip_suffix(after)?.parse().ok()?, 0)))
}

pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// File name endings of every format, longest first so `.speedscope.json` wins over `.json`.
fn extensions() -> Vec<&'static str> {
    let mut all: Vec<&str> = Format::ALL.iter().map(|&f| output::extension(f)).collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.len()));
    all
}

/// A profile file named on the command line: the profile file, a `.folded` file, or any
/// other file or prefix of a run whose profile (else folded) file is beside it.
pub fn read(path: &Path) -> Result<Profile, Failure> {
    let name = path.to_string_lossy();
    let folded = output::extension(Format::Folded);
    if name.ends_with(&format!(".{folded}")) {
        return read_folded(path);
    }
    let prefix = extensions()
        .into_iter()
        .find_map(|e| name.strip_suffix(&format!(".{e}")))
        .unwrap_or(&name);
    let prefix = Path::new(prefix);
    let profile_path = output::with_extension(prefix, profile_file::EXTENSION);
    if profile_path.is_file() {
        return Ok(profile_file::read(&profile_path)?);
    }
    let folded_file = output::with_extension(prefix, folded);
    if folded_file.is_file() {
        eprintln!(
            "stacksample: {} not found, reading {}: no modules, addresses or time order",
            profile_path.display(),
            folded_file.display()
        );
        return read_folded(&folded_file);
    }
    Err(Failure::new(format!(
        "cannot read a profile from {}: neither {} nor {} exists",
        path.display(),
        profile_path.display(),
        folded_file.display()
    ))
    .hint("give a .profile.json.gz file (written by `stacksample record`, or with STACKSAMPLE_FORMAT=...,profile) or a .folded file"))
}

/// A profile from `root;...;leaf count` lines: names only, one location per frame.
fn read_folded(path: &Path) -> Result<Profile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    let mut functions: Vec<Function> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut stacks = Vec::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad_line = || {
            Failure::new(format!(
                "{}:{}: not a folded line (`root;...;leaf count`)",
                path.display(),
                number + 1
            ))
        };
        let (frames, count) = line.rsplit_once(' ').ok_or_else(bad_line)?;
        let count: u64 = count.trim().parse().map_err(|_| bad_line())?;
        let mut names: Vec<&str> = frames.split(';').collect();
        let truncated = names.first() == Some(&"[truncated]");
        if truncated {
            names.remove(0);
        }
        let locations = names
            .into_iter()
            .map(|name| {
                *ids.entry(name.to_owned()).or_insert_with(|| {
                    functions.push(Function {
                        name: name.to_owned(),
                        module: "?".to_owned(),
                        file: None,
                        start: None,
                    });
                    functions.len() - 1
                })
            })
            .collect();
        stacks.push(Stack {
            tid: 0,
            locations,
            count,
            stop: if truncated {
                StopReason::DepthLimit
            } else {
                StopReason::Complete
            },
        });
    }
    // Function i is frame i and location i: folded stacks carry nothing finer.
    let frames = (0..functions.len())
        .map(|function| Frame {
            function,
            line: None,
            inlined: false,
        })
        .collect();
    let locations = (0..functions.len())
        .map(|frame| Location {
            address: 0,
            module: None,
            frames: vec![frame],
        })
        .collect();
    Ok(Profile {
        header: folded_header(path, &stacks),
        functions,
        frames,
        modules: Vec::new(),
        locations,
        stacks,
        timeline: Vec::new(),
        profiler_samples: 0,
        symbolize_cost: SymbolizeCost::default(),
        leaf_first: false,
    })
}

/// What a folded file can tell about its run: only the sample count.
fn folded_header(path: &Path, stacks: &[Stack]) -> Header {
    let samples: u64 = stacks.iter().map(|s| s.count).sum();
    Header {
        command: path.display().to_string(),
        pid: 0,
        threads: Vec::new(),
        interval: Duration::from_millis(10),
        max_depth: DEFAULT_MAX_DEPTH,
        duration: Duration::ZERO,
        counters: Counters {
            requested: samples,
            taken: samples,
            ..Counters::default()
        },
        handler_median_nanos: None,
        handler_p99_nanos: None,
        handler_max_nanos: 0,
        handler_total_nanos: 0,
        per_thread: false,
        mode: Mode::Wall,
        sampler_scheduling: None,
        profiler_heap: None,
        stack_table: None,
        processes: 1,
        filtered: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creates `names` in a new directory and returns it.
    fn dir_with(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        dir
    }

    #[test]
    fn children_of_a_template_with_pid() {
        let dir = dir_with(&[
            "run.10.x.profile.json.gz",
            "run.12.x.profile.json.gz",
            "run.9.x.profile.json.gz",
            "run.abc.x.profile.json.gz",
            "run.13.x.txt",
            "run.12.x.1.profile.json.gz",
            "run.10.x.1.profile.json.gz",
        ]);
        let template = dir.path().join("run.%p.x");
        let main = naming::image_prefixes(&dir.path().join("run.10.x"), Format::Profile);
        let found = children(&template, &main);
        let expected: Vec<PathBuf> = ["run.9.x", "run.12.x", "run.12.x.1"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn children_of_a_template_without_pid() {
        let dir = dir_with(&[
            "prof.profile.json.gz",
            "prof.77.profile.json.gz",
            "prof.old.profile.json.gz",
            "prof.1.profile.json.gz",
            "prof.77.2.profile.json.gz",
        ]);
        let template = dir.path().join("prof");
        let found = children(
            &template,
            &naming::image_prefixes(&template, Format::Profile),
        );
        let expected: Vec<PathBuf> = ["prof.77", "prof.77.2"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn folded_lines_become_a_profile() {
        let dir = dir_with(&[]);
        let path = dir.path().join("x.folded");
        std::fs::write(&path, "main;a;b 3\n[truncated];a;b 2\nmain;c 1\n").unwrap();
        let profile = read(&path).unwrap();
        assert_eq!(profile.total_samples(), 6);
        assert_eq!(profile.stacks[1].stop, StopReason::DepthLimit);
        let names: Vec<&str> = profile.stack_names(&profile.stacks[0]).collect();
        assert_eq!(names, ["main", "a", "b"]);
        std::fs::write(&path, "main;a three\n").unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("x.folded:1: not a folded line"), "{error}");
    }
}
