//! `STACKSAMPLE_*` environment variables, read once, validated, and resolved into
//! [`Settings`].
//!
//! Runs on the thread that loads the library (the constructor). Parsing is pure: it takes the
//! variables, the pid and the start directory, so unit tests need no environment.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::*;
use crate::base::error::Error;

/// Prefix shared by every variable the library reads.
pub const PREFIX: &str = "STACKSAMPLE_";

const TID: &str = "STACKSAMPLE_TID";
const INTERVAL: &str = "STACKSAMPLE_INTERVAL";
const MAXDEPTH: &str = "STACKSAMPLE_MAXDEPTH";
const MAX_STACKS: &str = "STACKSAMPLE_MAX_STACKS";
const OUTPUT: &str = "STACKSAMPLE_OUTPUT";
const DUMP_SIGNAL: &str = "STACKSAMPLE_DUMP_SIGNAL";
const FORMAT: &str = "STACKSAMPLE_FORMAT";
const LINES: &str = "STACKSAMPLE_LINES";
const PYTHON: &str = "STACKSAMPLE_PYTHON";
const DEBUG_DIRS: &str = "STACKSAMPLE_DEBUG_DIRS";
const THREAD: &str = "STACKSAMPLE_THREAD";
const PER_THREAD: &str = "STACKSAMPLE_PER_THREAD";
const FLUSH: &str = "STACKSAMPLE_FLUSH";
const MODE: &str = "STACKSAMPLE_MODE";
const FOLLOW: &str = "STACKSAMPLE_FOLLOW";
const SIGNAL: &str = "STACKSAMPLE_SIGNAL";
/// Set by `stacksample record`: the file of the run's sample count so far.
const PROGRESS: &str = "STACKSAMPLE_PROGRESS";
/// Where the `stacksample` command finds the library; set in a shell, it must not stop a
/// program that the library is preloaded into by hand.
const LIB: &str = "STACKSAMPLE_LIB";
const KNOWN: [&str; 18] = [
    PYTHON,
    LIB,
    PROGRESS,
    SIGNAL,
    FOLLOW,
    MODE,
    FLUSH,
    THREAD,
    PER_THREAD,
    TID,
    INTERVAL,
    MAXDEPTH,
    MAX_STACKS,
    OUTPUT,
    DUMP_SIGNAL,
    FORMAT,
    LINES,
    DEBUG_DIRS,
];

impl Settings {
    /// Reads the process environment.
    pub fn from_env(pid: i32, start_dir: &Path) -> Result<Settings, Error> {
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v)));
        let vars = vars.map(|(k, v)| (k, v.to_string_lossy().into_owned()));
        Settings::from_vars(vars, pid, start_dir)
    }

    /// Parses `STACKSAMPLE_*` pairs; other names are ignored, unknown `STACKSAMPLE_*` names
    /// are an error so that a typo never silently profiles with defaults.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        pid: i32,
        start_dir: &Path,
    ) -> Result<Settings, Error> {
        let output = resolve_output(DEFAULT_OUTPUT, pid, start_dir);
        let mut settings = Settings::new(vec![ThreadChoice::Main], output);
        settings.output_template = start_dir.join(DEFAULT_OUTPUT);
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .collect();
        vars.sort();
        let mut tid_given = false;
        for (name, value) in vars {
            match name.as_str() {
                TID => {
                    settings.threads = parse_threads(&value)?;
                    tid_given = true;
                }
                THREAD => settings.thread_pattern = Some(parse_pattern(&value)?),
                PER_THREAD => settings.per_thread = parse_switch(PER_THREAD, &value)?,
                FLUSH => settings.flush = parse_flush(&value)?,
                MODE => settings.mode = parse_mode(&value)?,
                INTERVAL => settings.interval = parse_interval(&value)?,
                MAXDEPTH => settings.max_depth = parse_max_depth(&value)?,
                MAX_STACKS => settings.max_stacks = parse_max_stacks(&value)?,
                OUTPUT => {
                    settings.output_prefix = parse_output(&value, pid, start_dir)?;
                    settings.output_template = start_dir.join(&value);
                }
                FOLLOW => settings.follow = parse_switch(FOLLOW, &value)?,
                SIGNAL => settings.sample_signal = parse_sample_signal(&value)?,
                DUMP_SIGNAL => settings.dump_signal = parse_signal(DUMP_SIGNAL, &value)?,
                FORMAT => settings.formats = parse_formats(&value)?,
                LINES => settings.lines = parse_switch(LINES, &value)?,
                PYTHON => settings.python = parse_python(&value)?,
                DEBUG_DIRS => settings.debug_dirs = parse_dirs(DEBUG_DIRS, &value, start_dir)?,
                PROGRESS => settings.progress = Some(parse_progress(&value, start_dir)?),
                LIB => {}
                _ => {
                    return Err(Error::UnknownSetting {
                        name,
                        known: KNOWN.join(", "),
                    })
                }
            }
        }
        if settings.dump_signal == Some(settings.sample_signal) {
            let value = format!("{}", settings.sample_signal);
            let hint = "give STACKSAMPLE_SIGNAL and STACKSAMPLE_DUMP_SIGNAL different signals";
            return Err(Error::setting(
                SIGNAL,
                &value,
                "is also the dump signal",
                hint,
            ));
        }
        if settings.thread_pattern.is_some() && !tid_given {
            // A name pattern alone picks threads by name only, not also the main thread.
            settings.threads.clear();
        }
        Ok(settings)
    }
}

