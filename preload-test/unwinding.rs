//! Stacks are complete and correctly split, with and without frame pointers, through libc,
//! and cut (and counted) at the depth limit.

use crate::support::{build, run};

/// Samples with a frame of the profiler itself (its Rust paths start with `stacksample::`),
/// which must never show: stacks start from the interrupted code. The one exception is the
/// profiler's own exit code running in the sampled thread (under `exit`) just before it stops.
fn profiler_frames(folded: &crate::support::Folded) -> u64 {
    folded.count(|frames| {
        frames.iter().any(|f| f.contains("stacksample::")) && !frames.iter().any(|f| f == "exit")
    })
}

/// Samples where the signal trampoline shows other than as the leaf (a thread executing
/// the program's own sigreturn is a real leaf; anything deeper means a handler frame leaked).
fn trampoline_inside(folded: &crate::support::Folded) -> u64 {
    folded.count(|frames| {
        frames[..frames.len() - 1]
            .iter()
            .any(|f| f == "__restore_rt")
    })
}

fn assert_hot_split(flags: &[&str]) {
    let exe = build("hot", flags);
    let run = run(&exe, &["8000"], &[("STACKSAMPLE_INTERVAL", "1ms")], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout(), "done 0\n");
    let folded = run.folded();
    let total = folded.total();
    assert!(total >= 300, "only {total} samples");

    let main_share = folded.ratio_with("main");
    assert!(
        main_share >= 0.99,
        "{flags:?}: {main_share} of samples reach main"
    );
    for (chain_end, expected) in [("a", 0.5), ("b", 0.3), ("c", 0.2)] {
        let level1 = format!("level1_{chain_end}");
        let hot = format!("hot_{chain_end}");
        let chain = ["main", level1.as_str(), hot.as_str(), "burn"];
        let share = folded.count_chain(&chain) as f64 / total as f64;
        assert!(
            (share - expected).abs() <= 0.05,
            "{flags:?}: {chain:?} has {share:.3} of samples, expected {expected}"
        );
    }
    assert_eq!(profiler_frames(&folded), 0, "profiler frames in stacks");
    let report = run.report();
    assert_eq!(report.samples(), total);
    let burn_self = report.functions["burn"].1 as f64 / total as f64;
    assert!(
        burn_self >= 0.99,
        "burn is the leaf of only {burn_self} of samples"
    );
    // A sample or two may land after main returned, in exit.
    assert!(report.functions["main"].0 as f64 >= 0.99 * total as f64);
    assert_eq!(
        report.functions["hot_a"].2,
        exe.file_name().unwrap().to_str().unwrap()
    );
}

#[test]
fn hot_chains_without_frame_pointers() {
    assert_hot_split(&["-O2", "-fomit-frame-pointer"]);
}

#[test]
fn hot_chains_with_frame_pointers() {
    assert_hot_split(&["-O2", "-fno-omit-frame-pointer"]);
}

