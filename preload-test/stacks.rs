//! Stacks that are not a thread's whole mapping, sampled at 10 kHz: fibers and a thread on
//! blocks of the heap, a stack pointer inside a static buffer, a nearly full thread stack and
//! a small alternate signal stack. Each comes out whole, and the painted memory below it
//! unchanged: the library writes nothing on the program's stack beyond the kernel's signal
//! frame and the handler's entry.

use crate::support::{assert_clean_exit, build, run, seconds, Folded, Run, CPU_MODE};

const TEN_KHZ: (&str, &str) = ("STACKSAMPLE_INTERVAL", "100us");

/// Samples whose stack starts (outermost frame) at `root` and holds `function`.
fn rooted_at(folded: &Folded, root: &str, function: &str) -> u64 {
    folded.count(|f| f[0] == root && f.iter().any(|frame| frame == function))
}

/// The report says no sample was cut for want of a stack, and few are incomplete.
fn assert_whole_stacks(run: &Run) {
    let report = run.report();
    assert_eq!(
        report.detail("truncated", "without a stack of the library's to unwind on"),
        0,
        "{}",
        report.text
    );
    assert!(
        report.number("incomplete") * 100 <= report.samples(),
        "{}",
        report.text
    );
}

#[test]
fn fibers_on_heap_blocks_are_whole_stacks_and_the_memory_below_them_is_untouched() {
    let exe = build("foreign_stacks", &["-O2"]);
    let plain = run(&exe, &["fibers", "0.2"], &[], false);
    let expected = "fibers: 4, painted bytes changed: 0\n";
    assert_eq!(plain.stdout(), expected);
    for threads in ["all", "main", "all"] {
        let env = [("STACKSAMPLE_TID", threads), TEN_KHZ, CPU_MODE];
        let run = run(&exe, &["fibers", &seconds(1.0, 5.0)], &env, true);
        assert_clean_exit(&run, expected);
        assert_whole_stacks(&run);
        let folded = run.folded();
        let in_fibers = rooted_at(&folded, "fiber_main", "fiber_work");
        assert!(
            in_fibers * 10 >= folded.total() * 9 && in_fibers >= 1000,
            "{in_fibers} of {} samples start at the fiber's function\n{}",
            folded.total(),
            run.report().text
        );
    }
}

#[test]
fn a_thread_on_a_heap_block_near_its_end_is_whole_and_the_memory_below_is_untouched() {
    let exe = build("foreign_stacks", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "all"), TEN_KHZ, CPU_MODE];
    let run = run(&exe, &["setstack", &seconds(1.0, 5.0)], &env, true);
    assert_clean_exit(
        &run,
        "thread stack in a heap block: painted bytes changed: 0\n",
    );
    assert_whole_stacks(&run);
    let folded = run.folded();
    let whole = folded.count(|f| {
        f.contains(&"thread_in_block".into())
            && f.contains(&"spin_near_the_end_of_the_block".into())
    });
    assert!(whole >= 1000, "{}", run.report().text);
}

#[test]
fn a_stack_pointer_inside_a_static_buffer_leaves_the_memory_below_untouched() {
    let exe = build("foreign_stacks", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "main"), TEN_KHZ, CPU_MODE];
    let run = run(&exe, &["buffer", &seconds(1.0, 5.0)], &env, true);
    assert_clean_exit(&run, "stack pointer in a buffer: zeroed bytes changed: 0\n");
    assert!(run.folded().count_with("on_buffer_stack") >= 1000);
}

#[test]
fn a_nearly_full_thread_stack_is_sampled_whole() {
    let exe = build("small_stack", &["-O2"]);
    let env = [("STACKSAMPLE_TID", "all"), TEN_KHZ, CPU_MODE];
    let run = run(&exe, &["near-end", "8192", &seconds(1.0, 10.0)], &env, true);
    assert_clean_exit(&run, "done\n");
    assert_whole_stacks(&run);
    let whole = run
        .folded()
        .count(|f| f.contains(&"near_end".into()) && f.last().unwrap() != "near_end");
    assert!(whole >= 1000, "{}", run.report().text);
}

/// A handler of the program on an 8 KB alternate stack inside a heap block: sampled there
/// through its signal frame back to `main`, and the memory below the stack is untouched.
#[test]
fn a_small_alternate_stack_in_the_heap_is_sampled_whole() {
    let exe = build("small_stack", &["-O2"]);
    let env = [TEN_KHZ, CPU_MODE];
    let run = run(&exe, &["altstack", &seconds(1.0, 5.0)], &env, true);
    assert_clean_exit(&run, "below the alternate stack: 0 bytes overwritten\n");
    let through = run
        .folded()
        .count(|f| f.contains(&"main".into()) && f.contains(&"spin_on_small_altstack".into()));
    assert!(through >= 1000, "{}", run.report().text);
}

/// Bytes below the interrupted frame that something wrote during a `seconds`-long spin at
/// `depth` calls deep: the program's own line `stack used below the interrupted frame: N`.
fn stack_written(run: &Run) -> u64 {
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run.stdout()
        .trim()
        .rsplit(": ")
        .next()
        .and_then(|s| s.trim_end_matches(" bytes").parse().ok())
        .unwrap_or_else(|| panic!("{}", run.stdout()))
}

/// The library's footprint on the program's stack, beyond what an empty handler's signal
/// frame takes, at 10 kHz over a shallow and a 500-deep stack: at most 256 bytes
/// (docs/reliability.md has the figures).
#[test]
fn the_library_writes_at_most_256_bytes_beyond_the_kernels_signal_frame() {
    let exe = build("small_stack", &["-O2"]);
    for depth in ["0", "500"] {
        let empty = run(&exe, &["measure", "1", depth, "empty-handler"], &[], false);
        let kernel = stack_written(&empty);
        let env = [("STACKSAMPLE_TID", "all"), TEN_KHZ, CPU_MODE];
        let profiled = run(&exe, &["measure", "1", depth], &env, true);
        let library = stack_written(&profiled);
        eprintln!("depth {depth}: empty handler {kernel} bytes, library {library} bytes");
        assert!(profiled.report().samples() >= 1000);
        assert!(kernel >= 1024, "the kernel's frame alone: {kernel} bytes");
        assert!(
            library <= kernel + 256,
            "depth {depth}: the library wrote {library} bytes below the frame, an empty \
             handler {kernel}"
        );
    }
}
