//! The Rust API in-process (no `LD_PRELOAD`): `Timer`, `Profiler`, one-shot stacks, several
//! of them at once, and the C ABI through `include/stacksample.h` from a C program.
//!
//! Its own test binary: the API samples the process it runs in. The tests take turns
//! (`one_at_a_time`) so that the sample counts each asserts are not shared with another
//! test's busy threads.

// Shared with the preload tests; this binary uses only the build and run helpers.
#[allow(dead_code)]
mod support;

use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stacksample::api::{self, EntryKind, Profiler, StackEntry, Timer};
use stacksample::current_tid;
use stacksample::settings::Format;

static TURN: Mutex<()> = Mutex::new(());
/// Fewest samples in 300-400 ms at 1 ms: hundreds on an idle machine, a dozen or more on a
/// 2-core machine at load 12 (measured: 18); none when sampling is broken.
const MIN_SAMPLES: usize = 10;

fn one_at_a_time() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[inline(never)]
fn api_test_busy_function(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

/// A thread spinning in `api_test_busy_function` until stopped.
struct Worker {
    tid: i32,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn() -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let (send_tid, tid) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            send_tid.send(current_tid()).unwrap();
            black_box(api_test_busy_function(&flag));
        });
        Worker {
            tid: tid.recv().unwrap(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn names(stack: &[StackEntry]) -> Vec<String> {
    stack.iter().map(|e| e.name.to_string()).collect()
}

fn has_busy_function(stack: &[StackEntry]) -> bool {
    stack
        .iter()
        .any(|e| e.name.ends_with("api_test_busy_function"))
}

#[test]
fn timer_callbacks_see_the_sampled_thread_in_its_function() {
    let _turn = one_at_a_time();
    let worker = Worker::spawn();
    let stacks = Arc::new(Mutex::new(Vec::new()));
    let seen = stacks.clone();
    let mut timer = Timer::new(worker.tid, move |stack| {
        seen.lock().unwrap().push(stack.to_vec())
    });
    timer.interval(Duration::from_millis(1));
    timer.start().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    timer.join().unwrap();
    let stacks = stacks.lock().unwrap();
    let with_function = stacks.iter().filter(|s| has_busy_function(s)).count();
    assert!(stacks.len() >= MIN_SAMPLES, "only {} stacks", stacks.len());
    assert!(
        with_function * 10 >= stacks.len() * 9,
        "{with_function} of {} stacks in the function; first: {:?}",
        stacks.len(),
        names(&stacks[0])
    );
    let entry = stacks[0]
        .iter()
        .find(|e| e.name.ends_with("api_test_busy_function"))
        .unwrap();
    assert!(entry.offset > 0 && entry.offset < 4096, "{entry}");
    assert_eq!(entry.kind, EntryKind::Native);
    assert!(entry.module.starts_with("api-"), "{entry}");
}

#[test]
fn max_depth_is_honoured() {
    let _turn = one_at_a_time();
    let worker = Worker::spawn();
    let depths = Arc::new(Mutex::new(Vec::new()));
    let seen = depths.clone();
    let mut timer = Timer::new(worker.tid, move |stack| {
        seen.lock().unwrap().push(stack.len())
    });
    timer.interval(Duration::from_millis(1)).max_depth(3);
    timer.start().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    timer.join().unwrap();
    let depths = depths.lock().unwrap();
    assert!(!depths.is_empty());
    // The worker's stack is deeper than 3 (thread start, closure, function).
    assert!(depths.iter().all(|&d| d == 3), "{depths:?}");
}

#[test]
fn profiler_counts_the_busy_function_at_the_top_and_sorts() {
    let _turn = one_at_a_time();
    let worker = Worker::spawn();
    let mut profiler = Profiler::new(worker.tid);
    profiler.interval(Duration::from_millis(1));
    {
        let _scope = profiler.scope().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    let sorted = profiler.sorted().unwrap();
    assert!(sorted.windows(2).all(|w| w[0].1.count >= w[1].1.count));
    let top: Vec<&str> = sorted
        .iter()
        .take(5)
        .map(|(_, s)| s.name.as_str())
        .collect();
    assert!(
        top.iter().any(|n| n.ends_with("api_test_busy_function")),
        "{top:?}"
    );
    let (address, busy) = sorted
        .iter()
        .find(|(_, s)| s.name.ends_with("api_test_busy_function"))
        .unwrap();
    assert_eq!(*address, api_test_busy_function as *const () as u64);
    let total = profiler
        .stacks()
        .unwrap()
        .iter()
        .map(|s| s.count)
        .sum::<u64>();
    assert!(total >= MIN_SAMPLES as u64, "{total} samples");
    assert!(busy.self_count * 10 >= total * 9, "{busy:?} of {total}");
    assert_eq!(profiler.result().unwrap().len(), sorted.len());
    profiler.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    profiler.join();
    let resumed = profiler
        .stacks()
        .unwrap()
        .iter()
        .map(|s| s.count)
        .sum::<u64>();
    assert!(
        resumed > total,
        "{resumed} samples after resuming, {total} before"
    );
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("api");
    profiler.write(&prefix, &Format::ALL).unwrap();
    let folded = std::fs::read_to_string(dir.path().join("api.folded")).unwrap();
    assert!(folded.contains("api_test_busy_function"), "{folded}");
    for extension in ["txt", "svg", "pb.gz", "json", "speedscope.json"] {
        assert!(
            dir.path().join(format!("api.{extension}")).is_file(),
            "{extension}"
        );
    }
}

#[test]
fn a_thread_that_ends_while_sampled_ends_the_callbacks_and_join_is_prompt() {
    let _turn = one_at_a_time();
    let worker = Worker::spawn();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let mut timer = Timer::new(worker.tid, move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    timer.interval(Duration::from_millis(1));
    timer.start().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    drop(worker);
    // Batches still on their way arrive within the sampler's batch age.
    std::thread::sleep(Duration::from_millis(200));
    let after_end = calls.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    assert!(after_end > 0);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        after_end,
        "callbacks after the end"
    );
    joins_promptly(&mut timer);
}

#[test]
fn join_returns_promptly_even_with_a_long_interval() {
    let _turn = one_at_a_time();
    let mut timer = Timer::new(current_tid(), |_| {});
    timer.interval(Duration::from_secs(30));
    timer.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    joins_promptly(&mut timer);
}

#[test]
fn dropping_a_running_timer_stops_it() {
    let _turn = one_at_a_time();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let mut timer = Timer::new(current_tid(), move |_| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    timer.interval(Duration::from_millis(1));
    timer.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(timer);
    let after_drop = calls.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    assert!(after_drop > 0);
    assert_eq!(calls.load(Ordering::Relaxed), after_drop);
    // The sampler is free again.
    let mut next = Timer::new(current_tid(), |_| {});
    next.start().unwrap();
    next.join().unwrap();
}

/// A timer counting its stacks, and those in the busy function.
fn counting_timer(tid: i32, interval: Duration) -> (Timer, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (stacks, in_function) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (all, busy) = (stacks.clone(), in_function.clone());
    let mut timer = Timer::new(tid, move |stack| {
        all.fetch_add(1, Ordering::Relaxed);
        if has_busy_function(stack) {
            busy.fetch_add(1, Ordering::Relaxed);
        }
    });
    timer.interval(interval);
    (timer, stacks, in_function)
}

#[test]
fn timers_and_profilers_sample_at_once_each_on_its_own_schedule() {
    let _turn = one_at_a_time();
    let (first, second) = (Worker::spawn(), Worker::spawn());
    let mut profiler = Profiler::new(first.tid);
    profiler.interval(Duration::from_millis(1));
    // One timer on the profiler's thread at a fifth of its rate, one on another thread.
    let (mut same, same_stacks, same_in_function) =
        counting_timer(first.tid, Duration::from_millis(5));
    let (mut other, other_stacks, other_in_function) =
        counting_timer(second.tid, Duration::from_millis(2));
    profiler.start().unwrap();
    same.start().unwrap();
    other.start().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    other.join().unwrap();
    same.join().unwrap();
    profiler.join();
    let profiled: u64 = profiler.stacks().unwrap().iter().map(|s| s.count).sum();
    let (same, other) = (
        same_stacks.load(Ordering::Relaxed),
        other_stacks.load(Ordering::Relaxed),
    );
    let counts = format!("profiler {profiled}, same thread {same}, other thread {other}");
    assert!(profiled >= MIN_SAMPLES as u64, "{counts}");
    assert!(
        same >= MIN_SAMPLES as u64 / 2 && same < profiled,
        "{counts}"
    );
    assert!(other >= MIN_SAMPLES as u64, "{counts}");
    let same_busy = same_in_function.load(Ordering::Relaxed);
    let other_busy = other_in_function.load(Ordering::Relaxed);
    assert!(
        same_busy * 10 >= same * 9 && other_busy * 10 >= other * 9,
        "{counts}"
    );
    // The sampler, idle once they all left, serves a newcomer.
    let (mut again, again_stacks, _) = counting_timer(first.tid, Duration::from_millis(1));
    again.start().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    again.join().unwrap();
    assert!(again_stacks.load(Ordering::Relaxed) > 0);
}

#[inline(never)]
fn api_test_own_stack() -> Vec<StackEntry> {
    black_box(api::current_stack(100).unwrap())
}

#[test]
fn one_stack_of_another_thread_and_of_the_calling_thread() {
    let _turn = one_at_a_time();
    let worker = Worker::spawn();
    let stack = api::thread_stack(worker.tid, 100).unwrap();
    assert!(has_busy_function(&stack), "{:?}", names(&stack));
    let own_names = names(&api_test_own_stack());
    assert!(
        own_names[0].ends_with("api_test_own_stack"),
        "{own_names:?}"
    );
    assert!(!own_names.iter().any(|n| n.starts_with("stacksample::")));
}

#[test]
fn a_c_program_profiles_through_the_header() {
    let _turn = one_at_a_time();
    let include = format!("-I{}/include", env!("CARGO_MANIFEST_DIR"));
    let library = support::library();
    let lib_dir = library.parent().unwrap().display().to_string();
    let flags = [
        include,
        format!("-L{lib_dir}"),
        format!("-Wl,-rpath,{lib_dir}"),
        "-lstacksample".to_owned(),
    ];
    assert_c_client_profiles(&flags, &lib_dir);
}

#[test]
fn a_c_program_builds_with_pkg_config_after_install() {
    let _turn = one_at_a_time();
    let prefix = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let install = Command::new(format!("{root}/scripts/install.sh"))
        .args(["--prefix", prefix.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&install.stderr);
    assert!(install.status.success(), "{stderr}");
    let pkg_config = Command::new("pkg-config")
        .args(["--cflags", "--libs", "stacksample"])
        .env("PKG_CONFIG_PATH", prefix.path().join("lib/pkgconfig"))
        .output()
        .unwrap();
    let flags = String::from_utf8_lossy(&pkg_config.stdout).into_owned();
    assert!(pkg_config.status.success(), "{flags}");
    let flags: Vec<String> = flags.split_whitespace().map(str::to_owned).collect();
    let lib_dir = prefix.path().join("lib").display().to_string();
    let include = format!("-I{}/include", prefix.path().display());
    assert!(flags.contains(&include), "{flags:?}");
    assert_c_client_profiles(&flags, &lib_dir);
}

/// Builds the C client with `flags` and checks what it prints; `lib_dir` holds the library
/// it must load.
fn assert_c_client_profiles(flags: &[String], lib_dir: &str) {
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.insert(0, "-Wl,--no-as-needed");
    let exe = support::build("api_client", &flags);
    // Cargo's LD_LIBRARY_PATH would win over the run path and may name a stale copy.
    let run = support::run(&exe, &["profile"], &[("LD_LIBRARY_PATH", lib_dir)], false);
    let stdout = run.stdout();
    assert!(run.output.status.success(), "{stdout}{}", run.stderr());
    assert!(!stdout.contains("error "), "{stdout}");
    assert!(stdout.contains("bad format: 1"), "{stdout}");
    let symbols: Vec<(&str, u64, u64)> = stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("symbol ")?.split(' ');
            let name = words.next()?;
            Some((
                name,
                words.next()?.parse().ok()?,
                words.next()?.parse().ok()?,
            ))
        })
        .collect();
    // The busy function is the most often sampled and the leaf (thread roots such as
    // start_thread tie with it on total).
    let top = symbols.iter().map(|s| s.1).max();
    let &(_, count, self_count) = symbols
        .iter()
        .find(|s| s.0 == "c_api_busy_function")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(Some(count), top, "{stdout}");
    assert!(
        count >= MIN_SAMPLES as u64 && self_count * 10 >= count * 9,
        "{stdout}"
    );
    let timer_line = stdout
        .lines()
        .find(|l| l.starts_with("timer stacks"))
        .unwrap();
    let numbers: Vec<u64> = timer_line
        .split(' ')
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers[0] >= MIN_SAMPLES as u64 && numbers[1] * 10 >= numbers[0] * 9,
        "{timer_line}"
    );
    assert!(stdout.contains("one stack in function 1"), "{stdout}");
    let folded = std::fs::read_to_string(run.dir.path().join("profile.folded")).unwrap();
    assert!(folded.contains("c_api_busy_function"), "{folded}");
    assert!(run.dir.path().join("profile.txt").is_file());
}

/// Stops `timer` and checks that stopping took well under a second.
fn joins_promptly(timer: &mut Timer) {
    let joining = Instant::now();
    timer.join().unwrap();
    assert!(
        joining.elapsed() < Duration::from_millis(500),
        "{:?}",
        joining.elapsed()
    );
}
