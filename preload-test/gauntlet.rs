//! The reliability gauntlet: programs that try hard to break the profiler (an allocator
//! interrupted mid-call, libraries and threads coming and going, stacks no unwinder can walk,
//! a million distinct stacks, real programs, hostile files and a
//! set-user-ID process), each with the outcome a user must see. `scripts/soak.sh` runs the
//! long versions (`STACKSAMPLE_GAUNTLET_LONG=1`) and a ten-minute soak.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{
    assert_clean_exit, build, configure, library, run, seconds, Folded, Report, CPU_MODE,
};

/// Samples whose leaf is inside the allocator: below `churn_allocations`, and not in the
/// fixture's own code or the clock it reads.
fn allocator_samples(folded: &Folded) -> u64 {
    folded.count(|frames| {
        let leaf = frames.last().unwrap();
        frames.iter().any(|f| f == "churn_allocations")
            && !["churn_allocations", "now", "clock_gettime"].contains(&leaf.as_str())
            && !leaf.starts_with("[vdso]")
            && !leaf.contains("clock_gettime")
    })
}

fn assert_allocator_survives(preload: &str) {
    let exe = build("alloc_storm", &["-O2"]);
    let duration = seconds(3.0, 20.0);
    let env = [
        ("LD_PRELOAD", preload),
        ("STACKSAMPLE_TID", "all"),
        ("STACKSAMPLE_INTERVAL", "100us"),
    ];
    let run = run(&exe, &["4", &duration], &env, false);
    assert_clean_exit(&run, "done 4\n");
    let report = run.report();
    let folded = run.folded();
    let in_allocator = allocator_samples(&folded);
    assert!(
        in_allocator as f64 >= 0.2 * folded.total() as f64 && in_allocator >= 200,
        "{in_allocator} of {} samples in the allocator\n{}",
        folded.total(),
        report.text
    );
    // Stacks through the allocator reach the thread's start (counted by `incomplete`).
    let incomplete = report.number("incomplete");
    assert!(
        incomplete as f64 <= 0.01 * report.samples() as f64,
        "{incomplete} incomplete\n{}",
        report.text
    );
}

#[test]
fn interrupted_glibc_allocator() {
    assert_allocator_survives(library().to_str().unwrap());
}

#[test]
fn interrupted_tcmalloc() {
    let tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4";
    assert!(
        Path::new(tcmalloc).exists(),
        "{tcmalloc} missing: see scripts/install-deps.sh"
    );
    assert_allocator_survives(&format!("{tcmalloc}:{}", library().display()));
}

#[test]
fn library_churn_keeps_every_library_named() {
    let plugins: Vec<PathBuf> = ["spin_in_a", "spin_in_b", "spin_in_c"]
        .iter()
        .map(|name| build("libchurn_plugin.so", &["-O2", &format!("-DSPIN={name}")]))
        .collect();
    let exe = build("dlopen_churn", &["-O2", "-ldl"]);
    let duration = seconds(2.0, 20.0);
    let mut args = vec![duration.as_str()];
    args.extend(plugins.iter().map(|p| p.to_str().unwrap()));
    let run = run(&exe, &args, &[("STACKSAMPLE_INTERVAL", "200us")], true);
    assert_clean_exit(&run, "done many rounds\n");
    let folded = run.folded();
    for name in ["spin_in_a", "spin_in_b", "spin_in_c"] {
        let samples = folded.count_with(name);
        let reaching_main =
            folded.count(|f| f.iter().any(|x| x == name) && f.contains(&"main".into()));
        assert!(samples >= 20, "{name}: {samples} samples\n{folded:?}");
        assert!(
            reaching_main as f64 >= 0.95 * samples as f64,
            "{name}: {reaching_main} of {samples} reach main"
        );
    }
}

