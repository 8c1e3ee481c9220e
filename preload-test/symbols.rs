//! Names people can read: inlined frames with files and lines, separate debug files found by
//! debuglink and by build id, stripped objects as `module+0xoffset` of the function,
//! demangled C++ and Rust, JIT code from a perf map, and a library unloaded before the
//! profile is written, also one opened by a relative path from a directory left since.

use std::path::Path;

use crate::support::{build, output_dir, run, tool, Folded, Run};

const FAST: (&str, &str) = ("STACKSAMPLE_INTERVAL", "1ms");

fn line_of(marker: &str) -> i64 {
    let source = include_str!("programs/inline.c");
    let index = source.lines().position(|l| l.contains(marker)).unwrap();
    index as i64 + 1
}

/// Runs the inline fixture `exe` with folded, json and pprof output, checks that the inlined
/// `mix` is a frame of its own under `outer_work`, and returns the run and its json.
fn run_with_mix_frames(exe: &Path, env: &[(&str, &str)]) -> (Run, serde_json::Value) {
    let mut env = env.to_vec();
    env.extend([FAST, ("STACKSAMPLE_FORMAT", "folded,json,pprof")]);
    let run = run(exe, &["200000"], &env, true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let chain = folded.count_chain(&["main", "outer_work", "mix"]);
    assert!(
        chain as f64 >= 0.9 * folded.total() as f64,
        "{:?}",
        folded.stacks
    );
    let json = serde_json::from_slice(&std::fs::read(run.profile_file("json")).unwrap()).unwrap();
    (run, json)
}

/// With `STACKSAMPLE_LINES=1`: the inlined `mix` is a frame of its own under `outer_work`,
/// with the right file and lines.
fn assert_inline_frames(exe: &Path, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("STACKSAMPLE_LINES", "1"));
    let (run, json) = run_with_mix_frames(exe, &env);
    let mix = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "mix")
        .expect("mix in json");
    assert!(mix["file"].as_str().unwrap().ends_with("inline.c"), "{mix}");

    let pprof = crate::formats::decode_pprof(&run.profile_file("pb.gz"));
    let name = |function_id: u64| {
        let function = &pprof.function[function_id as usize - 1];
        pprof.string_table[function.name as usize].clone()
    };
    let (first, last) = (line_of("MIX_FIRST_LINE"), line_of("MIX_LAST_LINE"));
    let inlined: Vec<_> = pprof
        .location
        .iter()
        .filter(|l| l.line.len() == 2 && name(l.line[0].function_id) == "mix")
        .collect();
    assert!(
        !inlined.is_empty(),
        "no location with mix inlined into outer_work"
    );
    for location in inlined {
        assert_eq!(name(location.line[1].function_id), "outer_work");
        let mix_line = location.line[0].line;
        assert!((first..=last).contains(&mix_line), "mix at line {mix_line}");
        assert_eq!(location.line[1].line, line_of("CALL_LINE"));
    }
}

#[test]
fn inlined_function_is_its_own_frame_with_file_and_line() {
    assert_inline_frames(&build("inline", &["-O2"]), &[]);
}

