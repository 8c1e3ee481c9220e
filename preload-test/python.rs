//! Python frames inside native stacks: CPython programs that measure their own CPU time per
//! function, profiled under `LD_PRELOAD`, against what they measured.

use std::path::{Path, PathBuf};

use crate::formats::decode_pprof;
use crate::support::{run, Folded, Run, BUSY_CORES};

/// The interpreters this machine is expected to have: Debian's, then pyenv's.
const PYENV_VERSIONS: [&str; 3] = ["3.11", "3.12", "3.13"];
/// How far a function's share of the samples may be from the share it measured itself.
const SHARE_TOLERANCE: f64 = 0.03;

/// pyenv's newest `major.minor` interpreter, if installed.
fn pyenv_python(version: &str) -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            name.strip_prefix(version)
                .is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|dir| dir.join("bin/python"))
        .filter(|python| python.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// What the program measured (its JSON) and the profile of its run.
struct TruthRun {
    truth: serde_json::Value,
    folded: Folded,
    run: Run,
}

/// Runs `preload-test/programs/<program>` under the library, alone on the cores (these keep
/// both busy), and checks it exited 0.
fn run_python_program(
    python: &Path,
    program: &str,
    args: &[&str],
    settings: &[(&str, &str)],
) -> Run {
    let _alone = BUSY_CORES.lock().unwrap_or_else(|e| e.into_inner());
    let program = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("preload-test/programs")
        .join(program);
    let mut all_args = vec![program.to_str().unwrap()];
    all_args.extend_from_slice(args);
    let run = run(python, &all_args, settings, true);
    assert_eq!(
        run.code(),
        Some(0),
        "{}: {}",
        python.display(),
        run.stderr()
    );
    run
}

fn run_truth(python: &Path, env: &[(&str, &str)]) -> TruthRun {
    let mut settings = vec![
        ("STACKSAMPLE_INTERVAL", "1ms"),
        ("STACKSAMPLE_MODE", "cpu"),
        ("STACKSAMPLE_TID", "all"),
        ("STACKSAMPLE_PER_THREAD", "1"),
    ];
    settings.extend_from_slice(env);
    let run = run_python_program(
        python,
        "python_truth.py",
        &["--out", "truth.json"],
        &settings,
    );
    let text = std::fs::read_to_string(run.dir.path().join("truth.json")).unwrap();
    TruthRun {
        truth: serde_json::from_str(&text).unwrap(),
        folded: run.folded(),
        run,
    }
}

/// `qualname` of a Python frame label `qualname (file:line)`, if it is one of the program's.
fn program_function(frame: &str) -> Option<&str> {
    let (name, place) = frame.split_once(" (")?;
    place.starts_with("python_truth.py:").then_some(name)
}

fn line_of(frame: &str) -> Option<u64> {
    frame.rsplit_once(':')?.1.strip_suffix(')')?.parse().ok()
}

impl TruthRun {
    /// Stacks of thread `tid` (their per-thread root frame removed).
    fn thread_stacks(&self, key: &str) -> Vec<(&[String], u64)> {
        let tid = self.truth[key].as_u64().unwrap();
        let root = format!("({tid})");
        self.folded
            .stacks
            .iter()
            .filter(|(frames, _)| frames.first().is_some_and(|f| f.ends_with(&root)))
            .map(|(frames, count)| (&frames[1..], *count))
            .collect()
    }

    /// Main-thread stacks taken while `main` was in its measured loop.
    fn measured_window(&self) -> Vec<(&[String], u64)> {
        let lines = &self.truth["main_window_lines"];
        let (first, last) = (lines[0].as_u64().unwrap(), lines[1].as_u64().unwrap());
        self.thread_stacks("main_native_id")
            .into_iter()
            .filter(|(frames, _)| {
                frames.iter().any(|f| {
                    program_function(f) == Some("main")
                        && line_of(f).is_some_and(|l| first < l && l < last)
                })
            })
            .collect()
    }

    fn check_shares(&self, python: &Path) {
        let window = self.measured_window();
        let total: u64 = window.iter().map(|(_, c)| c).sum();
        assert!(
            total >= 800,
            "{}: {total} samples in the window",
            python.display()
        );
        let functions = self.truth["functions"].as_object().unwrap();
        let mut table = String::new();
        for (name, measured) in functions {
            let measured = measured["share"].as_f64().unwrap();
            let samples: u64 = window
                .iter()
                .filter(|(frames, _)| innermost_program_function(frames) == Some(name.as_str()))
                .map(|(_, c)| c)
                .sum();
            let share = samples as f64 / total as f64;
            table += &format!("{name}: measured {measured:.3}, sampled {share:.3}\n");
            assert!(
                (share - measured).abs() <= SHARE_TOLERANCE,
                "{}: {name} sampled {share:.3}, measured {measured:.3}\n{table}{}",
                python.display(),
                self.run.stderr()
            );
        }
        eprintln!("{}:\n{table}", python.display());
    }

    fn check_recursion(&self, python: &Path) {
        let depth = self.truth["recursion"]["depth"].as_u64().unwrap() as usize;
        let in_leaf: Vec<_> = self
            .thread_stacks("main_native_id")
            .into_iter()
            .filter(|(frames, _)| innermost_program_function(frames) == Some("deep_leaf"))
            .collect();
        let all: u64 = in_leaf.iter().map(|(_, c)| c).sum();
        let whole: u64 = in_leaf
            .iter()
            .filter(|(frames, _)| {
                let python: Vec<&str> = frames.iter().filter_map(|f| program_function(f)).collect();
                let mut expected = vec!["<module>", "main"];
                expected.extend(std::iter::repeat_n("recurse", depth));
                expected.push("deep_leaf");
                python == expected
            })
            .map(|(_, c)| c)
            .sum();
        assert!(
            all >= 40,
            "{}: {all} samples in deep_leaf",
            python.display()
        );
        assert!(
            whole as f64 >= 0.98 * all as f64,
            "{}: {whole} of {all} deep_leaf samples have <module>, main, {depth} recurse",
            python.display()
        );
    }

    /// zlib's own frames lie below the Python function that called it: native frames always
    /// (the module's C function, which Debian's stripped interpreter leaves unnamed), deflate
    /// itself most of the time (the rest is spent handing the interpreter lock to the worker
    /// and taking it back around the call).
    fn check_native_below_python(&self, python: &Path) {
        let compress: Vec<_> = self
            .thread_stacks("main_native_id")
            .into_iter()
            .filter(|(frames, _)| innermost_program_function(frames) == Some("compress_work"))
            .collect();
        let below = |matches: &dyn Fn(&str) -> bool| -> u64 {
            compress
                .iter()
                .filter(|(frames, _)| {
                    let at = frames
                        .iter()
                        .rposition(|f| program_function(f) == Some("compress_work"))
                        .unwrap();
                    frames[at + 1..].iter().any(|f| matches(f))
                })
                .map(|(_, c)| c)
                .sum()
        };
        let all: u64 = compress.iter().map(|(_, c)| c).sum();
        let in_module = below(&|f| !f.contains(".py:") && !f.contains(".py)"));
        let in_deflate = below(&|f| f == "deflate");
        assert!(
            all >= 60
                && in_module as f64 >= 0.95 * all as f64
                && in_deflate as f64 >= 0.5 * all as f64,
            "{}: of {all} compress_work samples, {in_module} have native frames below it, \
             {in_deflate} deflate",
            python.display()
        );
    }

    /// Generators and coroutines run under their callers.
    fn check_generators_and_coroutines(&self, python: &Path) {
        let main = self.thread_stacks("main_native_id");
        for (inner, outer) in [
            ("produce", "consume_generator"),
            ("async_work", "async_main"),
        ] {
            let with_inner: Vec<_> = main
                .iter()
                .filter(|(frames, _)| innermost_program_function(frames) == Some(inner))
                .collect();
            let all: u64 = with_inner.iter().map(|(_, c)| c).sum();
            let under_outer: u64 = with_inner
                .iter()
                .filter(|(frames, _)| frames.iter().any(|f| program_function(f) == Some(outer)))
                .map(|(_, c)| c)
                .sum();
            assert!(
                all >= 40 && under_outer as f64 >= 0.95 * all as f64,
                "{}: {under_outer} of {all} {inner} samples under {outer}",
                python.display()
            );
        }
    }

    fn check_worker(&self, python: &Path) {
        let worker = self.thread_stacks("worker_native_id");
        let all: u64 = worker.iter().map(|(_, c)| c).sum();
        let spinning: u64 = worker
            .iter()
            .filter(|(frames, _)| innermost_program_function(frames) == Some("worker_spin"))
            .map(|(_, c)| c)
            .sum();
        assert!(
            all >= 500 && spinning as f64 >= 0.9 * all as f64,
            "{}: {spinning} of {all} worker samples in worker_spin",
            python.display()
        );
    }
}

fn innermost_program_function(frames: &[String]) -> Option<&str> {
    frames.iter().rev().find_map(|f| program_function(f))
}

fn assert_truth(python: &Path) {
    let truth = run_truth(python, &[]);
    truth.check_shares(python);
    truth.check_recursion(python);
    truth.check_native_below_python(python);
    truth.check_generators_and_coroutines(python);
    truth.check_worker(python);
}

#[test]
fn debian_python3_functions_get_their_measured_share() {
    assert_truth(Path::new("/usr/bin/python3"));
}

#[test]
fn pyenv_pythons_functions_get_their_measured_share() {
    let mut missing = Vec::new();
    for version in PYENV_VERSIONS {
        match pyenv_python(version) {
            Some(python) => assert_truth(&python),
            None => missing.push(version),
        }
    }
    if !missing.is_empty() {
        eprintln!("stacksample test: no pyenv interpreter {missing:?} on this machine");
    }
    assert!(
        missing.len() < PYENV_VERSIONS.len(),
        "no pyenv interpreter of {PYENV_VERSIONS:?}: the test checked only Debian's"
    );
}

#[test]
fn python_frames_off_leaves_the_interpreter_loop() {
    let python = Path::new("/usr/bin/python3");
    let truth = run_truth(python, &[("STACKSAMPLE_PYTHON", "0")]);
    let python_frames = truth
        .folded
        .count(|frames| frames.iter().any(|f| program_function(f).is_some()));
    assert_eq!(python_frames, 0);
    assert!(truth.folded.count_with("_PyEval_EvalFrameDefault") >= 500);
}

/// Wall mode samples a thread blocked in a system call without a signal: its Python frames
/// are read from the sampler thread, and stay above the call.
fn assert_blocked_threads_keep_python_frames(python: &Path) {
    let settings = [("STACKSAMPLE_INTERVAL", "1ms"), ("STACKSAMPLE_TID", "all")];
    let run = run_python_program(python, "python_blocked.py", &[], &settings);
    let folded = run.folded();
    for (function, call, at_least) in [
        ("sleeper_inner", "clock_nanosleep", 900),
        ("reader_inner", "read", 800),
    ] {
        let below = folded.count(|frames| {
            let at = frames
                .iter()
                .position(|f| f.starts_with(&format!("{function} (python_blocked.py:")));
            at.is_some_and(|at| frames[at..].last().is_some_and(|leaf| leaf == call))
        });
        assert!(
            below >= at_least,
            "{}: {below} samples of {call} below {function}: {:?}",
            python.display(),
            folded.stacks
        );
    }
}

#[test]
fn blocked_python_threads_keep_their_python_frames() {
    assert_blocked_threads_keep_python_frames(Path::new("/usr/bin/python3"));
    for version in PYENV_VERSIONS {
        if let Some(python) = pyenv_python(version) {
            assert_blocked_threads_keep_python_frames(&python);
        }
    }
}

/// Frames pushed and popped all the time, threads whose states are freed while the sampler
/// still lists them, code freed soon after it ran: the program runs as without the profiler,
/// and every sample of its threads is counted, whole or partial.
#[test]
fn python_memory_changing_under_the_read_costs_nothing_but_samples() {
    let mut interpreters = vec![PathBuf::from("/usr/bin/python3")];
    interpreters.extend(PYENV_VERSIONS.iter().filter_map(|v| pyenv_python(v)));
    for python in interpreters {
        let settings = [("STACKSAMPLE_INTERVAL", "1ms"), ("STACKSAMPLE_TID", "all")];
        let run = run_python_program(&python, "python_churn.py", &["1.5"], &settings);
        assert_eq!(run.stdout(), "done True\n", "{}", python.display());
        let report = run.report();
        report.assert_counters_add_up();
        let line = report
            .text
            .lines()
            .find(|l| l.starts_with("python:"))
            .unwrap_or_else(|| panic!("{}: no python line\n{}", python.display(), report.text));
        let with_frames: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(with_frames >= 500, "{}: {line}", python.display());
    }
}

/// pprof keeps what a Python frame is: its function with the script's whole path, and the
/// line; JSON and speedscope keep the file too.
#[test]
fn pprof_names_python_functions_with_their_file_and_line() {
    let python = Path::new("/usr/bin/python3");
    let settings = [
        ("STACKSAMPLE_INTERVAL", "1ms"),
        ("STACKSAMPLE_TID", "all"),
        ("STACKSAMPLE_FORMAT", "pprof,speedscope"),
    ];
    let run = run_python_program(python, "python_blocked.py", &[], &settings);
    let pprof = decode_pprof(&run.profile_file("pb.gz"));
    let text = |id: i64| pprof.string_table[id as usize].as_str();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("preload-test/programs/python_blocked.py");
    let source = std::fs::read_to_string(&script).unwrap();
    let line_of_source =
        |needle: &str| 1 + source.lines().position(|l| l.contains(needle)).unwrap() as i64;
    let sleeper_inner = pprof
        .function
        .iter()
        .find(|f| text(f.name).starts_with("sleeper_inner (python_blocked.py:"))
        .unwrap_or_else(|| panic!("no sleeper_inner function"));
    assert_eq!(text(sleeper_inner.filename), script.to_str().unwrap());
    let lines: Vec<i64> = pprof
        .location
        .iter()
        .flat_map(|l| &l.line)
        .filter(|line| line.function_id == sleeper_inner.id)
        .map(|line| line.line)
        .collect();
    // Sampled on entry, the frame is at its `def` line.
    let body = line_of_source("time.sleep(1.2)");
    assert!(lines.contains(&body), "{lines:?}");
    assert!(
        lines.iter().all(|&l| l == body || l == body - 1),
        "{lines:?}"
    );
    let samples_below: i64 = pprof
        .sample
        .iter()
        .filter(|s| {
            s.location_id.iter().any(|&id| {
                pprof.location[id as usize - 1]
                    .line
                    .iter()
                    .any(|line| line.function_id == sleeper_inner.id)
            })
        })
        .map(|s| s.value[0])
        .sum();
    assert!(
        samples_below >= 900,
        "{samples_below} samples under sleeper_inner"
    );
    let speedscope = std::fs::read_to_string(run.profile_file("speedscope.json")).unwrap();
    let speedscope: serde_json::Value = serde_json::from_str(&speedscope).unwrap();
    let frame = speedscope["shared"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().starts_with("sleeper_inner ("))
        .unwrap();
    assert_eq!(frame["file"].as_str(), script.to_str());
}