fn parse_threads(value: &str) -> Result<Vec<ThreadChoice>, Error> {
    let hint = "use `main`, `all`, a thread id such as 12345, or a comma-separated list of them";
    let mut threads = Vec::new();
    for part in value.split(',').map(str::trim) {
        let choice = match part {
            "main" => ThreadChoice::Main,
            "all" => ThreadChoice::All,
            _ => match part.parse::<i32>() {
                Ok(tid) if tid > 0 => ThreadChoice::Tid(tid),
                _ => {
                    let problem = format!("{part:?} is not a thread id");
                    return Err(Error::setting(TID, value, problem, hint));
                }
            },
        };
        if !threads.contains(&choice) {
            threads.push(choice);
        }
    }
    Ok(threads)
}

/// A comma-separated list of format names (`txt,folded`), as `STACKSAMPLE_FORMAT` takes.
pub fn parse_formats(value: &str) -> Result<Vec<Format>, Error> {
    let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    let hint = format!("use a comma-separated list of {}", names.join(", "));
    let mut formats = Vec::new();
    for word in value.split(',').map(str::trim) {
        let Some(format) = Format::ALL.into_iter().find(|f| f.name() == word) else {
            let problem = format!("unknown format {word:?}");
            return Err(Error::setting(FORMAT, value, problem, hint));
        };
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    Ok(formats)
}

fn parse_mode(value: &str) -> Result<Mode, Error> {
    match value.trim() {
        "wall" => Ok(Mode::Wall),
        "cpu" => Ok(Mode::Cpu),
        _ => Err(Error::setting(
            MODE,
            value,
            "unknown mode",
            "use wall or cpu",
        )),
    }
}

fn parse_pattern(value: &str) -> Result<glob::Pattern, Error> {
    let hint = "give a glob such as 'worker-*' or 'io?' matched against thread names";
    if value.is_empty() {
        return Err(Error::setting(THREAD, value, "the pattern is empty", hint));
    }
    glob::Pattern::new(value).map_err(|e| Error::setting(THREAD, value, e.msg, hint))
}

fn parse_switch(name: &'static str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "1" | "yes" | "on" | "true" => Ok(true),
        "0" | "no" | "off" | "false" => Ok(false),
        _ => Err(Error::setting(name, value, "not a switch", "use 1 or 0")),
    }
}

/// `auto` (on when the process is a CPython interpreter of a known layout) or off.
fn parse_python(value: &str) -> Result<bool, Error> {
    match value.trim() {
        "auto" => Ok(true),
        other => parse_switch(PYTHON, other)
            .map_err(|_| Error::setting(PYTHON, value, "not auto or a switch", "use auto or 0")),
    }
}

