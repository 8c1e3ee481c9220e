//! Exec: the profile is written before the image is replaced, and a sample request left
//! pending (the thread blocked SIGPROF) is discarded instead of killing the new program.

use crate::support::{build, run};

#[test]
fn exec_writes_profile_and_leaves_no_pending_request() {
    let exe = build("exec_chain", &["-O2"]);
    let run = run(&exe, &[], &[("STACKSAMPLE_INTERVAL", "1ms")], true);
    assert_eq!(
        run.code(),
        Some(0),
        "killed? {:?} {}",
        run.output.status,
        run.stderr()
    );
    assert_eq!(run.stdout(), "child ok\n");
    let report = run.report();
    assert!(report.samples() >= 100, "{}", report.text);
    assert!(
        report.number("missed") >= 1,
        "no request was left pending while SIGPROF was blocked:\n{}",
        report.text
    );
    assert!(run.folded().ratio_with("burn") >= 0.9);
}

#[test]
fn failed_exec_goes_on_into_the_same_profile() {
    let exe = build("exec_chain", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    // Executable, but not a program: the exec is tried, and fails with ENOEXEC.
    let not_a_program = dir.path().join("not-a-program");
    std::fs::write(&not_a_program, b"\x01\x02 not an ELF file").unwrap();
    std::fs::set_permissions(
        &not_a_program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = not_a_program.to_str().unwrap();
    let run = run(
        &exe,
        &["fail", path],
        &[("STACKSAMPLE_INTERVAL", "2ms")],
        true,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "exec failed: Exec format error\n");
    let folded = run.folded();
    assert!(
        folded.count_with("before_exec") >= 30,
        "{:?}",
        folded.stacks
    );
    assert!(
        folded.count_with("after_failed_exec") >= 30,
        "{:?}",
        folded.stacks
    );
}
