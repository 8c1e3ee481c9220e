//! The program behaves as it does without the library: each case runs a fixture plain and
//! profiled and compares what it printed, its exit status and the files it wrote.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::support::{build, run, Run};

/// Runs `host args` plain and profiled (`env` beside the library); `files` are names,
/// relative to each run's directory, that the program writes.
fn plain_and_profiled(args: &[&str], env: &[(&str, &str)], files: &[&str]) -> (Run, Run) {
    let exe = build("host", &["-O2"]);
    let runs = [false, true].map(|preload| {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if files.contains(a) {
                    dir.path().join(a).to_string_lossy().into_owned()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run(&exe, &args, env, preload);
        for file in files {
            let written = std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
            std::fs::write(run.dir.path().join(format!("{file}.seen")), written).unwrap();
        }
        run
    });
    let [plain, profiled] = runs;
    assert_eq!(plain.code(), Some(0), "plain: {}", plain.stderr());
    assert_eq!(
        profiled.code(),
        plain.code(),
        "profiled: {}",
        profiled.stderr()
    );
    assert_eq!(profiled.stdout(), plain.stdout());
    for file in files {
        assert_eq!(
            seen(&profiled, file),
            seen(&plain, file),
            "{file} differs; stderr: {}",
            profiled.stderr()
        );
    }
    (plain, profiled)
}

fn seen(run: &Run, file: &str) -> String {
    std::fs::read_to_string(run.dir.path().join(format!("{file}.seen"))).unwrap()
}

const EVERY_MS: (&str, &str) = ("STACKSAMPLE_INTERVAL", "1ms");

#[test]
fn a_file_opened_after_closing_every_descriptor_keeps_its_lines() {
    let (plain, profiled) = plain_and_profiled(&["write", "out.txt"], &[EVERY_MS], &["out.txt"]);
    assert_eq!(seen(&plain, "out.txt").lines().count(), 100);
    // The profile is still written, and the program was sampled.
    assert!(profiled.folded().total() >= 50, "{}", profiled.stderr());
}

#[test]
fn two_files_opened_after_closing_every_descriptor_keep_their_own_lines() {
    let (plain, _) =
        plain_and_profiled(&["two", "a.txt", "b.txt"], &[EVERY_MS], &["a.txt", "b.txt"]);
    assert!(seen(&plain, "a.txt")
        .lines()
        .all(|l| l.starts_with("first ")));
    assert_eq!(seen(&plain, "b.txt").lines().count(), 50);
}

#[test]
fn a_descriptor_passed_to_an_exec_stays_open() {
    plain_and_profiled(&["pass", "passed.txt"], &[EVERY_MS], &["passed.txt"]);
}

#[test]
fn closing_descriptors_while_threads_come_and_go_is_harmless() {
    let (_, profiled) = plain_and_profiled(
        &["churn", "1000"],
        &[EVERY_MS, ("STACKSAMPLE_TID", "all")],
        &[],
    );
    let stderr = profiled.stderr();
    assert!(
        !stderr.contains("panic") && !stderr.contains("closedir"),
        "{stderr}"
    );
    assert!(Path::new(&profiled.profile_file("folded")).is_file());
}

#[test]
fn images_replaced_through_execl_execlp_and_execle_are_never_killed() {
    // Each image is sampled every 100 us until it replaces itself; a request still pending
    // in the new image would end it with SIGPROF.
    let (_, profiled) = plain_and_profiled(
        &["chain", "20"],
        &[
            ("STACKSAMPLE_INTERVAL", "100us"),
            ("STACKSAMPLE_OUTPUT", "image.%p"),
        ],
        &[],
    );
    assert!(profiled.files("image.").len() >= 3, "{}", profiled.stderr());
}

#[test]
fn signal_after_siginterrupt_lets_the_signal_interrupt_a_read() {
    let (plain, _) = plain_and_profiled(&["siginterrupt"], &[], &[]);
    assert!(
        plain.stdout().contains("Interrupted system call"),
        "{}",
        plain.stdout()
    );
}

#[test]
fn a_handler_set_with_sigset_survives_a_sigaction_save_and_restore() {
    let (plain, _) = plain_and_profiled(&["sigset"], &[], &[]);
    assert!(
        plain.stdout().contains("handler ran 1 time"),
        "{}",
        plain.stdout()
    );
}

#[test]
fn signal_refuses_sig_err_as_glibc_does() {
    let (plain, _) = plain_and_profiled(&["sigerr"], &[], &[]);
    assert!(
        plain.stdout().contains("SIG_ERR, Invalid argument"),
        "{}",
        plain.stdout()
    );
}

#[test]
fn a_thread_that_waits_for_the_sampling_signal_never_receives_a_request() {
    let (plain, profiled) = plain_and_profiled(&["sigwait"], &[EVERY_MS], &[]);
    assert_eq!(plain.stdout(), "received 0 SIGPROF\n");
    // It computes between its waits, so requests were sent to it all along.
    let report = profiled.report();
    let requested = report.number("signals");
    assert!(requested >= 50, "{}", report.text);
}

#[test]
fn a_child_forked_while_another_thread_lists_the_libraries_ends_at_once() {
    let (plain, profiled) = plain_and_profiled(&["fork-listing", "5"], &[EVERY_MS], &[]);
    assert_eq!(plain.stdout(), "every child ended within 1 s: yes\n");
    // The lister is inside `dl_iterate_phdr` nearly all the time, so children are forked
    // while it is; such a child says why it is not profiled.
    assert!(
        profiled.stderr().contains("not profiling it"),
        "{}",
        profiled.stderr()
    );
    assert!(
        !profiled.files("stacksample.").is_empty(),
        "the parent's profile"
    );
}

/// SIGTERM while the interrupted code holds malloc's lock, which the profile's writer needs:
/// the program still ends by SIGTERM within a second (plain: at once; it used to take 10 s),
/// with its profile or a line saying there is none.
#[test]
fn sigterm_while_the_interrupted_code_holds_mallocs_lock_ends_the_program_promptly() {
    let exe = build("host", &["-O2"]);
    let env = [EVERY_MS, ("MALLOC_ARENA_MAX", "1")];
    for _ in 0..4 {
        let started = std::time::Instant::now();
        let run = run(&exe, &["malloc-term", "300"], &env, true);
        let took = started.elapsed();
        let stderr = run.stderr();
        assert_eq!(run.output.status.signal(), Some(libc::SIGTERM), "{stderr}");
        assert!(took.as_secs_f64() < 2.0, "{took:?}: {stderr}");
        let said = "stacksample: SIGTERM: the profile could not be written in time";
        let lines: Vec<&str> = stderr.lines().collect();
        if lines.is_empty() {
            assert!(run.report().samples() > 0);
        } else {
            assert_eq!(lines.len(), 1, "{stderr}");
            assert!(lines[0].starts_with(said), "{stderr}");
        }
    }
}

/// A dump signal the program ignores interrupts nothing, as without the library.
#[test]
fn an_ignored_dump_signal_interrupts_no_system_call() {
    let (_, profiled) = plain_and_profiled(&["ignore-usr2"], &[EVERY_MS], &[]);
    assert_eq!(profiled.stdout(), "poll interrupted: 0 times\n");
}

/// A CPU limit set with `ITIMER_PROF`, SIGPROF at its default action: the program ends by
/// SIGPROF when it is reached, as without the library (it used to run on), with its profile.
#[test]
fn a_cpu_limit_set_with_itimer_prof_ends_the_program_as_without_the_library() {
    let [(plain, plain_took), (profiled, profiled_took)] =
        timed_plain_and_profiled(&["cpu-limit", "300"], &[EVERY_MS]);
    for run in [&plain, &profiled] {
        assert_eq!(
            run.output.status.signal(),
            Some(libc::SIGPROF),
            "{}",
            run.stderr()
        );
        assert_eq!(run.stdout(), "CPU limit: 300 ms\n");
    }
    assert!(
        (profiled_took - plain_took).abs() < 0.1,
        "plain {plain_took:.3} s, profiled {profiled_took:.3} s"
    );
    assert!(profiled.report().samples() > 0, "{}", profiled.stderr());
}

/// Forked children that compute, then `_exit`: each costs the program about a millisecond
/// more, not the tens of milliseconds it took when a child's sampler believed it ran under
/// the parent's deadline scheduling (up to one interval per child).
#[test]
fn forked_children_that_exit_cost_the_program_no_visible_time() {
    let args = ["forks", "10", "60"];
    let env = [("STACKSAMPLE_INTERVAL", "50ms")];
    let [(plain, plain_took), (profiled, profiled_took)] = timed_plain_and_profiled(&args, &env);
    for run in [&plain, &profiled] {
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        assert_eq!(run.stdout(), "children ended: 10\n");
    }
    assert!(
        profiled_took - plain_took < 0.1,
        "plain {plain_took:.3} s, profiled {profiled_took:.3} s"
    );
    let files = profiled.files("stacksample.");
    let profiles = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "txt"));
    assert_eq!(
        profiles.count(),
        11,
        "the parent's and each child's: {files:?}"
    );
}

/// Runs `host args` plain, then profiled, each with how long it took in seconds.
fn timed_plain_and_profiled(args: &[&str], env: &[(&str, &str)]) -> [(Run, f64); 2] {
    let exe = build("host", &["-O2"]);
    [false, true].map(|preload| {
        let started = std::time::Instant::now();
        let run = run(&exe, args, env, preload);
        (run, started.elapsed().as_secs_f64())
    })
}