fn parse_dirs(name: &'static str, value: &str, start_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut dirs = Vec::new();
    for part in value.split(':').filter(|p| !p.is_empty()) {
        let dir = start_dir.join(part);
        if !dir.is_dir() {
            let problem = format!("{} is not a directory", dir.display());
            return Err(Error::setting(
                name,
                value,
                problem,
                "give directories separated by ':'",
            ));
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

fn parse_interval(value: &str) -> Result<Duration, Error> {
    parse_duration(INTERVAL, value, INTERVAL_RANGE)
}

/// Writing a profile costs milliseconds; more often than this would be most of the work.
const MIN_FLUSH: Duration = Duration::from_millis(100);

fn parse_flush(value: &str) -> Result<Option<Duration>, Error> {
    if matches!(value.trim(), "0" | "none" | "off") {
        return Ok(None);
    }
    parse_duration(FLUSH, value, MIN_FLUSH..=Duration::from_secs(24 * 3600)).map(Some)
}

/// A number with a unit (`10ms`, `500us`, `2s`) within `range`; `name` is what the error
/// names (a variable, or a command-line option).
pub fn parse_duration(
    name: &'static str,
    value: &str,
    range: RangeInclusive<Duration>,
) -> Result<Duration, Error> {
    let hint = "write a number with a unit: 10ms, 500us, 0.05s or 2000000ns";
    let text = value.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" => return Err(Error::setting(name, value, "the unit is missing", hint)),
        _ => {
            let problem = format!("unknown unit {unit:?}");
            return Err(Error::setting(name, value, problem, hint));
        }
    };
    let seconds = match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => n * scale,
        _ => return Err(Error::setting(name, value, "not a positive number", hint)),
    };
    // Beyond what a Duration holds (about 585 years) is out of range too, not a panic.
    match Duration::try_from_secs_f64(seconds) {
        Ok(interval) if range.contains(&interval) => Ok(interval),
        _ => {
            let problem = format!("must be between {:?} and {:?}", range.start(), range.end());
            Err(Error::setting(name, value, problem, hint))
        }
    }
}

fn parse_max_stacks(value: &str) -> Result<usize, Error> {
    parse_count(MAX_STACKS, value, MAX_STACKS_RANGE, DEFAULT_MAX_STACKS)
}

fn parse_max_depth(value: &str) -> Result<usize, Error> {
    parse_count(MAXDEPTH, value, MAX_DEPTH_RANGE, DEFAULT_MAX_DEPTH)
}

/// A whole number within `range`; the error names the range and the default.
fn parse_count(
    name: &'static str,
    value: &str,
    range: RangeInclusive<usize>,
    default: usize,
) -> Result<usize, Error> {
    match value.trim().parse::<usize>() {
        Ok(count) if range.contains(&count) => Ok(count),
        _ => Err(Error::setting(
            name,
            value,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
            format!("the default is {default}"),
        )),
    }
}

fn parse_progress(value: &str, start_dir: &Path) -> Result<PathBuf, Error> {
    if value.is_empty() {
        let hint = "it is set by `stacksample record`; unset it";
        return Err(Error::setting(PROGRESS, value, "the path is empty", hint));
    }
    Ok(start_dir.join(value))
}

fn parse_output(value: &str, pid: i32, start_dir: &Path) -> Result<PathBuf, Error> {
    let hint = "give a path prefix such as /tmp/profile.%p (%p is replaced by the pid)";
    if value.trim().is_empty() {
        return Err(Error::setting(OUTPUT, value, "the path is empty", hint));
    }
    if value.ends_with('/') {
        let problem = "names a directory, not a file prefix";
        return Err(Error::setting(OUTPUT, value, problem, hint));
    }
    let prefix = resolve_output(value, pid, start_dir);
    let dir = prefix.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        let problem = format!("directory {} does not exist", dir.display());
        return Err(Error::setting(OUTPUT, value, problem, hint));
    }
    Ok(prefix)
}

/// `%p` becomes the pid; a relative path is taken from the directory the program started in,
/// because programs change directory before they exit.
fn resolve_output(value: &str, pid: i32, start_dir: &Path) -> PathBuf {
    start_dir.join(value.replace("%p", &pid.to_string()))
}

/// The sampling signal: SIGPROF or a real-time signal (`SIGRTMIN+n`), never `none`.
fn parse_sample_signal(value: &str) -> Result<libc::c_int, Error> {
    let hint = "use SIGPROF or a real-time signal such as SIGRTMIN+4";
    let bare = value.trim().to_ascii_uppercase();
    if matches!(bare.as_str(), "SIGPROF" | "PROF") {
        return Ok(libc::SIGPROF);
    }
    match parse_signal(SIGNAL, value)? {
        Some(sig) if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) => Ok(sig),
        _ => Err(Error::setting(
            SIGNAL,
            value,
            "not SIGPROF or a real-time signal",
            hint,
        )),
    }
}

