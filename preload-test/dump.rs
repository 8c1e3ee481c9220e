//! The dump signal writes a complete profile while the program runs on; the final profile
//! at exit has at least as many samples; files land in the start directory even after the
//! program changed directory, and no temporary file is left behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{build, configure, Folded, Report};

#[test]
fn dump_signal_writes_profile_while_running() {
    let exe = build("long_running", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(&exe);
    command
        .args(["2500", "4"])
        .current_dir(dir.path())
        .stdout(Stdio::piped());
    configure(&mut command, &[("STACKSAMPLE_INTERVAL", "2ms")], true);
    let child = command.spawn().unwrap();
    let pid = child.id() as i32;
    let txt = dir.path().join(format!("stacksample.{pid}.txt"));
    let folded = dir.path().join(format!("stacksample.{pid}.folded"));

    std::thread::sleep(Duration::from_millis(800));
    assert!(!txt.exists(), "profile written before the dump signal");
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR2) }, 0);
    let asked = Instant::now();
    while !folded.exists() && asked.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let early = Report::read(&txt);
    let early_folded = Folded::read(&folded);
    assert!(early.samples() >= 100, "{}", early.text);
    assert_eq!(early_folded.total(), early.samples());
    assert!(early_folded.ratio_with("busy_loop") >= 0.95);

    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "running\ndone\n");
    let last = Report::read(&txt);
    assert!(
        last.samples() > early.samples(),
        "{} <= {}",
        last.samples(),
        early.samples()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
