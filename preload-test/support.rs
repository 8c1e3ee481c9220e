//! Shared helpers: build a C fixture, run it under `LD_PRELOAD`, read the files it wrote.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// `libstacksample.so` built with this test binary. Cargo rebuilds it in `deps/` beside the
/// test, but copies it up to `target/<profile>/` only for `cargo build`, so that copy can be
/// stale.
pub fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libstacksample.so");
    assert!(lib.is_file(), "{} not built", lib.display());
    lib
}

static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Held by tests that keep both cores busy for seconds (the Python truth program) and by
/// tests that need the sampler on time (10,000 threads): run together, the second misses.
pub static BUSY_CORES: Mutex<()> = Mutex::new(());

/// Compiles `programs/<name>.c` (or `.cpp` with c++, `.rs` with rustc) with `flags` and
/// debug information, once per process, and returns the executable. An assembly file
/// `programs/<name>.S` beside the C file is assembled and linked in too.
pub fn build(name: &str, flags: &[&str]) -> PathBuf {
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("preload-test/programs");
    let tag: String = flags.concat().replace(['-', '=', ' ', '/', ',', '.'], "");
    let (compiler, source, extra): (&str, PathBuf, &[&str]) = if name.ends_with(".so") {
        let stem = name.trim_start_matches("lib").trim_end_matches(".so");
        (
            "cc",
            programs.join(format!("{stem}.c")),
            &["-shared", "-fPIC", "-g"],
        )
    } else if programs.join(format!("{name}.cpp")).exists() {
        ("c++", programs.join(format!("{name}.cpp")), &["-g"])
    } else if programs.join(format!("{name}.rs")).exists() {
        (
            "rustc",
            programs.join(format!("{name}.rs")),
            &["-g", "--edition", "2021"],
        )
    } else {
        (
            "cc",
            programs.join(format!("{name}.c")),
            &["-g", "-lpthread"],
        )
    };
    let out = output_dir().join(if name.ends_with(".so") {
        name.replace(".so", &format!("{tag}.so"))
    } else {
        format!("{name}{tag}")
    });
    let assembly = source.with_extension("S");
    let assembly = (compiler == "cc" && assembly.exists()).then_some(assembly);
    let mut built = BUILT.lock().unwrap();
    if !built.contains(&out) {
        let status = Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&source)
            .args(assembly)
            .args(extra)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {compiler} ({e}): see scripts/install-deps.sh"));
        assert!(
            status.success(),
            "{compiler} failed for {}",
            source.display()
        );
        built.push(out.clone());
    }
    out
}

/// Where built fixtures go.
pub fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a tool and returns its stdout, failing the test with its stderr otherwise.
pub fn tool(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): see scripts/install-deps.sh"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A finished run in its own directory.
pub struct Run {
    pub output: Output,
    pub dir: tempfile::TempDir,
}

/// Runs `exe args` in a fresh directory; `preload` adds the library to `LD_PRELOAD`.
pub fn run(exe: &Path, args: &[&str], env: &[(&str, &str)], preload: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(exe);
    command
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null());
    configure(&mut command, env, preload);
    let output = command.output().unwrap();
    Run { output, dir }
}

/// Sets the environment: no inherited `STACKSAMPLE_*`, then `env`, then the preload.
pub fn configure(command: &mut Command, env: &[(&str, &str)], preload: bool) {
    for (key, _) in std::env::vars() {
        if key.starts_with("STACKSAMPLE_") || key == "LD_PRELOAD" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    if preload {
        command.env("LD_PRELOAD", library());
    }
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Files in the run directory whose names start with `prefix`, and in the directory
    /// `stacksample record` made in it.
    pub fn files(&self, prefix: &str) -> Vec<PathBuf> {
        files_in(self.dir.path(), prefix)
    }

    /// The one profile file `stacksample.<pid>.<suffix>` (suffix `txt`, `pb.gz`, ...).
    pub fn profile_file(&self, suffix: &str) -> PathBuf {
        let files: Vec<PathBuf> = self
            .files("stacksample.")
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                let rest = name.trim_start_matches("stacksample.");
                rest.split_once('.').is_some_and(|(pid, tail)| {
                    pid.chars().all(|c| c.is_ascii_digit()) && tail == suffix
                })
            })
            .collect();
        assert_eq!(
            files.len(),
            1,
            "expected one .{suffix}: {files:?}\n{}",
            self.stderr()
        );
        files[0].clone()
    }

    pub fn folded(&self) -> Folded {
        Folded::read(&self.profile_file("folded"))
    }

    pub fn report(&self) -> Report {
        Report::read(&self.profile_file("txt"))
    }
}

