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
