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
    assert!(report.samples() >= 150, "{}", report.text);
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
    // At least the first second of 1.3 s, at 500 samples a second.
    assert!(report.samples() >= 300, "{}", report.text);
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
    assert!(report.samples() >= 250, "{}", report.text);
}