/// Accepts `SIGUSR2`, `USR2`, a number, `SIGRTMIN+n`, or `none`.
pub fn parse_signal(name: &'static str, value: &str) -> Result<Option<libc::c_int>, Error> {
    let hint = "use a signal name such as SIGUSR2 or SIGUSR1, SIGRTMIN+3, a number, or none";
    let text = value.trim().to_ascii_uppercase();
    if text == "NONE" {
        return Ok(None);
    }
    let bare = text.strip_prefix("SIG").unwrap_or(&text);
    let signal = match bare {
        "USR1" => Some(libc::SIGUSR1),
        "USR2" => Some(libc::SIGUSR2),
        "URG" => Some(libc::SIGURG),
        "WINCH" => Some(libc::SIGWINCH),
        _ => match bare.strip_prefix("RTMIN") {
            Some("") => Some(libc::SIGRTMIN()),
            Some(rest) => rest
                .strip_prefix('+')
                .and_then(|n| n.parse::<libc::c_int>().ok())
                .map(|n| libc::SIGRTMIN() + n),
            None => bare.parse::<libc::c_int>().ok(),
        },
    };
    match signal {
        Some(sig) if is_allowed_signal(sig) => Ok(Some(sig)),
        Some(_) => Err(Error::setting(
            name,
            value,
            "that signal is reserved: it stops, kills or reports faults, or is the sampling signal",
            hint,
        )),
        None => Err(Error::setting(name, value, "not a signal", hint)),
    }
}