/// A stripped copy of the inline fixture plus its debug information in a separate file.
fn stripped_with_debug_file(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let exe = build("inline", &["-O2"]);
    let dir = output_dir().join(format!("debugfile-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let stripped = dir.join("inline-stripped");
    let debug = dir.join("inline-stripped.debug");
    let (exe, stripped_s, debug_s) = (
        exe.to_str().unwrap(),
        stripped.to_str().unwrap(),
        debug.to_str().unwrap(),
    );
    tool("objcopy", &["--only-keep-debug", exe, debug_s]);
    tool("objcopy", &["--strip-all", exe, stripped_s]);
    (stripped, debug)
}

#[test]
fn debug_info_found_by_debuglink() {
    let (stripped, debug) = stripped_with_debug_file("link");
    let link = format!("--add-gnu-debuglink={}", debug.display());
    tool("objcopy", &[&link, stripped.to_str().unwrap()]);
    assert_inline_frames(&stripped, &[]);
}

/// A stripped copy of the inline fixture whose debug file is found by build id under the
/// returned directory, for `STACKSAMPLE_DEBUG_DIRS`.
fn stripped_with_build_id_debug_file(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (stripped, debug) = stripped_with_debug_file(tag);
    let notes = tool("readelf", &["-n", stripped.to_str().unwrap()]);
    let build_id = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("fixture has no build id")
        .to_owned();
    let root = stripped.parent().unwrap().join("debug-root");
    let dir = root.join(".build-id").join(&build_id[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::rename(&debug, dir.join(format!("{}.debug", &build_id[2..]))).unwrap();
    (stripped, root)
}

#[test]
fn debug_info_found_by_build_id() {
    let (stripped, root) = stripped_with_build_id_debug_file("buildid");
    assert_inline_frames(
        &stripped,
        &[("STACKSAMPLE_DEBUG_DIRS", root.to_str().unwrap())],
    );
}

#[test]
fn inlined_functions_of_a_programs_own_dwarf_are_frames_by_default() {
    // Without STACKSAMPLE_LINES: the -g program's own DWARF names the inlined mix, without
    // files and lines.
    let (_, json) = run_with_mix_frames(&build("inline", &["-O2"]), &[]);
    let functions = json["functions"].as_array().unwrap();
    assert!(
        functions.iter().any(|f| f["name"] == "mix"),
        "{functions:?}"
    );
    assert!(
        functions.iter().all(|f| !f["file"].is_string()),
        "{functions:?}"
    );

    // The DWARF of a separate debug file is read only with STACKSAMPLE_LINES=1: its symbol
    // table names the functions, and mix stays part of outer_work.
    let (stripped, root) = stripped_with_build_id_debug_file("default");
    let dirs = ("STACKSAMPLE_DEBUG_DIRS", root.to_str().unwrap());
    let run = run(&stripped, &["200000"], &[FAST, dirs], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    let outer = folded.count(|f| f.ends_with(&["main".to_owned(), "outer_work".to_owned()]));
    assert!(
        outer as f64 >= 0.9 * folded.total() as f64,
        "{:?}",
        folded.stacks
    );
    assert_eq!(folded.count_with("mix"), 0, "{:?}", folded.stacks);
}

#[test]
fn stripped_program_frames_are_module_and_function_offset() {
    let exe = build("hot", &["-O2"]);
    let stripped = output_dir().join("hot-stripped");
    tool(
        "objcopy",
        &[
            "--strip-all",
            exe.to_str().unwrap(),
            stripped.to_str().unwrap(),
        ],
    );
    let run = run(&stripped, &["3000"], &[FAST], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    assert!(folded.count_with("?") == 0 && folded.count_with("[unknown]") == 0);
    // The leaf is burn: every address in it is named by burn's start, the file offset the
    // unstripped symbol table gives, so the whole function is one frame.
    let (start, _) = symbol_range(&exe, "burn");
    let burn = format!("hot-stripped+{start:#x}");
    let leaf_counts = |name: &str| -> u64 {
        folded
            .stacks
            .iter()
            .filter(|(frames, _)| frames.last().is_some_and(|leaf| leaf == name))
            .map(|(_, count)| count)
            .sum()
    };
    assert!(
        leaf_counts(&burn) as f64 >= 0.9 * folded.total() as f64,
        "{burn}: {:?}",
        folded.stacks
    );
}

/// File offset and size of `symbol` (for these PIE fixtures, text addresses equal offsets).
fn symbol_range(exe: &Path, symbol: &str) -> (u64, u64) {
    let table = tool("nm", &["-S", exe.to_str().unwrap()]);
    let line = table
        .lines()
        .find(|l| l.ends_with(&format!(" {symbol}")))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    (hex(fields[0]), hex(fields[1]))
}

#[test]
fn cpp_names_are_demangled() {
    let exe = build("cpp_names", &["-O2"]);
    let run = run(&exe, &["400000"], &[FAST], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    // GCC may add a clone suffix such as " [clone .isra.0]" to the caller.
    let demangled = folded.count(|frames| {
        frames.windows(2).any(|w| {
            w[0].starts_with("ns::Worker::spin(int)")
                && w[1] == "double ns::accumulate<double>(double, int)"
        })
    });
    assert!(demangled > 0, "{:?}", folded.stacks);
    assert_eq!(
        folded.count(|f| f.iter().any(|name| name.starts_with("_Z"))),
        0
    );
}

#[test]
fn rust_names_are_demangled() {
    let exe = build("rust_names", &["-Copt-level=2"]);
    let run = run(&exe, &["400000"], &[FAST], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded = run.folded();
    assert!(
        folded.count_with("rust_names::engine::Gear::turn") as f64 >= 0.8 * folded.total() as f64,
        "{:?}",
        folded.stacks
    );
    let mangled = |name: &str| {
        let hash = name.rsplit_once("::h").map(|(_, h)| h);
        let is_hash = |h: &str| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit());
        name.starts_with("_ZN") || hash.is_some_and(is_hash)
    };
    assert_eq!(folded.count(|f| f.iter().any(|n| mangled(n))), 0);
}

/// Runs the JIT fixture with `mode` (what it does with its perf map before exit), removes
/// a map it left, and checks that each of `names` is the leaf of at least `share` of the
/// samples and that no sample is `[anon]`.
fn assert_jit_named(mode: &str, names: &[&str], share: f64) {
    let exe = build("jit", &["-O2"]);
    let run = run(&exe, &["600", mode], &[FAST], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let pid = run
        .profile_file("folded")
        .to_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let _ = std::fs::remove_file(format!("/tmp/perf-{pid}.map"));
    let folded = run.folded();
    for name in names {
        let leaves = folded.count(|f| f.last().is_some_and(|leaf| leaf == name));
        assert!(
            leaves as f64 >= share * folded.total() as f64,
            "{name}: {:?}",
            folded.stacks
        );
    }
    assert_eq!(folded.count_with("[anon]"), 0, "{:?}", folded.stacks);
}

#[test]
fn jit_code_is_named_from_the_perf_map() {
    assert_jit_named("keep", &["jitted_count_down"], 0.5);
}

#[test]
fn jit_code_keeps_its_names_when_the_perf_map_is_deleted_before_exit() {
    assert_jit_named("delete", &["jitted_count_down"], 0.5);
}

#[test]
fn jit_code_is_named_from_a_rewritten_perf_map_and_what_it_said_before() {
    // The map names the first copy of the code while it runs, then only the second copy, and
    // is gone at exit: each copy's name comes from what the map said while it ran.
    let names = ["jitted_count_down", "jitted_second_copy"];
    assert_jit_named("rewrite", &names, 0.25);
}

/// Runs the dlopen fixture with `how` the plugin is opened (`absolute` or `relative`), and
/// checks that the plugin, closed before the end, keeps its function names and file name.
fn assert_unloaded_plugin_named(how: &str) {
    let exe = build("dlopen_main", &["-O2", "-ldl"]);
    let plugin = build("libplugin.so", &["-O2"]);
    let run = run(&exe, &[plugin.to_str().unwrap(), "400", how], &[FAST], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let folded: Folded = run.folded();
    assert!(
        folded.count_chain(&["main", "plugin_spin"]) >= 100,
        "{:?}",
        folded.stacks
    );
    assert!(folded.count_with("main_after_close") >= 10);
    let report = run.report();
    assert_eq!(
        report.functions["plugin_spin"].2,
        plugin.file_name().unwrap().to_str().unwrap()
    );
}

/// Runs the fixture `name` built with -O2, every thread sampled at 1 kHz; it must exit 0.
fn profile_every_thread(name: &str, args: &[&str]) -> Run {
    let exe = build(name, &["-O2"]);
    let run = run(&exe, args, &[FAST, ("STACKSAMPLE_TID", "all")], true);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    run
}

#[test]
fn unloaded_library_keeps_its_names() {
    assert_unloaded_plugin_named("absolute");
}

#[test]
fn library_opened_by_relative_path_is_named_after_a_chdir() {
    assert_unloaded_plugin_named("relative");
}

#[test]
fn libc_internals_are_named_from_the_installed_debug_file() {
    // scripts/install-deps.sh installs libc6-dbg: the symbol table of libc's debug file
    // names what the stripped libc.so.6 leaves unnamed.
    let run = profile_every_thread("alloc_storm", &["2", "0.5"]);
    let report = run.report();
    let libc = |name: &str| {
        report
            .functions
            .get(name)
            .is_some_and(|row| row.2 == "libc.so.6" && row.0 > 0)
    };
    for name in ["_int_malloc", "start_thread", "__libc_start_call_main"] {
        assert!(libc(name), "{name} not named in\n{}", report.text);
    }
    // What is left unnamed is code no symbol covers (the PLT): a stray sample or two.
    let unnamed: u64 = report
        .functions
        .iter()
        .filter(|(name, _)| name.starts_with("libc.so.6+"))
        .map(|(_, row)| row.1)
        .sum();
    assert!(unnamed * 100 <= report.samples(), "{}", report.text);
}

#[test]
fn libc_functions_have_the_names_people_call() {
    // libc's allocator functions each have several symbols at one address; the profile
    // names them as the program calls them.
    let run = profile_every_thread("alloc_storm", &["1", "0.5"]);
    let folded = run.folded();
    for name in ["malloc", "free", "realloc"] {
        assert!(folded.count_with(name) > 0, "{name}: {:?}", folded.stacks);
    }
    let internal = [
        "__libc_malloc",
        "__malloc",
        "__GI___libc_malloc",
        "__libc_free",
        "__free",
        "__GI___libc_free",
        "cfree",
        "cfree@GLIBC_2.2.5",
        "__libc_realloc",
        "__realloc",
        "__GI___libc_realloc",
    ];
    let aliased = folded.count(|frames| frames.iter().any(|f| internal.contains(&f.as_str())));
    assert_eq!(aliased, 0, "{:?}", folded.stacks);
    let report = run.report();
    assert!(
        internal
            .iter()
            .all(|name| !report.functions.contains_key(*name)),
        "{}",
        report.text
    );
}

#[test]
fn thread_stacks_start_at_clone3_and_start_thread() {
    // The kernel starts a thread in libc's clone3, which calls start_thread, which calls the
    // thread's function: names from libc's debug file, and the stacks count as complete.
    let run = profile_every_thread("threads", &["400", "50"]);
    let folded = run.folded();
    let in_worker = folded.count_with("worker_spin");
    assert!(in_worker >= 100, "{:?}", folded.stacks);
    let root = ["clone3", "start_thread", "worker", "worker_spin"];
    let from_thread_start = folded.count(|frames| frames.starts_with(&root.map(String::from)));
    assert_eq!(from_thread_start, in_worker, "{:?}", folded.stacks);
    let report = run.report();
    assert!(
        report.number("incomplete") * 100 <= report.samples(),
        "{}",
        report.text
    );
}