#[test]
fn ten_thousand_threads_come_and_go_under_all() {
    let _alone = crate::support::BUSY_CORES
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let exe = build("thread_churn", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_INTERVAL", "1ms")];
    let run = run(&exe, &["10000", "100000"], &env, true);
    assert_clean_exit(&run, "done 10000\n");
    let report = run.report();
    let listed: u64 = report.thread_samples().iter().map(|(_, n)| n).sum();
    assert_eq!(listed, report.samples());
    assert!(report.functions["churn_work"].0 >= 100, "{}", report.text);
    assert!(report.header["thread"].len() > 100);
}

#[test]
fn hostile_stacks_are_cut_and_counted_never_a_fault() {
    let exe = build("hostile", &["-O2"]);
    let env = [("STACKSAMPLE_INTERVAL", "1ms"), CPU_MODE];
    let run = run(&exe, &[&seconds(1.0, 5.0)], &env, true);
    assert_clean_exit(&run, "done 50000\n");
    let folded = run.folded();
    let report = run.report();
    let leaf_is = |name: &str| folded.count(|f| f.last().unwrap() == name);

    // No unwind information and a garbage frame pointer: the walk stops and says so.
    let no_unwind = leaf_is("no_unwind_spin");
    let no_unwind_complete =
        folded.count(|f| f.last().unwrap() == "no_unwind_spin" && f.first().unwrap() == "_start");
    // At least 10 samples of each one-second phase: enough on a busy machine.
    assert!(no_unwind >= 10, "{no_unwind}\n{}", report.text);
    assert!(
        report.detail("truncated", "stopped at a frame that could not be unwound")
            >= no_unwind - no_unwind_complete
    );
    // A stack in a heap buffer and a handler on an alternate stack: sampled, named.
    assert!(folded.count_with("on_heap_stack") >= 10, "{}", report.text);
    assert!(
        folded.count(|f| f.contains(&"on_alternate_stack".into()) && f.contains(&"main".into()))
            >= 10,
        "the walk crosses from the alternate stack back to main\n{folded:?}"
    );
    // 100 000 calls deep: cut at the depth limit and marked.
    let cut = folded.count(|f| f[0] == "[truncated]");
    assert!(cut >= 10, "{}", report.text);
    assert_eq!(report.number("truncated"), cut);
}

/// Runs `command` and returns its exit status and peak resident memory in KB (`VmHWM` of
/// its own address space, read until it exits: `ru_maxrss` would also count the test
/// process, whose address space the child shares until it execs).
fn run_with_peak_memory(mut command: Command) -> (std::process::ExitStatus, u64) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak);
        }
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches(" kB").parse().ok());
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Memory the library may add to a program whose stacks all differ, writing a profile
/// included: docs/performance.md, "Memory" (about 10 MB fixed and 2.6 KB per distinct stack 25 frames
/// deep; allowed here: 16 MB and 3 KB).
fn memory_cap_kb(max_stacks: u64) -> u64 {
    16 * 1024 + max_stacks * 3
}

#[test]
fn a_million_distinct_stacks_stay_within_the_memory_cap() {
    let exe = build("distinct_stacks", &["-O2"]);
    let long_run = seconds(0.0, 1.0) == "1";
    // The default cap takes 100 000 samples to fill, a minute here; the short run lowers it.
    // Profiles are written while it runs, so the peak seen includes writing one; in the
    // long run less often, since the drain takes no samples while it writes a large table.
    let (duration, max_stacks, flush) = if long_run {
        ("60", 100_000, "10s")
    } else {
        ("4", 2_000, "500ms")
    };
    let measure = |preload: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(&exe);
        command.args(["4", duration]).current_dir(dir.path());
        let cap = max_stacks.to_string();
        let env = [
            ("STACKSAMPLE_TID", "all"),
            ("STACKSAMPLE_INTERVAL", "100us"),
            ("STACKSAMPLE_MAX_STACKS", cap.as_str()),
            ("STACKSAMPLE_FLUSH", flush),
        ];
        configure(&mut command, &env, preload);
        let (status, peak) = run_with_peak_memory(command);
        assert_eq!(status.code(), Some(0));
        (dir, peak)
    };
    let (_, plain_peak) = measure(false);
    assert!(plain_peak > 0);
    let (dir, profiled_peak) = measure(true);
    let report = Report::read(&single_file(dir.path(), ".txt"));
    let folded = Folded::read(&single_file(dir.path(), ".folded"));
    let full = report.detail("dropped", "distinct-stack table full");
    let added = profiled_peak.saturating_sub(plain_peak);
    eprintln!(
        "peak resident: plain {plain_peak} KB, profiled {profiled_peak} KB; {} distinct stacks kept, {full} samples dropped for a full table",
        folded.stacks.len()
    );
    assert!(full > 0, "the table never filled\n{}", report.text);
    assert!(folded.stacks.len() as u64 <= max_stacks);
    assert_eq!(report.samples(), folded.total());
    let cap = memory_cap_kb(max_stacks);
    assert!(
        added < cap,
        "the profiler added {added} KB, more than {cap} KB"
    );
}

