//! Choosing threads by id: a worker thread, a thread that does not exist, a thread that exits
//! while sampled. Thread ids are made predictable by running the program as pid 1 of a new
//! pid namespace (`unshare`, as root): the program is 1, the profiler's sampler thread
//! (started by the constructor) is 2, its drain thread (started by the sampler's first tick;
//! the fixture waits for it) is 3, and the program's first thread is 4. The fixture prints
//! its worker's tid, so a change in that order shows up as such.

use std::process::Command;

use crate::support::{build, configure, library, Run};

/// Runs `exe args` as pid 1 of a fresh pid namespace with `/proc` remounted for it.
fn run_in_pid_namespace(exe: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "--", "env"])
        .arg(format!("LD_PRELOAD={}", library().display()))
        .arg(exe)
        .args(args)
        .current_dir(dir.path());
    // Only the program is preloaded (by `env`, right before its exec), not unshare.
    configure(&mut command, env, false);
    // The kernel keeps 15 bytes of a thread's name: "stacksample-drain" reads so.
    command.env("WAIT_FOR_THREAD", "stacksample-dra");
    let output = command.output().expect("unshare (util-linux) is required");
    Run { output, dir }
}

#[test]
fn worker_thread_chosen_by_tid() {
    let exe = build("threads", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "4"), ("STACKSAMPLE_INTERVAL", "1ms")];
    let run = run_in_pid_namespace(&exe, &["600", "100", "0"], &env);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "worker tid 4\ndone\n");
    let folded = run.folded();
    assert!(folded.total() >= 200, "{} samples", folded.total());
    assert!(
        folded.ratio_with("worker_spin") >= 0.95,
        "{:?}",
        folded.stacks
    );
    assert_eq!(folded.count_with("main"), 0, "main thread sampled");
    let from_thread_start = folded.count_chain(&["worker", "worker_spin"]);
    assert!(
        from_thread_start as f64 >= 0.95 * folded.total() as f64,
        "{:?}",
        folded.stacks
    );
    let report = run.report();
    assert!(
        report.number("incomplete") as f64 <= 0.05 * folded.total() as f64,
        "{}",
        report.text
    );
    assert!(
        report.field("thread").starts_with("4 (threadsO2)"),
        "{}",
        report.text
    );
    assert!(report.field("thread").contains("exited"), "{}", report.text);
    // Stacks are told apart by address before naming merges them.
    assert!(
        report.number("stacks") as usize >= folded.stacks.len(),
        "{}",
        report.text
    );
}

#[test]
fn thread_that_exits_while_sampled_ends_cleanly() {
    let exe = build("threads", &["-O2"]);
    let env = [
        ("STACKSAMPLE_TID", "main,4"),
        ("STACKSAMPLE_INTERVAL", "2ms"),
    ];
    let run = run_in_pid_namespace(&exe, &["300", "400", "3"], &env);
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    assert_eq!(run.stdout(), "worker tid 4\ndone\n");
    let report = run.report();
    let threads = &report.header["thread"];
    assert_eq!(threads.len(), 2, "{}", report.text);
    assert!(
        threads[1].starts_with("4 (threadsO2)") && threads[1].ends_with("exited"),
        "{threads:?}"
    );
    let folded = run.folded();
    assert!(folded.count_with("worker_spin") >= 50);
    assert!(folded.count_with("main_after") >= 50);
    assert!(folded.count_with("main_wait") >= 50);
}

#[test]
fn thread_that_does_not_exist_is_reported() {
    let exe = build("threads", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "77")];
    let run = run_in_pid_namespace(&exe, &["100", "50", "5"], &env);
    assert_eq!(run.code(), Some(5));
    assert_eq!(run.stdout(), "worker tid 4\ndone\n");
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("stacksample: thread 77 is not a thread"),
        "{stderr}"
    );
    let report = run.report();
    assert!(
        report.field("thread").contains("never found"),
        "{}",
        report.text
    );
    assert_eq!(report.samples(), 0);
}

