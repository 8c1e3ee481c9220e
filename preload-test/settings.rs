//! Bad settings: one clear `stacksample:` line on stderr, no profile, and the program's own
//! stdout and exit code exactly as without the library. The same for an output file that
//! cannot be written at exit.

use crate::support::{build, run};

const BAD: &[(&str, &str)] = &[
    ("STACKSAMPLE_TID", "first"),
    ("STACKSAMPLE_TID", "-5"),
    ("STACKSAMPLE_TID", "main,,2"),
    ("STACKSAMPLE_INTERVAL", "10"),
    ("STACKSAMPLE_INTERVAL", "fast"),
    ("STACKSAMPLE_INTERVAL", "1ns"),
    ("STACKSAMPLE_INTERVAL", "5h"),
    ("STACKSAMPLE_MAXDEPTH", "0"),
    ("STACKSAMPLE_MAXDEPTH", "deep"),
    ("STACKSAMPLE_MAXDEPTH", "99999999"),
    ("STACKSAMPLE_OUTPUT", ""),
    ("STACKSAMPLE_OUTPUT", "/no/such/directory/profile"),
    ("STACKSAMPLE_OUTPUT", "out/"),
    ("STACKSAMPLE_DUMP_SIGNAL", "SIGKILL"),
    ("STACKSAMPLE_DUMP_SIGNAL", "SIGPROF"),
    ("STACKSAMPLE_DUMP_SIGNAL", "banana"),
    ("STACKSAMPLE_INTERVALL", "10ms"),
    ("STACKSAMPLE_FOO", "1"),
];

#[test]
fn bad_settings_leave_the_program_unchanged() {
    let exe = build("hot", &["-O2"]);
    let plain = run(&exe, &["100", "3"], &[], false);
    assert_eq!(plain.code(), Some(3));
    for &(name, value) in BAD {
        let run = run(&exe, &["100", "3"], &[(name, value)], true);
        assert_eq!(run.code(), plain.code(), "{name}={value}");
        assert_eq!(run.output.stdout, plain.output.stdout, "{name}={value}");
        let stderr = run.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}={value}: {stderr}");
        assert!(lines[0].starts_with("stacksample: "), "{stderr}");
        assert!(lines[0].contains(name), "{name}={value}: {stderr}");
        assert!(
            run.files("stacksample.").is_empty(),
            "{name}={value} wrote a profile"
        );
    }
}

#[test]
fn good_settings_are_used() {
    let exe = build("hot", &["-O2"]);
    let env = [
        ("STACKSAMPLE_TID", "main"),
        ("STACKSAMPLE_INTERVAL", "500us"),
        ("STACKSAMPLE_MAXDEPTH", "3"),
        ("STACKSAMPLE_OUTPUT", "custom-%p"),
        ("STACKSAMPLE_DUMP_SIGNAL", "none"),
    ];
    let run = run(&exe, &["2000", "0"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stderr(), "");
    let files = run.files("custom-");
    assert_eq!(files.len(), 3, "txt, folded and svg by default: {files:?}");
    let report = crate::support::Report::read(
        files
            .iter()
            .find(|f| f.extension().unwrap() == "txt")
            .unwrap(),
    );
    assert!(
        report.field("interval").starts_with("500 us (2000 Hz)"),
        "{}",
        report.text
    );
    let folded = crate::support::Folded::read(
        files
            .iter()
            .find(|f| f.extension().unwrap() == "folded")
            .unwrap(),
    );
    assert!(folded.stacks.iter().all(|(frames, _)| frames.len() <= 4));
    let cut = folded.count(|frames| frames[0] == "[truncated]");
    assert!(
        cut as f64 >= 0.95 * folded.total() as f64,
        "{:?}",
        folded.stacks
    );
}

#[test]
fn unwritable_output_is_one_line_and_the_exit_code_stays() {
    let exe = build("hot", &["-O2"]);
    // /proc exists but no file can be created in it.
    let run = run(
        &exe,
        &["200", "7"],
        &[("STACKSAMPLE_OUTPUT", "/proc/stacksample")],
        true,
    );
    assert_eq!(run.code(), Some(7));
    assert_eq!(run.stdout(), "done 0\n");
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("stacksample: cannot write profile /proc/stacksample.txt"),
        "{stderr}"
    );
}