fn single_file(dir: &Path, suffix: &str) -> PathBuf {
    let files: Vec<PathBuf> = profiles(dir, suffix);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// `stacksample.<pid><suffix>` files in `dir`.
fn profiles(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("stacksample.") && name.ends_with(suffix) && !name.contains(".tmp")
        })
        .collect();
    files.sort();
    files
}

/// A real program from Debian: what to run, and the files its directory starts with.
struct RealProgram {
    name: &'static str,
    argv: Vec<String>,
    files: Vec<(&'static str, Vec<u8>)>,
}

/// About 4 MB of text that compresses neither too well nor too badly, the same every time.
fn sample_data() -> Vec<u8> {
    let mut x = 88172645463325252u64;
    let mut data = Vec::new();
    while data.len() < 4 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(format!("{} {}\n", x % 1000, x % 77).as_bytes());
    }
    data
}

fn real_programs() -> Vec<RealProgram> {
    let sh = |script: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let data = sample_data();
    let make_files = vec![
        ("Makefile", b"prog: a.o b.o main.o\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O2 -c -o $@ $<\n".to_vec()),
        ("a.c", b"int a(int x) { return x * 3; }\n".to_vec()),
        ("b.c", b"int b(int x) { return x + 7; }\n".to_vec()),
        (
            "main.c",
            b"#include <stdio.h>\nint a(int);int b(int);\nint main(void){printf(\"%d\\n\", a(b(5)));return 3;}\n"
                .to_vec(),
        ),
    ];
    vec![
        RealProgram {
            name: "perl",
            argv: vec![
                "/usr/bin/perl".into(),
                "-e".into(),
                r#"my %h; $h{$_ % 1000} .= "x$_" for 1 .. 400_000; print scalar(keys %h), " ", length(join "", map { $h{$_} } sort keys %h), "\n"; exit 5"#.into(),
            ],
            files: vec![],
        },
        RealProgram {
            name: "python3",
            argv: vec![
                "/usr/bin/python3".into(),
                "-c".into(),
                "import hashlib\nh = hashlib.sha256()\nfor i in range(300000): h.update(str(i * i).encode())\nprint(h.hexdigest(), sorted(str(i) for i in range(20000))[:5])".into(),
            ],
            files: vec![],
        },
        RealProgram {
            name: "gzip",
            argv: vec!["/usr/bin/gzip".into(), "-9nc".into(), "data".into()],
            files: vec![("data", data.clone())],
        },
        RealProgram {
            name: "xz",
            argv: vec!["/usr/bin/xz".into(), "-T1".into(), "-6c".into(), "data".into()],
            files: vec![("data", data.clone())],
        },
        RealProgram {
            name: "bzip2",
            argv: vec!["/usr/bin/bzip2".into(), "-9c".into(), "data".into()],
            files: vec![("data", data)],
        },
        RealProgram {
            name: "sqlite3",
            argv: vec![
                "/usr/bin/sqlite3".into(),
                ":memory:".into(),
                "CREATE TABLE t(x INTEGER, y TEXT); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) INSERT INTO t SELECT x, hex(x * 7919) FROM c; CREATE INDEX ty ON t(y); SELECT count(*), sum(x % 13), max(y) FROM t; SELECT y FROM t ORDER BY y LIMIT 3;".into(),
            ],
            files: vec![],
        },
        RealProgram {
            name: "shell pipeline",
            argv: sh("seq 1 300000 | sort -r | md5sum; seq 1 1000 | grep -c 7; exit 4"),
            files: vec![],
        },
        RealProgram {
            name: "make",
            argv: sh("make -s -j2 prog && ./prog"),
            files: make_files,
        },
    ]
}