fn is_allowed_signal(sig: libc::c_int) -> bool {
    let usable = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGURG, libc::SIGWINCH];
    usable.contains(&sig) || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, Error> {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_vars(vars, 42, Path::new("/start"))
    }

    #[test]
    fn defaults() {
        let s = parse(&[("PATH", "/bin")]).unwrap();
        assert_eq!(s.threads, vec![ThreadChoice::Main]);
        assert_eq!(s.interval, Duration::from_millis(10));
        assert_eq!(s.max_depth, 128);
        assert_eq!(s.output_prefix, PathBuf::from("/start/stacksample.42"));
        assert_eq!(s.dump_signal, Some(libc::SIGUSR2));
    }

    #[test]
    fn intervals_with_units() {
        for (text, micros) in [("10ms", 10_000), ("500us", 500), ("0.05s", 50_000)] {
            let s = parse(&[(INTERVAL, text)]).unwrap();
            assert_eq!(s.interval, Duration::from_micros(micros), "{text}");
        }
        let too_long_for_a_duration = "20000000000000000000s";
        for bad in [
            "10",
            "ms",
            "-1ms",
            "10 parsecs",
            "1ns",
            "2h",
            "NaNs",
            too_long_for_a_duration,
        ] {
            assert!(parse(&[(INTERVAL, bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn thread_lists() {
        let s = parse(&[(TID, "main, 77,77")]).unwrap();
        assert_eq!(s.threads, vec![ThreadChoice::Main, ThreadChoice::Tid(77)]);
        for bad in ["", "0", "-3", "all,", "first"] {
            assert!(parse(&[(TID, bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn output_prefix_gets_pid_and_start_dir() {
        let s = parse(&[(OUTPUT, "/tmp/prof.%p")]).unwrap();
        assert_eq!(s.output_prefix, PathBuf::from("/tmp/prof.42"));
        assert!(parse(&[(OUTPUT, "/no/such/dir/x")]).is_err());
        assert!(parse(&[(OUTPUT, "")]).is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(
            parse_signal(DUMP_SIGNAL, "usr1").unwrap(),
            Some(libc::SIGUSR1)
        );
        assert_eq!(parse_signal(DUMP_SIGNAL, "none").unwrap(), None);
        let rt = parse_signal(DUMP_SIGNAL, "SIGRTMIN+2").unwrap();
        assert_eq!(rt, Some(libc::SIGRTMIN() + 2));
        for bad in ["SIGKILL", "9", "SIGPROF", "SIGSEGV", "bogus", "SIGRTMIN+99"] {
            assert!(parse_signal(DUMP_SIGNAL, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forked_children_get_their_own_files_and_threads() {
        let s = parse(&[(OUTPUT, "/tmp/prof.%p")]).unwrap();
        assert_eq!(
            s.for_child(7).unwrap().output_prefix,
            PathBuf::from("/tmp/prof.7")
        );
        let s = parse(&[(OUTPUT, "/tmp/prof")]).unwrap();
        assert_eq!(
            s.for_child(7).unwrap().output_prefix,
            PathBuf::from("/tmp/prof.7")
        );
        assert!(parse(&[(TID, "1234")]).unwrap().for_child(7).is_none());
        let s = parse(&[(TID, "main,1234")]).unwrap();
        assert_eq!(s.for_child(7).unwrap().threads, vec![ThreadChoice::Main]);
        assert!(!parse(&[(FOLLOW, "0")]).unwrap().follow);
        let rt = parse(&[(SIGNAL, "SIGRTMIN+4")]).unwrap().sample_signal;
        assert_eq!(rt, libc::SIGRTMIN() + 4);
        for bad in ["SIGUSR1", "none", "SIGKILL"] {
            assert!(parse(&[(SIGNAL, bad)]).is_err(), "{bad}");
        }
        assert!(parse(&[(SIGNAL, "SIGRTMIN+1"), (DUMP_SIGNAL, "SIGRTMIN+1")]).is_err());
    }

    #[test]
    fn thread_selection() {
        let s = parse(&[(TID, "all")]).unwrap();
        assert_eq!(s.threads, vec![ThreadChoice::All]);
        let s = parse(&[(THREAD, "worker-*")]).unwrap();
        assert!(s.threads.is_empty(), "a pattern alone selects by name only");
        assert!(s.thread_pattern.unwrap().matches("worker-3"));
        let s = parse(&[(THREAD, "io?"), (TID, "main")]).unwrap();
        assert_eq!(s.threads, vec![ThreadChoice::Main]);
        for bad in ["", "[a-"] {
            assert!(parse(&[(THREAD, bad)]).is_err(), "{bad}");
        }
        assert!(parse(&[(PER_THREAD, "1")]).unwrap().per_thread);
    }

    #[test]
    fn formats_lines_and_debug_dirs() {
        let s = parse(&[
            (FORMAT, "pprof, json,pprof"),
            (LINES, "0"),
            (DEBUG_DIRS, "/tmp:/"),
        ])
        .unwrap();
        assert_eq!(s.formats, vec![Format::Pprof, Format::Json]);
        assert!(!s.lines);
        assert_eq!(
            s.debug_dirs,
            vec![PathBuf::from("/tmp"), PathBuf::from("/")]
        );
        assert_eq!(parse(&[]).unwrap().formats, Format::DEFAULT.to_vec());
        for (name, bad) in [
            (FORMAT, "svg,png"),
            (FORMAT, ""),
            (LINES, "maybe"),
            (DEBUG_DIRS, "/no/such"),
        ] {
            assert!(parse(&[(name, bad)]).is_err(), "{name}={bad}");
        }
    }

    #[test]
    fn depth_and_unknown_names() {
        assert_eq!(parse(&[(MAXDEPTH, "500")]).unwrap().max_depth, 500);
        assert_eq!(parse(&[(MAX_STACKS, "2000")]).unwrap().max_stacks, 2000);
        assert!(parse(&[(MAX_STACKS, "99")]).is_err());
        for bad in ["0", "x", "1000000"] {
            assert!(parse(&[(MAXDEPTH, bad)]).is_err(), "{bad}");
        }
        let err = parse(&[("STACKSAMPLE_INTERVALL", "10ms")]).unwrap_err();
        assert!(err.to_string().contains("STACKSAMPLE_INTERVALL"));
    }

    /// Every rejection is one `stacksample:` line that names the setting and says what to do.
    fn assert_explained(result: Result<Settings, Error>) {
        let Err(error) = result else {
            return;
        };
        let line = error.to_string();
        assert!(line.starts_with("stacksample: "), "{line}");
        assert!(line.contains("STACKSAMPLE_"), "{line}");
        assert!(!line.contains('\n'), "{line:?}");
        if let Error::Setting { problem, hint, .. } = &error {
            assert!(
                !problem.trim().is_empty() && !hint.trim().is_empty(),
                "{line}"
            );
        }
    }

    /// Values that look almost right: numbers, units, lists, globs, paths, signal names.
    fn near_values() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let fragment = prop_oneof![
            "[0-9]{1,25}",
            Just("-".to_owned()),
            Just(".".to_owned()),
            Just(",".to_owned()),
            "(ms|us|s|ns|h|Hz|kHz)",
            "(main|all|SIG|USR2|PROF|RTMIN|RTMAX|\\+|txt|svg|pprof|wall|cpu|on|off|\\*|\\[|/)",
            "\\PC{0,4}",
        ];
        prop::collection::vec(fragment, 0..6).prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        #[test]
        fn any_value_of_any_setting_parses_or_is_explained(
            value in proptest::prop_oneof![near_values(), "\\PC*", ".*"],
        ) {
            for name in KNOWN {
                assert_explained(parse(&[(name, &value)]));
            }
        }

        #[test]
        fn any_name_parses_or_is_explained(name in "STACKSAMPLE_\\PC*", value in ".*") {
            assert_explained(parse(&[(&name, &value)]));
        }
    }
}