#[test]
fn time_in_libc_reaches_main() {
    let exe = build("libc_time", &["-O2", "-fomit-frame-pointer"]);
    let run = run(&exe, &["30"], &[("STACKSAMPLE_INTERVAL", "1ms")], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let report = run.report();
    let total = folded.total();
    assert!(total >= 200, "only {total} samples");
    assert!(folded.ratio_with("main") >= 0.99, "{:?}", folded.stacks);

    // qsort's own frames lie between main's callee and the comparator.
    let through_qsort = folded.count(|frames| {
        let sort = frames.iter().position(|f| f == "sort_round");
        let compare = frames.iter().position(|f| f == "compare_ints");
        matches!((sort, compare), (Some(s), Some(c)) if c > s + 1)
    });
    assert!(
        through_qsort > 0,
        "no stack main;sort_round;<libc>;compare_ints"
    );
    let libc_frames = report
        .functions
        .values()
        .filter(|(_, _, module)| module.starts_with("libc.so"))
        .count();
    assert!(libc_frames >= 2, "libc frames missing:\n{}", report.text);
    // memcpy runs inside libc with copy_round as caller.
    let copy_leaf_in_libc = folded.count(|frames| {
        frames.iter().any(|f| f == "copy_round") && frames.last().unwrap() != "copy_round"
    });
    assert!(copy_leaf_in_libc > 0, "no samples inside memcpy");
}

#[test]
fn time_in_the_dynamic_loader_reaches_main() {
    // ld.so's `.eh_frame` ends with its segment, without the usual terminator: read to the
    // terminator, it was dropped, and every stack with an ld.so leaf (`__tls_get_addr`, symbol
    // lookups) was cut after its first frame.
    let exe = build("tls_main", &["-O2", "-ldl"]);
    let plugin = build("libtls_plugin.so", &["-O2"]);
    let run = run(
        &exe,
        &[plugin.to_str().unwrap(), "600"],
        &[("STACKSAMPLE_INTERVAL", "1ms")],
        true,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let total = folded.total();
    assert!(total >= 300, "only {total} samples");
    let in_loader = folded.count(|frames| frames.last().is_some_and(|f| f == "__tls_get_addr"));
    assert!(in_loader >= 20, "{in_loader} samples in __tls_get_addr");
    let whole = folded.count_chain(&["main", "tls_spin", "tls_bump", "__tls_get_addr"]);
    assert!(
        whole as f64 >= 0.99 * in_loader as f64,
        "{whole} of {in_loader} samples in __tls_get_addr reach main: {:?}",
        folded.stacks
    );
}

#[test]
fn deep_recursion_is_complete_below_the_limit() {
    let exe = build("recurse", &["-O2"]);
    let run = run(
        &exe,
        &["100", "100"],
        &[("STACKSAMPLE_INTERVAL", "1ms")],
        true,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let deep = folded.count(|frames| {
        frames.iter().filter(|f| *f == "recurse").count() == 100 && frames.contains(&"main".into())
    });
    assert!(
        deep as f64 >= 0.95 * folded.total() as f64,
        "{deep} of {}",
        folded.total()
    );
    assert_eq!(run.report().number("truncated"), 0);
}

#[test]
fn stacks_beyond_max_depth_are_cut_and_counted() {
    let exe = build("recurse", &["-O2"]);
    let env = [
        ("STACKSAMPLE_INTERVAL", "1ms"),
        ("STACKSAMPLE_MAXDEPTH", "64"),
    ];
    let run = run(&exe, &["500", "60"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let report = run.report();
    let truncated = folded.count(|frames| frames[0] == "[truncated]");
    assert!(truncated as f64 >= 0.95 * folded.total() as f64);
    assert!(folded.stacks.iter().all(|(frames, _)| frames.len() <= 65));
    assert_eq!(report.number("truncated"), truncated);
    assert!(report.number("incomplete") >= truncated);
}

fn assert_handler_stacks_reach_main(mode: &str) {
    let exe = build("sigframe", &["-O2"]);
    let run = run(
        &exe,
        &[mode, "1000"],
        &[("STACKSAMPLE_INTERVAL", "1ms")],
        true,
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let in_handler = folded.count_with("spin_in_handler");
    assert!(
        in_handler >= 100,
        "{mode}: {in_handler} samples in the handler: {:?}",
        folded.stacks
    );
    // Through the signal frame: the interrupted main_loop sits below the handler.
    let through = folded.count(|frames| {
        let outer = frames.iter().position(|f| f == "main_loop");
        let inner = frames.iter().position(|f| f == "usr1_handler");
        matches!((outer, inner), (Some(o), Some(i)) if o < i) && frames.contains(&"main".into())
    });
    assert!(
        through as f64 >= 0.95 * in_handler as f64,
        "{mode}: {through} of {in_handler} handler samples reach main: {:?}",
        folded.stacks
    );
    assert_eq!(profiler_frames(&folded), 0, "profiler frames in stacks");
    assert_eq!(trampoline_inside(&folded), 0, "{:?}", folded.stacks);
}

#[test]
fn program_signal_handler_stacks_reach_main() {
    assert_handler_stacks_reach_main("normal");
}

#[test]
fn program_signal_handler_on_alternate_stack_reaches_main() {
    assert_handler_stacks_reach_main("altstack");
}