fn named_workers(env: &[(&str, &str)]) -> Run {
    let exe = build("named_workers", &["-O2"]);
    let mut env = env.to_vec();
    env.push(("STACKSAMPLE_INTERVAL", "2ms"));
    let run = crate::support::run(&exe, &["600"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "done\n");
    run
}

/// `name (tid)` labels of the threads the report has a section for.
fn sections(report: &crate::support::Report) -> Vec<String> {
    let mut labels: Vec<String> = report.threads.keys().cloned().collect();
    labels.sort();
    labels
}

fn top_self(table: &std::collections::HashMap<String, (u64, u64, String)>) -> &str {
    table.iter().max_by_key(|(_, (_, s, _))| *s).unwrap().0
}

#[test]
fn all_samples_every_thread_with_its_own_section() {
    let run = named_workers(&[("STACKSAMPLE_TID", "all")]);
    let report = run.report();
    report.assert_counters_add_up();
    let labels = sections(&report);
    let find = |name: &str| labels.iter().find(|l| l.starts_with(name)).cloned();
    let a = find("cruncher-a").unwrap_or_else(|| panic!("{labels:?}\n{}", report.text));
    let b = find("cruncher-b").unwrap();
    assert_eq!(top_self(&report.threads[&a]), "crunch_a");
    assert_eq!(top_self(&report.threads[&b]), "crunch_b");
    let main = find("named_workers").unwrap_or_else(|| panic!("{labels:?}"));
    assert!(report.threads[&main].contains_key("wait_for_workers"));
    assert!(
        report.threads[&main].contains_key("read"),
        "{}",
        report.text
    );
    assert!(
        labels.iter().all(|l| !l.starts_with("stacksample")),
        "profiler threads: {labels:?}"
    );
}

#[test]
fn name_pattern_picks_threads_named_after_start() {
    let run = named_workers(&[
        ("STACKSAMPLE_THREAD", "cruncher-*"),
        ("STACKSAMPLE_PER_THREAD", "1"),
    ]);
    let report = run.report();
    let threads = &report.header["thread"];
    assert_eq!(threads.len(), 2, "{threads:?}");
    assert!(
        threads.iter().all(|t| t.contains("(cruncher-")),
        "{threads:?}"
    );
    let folded = run.folded();
    let rooted = folded.count(|frames| frames[0].starts_with("cruncher-"));
    assert_eq!(
        rooted,
        folded.total(),
        "a root frame per thread: {:?}",
        folded.stacks
    );
    assert!(folded.count_with("crunch_a") > 50 && folded.count_with("crunch_b") > 50);
    assert_eq!(folded.count_with("wait_for_workers"), 0);
}

#[test]
fn thread_churn_under_all_is_attributed() {
    let exe = build("thread_churn", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_INTERVAL", "1ms")];
    let run = crate::support::run(&exe, &["1000"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "done 1000\n");
    let report = run.report();
    let in_workers = report.functions.get("churn_work").map_or(0, |row| row.0);
    assert!(in_workers >= 100, "{}", report.text);
    // Every sample belongs to a thread the header lists.
    let listed: u64 = report.thread_samples().iter().map(|(_, n)| n).sum();
    assert_eq!(listed, report.samples());
    assert!(
        report.header["thread"].len() > 10,
        "threads were found: {:?}",
        report.header["thread"]
    );
}

#[test]
fn blocked_thread_sees_no_eintr_and_its_stack_shows_the_call() {
    let exe = build("eintr_counter", &["-O2"]);
    let env = [("STACKSAMPLE_INTERVAL", "1ms")];
    let run = crate::support::run(&exe, &["60"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "eintr read 0 poll 0 sleep 0 cond 0\n");
    let folded = run.folded();
    for (caller, call) in [
        ("blocked_read", "read"),
        ("blocked_poll", "poll"),
        ("blocked_sleep", "nanosleep"),
        ("blocked_cond", "pthread_cond_timedwait"),
    ] {
        let seen = folded.count(|f| {
            let at = f.iter().position(|n| n == caller);
            at.is_some_and(|i| f[i + 1..].iter().any(|n| n.contains(call)))
                && f.contains(&"main".into())
        });
        assert!(
            seen >= 5,
            "{caller} -> {call}: {seen} samples: {:?}",
            folded.stacks
        );
    }
    // The blocked thread got no signals; one may reach it at the very end, when it runs
    // the profiler's own exit code (that sample is left out and counted).
    let report = run.report();
    let signals: u64 = report.detail("taken", "answered signals");
    assert!(signals <= 2, "{}", report.text);
    report.assert_counters_add_up();
}

/// Seven threads blocked in seven kinds of call, each below `thread_entry ->
/// blk_<kind>_outer -> blk_<kind>_inner` (and above the old frame records of an earlier
/// chain of calls), and the main thread in `clock_nanosleep`: at least
/// 99% of each thread's samples have the whole stack, and no call sees EINTR. Returns the
/// report, whose `taken` line says how many unwinds found the frame pointer on the stack.
fn assert_blocked_kinds_whole(flags: &[&str]) -> crate::support::Report {
    let exe = build("blocked_kinds", flags);
    let env = [("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_INTERVAL", "1ms")];
    let run = crate::support::run(&exe, &["1000"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "eintr 0\n", "{flags:?}");
    let folded = run.folded();
    let report = run.report();
    let threads = report.thread_samples();
    let samples_of = |name: &str| report.samples_of_thread(name);
    for kind in ["read", "poll", "epoll", "sleep", "cond", "accept", "mutex"] {
        let (outer, inner) = (format!("blk_{kind}_outer"), format!("blk_{kind}_inner"));
        // Below the inner function only the library's code: a program function there would
        // be a frame invented from an old frame record.
        let whole = folded.count(|f| {
            f.len() > 5
                && f[0].contains("clone")
                && f[1] == "start_thread"
                && f[2] == "thread_entry"
                && f[3] == outer
                && f[4] == inner
                && !f[5..]
                    .iter()
                    .any(|name| name.starts_with("blk_") || name.contains("frame_records"))
        });
        let samples = samples_of(&format!("blk-{kind}"));
        assert!(
            samples >= 500,
            "{flags:?} blk-{kind}: {samples} samples: {threads:?}"
        );
        assert!(
            whole * 100 >= samples * 99,
            "{flags:?} blk-{kind}: {whole} of {samples} whole: {:?}",
            folded.stacks
        );
    }
    // The kernel keeps 15 bytes of a thread's name.
    let program: String = exe
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    let main_samples = samples_of(&program);
    let main_whole = folded.count(|f| f[0] == "_start" && f.contains(&"main".into()));
    assert!(
        main_whole * 100 >= main_samples * 99 && main_samples >= 500,
        "{flags:?} main: {main_whole} of {main_samples} whole: {:?}",
        folded.stacks
    );
    // A thread caught briefly in another call on a loaded machine may end its stack
    // honestly short (counted as incomplete); never more than 1% of the samples.
    assert!(
        report.number("incomplete") * 100 <= report.samples(),
        "{}\n{:?}",
        report.text,
        folded.stacks
    );
    report.assert_counters_add_up();
    report
}

#[test]
fn blocked_threads_have_whole_stacks_without_frame_pointers() {
    assert_blocked_kinds_whole(&["-O2", "-fomit-frame-pointer"]);
}

/// The kernel does not report a blocked thread's frame pointer, which code built with frame
/// pointers unwinds by: the sampler finds it on the stack.
#[test]
fn blocked_threads_have_whole_stacks_with_frame_pointers() {
    let report = assert_blocked_kinds_whole(&["-O2", "-fno-omit-frame-pointer"]);
    // Every thread's first unwind but one needs it: glibc's pthread_cond_timedwait saves
    // the frame pointer in a slot its own unwind rule names.
    let found = report.detail("taken", "of those unwinds found the frame pointer");
    assert!(found >= 7, "{}", report.text);
}

#[test]
fn cpu_mode_leaves_blocked_threads_out() {
    let run = named_workers(&[("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_MODE", "cpu")]);
    let report = run.report();
    assert_eq!(report.field("mode"), "cpu");
    let labels = sections(&report);
    let samples_of = |name: &str| report.samples_of_thread(name);
    assert!(
        samples_of("cruncher-a") >= 100,
        "{labels:?}\n{}",
        report.text
    );
    assert!(samples_of("cruncher-b") >= 100);
    // main waits in read and the sleeper in nanosleep: (almost) no CPU, (almost) no samples.
    assert!(samples_of("named_workersO2") <= 5, "{}", report.text);
    assert!(samples_of("sleeper") <= 5, "{}", report.text);
}

#[test]
fn sixty_four_threads_at_100_hz_keep_the_schedule() {
    let exe = build("many_threads", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_INTERVAL", "10ms")];
    let run = crate::support::run(&exe, &["64", "1000"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let report = run.report();
    let in_workers = report.functions.get("sleep_loop").map_or(0, |row| row.0);
    // 64 threads x 100 Hz x 1 s, less start-up and the odd skipped tick.
    assert!(in_workers >= 5000, "{in_workers} samples\n{}", report.text);
    report.assert_counters_add_up();
    let missed = report.field("missed");
    let behind: u64 = missed
        .split("sampler behind schedule: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Counted in thread ticks: one late tick misses all 64 threads.
    assert!(
        behind <= 5 * 64,
        "sampler fell behind by {behind} thread ticks: {missed}"
    );
}

/// Policy (field 41) and nice value (field 19) of thread `tid` of process `pid`.
fn policy_and_nice(pid: u32, tid: &str) -> (u32, i32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (fields[38].parse().unwrap(), fields[16].parse().unwrap())
}

/// The sampler thread alone asks for deadline scheduling, and gets it as root (with an
/// affinity over every CPU): then the program's busy threads cannot delay its ticks. The
/// drain thread it starts, and the program's threads, keep the program's scheduling. The
/// report says which the sampler had.
#[test]
fn only_the_sampler_thread_is_scheduled_ahead() {
    use std::io::{BufRead, Read};
    let exe = build("threads", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(&exe);
    command
        .args(["1000", "100", "0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped());
    let env = [("STACKSAMPLE_TID", "all"), ("STACKSAMPLE_INTERVAL", "1ms")];
    configure(&mut command, &env, true);
    command.env("WAIT_FOR_THREAD", "stacksample-dra");
    let mut child = command.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("worker tid"), "{line}");
    // The sampler asks for its scheduling after its first tick's read of the modules.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut seen = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let tid = task.unwrap().file_name().into_string().unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", child.id()));
        seen.push((
            comm.unwrap().trim().to_owned(),
            policy_and_nice(child.id(), &tid),
        ));
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "done\n");
    assert!(child.wait().unwrap().success());

    let report =
        crate::support::Report::read(&dir.path().join(format!("stacksample.{}.txt", child.id())));
    let said = report.field("sampler");
    // As root only the kernel's admission control (other deadline threads using up the
    // CPUs' share) may refuse: "Device or resource busy".
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let deadline = said.starts_with("deadline scheduling, ");
    assert!(
        deadline || !root || said.contains("busy"),
        "{}",
        report.text
    );
    let sampler = seen.iter().find(|(name, _)| name == "stacksample-sam");
    let expected_policy = if deadline {
        libc::SCHED_DEADLINE as u32
    } else {
        0
    };
    assert_eq!(sampler.map(|s| s.1 .0), Some(expected_policy), "{seen:?}");
    let others: Vec<_> = seen
        .iter()
        .filter(|(name, _)| name != "stacksample-sam")
        .collect();
    assert_eq!(others.len(), 3, "main, worker and drain: {seen:?}");
    assert!(others.iter().all(|(_, sched)| *sched == (0, 0)), "{seen:?}");
}