/// Files in `dir` whose names start with `prefix`, and in `dir`'s `stacksample-<pid>/` run
/// directories.
pub fn files_in(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let entries = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let mut files = Vec::new();
    for path in entries(dir) {
        if path.is_dir() && name(&path).starts_with("stacksample-") {
            files.extend(
                entries(&path)
                    .into_iter()
                    .filter(|p| name(p).starts_with(prefix)),
            );
        } else if name(&path).starts_with(prefix) {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A parsed `.folded` file.
#[derive(Debug)]
pub struct Folded {
    pub stacks: Vec<(Vec<String>, u64)>,
}

impl Folded {
    pub fn read(path: &Path) -> Folded {
        let text = std::fs::read_to_string(path).unwrap();
        Folded::parse(&text)
    }

    pub fn parse(text: &str) -> Folded {
        let stacks = text
            .lines()
            .map(|line| {
                let (stack, count) = line.rsplit_once(' ').expect("folded line without count");
                let frames = stack.split(';').map(str::to_owned).collect();
                (frames, count.parse().expect("count"))
            })
            .collect();
        Folded { stacks }
    }

    pub fn total(&self) -> u64 {
        self.stacks.iter().map(|(_, c)| c).sum()
    }

    /// Samples whose stack satisfies `pred`.
    pub fn count(&self, pred: impl Fn(&[String]) -> bool) -> u64 {
        self.stacks
            .iter()
            .filter(|(frames, _)| pred(frames))
            .map(|(_, c)| c)
            .sum()
    }

    /// Samples whose stack has `chain` as consecutive frames.
    pub fn count_chain(&self, chain: &[&str]) -> u64 {
        self.count(|frames| frames.windows(chain.len()).any(|w| w == chain))
    }

    /// Samples with `function` anywhere on the stack.
    pub fn count_with(&self, function: &str) -> u64 {
        self.count(|frames| frames.iter().any(|f| f == function))
    }

    pub fn ratio_with(&self, function: &str) -> f64 {
        self.count_with(function) as f64 / self.total().max(1) as f64
    }
}

/// A parsed `.txt` report: header fields, the function tables, and per-thread tables.
#[derive(Debug)]
pub struct Report {
    pub text: String,
    pub header: HashMap<String, Vec<String>>,
    /// function -> (total, self, module)
    pub functions: HashMap<String, (u64, u64, String)>,
    /// thread label (`name (tid)`) -> that thread's function table
    pub threads: HashMap<String, HashMap<String, (u64, u64, String)>>,
}

/// Where [`Report::parse`] is.
enum Section {
    Title,
    Counters,
    /// A function table; `self_first` once its column line was read.
    Table {
        self_first: Option<bool>,
    },
}

impl Report {
    pub fn read(path: &Path) -> Report {
        Report::parse(&std::fs::read_to_string(path).unwrap())
    }

    /// Sections: `## functions by ...` tables (main, or of the `## thread` above them),
    /// `## counters` (`key: value` lines).
    pub fn parse(text: &str) -> Report {
        let mut header: HashMap<String, Vec<String>> = HashMap::new();
        let mut functions = HashMap::new();
        let mut threads: HashMap<String, HashMap<String, (u64, u64, String)>> = HashMap::new();
        let mut thread: Option<String> = None;
        let mut section = Section::Title;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("## thread ") {
                let label = rest.rsplit_once(':').unwrap().0.to_owned();
                threads.insert(label.clone(), HashMap::new());
                thread = Some(label);
                section = Section::Title;
                continue;
            }
            if line == "## counters" {
                section = Section::Counters;
                continue;
            }
            if line.starts_with("## functions by ") {
                section = Section::Table { self_first: None };
                continue;
            }
            match &mut section {
                Section::Title => {}
                Section::Counters => {
                    if let Some((key, value)) = line.split_once(':') {
                        let entry = header.entry(key.trim().to_owned()).or_default();
                        entry.push(value.trim().to_owned());
                    }
                }
                Section::Table { self_first } => match self_first {
                    _ if line.trim().is_empty() => {}
                    None => *self_first = Some(line.trim_start().starts_with("self")),
                    Some(self_first) => {
                        let row = parse_row(line, *self_first);
                        match &thread {
                            None => functions.insert(row.0, row.1),
                            Some(label) => threads.get_mut(label).unwrap().insert(row.0, row.1),
                        };
                    }
                },
            }
        }
        Report {
            text: text.to_owned(),
            header,
            functions,
            threads,
        }
    }

    pub fn field(&self, key: &str) -> &str {
        &self
            .header
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in\n{}", self.text))[0]
    }

    /// First number in a header field.
    pub fn number(&self, key: &str) -> u64 {
        let field = self.field(key);
        let digits: String = field.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().unwrap_or_else(|_| panic!("{key}: {field}"))
    }

    /// `(label, samples)` of each `thread:` header line (`tid (name): N samples...`).
    pub fn thread_samples(&self) -> Vec<(String, u64)> {
        self.header["thread"]
            .iter()
            .map(|line| {
                let (label, rest) = line.split_once(": ").unwrap();
                let count = rest.split(' ').next().unwrap().parse().unwrap();
                (label.to_owned(), count)
            })
            .collect()
    }

    /// Samples of the thread named `name` (its `thread:` line says `tid (name): N samples`);
    /// 0 if no thread has that name.
    pub fn samples_of_thread(&self, name: &str) -> u64 {
        let label = format!("({name})");
        self.thread_samples()
            .into_iter()
            .find(|(thread, _)| thread.ends_with(&label))
            .map_or(0, |(_, n)| n)
    }

    /// Samples in the profile (the `samples:` line).
    pub fn samples(&self) -> u64 {
        self.number("samples")
    }

    /// The number a header line gives for `label`, as `label: N` or `N label`: in
    /// `missed: 3 (... sampler behind schedule: 1, ...)`, `detail("missed", "sampler behind
    /// schedule")` is 1.
    pub fn detail(&self, key: &str, label: &str) -> u64 {
        let field = self.field(key);
        let (before, after) = field
            .split_once(label)
            .unwrap_or_else(|| panic!("no {label} in {key}: {field}"));
        let digits: String = match after.strip_prefix(": ") {
            Some(rest) => rest.chars().take_while(|c| c.is_ascii_digit()).collect(),
            None => {
                let number = before
                    .trim_end()
                    .rsplit([' ', ';', '('])
                    .next()
                    .unwrap_or("");
                number.to_owned()
            }
        };
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{key}: {label}: {field}"))
    }
}

impl Report {
    /// The numbers of a `## counters` line, in order: `requested: 9 thread ticks = 8 taken
    /// + 1 missed` gives [9, 8, 1].
    pub fn numbers(&self, key: &str) -> Vec<u64> {
        self.field(key)
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect()
    }

    /// Every sum the counters state holds: requested = taken + missed, taken = answered +
    /// blocked, signals sent = answered + unanswered, in profile = taken - dropped (- still on
    /// the way), and the reasons of `missed` and `dropped` add up to their totals.
    pub fn assert_counters_add_up(&self) {
        let text = &self.text;
        let requested = self.numbers("requested");
        assert_eq!(requested[0], requested[1] + requested[2], "{text}");
        let taken = self.numbers("taken");
        assert_eq!(taken[0], requested[1], "{text}");
        assert_eq!(taken[0], taken[1] + taken[2] + taken[3], "{text}");
        let signals = self.numbers("signals");
        assert_eq!(signals[0], signals[1] + signals[2], "{text}");
        assert_eq!(signals[1], taken[1], "{text}");
        // `samples: N in profile = T taken - D dropped [- W still on the way to the drain]`:
        // a profile written while sampling (at a dump, or before an exec) may miss a batch.
        let samples = self.numbers("samples");
        assert_eq!(samples[1], taken[0], "{text}");
        let on_the_way = samples.get(3).copied().unwrap_or(0);
        assert_eq!(samples[0] + samples[2] + on_the_way, samples[1], "{text}");
        for (key, total) in [("missed", requested[2]), ("dropped", samples[2])] {
            let reasons = self.numbers(key);
            assert_eq!(reasons[0], total, "{text}");
            assert_eq!(reasons[1..].iter().sum::<u64>(), total, "{text}");
        }
    }
}

/// `total total% self self%  function  [module]`, or self first.
fn parse_row(line: &str, self_first: bool) -> (String, (u64, u64, String)) {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let rest = line.splitn(3, '%').nth(2).unwrap_or_default().trim();
    let (function, module) = rest.rsplit_once("  [").expect("module column");
    let (a, b) = (fields[0].parse().unwrap(), fields[2].parse().unwrap());
    let (total, self_count) = if self_first { (b, a) } else { (a, b) };
    (
        function.to_owned(),
        (total, self_count, module.trim_end_matches(']').to_owned()),
    )
}

/// Seconds for the cases that scale with time: short in the default run, the full length
/// in `scripts/soak.sh`.
pub fn seconds(short: f64, long: f64) -> String {
    let long_run = std::env::var_os("STACKSAMPLE_GAUNTLET_LONG").is_some_and(|v| v == "1");
    format!("{}", if long_run { long } else { short })
}

/// CPU mode for fixtures that only compute: on a machine busy with other work a thread that
/// gets under half a CPU looks mostly blocked to wall mode, which then skips it between calls
/// (docs/limits.md); these cases are about the handler, not that choice.
pub const CPU_MODE: (&str, &str) = ("STACKSAMPLE_MODE", "cpu");

/// Exit 0, exactly `stdout`, and no `stacksample:` line on stderr.
pub fn assert_clean_exit(run: &Run, stdout: &str) {
    assert_eq!(
        (run.code(), run.stdout().as_str()),
        (Some(0), stdout),
        "signal {:?}; stderr:\n{}",
        run.output.status.signal(),
        run.stderr()
    );
    assert!(!run.stderr().contains("stacksample:"), "{}", run.stderr());
}
