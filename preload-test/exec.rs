//! Exec: the profile is written before the image is replaced, a sample request left
//! pending (the thread blocked SIGPROF) is discarded instead of killing the new program, and
//! the new image's profile is written beside the old one, never over it.

use std::path::Path;

use crate::support::{build, run, Folded};

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

/// Samples of `before_exec` and of `after_exec` in `<prefix>.folded`.
fn image_samples(prefix: &Path) -> (u64, u64) {
    let mut path = prefix.as_os_str().to_owned();
    path.push(".folded");
    let folded = Folded::read(Path::new(&path));
    (
        folded.count_with("before_exec"),
        folded.count_with("after_exec"),
    )
}

fn assert_ran_after_exec(run: &crate::support::Run) {
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (Some(0), "after exec ok\n"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_image_after_an_exec_writes_beside_the_profile_of_the_image_before() {
    let exe = build("exec_chain", &["-O2"]);
    let run = run(&exe, &["again"], &[("STACKSAMPLE_INTERVAL", "1ms")], true);
    assert_ran_after_exec(&run);
    let first = run.profile_file("txt").with_extension("");
    let second = first.with_extension(format!(
        "{}.1",
        first.extension().unwrap().to_string_lossy()
    ));
    let (before, after) = image_samples(&first);
    assert!(before >= 100 && after == 0, "{before} {after}");
    let (before, after) = image_samples(&second);
    assert!(after >= 100 && before == 0, "{before} {after}");
    assert_eq!(run.files("stacksample.").len(), 6, "{:?}", run.files(""));
}

/// A fixed name (no `%p`): a file older than the process is an earlier run's and is
/// replaced; the image before the exec wrote during this process's life, so the image
/// after writes `prof.1`.
#[test]
fn a_fixed_name_replaces_an_earlier_runs_profile_but_not_the_image_before_the_exec() {
    let exe = build("exec_chain", &["-O2"]);
    let out = tempfile::tempdir().unwrap();
    let prefix = out.path().join("prof");
    let leftover = out.path().join("prof.folded");
    std::fs::write(&leftover, "leftover 1\n").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let file = std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap();
    file.set_modified(an_hour_ago).unwrap();
    let env = [
        ("STACKSAMPLE_INTERVAL", "1ms"),
        ("STACKSAMPLE_OUTPUT", prefix.to_str().unwrap()),
    ];
    let run = run(&exe, &["again"], &env, true);
    assert_ran_after_exec(&run);
    let (before, after) = image_samples(&prefix);
    assert!(before >= 100 && after == 0, "{before} {after}");
    let (before, after) = image_samples(&out.path().join("prof.1"));
    assert!(after >= 100 && before == 0, "{before} {after}");
    assert!(!out.path().join("prof.2.folded").exists());
}