fn run_real(program: &RealProgram, preload: bool) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in &program.files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let mut command = Command::new(&program.argv[0]);
    command
        .args(&program.argv[1..])
        .current_dir(dir.path())
        .stdin(Stdio::null());
    let env = [("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_INTERVAL", "1ms")];
    configure(&mut command, &env, preload);
    (command.output().unwrap(), dir)
}

#[test]
fn real_programs_give_the_same_output_and_exit_code() {
    for program in real_programs() {
        let (plain, _) = run_real(&program, false);
        let (profiled, dir) = run_real(&program, true);
        let name = program.name;
        assert!(
            plain.status.code().is_some() && plain.stdout.len() > 1,
            "{name} plain: {plain:?}"
        );
        assert_eq!(
            profiled.status.code(),
            plain.status.code(),
            "{name}: {profiled:?}"
        );
        assert!(profiled.stdout == plain.stdout, "{name}: output differs");
        let stderr = String::from_utf8_lossy(&profiled.stderr);
        assert!(!stderr.contains("stacksample:"), "{name}: {stderr}");
        // One profile per process, each consistent; the processes together were sampled.
        let reports = profiles(dir.path(), ".txt");
        assert!(!reports.is_empty(), "{name}: no profile");
        let mut samples = 0;
        for txt in &reports {
            let report = Report::read(txt);
            let folded = Folded::read(&txt.with_extension("folded"));
            assert_eq!(
                report.samples(),
                folded.total(),
                "{name}: {}",
                txt.display()
            );
            samples += report.samples();
        }
        assert!(samples > 0, "{name}: no samples in {reports:?}");
        eprintln!("{name}: {} processes, {samples} samples", reports.len());
    }
}

#[test]
fn files_in_a_world_writable_directory_replace_a_planted_symlink_and_keep_the_umask() {
    let exe = build("hot", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "not a profile").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("profile.txt")).unwrap();
    let mut command = Command::new(&exe);
    command.arg("300").current_dir(dir.path());
    let env = [
        ("STACKSAMPLE_OUTPUT", "profile"),
        ("STACKSAMPLE_INTERVAL", "1ms"),
    ];
    configure(&mut command, &env, true);
    // SAFETY: umask is async-signal-safe and touches only the child's file mode mask.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o027);
            Ok(())
        })
    };
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not a profile");
    let txt = dir.path().join("profile.txt");
    assert!(!std::fs::symlink_metadata(&txt).unwrap().is_symlink());
    assert!(Report::read(&txt).samples() > 0);
    for name in ["profile.txt", "profile.folded"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "{name}");
    }
}

/// A set-user-ID copy of a program that loads the library itself (the loader ignores
/// `LD_PRELOAD` paths in such a process), run by an unprivileged user: the library reads no
/// setting and writes nothing. The same program without the set-user-ID bit is profiled.
#[test]
fn a_set_user_id_process_stays_inert() {
    let exe = build("secure_probe", &["-O2", "-ldl"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let probe = dir.path().join("probe");
    let lib = dir.path().join("libstacksample.so");
    std::fs::copy(&exe, &probe).unwrap();
    std::fs::copy(library(), &lib).unwrap();
    let run_as_nobody = |mode: u32| {
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&probe)
            .args([lib.to_str().unwrap(), "500"])
            .current_dir(dir.path());
        configure(&mut command, &[], false);
        let output = command
            .output()
            .expect("setpriv: see scripts/install-deps.sh");
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "done\n");
        assert!(output.stderr.is_empty(), "{output:?}");
        profiles(dir.path(), ".txt")
    };
    let ordinary = run_as_nobody(0o755);
    assert_eq!(ordinary.len(), 1, "the control run is profiled");
    assert!(Report::read(&ordinary[0]).samples() > 0);
    std::fs::remove_file(&ordinary[0]).unwrap();
    for folded in profiles(dir.path(), ".folded") {
        std::fs::remove_file(folded).unwrap();
    }
    let set_user_id = run_as_nobody(0o4755);
    assert!(set_user_id.is_empty(), "{set_user_id:?}");
}
