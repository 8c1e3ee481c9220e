//! However a process ends, the profile is on disk: SIGTERM and SIGINT at their default action
//! (and the same death as without us), `_exit`, and SIGKILL with periodic flushes.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{build, configure, Report};

/// Starts `long_running` with `args`, lets it run `after`, sends `signal`, and returns its
/// exit status and the report it left.
fn signalled(
    signal: libc::c_int,
    args: &[&str],
    env: &[(&str, &str)],
    after: u64,
) -> (std::process::ExitStatus, Option<Report>) {
    let exe = build("long_running", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(&exe);
    command
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::null());
    configure(&mut command, env, true);
    let mut child = command.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(after));
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let status = child.wait().unwrap();
    let txt = dir.path().join(format!("stacksample.{}.txt", child.id()));
    (status, txt.exists().then(|| Report::read(&txt)))
}

fn assert_dies_by_signal_with_profile(signal: libc::c_int) {
    use std::os::unix::process::ExitStatusExt;
    let env = [("STACKSAMPLE_INTERVAL", "2ms")];
    let (status, report) = signalled(signal, &["5000", "0"], &env, 700);
    assert_eq!(status.signal(), Some(signal), "{status:?}");
    let report = report.expect("no profile written");
    assert!(report.samples() >= 50, "{}", report.text);
    assert!(report.functions.contains_key("busy_loop"));
}

#[test]
fn sigterm_writes_profile_then_terminates_the_same_way() {
    assert_dies_by_signal_with_profile(libc::SIGTERM);
}

#[test]
fn sigint_writes_profile_then_terminates_the_same_way() {
    assert_dies_by_signal_with_profile(libc::SIGINT);
}

#[test]
fn sigkill_keeps_the_last_flush() {
    let env = [
        ("STACKSAMPLE_INTERVAL", "2ms"),
        ("STACKSAMPLE_FLUSH", "300ms"),
    ];
    let (status, report) = signalled(libc::SIGKILL, &["5000", "0"], &env, 1300);
    assert!(!status.success());
    let report = report.expect("no flushed profile");
    // Flushed every 300 ms, killed at 1.3 s: the profile on disk covers at least 0.9 s.
    let covered: f64 = report
        .field("duration")
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    assert!(covered >= 0.9, "{}", report.text);
    assert!(report.samples() >= 50, "{}", report.text);
}

#[test]
fn underscore_exit_writes_the_profile() {
    let exe = build("long_running", &["-O2"]);
    let run = crate::support::run(
        &exe,
        &["800", "5", "_exit"],
        &[("STACKSAMPLE_INTERVAL", "2ms")],
        true,
    );
    assert_eq!(run.code(), Some(5), "{}", run.stderr());
    assert_eq!(run.stdout(), "running\ndone\n");
    let report = run.report();
    assert!(report.samples() >= 80, "{}", report.text);
}

#[test]
fn forked_child_profiles_itself_into_its_own_files() {
    let exe = build("forker", &["-O2"]);
    let run = crate::support::run(&exe, &["6"], &[("STACKSAMPLE_INTERVAL", "2ms")], true);
    assert_eq!(run.code(), Some(6), "{}", run.stderr());
    assert_eq!(run.stdout(), "child done\nparent done\n");
    let reports: Vec<Report> = run
        .files("stacksample.")
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .map(|p| Report::read(p))
        .collect();
    assert_eq!(reports.len(), 2, "one profile per process");
    let parent = reports
        .iter()
        .find(|r| r.functions.contains_key("parent_work"))
        .unwrap();
    let child = reports
        .iter()
        .find(|r| r.functions.contains_key("child_work"))
        .unwrap();
    assert!(
        !parent.functions.contains_key("child_work"),
        "{}",
        parent.text
    );
    assert!(
        !child.functions.contains_key("parent_work"),
        "{}",
        child.text
    );
    assert!(child.samples() >= 40, "{}", child.text);
    assert_ne!(parent.field("pid"), child.field("pid"));
}

#[test]
fn forked_child_stays_inert_without_follow() {
    let exe = build("forker", &["-O2"]);
    let env = [("STACKSAMPLE_INTERVAL", "2ms"), ("STACKSAMPLE_FOLLOW", "0")];
    let run = crate::support::run(&exe, &["0"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let txt: Vec<_> = run
        .files("stacksample.")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    assert_eq!(txt.len(), 1, "{txt:?}");
    let parent = Report::read(&txt[0]);
    assert!(!parent.functions.contains_key("child_work"));
}
