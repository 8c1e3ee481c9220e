//! The `stacksample` command line, run as a user runs it: `record` keeps the command's exit
//! code or signal and leaves a complete profile when interrupted; `report` renders what the
//! library wrote, byte for byte, and each filter changes what it should; `dump` writes the
//! profile of a running process and refuses one without the library; the bash completions
//! complete in bash, and the manual pages cover every subcommand.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::formats::decode_pprof;
use crate::support::{build, configure, library, Folded, Report, Run};

/// The built command line, told where the library of this test build is.
fn stacksample(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stacksample"));
    command.current_dir(dir).stdin(Stdio::null());
    let lib = library();
    configure(
        &mut command,
        &[("STACKSAMPLE_LIB", lib.to_str().unwrap())],
        false,
    );
    command
}

/// `stacksample record <options> -- exe args` in a fresh directory.
fn record(options: &[&str], exe: &Path, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let output = stacksample(dir.path())
        .arg("record")
        .args(options)
        .arg("--")
        .arg(exe)
        .args(args)
        .output()
        .unwrap();
    Run { output, dir }
}

/// `stacksample report args` in `dir`; fails the test unless it succeeds.
fn report(dir: &Path, args: &[&str]) -> String {
    let output = stacksample(dir).arg("report").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "report {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn report_folded(dir: &Path, args: &[&str]) -> Folded {
    let mut all = vec!["-f", "folded"];
    all.extend_from_slice(args);
    Folded::parse(&report(dir, &all))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `record` of a command still running, with its stdout piped.
struct Recording {
    record: Child,
    stdout: BufReader<std::process::ChildStdout>,
    dir: tempfile::TempDir,
}

impl Recording {
    /// Starts `record -- exe args` in its own process group and waits for the command's
    /// first line (it is running under the profiler then).
    fn start(exe: &Path, args: &[&str]) -> Recording {
        let dir = tempfile::tempdir().unwrap();
        let mut record = stacksample(dir.path())
            .args(["record", "--"])
            .arg(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(record.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "running\n");
        Recording {
            record,
            stdout,
            dir,
        }
    }

    fn pid(&self) -> i32 {
        self.record.id() as i32
    }

    /// The command `record` started.
    fn command_pid(&self) -> i32 {
        let pid = self.pid();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("/proc/PID/task/TID/children");
        children.trim().parse().expect("one child")
    }

    fn finish(mut self) -> Run {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let output = self.record.wait_with_output().unwrap();
        Run {
            output: Output {
                stdout: rest.into_bytes(),
                ..output
            },
            dir: self.dir,
        }
    }
}

fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) of a process (group) this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// The lossless profile's prefix as `report` takes it.
fn lossless(run: &Run) -> String {
    run.profile_file("profile.json.gz").display().to_string()
}

#[test]
fn record_keeps_the_exit_code_and_summarizes() {
    let exe = build("long_running", &["-O2"]);
    for code in [0, 3] {
        // A second of work: samples even on a machine loaded several times over.
        let run = record(&[], &exe, &["1000", &code.to_string()]);
        assert_eq!(run.code(), Some(code), "{}", run.stderr());
        assert_eq!(run.stdout(), "running\ndone\n");
        let folded = run.folded();
        assert!(folded.ratio_with("busy_loop") >= 0.9, "{folded:?}");
        let stderr = run.stderr();
        let txt = run.profile_file("txt");
        for expected in [
            "## functions by self samples",
            "## functions by total samples",
            "busy_loop",
            "of the sampled threads' CPU time",
            "lost:",
            txt.to_str().unwrap(),
        ] {
            assert!(stderr.contains(expected), "{expected:?} not in\n{stderr}");
        }
        let samples = format!(": {} samples in ", run.report().samples());
        assert!(stderr.contains(&samples), "{samples:?} not in\n{stderr}");
    }
}

#[test]
fn record_dies_by_the_signal_that_ended_the_command() {
    let exe = build("long_running", &["-O2"]);
    // Sent to the command itself, and to `record`, which passes it on.
    for to_record in [false, true] {
        let recording = Recording::start(&exe, &["20000"]);
        std::thread::sleep(Duration::from_millis(300));
        let target = if to_record {
            recording.pid()
        } else {
            recording.command_pid()
        };
        kill(target, libc::SIGTERM);
        let run = recording.finish();
        assert_eq!(
            run.output.status.signal(),
            Some(libc::SIGTERM),
            "{}",
            run.stderr()
        );
        // Written before the end: the text report and the folded file agree.
        assert_eq!(run.report().samples(), run.folded().total());
    }
}

#[test]
fn ctrl_c_leaves_a_complete_profile() {
    let exe = build("long_running", &["-O2"]);
    // Ctrl-C reaches the whole process group; `kill -INT` reaches `record` alone.
    for to_group in [true, false] {
        let recording = Recording::start(&exe, &["20000"]);
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        let target = if to_group {
            -recording.pid()
        } else {
            recording.pid()
        };
        kill(target, libc::SIGINT);
        let run = recording.finish();
        assert!(started.elapsed() < Duration::from_secs(15));
        assert_eq!(
            run.output.status.signal(),
            Some(libc::SIGINT),
            "{}",
            run.stderr()
        );
        let txt = run.report();
        let folded = run.folded();
        // Complete: every file has every sample (how many depends on the machine's load).
        assert_eq!(folded.total(), txt.samples());
        let from_lossless = report_folded(run.dir.path(), &[&lossless(&run)]);
        assert_eq!(from_lossless.total(), txt.samples());
        let summary = format!(": {} samples in ", txt.samples());
        assert!(run.stderr().contains(&summary), "{}", run.stderr());
    }
}

#[test]
fn record_duration_stops_the_command_and_exits_zero() {
    let exe = build("long_running", &["-O2"]);
    let started = Instant::now();
    let run = record(&["--duration", "500ms", "-q"], &exe, &["20000", "7"]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(run.stderr().is_empty(), "--quiet: {}", run.stderr());
    let txt = run.report();
    assert!(txt.field("duration").starts_with("0."), "{}", txt.text);
    assert_eq!(txt.samples(), run.folded().total());
}

#[test]
fn record_options_become_settings() {
    let exe = build("named_workers", &["-O2"]);
    let run = record(
        &[
            "-F",
            "500",
            "-t",
            "all",
            "-f",
            "folded",
            "--per-thread",
            "-o",
            "prof",
        ],
        &exe,
        &["400"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let dir = run.dir.path();
    assert!(dir.join("prof.profile.json.gz").is_file());
    assert!(!dir.join("prof.txt").exists(), "only the formats asked for");
    let folded = Folded::read(&dir.join("prof.folded"));
    // Every stack starts with its thread (--per-thread); blocked threads are sampled however
    // loaded the machine is, so `-t all` shows at least the main thread and the sleeper.
    let roots: HashSet<&str> = folded.stacks.iter().map(|(f, _)| f[0].as_str()).collect();
    assert!(roots.iter().all(|r| r.ends_with(')')), "{roots:?}");
    assert!(roots.len() >= 2, "{roots:?}");
    let header = Report::parse(&report(dir, &["prof.profile.json.gz"]));
    assert_eq!(header.field("interval"), "2 ms (500 Hz)");
    // The main thread never renames itself; the threads' labels come from the same names.
    let main = report_folded(dir, &["--thread", "named_workers*", "prof.profile.json.gz"]);
    assert!(main.count_with("wait_for_workers") > 0, "{main:?}");
    assert!(
        main.stacks
            .iter()
            .all(|(f, _)| f[0].starts_with("named_workers")),
        "{main:?}"
    );
    // Settings already in the environment stay, extended with the lossless profile.
    let output = stacksample(dir)
        .env("STACKSAMPLE_FORMAT", "json")
        .env("STACKSAMPLE_OUTPUT", "env")
        .args(["record", "-q", "--"])
        .arg(&exe)
        .arg("10")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.join("env.json").is_file() && dir.join("env.profile.json.gz").is_file());
    assert!(!dir.join("env.txt").exists());
    // Errors speak of the flag and the value typed, not of the variable it becomes.
    for (flag, value, said) in [
        ("--mode", "fast", "--mode \"fast\": unknown mode"),
        ("-i", "fast", "-i/--interval \"fast\": "),
        ("-f", "png", "-f/--format \"png\": "),
    ] {
        let bad = record(&[flag, value], &exe, &["10"]);
        assert_eq!(bad.code(), Some(1));
        let stderr = bad.stderr();
        assert!(
            stderr.starts_with(&format!("stacksample: {said}")),
            "{stderr}"
        );
        assert!(!stderr.contains("STACKSAMPLE_"), "{stderr}");
    }
}

#[test]
fn record_explains_an_empty_run() {
    let static_exe = build("hot", &["-static"]);
    let run = record(&[], &static_exe, &["1", "4"]);
    assert_eq!(run.code(), Some(4));
    assert!(
        run.stderr().contains("no profile was written"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("statically linked"),
        "{}",
        run.stderr()
    );

    let exe = build("long_running", &["-O2"]);
    let run = record(&["-i", "1s"], &exe, &["0"]);
    assert_eq!(run.code(), Some(0));
    assert!(run.stderr().contains(": 0 samples in"), "{}", run.stderr());
    assert!(
        run.stderr().contains("no samples: the program ended"),
        "{}",
        run.stderr()
    );
}

#[test]
fn record_follows_children_and_report_merges_them() {
    let exe = build("forker", &["-O2"]);
    let run = record(&[], &exe, &["5"]);
    assert_eq!(run.code(), Some(5), "{}", run.stderr());
    assert!(run.stderr().contains("in 2 processes"), "{}", run.stderr());
    let files: Vec<String> = run
        .files("stacksample.")
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with(".profile.json.gz"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let both = report_folded(run.dir.path(), &args);
    assert!(both.count_with("child_work") > 0 && both.count_with("parent_work") > 0);
    let one = report_folded(run.dir.path(), &args[..1]);
    let other = report_folded(run.dir.path(), &args[1..]);
    assert_eq!(one.total() + other.total(), both.total());
}

#[test]
fn record_of_a_process_tree_writes_one_run_with_its_merged_profile() {
    let exe = build("long_running", &["-O2"]);
    let exe = exe.to_str().unwrap();
    let script = format!("{exe} 300 >/dev/null; {exe} 300 >/dev/null; {exe} 300 >/dev/null");
    let sh = PathBuf::from("/bin/sh");
    let run = record(&["-i", "1ms"], &sh, &["-c", &script]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let stderr = run.stderr();
    let merged = |ext: &str| {
        let files = run.files(&format!("merged.{ext}"));
        assert_eq!(files.len(), 1, "merged.{ext}: {files:?}\n{stderr}");
        files[0].clone()
    };
    for ext in ["txt", "folded", "svg", "profile.json.gz"] {
        assert!(stderr.contains(merged(ext).to_str().unwrap()), "{stderr}");
    }
    assert!(stderr.contains("run directory: "), "{stderr}");
    // The summary names the merged files, not each process's.
    assert!(!stderr.contains("/stacksample."), "{stderr}");

    let processes: Vec<Report> = run
        .files("stacksample.")
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".txt"))
        .map(|p| Report::read(p))
        .collect();
    // Three programs and the shell; a process that took no sample left no file.
    assert!(processes.len() >= 4, "{} processes", processes.len());
    assert!(processes.iter().all(|r| r.samples() > 0));
    let text = std::fs::read_to_string(merged("txt")).unwrap();
    let tree = Report::parse(&text);
    let more = format!("and {} more processes", processes.len() - 1);
    assert!(tree.field("pid").contains(&more), "{text}");
    for key in [
        "requested",
        "taken",
        "signals",
        "samples",
        "missed",
        "dropped",
        "stacks",
    ] {
        let sum: u64 = processes.iter().map(|r| r.number(key)).sum();
        assert_eq!(tree.number(key), sum, "{key}: {text}");
    }
    tree.assert_counters_add_up();
    for heading in ["## functions by self", "## functions by total"] {
        let rows = table_rows(&text, heading);
        let mut functions: Vec<&str> = rows
            .iter()
            .map(|row| row.splitn(3, '%').nth(2).unwrap().trim())
            .collect();
        let listed = functions.len();
        functions.sort();
        functions.dedup();
        assert_eq!(functions.len(), listed, "a function listed twice: {text}");
    }
    let busy: u64 = processes
        .iter()
        .filter_map(|r| r.functions.get("busy_loop"))
        .map(|f| f.0)
        .sum();
    assert!(busy > 0);
    assert_eq!(tree.functions["busy_loop"].0, busy, "{text}");
}

#[test]
fn record_shows_progress_on_a_terminal_only() {
    let exe = build("long_running", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "{} record -i 10ms -- {} 2500",
        env!("CARGO_BIN_EXE_stacksample"),
        exe.display()
    );
    // `script` gives the command a terminal; what it shows comes back on its stdout.
    let output = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("STACKSAMPLE_LIB", library())
        .output()
        .unwrap();
    let shown = text(&output.stdout);
    assert!(output.status.success(), "{shown}");
    let counts: Vec<u64> = shown
        .split("\rstacksample: ")
        .filter_map(|line| line.split_once(" samples so far"))
        .map(|(head, _)| head.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    // Two lines, a second apart, each counting more samples (100 Hz).
    assert!(counts.len() >= 2, "{shown:?}");
    assert!(counts[0] >= 20 && counts[1] > counts[0], "{counts:?}");
    // The progress file is gone.
    assert!(run_directory_entries(dir.path())
        .iter()
        .all(|n| !n.contains("progress")));

    let piped = record(&["-i", "10ms"], &exe, &["1500"]);
    assert!(!piped.stderr().contains("so far"), "{}", piped.stderr());
}

/// Names of the files in the run directories under `dir`.
fn run_directory_entries(dir: &Path) -> Vec<String> {
    crate::support::files_in(dir, "")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn record_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let output = stacksample(dir.path())
        .args(["record", "--", "no-such-command-here"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert!(text(&output.stderr).contains("command not found: no-such-command-here"));
    // The run directory made for it is gone again.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");

    let output = stacksample(dir.path())
        .env("STACKSAMPLE_LIB", "/nonexistent/libstacksample.so")
        .args(["record", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("STACKSAMPLE_LIB=/nonexistent"));

    // A copy of the executable alone: the error lists where it looked.
    let copy = dir.path().join("bin/stacksample");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_stacksample"), &copy).unwrap();
    let output = Command::new(&copy)
        .env_remove("STACKSAMPLE_LIB")
        .args(["record", "--", "true"])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    let beside = dir.path().join("bin/libstacksample.so");
    let lib_dir = dir.path().join("lib/libstacksample.so");
    for place in [beside, lib_dir] {
        let place = std::fs::canonicalize(place.parent().unwrap())
            .unwrap_or(place.parent().unwrap().to_path_buf())
            .join("libstacksample.so");
        assert!(
            stderr.contains(place.to_str().unwrap()),
            "{place:?} in {stderr}"
        );
    }
}

#[test]
fn installed_layout_works_from_any_directory() {
    let exe = build("long_running", &["-O2"]);
    let prefix = tempfile::tempdir().unwrap();
    let bin = prefix.path().join("bin/stacksample");
    let lib = prefix.path().join("lib/libstacksample.so");
    for (from, to) in [
        (PathBuf::from(env!("CARGO_BIN_EXE_stacksample")), &bin),
        (library(), &lib),
    ] {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    let out = prefix.path().join("prof");
    let output = Command::new(&bin)
        .current_dir("/")
        .env_remove("STACKSAMPLE_LIB")
        .env_remove("LD_PRELOAD")
        .args(["record", "-q", "-o", out.to_str().unwrap(), "--"])
        .arg(&exe)
        .arg("300")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // The library was found and loaded: the command wrote its profile.
    let txt = Report::read(&prefix.path().join("prof.txt"));
    assert!(
        txt.field("command").starts_with(exe.to_str().unwrap()),
        "{}",
        txt.text
    );
    assert!(prefix.path().join("prof.profile.json.gz").is_file());
}

/// `hot` recorded with every format, so `report` can be compared with what the library wrote.
fn hot_recording() -> Run {
    let exe = build("hot", &["-O2"]);
    let run = record(
        &[
            "-i",
            "1ms",
            "-f",
            "txt,folded,svg,pprof,json,speedscope",
            "-q",
        ],
        &exe,
        &["3000"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run
}

#[test]
fn report_renders_what_the_library_wrote() {
    let run = hot_recording();
    let dir = run.dir.path();
    let input = lossless(&run);
    for (format, suffix) in [
        ("txt", "txt"),
        ("folded", "folded"),
        ("svg", "svg"),
        ("json", "json"),
        ("speedscope", "speedscope.json"),
    ] {
        let written = std::fs::read_to_string(run.profile_file(suffix)).unwrap();
        assert_eq!(report(dir, &["-f", format, &input]), written, "{format}");
    }
    let pprof = dir.join("again.pb.gz");
    report(dir, &["-f", "pprof", "-o", pprof.to_str().unwrap(), &input]);
    assert_eq!(
        decode_pprof(&pprof),
        decode_pprof(&run.profile_file("pb.gz"))
    );

    // A .txt or bare prefix finds the lossless file beside it.
    let txt = run.profile_file("txt");
    assert_eq!(
        report(dir, &[txt.to_str().unwrap()]),
        std::fs::read_to_string(&txt).unwrap()
    );
    // From the folded file: names and counts survive, in every format.
    let folded = run.profile_file("folded");
    let from_folded = report_folded(dir, &[folded.to_str().unwrap()]);
    assert_eq!(from_folded.stacks, run.folded().stacks);
    let pprof = dir.join("from-folded.pb.gz");
    report(
        dir,
        &[
            "-f",
            "pprof",
            "-o",
            pprof.to_str().unwrap(),
            folded.to_str().unwrap(),
        ],
    );
    let decoded = decode_pprof(&pprof);
    let total: i64 = decoded.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total as u64, run.folded().total());
}

#[test]
fn report_filters() {
    let run = hot_recording();
    let dir = run.dir.path();
    let input = lossless(&run);
    let all = report_folded(dir, &[&input]);
    let hot_a = all.count_with("hot_a");
    assert!(hot_a > 0 && hot_a < all.total());

    let included = report_folded(dir, &["--include", "^hot_a$", &input]);
    assert_eq!(included.total(), hot_a);
    assert_eq!(included.count_with("hot_a"), hot_a);

    let excluded = report_folded(dir, &["--exclude", "^hot_a$", &input]);
    assert_eq!(excluded.total(), all.total() - hot_a);
    assert_eq!(excluded.count_with("hot_a"), 0);

    let hidden = report_folded(dir, &["--hide", "^burn$", &input]);
    assert_eq!(hidden.total(), all.total());
    assert_eq!(hidden.count_with("burn"), 0);
    assert_eq!(hidden.count_chain(&["level1_a", "hot_a"]), hot_a);

    let inverted = report_folded(dir, &["--invert", &input]);
    assert_eq!(inverted.total(), all.total());
    let leaf_first = |f: &Folded| f.count(|frames| frames[0] == "burn");
    let leaf_last = all.count(|frames| frames.last().unwrap() == "burn");
    assert_eq!(leaf_first(&inverted), leaf_last);

    let callers = report_folded(dir, &["--callers", "^burn$", &input]);
    assert_eq!(callers.total(), all.count_with("burn"));
    assert_eq!(leaf_first(&callers), callers.total());
    assert_eq!(
        callers.count_chain(&["burn", "hot_a", "level1_a", "main"]),
        hot_a
    );

    let top = report_folded(dir, &["--top", "2", &input]);
    assert_eq!(top.stacks.len(), 2);
    let counts = |f: &Folded| f.stacks.iter().map(|(_, c)| *c).take(2).collect::<Vec<_>>();
    assert_eq!(counts(&top), counts(&all));
    assert!(top.stacks.iter().all(|s| all.stacks.contains(s)), "{top:?}");
    let table = report(dir, &["--top", "3", &input]);
    // burn is nearly always the leaf (a start-up sample may add one); every function is
    // on a stack.
    let leaves = table_rows(&table, "## functions by self").len();
    assert!((1..=3).contains(&leaves), "{table}");
    assert_eq!(
        table_rows(&table, "## functions by total").len(),
        3,
        "{table}"
    );

    let pid = input
        .split('.')
        .nth_back(3)
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let main_thread = report_folded(dir, &["--thread", &pid, &input]);
    assert_eq!(main_thread.total(), all.total());
    let nobody = report_folded(dir, &["--thread", "no-such-thread-*", &input]);
    assert_eq!(nobody.total(), 0);
}

/// The rows of the first table under `heading` in a text report.
fn table_rows<'t>(report: &'t str, heading: &str) -> Vec<&'t str> {
    let start = report
        .find(heading)
        .unwrap_or_else(|| panic!("{heading}: {report}"));
    report[start..]
        .lines()
        .skip(2)
        .take_while(|line| !line.is_empty())
        .collect()
}

/// The `## counters` section of a text report, without the line that says what was shown.
fn counters_section(report: &str) -> Vec<&str> {
    let start = report
        .find("\n## counters")
        .unwrap_or_else(|| panic!("{report}"));
    report[start..]
        .lines()
        .take_while(|line| !line.starts_with("## thread"))
        .filter(|line| !line.starts_with("shown:"))
        .collect()
}

#[test]
fn report_filters_keep_the_run_counters() {
    let run = hot_recording();
    let dir = run.dir.path();
    let input = lossless(&run);
    let whole = report(dir, &[&input]);
    let hot = |report: &str| {
        let row = table_rows(report, "## functions by self")[0];
        row.split_whitespace().nth(4).unwrap().to_owned()
    };
    assert_eq!(hot(&whole), "burn", "{whole}");
    for filter in [
        &["--invert"][..],
        &["--include", "^hot_a$"],
        &["--exclude", "^hot_a$"],
        &["--hide", "^burn$"],
        &["--callers", "^burn$"],
        &["--collapse-recursion"],
    ] {
        let mut args = filter.to_vec();
        args.push(&input);
        let filtered = report(dir, &args);
        assert_eq!(
            counters_section(&filtered),
            counters_section(&whole),
            "{filter:?}"
        );
        assert!(filtered.contains("shown: "), "{filter:?}: {filtered}");
        // Self time stays the leaf's, whichever way the stacks are turned.
        if filter[0] != "--hide" {
            assert_eq!(hot(&filtered), "burn", "{filter:?}: {filtered}");
        }
    }
}

#[test]
fn report_collapses_recursion() {
    let exe = build("recurse", &["-O1"]);
    let run = record(&["-i", "1ms", "-q"], &exe, &["20", "40"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let dir = run.dir.path();
    let input = lossless(&run);
    let all = report_folded(dir, &[&input]);
    assert!(all.count_chain(&["recurse", "recurse"]) > 0, "{all:?}");
    let collapsed = report_folded(dir, &["--collapse-recursion", &input]);
    assert_eq!(collapsed.total(), all.total());
    assert_eq!(collapsed.count_chain(&["recurse", "recurse"]), 0);
    assert_eq!(
        collapsed.count_chain(&["main", "recurse", "spin"]),
        all.count_with("spin")
    );
}

#[test]
fn report_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.profile.json.gz"), "not gzip").unwrap();
    for (file, expected) in [
        ("missing.txt", "neither"),
        ("junk.profile.json.gz", "not a stacksample profile"),
    ] {
        let output = stacksample(dir.path())
            .args(["report", file])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains(expected),
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn dump_writes_the_profile_of_a_running_process() {
    let exe = build("long_running", &["-O2"]);
    let mut recording = Recording::start(&exe, &["3000"]);
    std::thread::sleep(Duration::from_millis(500));
    let command = recording.command_pid();
    // `record` writes into its own run directory.
    let txt = recording.dir.path().join(format!(
        "stacksample-{}/stacksample.{command}.txt",
        recording.pid()
    ));
    assert!(!txt.exists());
    let output = stacksample(recording.dir.path())
        .args(["dump", &command.to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        recording.record.try_wait().unwrap().is_none(),
        "ended before the dump"
    );
    let early = Report::read(&txt);
    assert_eq!(
        early.samples(),
        Folded::read(&txt.with_extension("folded")).total()
    );
    let stderr = text(&output.stderr);
    let summary = format!(": {} samples in ", early.samples());
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(stderr.contains(txt.to_str().unwrap()), "{stderr}");
    // The pid of `record` itself: the error names the command's.
    let output = stacksample(recording.dir.path())
        .args(["dump", &recording.pid().to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let expected = format!("`stacksample dump {command}`");
    assert!(
        text(&output.stderr).contains(&expected),
        "{}",
        text(&output.stderr)
    );
    let run = recording.finish();
    assert_eq!(run.code(), Some(0));
    assert!(run.report().samples() >= early.samples());
}

#[test]
fn dump_finds_a_raw_preload_run_that_changed_directory() {
    let exe = build("long_running", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(&exe);
    // Started as a shell starts it (PWD), with a relative prefix; it then changes to /.
    command
        .arg("3000")
        .current_dir(dir.path())
        .env("PWD", dir.path())
        .stdout(Stdio::piped());
    configure(&mut command, &[("STACKSAMPLE_OUTPUT", "raw.%p")], true);
    let mut program = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(program.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let output = stacksample(dir.path())
        .args([
            "dump",
            "--top",
            "3",
            "--timeout",
            "20s",
            &program.id().to_string(),
        ])
        .output()
        .unwrap();
    let _ = program.kill();
    let _ = program.wait();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // No lossless file: the text report's title and tables stand in for the summary,
    // with the rows asked for.
    assert!(stderr.contains("# stacksample"), "{stderr}");
    assert!(stderr.contains("# lost: "), "{stderr}");
    let tables: Vec<&str> = stderr.split("## functions by ").skip(1).collect();
    assert_eq!(tables.len(), 2, "{stderr}");
    for table in tables {
        let rows = table
            .lines()
            .skip(2)
            .take_while(|l| l.contains("%  "))
            .count();
        assert!((1..=3).contains(&rows), "{rows} rows in {stderr}");
    }
    let txt = dir.path().join(format!("raw.{}.txt", program.id()));
    assert!(stderr.contains(txt.to_str().unwrap()), "{stderr}");
}

#[test]
fn dump_refuses_a_process_without_the_library() {
    let exe = build("long_running", &["-O2"]);
    let mut plain = Command::new(&exe)
        .arg("3000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let output = stacksample(dir.path())
        .args(["dump", &plain.id().to_string()])
        .output()
        .unwrap();
    let _ = plain.kill();
    let _ = plain.wait();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("does not have libstacksample.so loaded"),
        "{stderr}"
    );
    assert!(stderr.contains("stacksample record"), "{stderr}");
}

/// The stdout of `stacksample args`, which must succeed.
fn run_ok(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = stacksample(dir.path()).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn bash_completes_subcommands_and_options() {
    let script = run_ok(&["completions", "bash"]);
    assert!(script.contains("record") && script.contains("--interval"));
    // What a user gets from Tab in bash, with the script loaded as ~/.bashrc would load it.
    let complete = |words: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stacksample.bash");
        std::fs::write(&path, &script).unwrap();
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _stacksample stacksample \"${{COMP_WORDS[COMP_CWORD]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                path.display()
            ))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let subcommands = complete("stacksample re");
    assert_eq!(
        subcommands.lines().collect::<Vec<_>>(),
        ["record", "report"]
    );
    assert_eq!(complete("stacksample record --inter").trim(), "--interval");

    let zsh = run_ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef stacksample"), "{zsh}");
    assert!(run_ok(&["completions", "fish"]).contains("-l interval"));
}

#[test]
fn the_manual_pages_describe_every_subcommand() {
    let page = run_ok(&["man"]);
    assert!(page.contains(".TH stacksample 1"), "{page}");
    let subcommands = &page[page.find(".SH SUBCOMMANDS").unwrap()..];
    for name in ["record", "report", "dump", "completions", "man"] {
        assert!(
            subcommands.contains(&format!("stacksample\\-{name}(1)")),
            "{name} missing from {subcommands}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    run_ok(&["man", "--dir", dir.path().to_str().unwrap()]);
    let record = std::fs::read_to_string(dir.path().join("stacksample-record.1")).unwrap();
    assert!(record.contains(".TH stacksample-record 1"), "{record}");
    assert!(record.contains("\\-\\-interval"), "{record}");
    for name in ["report", "dump", "completions", "man"] {
        assert!(dir.path().join(format!("stacksample-{name}.1")).is_file());
    }
}
