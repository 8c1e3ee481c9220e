#!/usr/bin/env python3
"""What profiling costs a program, and whether its stacks are right: stacksample next to
gperftools' libprofiler.so and perf record, on the same workloads in the same run.

Run it through scripts/bench.sh, which installs the profilers first. Every workload from
preload-test/programs/ runs plain and under every profiler configuration, interleaved (plain,
config 1, config 2, ..., plain, config 1, ...) so that machine noise hits all of them alike;
figures are medians over the runs. Each program runs under bench-timeit (timeit.c), which
measures the program's own wall time, CPU time and peak RSS, and preloads the profiler into
the program only. The whole command's CPU time (for perf including the perf record process)
comes from wait4.

Environment (all optional):
  BENCH_RUNS=5            runs per configuration and workload
  BENCH_RATES=100,1000,10000
  BENCH_PROFILERS=stacksample,gperftools,perf
  BENCH_WORKLOADS=hot,deep,libc,python,threads16,depth10,depth50
  BENCH_STARTUP_ROUNDS=5  rounds of /bin/true runs, each on idle CPUs, for the per-process cost
  BENCH_STARTUP_RUNS=40   /bin/true runs per round, plain and preloaded, interleaved
  BENCH_STARTUP_DIR=/dev/shm  where those runs write their profiles
  BENCH_OUTPUT=scripts/bench-results.md
  BENCH_BASELINE_LIB=PATH another build of libstacksample.so (an earlier commit's), run in
                          wall mode at every rate, interleaved with this one ("baseline" rows)
"""

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "preload-test" / "programs"
LIB = ROOT / "target" / "release" / "libstacksample.so"
FLOOR_TARGET = ROOT / "target" / "bench-floor"
FLOOR_LIB = FLOOR_TARGET / "release" / "libstacksample.so"
LIBPROFILER = Path("/usr/lib/x86_64-linux-gnu/libprofiler.so.0")
PYTHON_LOOP = (
    "import os, time\n"
    "def work(n):\n"
    "    total = 0\n"
    "    for i in range(n):\n"
    "        total += (i * 7) % 13\n"
    "    return total\n"
    "def loop(rounds):\n"
    "    return sum(work(20000) for _ in range(rounds))\n"
    "result = loop(int(os.environ.get('BENCH_PYTHON_ROUNDS', '100')))\n"
    "if 'BENCH_END_STAMP' in os.environ:\n"
    "    with open(os.environ['BENCH_END_STAMP'], 'w') as stamp:\n"
    "        print(time.time_ns(), time.thread_time_ns(), file=stamp)\n"
    "print('done', result % 2)\n"
)


def die(message):
    sys.exit(f"bench: {message}")


def env_list(name, default):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


@dataclass
class Workload:
    name: str
    what: str
    argv: list
    # A stack is complete when it holds one of these frames: main, or the process's or a
    # thread's first (a sample in exit(), after main returned, is complete without main).
    roots: tuple = ("main", "_start", "start_thread")
    # Known split of the work: function -> percent of the samples whose stack holds it.
    split: dict = field(default_factory=dict)
    # Extra STACKSAMPLE_* settings for this workload.
    settings: dict = field(default_factory=dict)
    # perf and gperftools: the thread whose samples count (perf filters by comm).
    comm: str = ""
    # Profiler families that run on it (None: all).
    families: tuple = None
    env: dict = field(default_factory=dict)


# Configurations that preload a build of this library.
STACKSAMPLE_FAMILIES = ("stacksample", "baseline", "floor")


@dataclass
class Config:
    family: str  # plain, stacksample, baseline, floor, gperftools, perf-fp, perf-dwarf
    hz: int = 0
    mode: str = ""  # stacksample: wall or cpu
    note: str = ""  # why it does not run, if it does not

    @property
    def label(self):
        if self.family == "plain":
            return "plain"
        names = {
            "stacksample": f"stacksample {self.mode}",
            "baseline": f"baseline {self.mode}",
            "floor": "empty signal (floor)",
            "gperftools": "gperftools",
            "perf-fp": "perf -g",
            "perf-dwarf": "perf dwarf",
        }
        return f"{names[self.family]} {self.hz} Hz"


@dataclass
class Run:
    wall: float
    cpu: float
    # CPU time of the sampled thread (the one that writes the end stamp).
    thread_cpu: float
    command_cpu: float
    rss_kib: int
    bytes: int = 0
    to_disk_ms: float = None
    taken: int = None
    requested: int = None
    in_profile: int = None
    complete: float = None
    deepest: int = None
    attribution_pp: float = None
    handler_median_us: float = None
    handler_p99_us: float = None
    handler_share: float = None


def build(scratch):
    """The library (normal and floor builds), the fixtures and bench-timeit."""
    print("building...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--features", "bench-floor",
                    "--target-dir", str(FLOOR_TARGET)], cwd=ROOT, check=True)
    fixtures = {
        "hot": "hot.c",
        "recurse": "recurse.c",
        "libc_time": "libc_time.c",
        "sixteen_threads": "sixteen_threads.c",
    }
    binaries = {}
    for name, source in fixtures.items():
        binaries[name] = scratch / name
        subprocess.run(["cc", "-O2", "-fomit-frame-pointer", "-g", "-pthread", "-o",
                        str(binaries[name]), str(PROGRAMS / source)], check=True)
    binaries["timeit"] = scratch / "bench-timeit"
    subprocess.run(["cc", "-O2", "-o", str(binaries["timeit"]),
                    str(Path(__file__).with_name("timeit.c"))], check=True)
    return binaries


def workloads(binaries):
    python = shutil.which("python3") or die("python3 not found")
    python = os.path.realpath(python)
    every = [
        Workload("hot", "hot.c, -O2 -fomit-frame-pointer: hot_a/b/c do 50/30/20% of the work",
                 [binaries["hot"], "8000"], split={"hot_a": 50, "hot_b": 30, "hot_c": 20},
                 comm="hot"),
        Workload("deep", "recurse.c at depth 500, -fomit-frame-pointer (stacksample with"
                 " STACKSAMPLE_MAXDEPTH=1024)", [binaries["recurse"], "500", "400"],
                 settings={"STACKSAMPLE_MAXDEPTH": "1024"}, comm="recurse"),
        Workload("libc", "libc_time.c: qsort calling back into the program, large memcpy",
                 [binaries["libc_time"], "30"], comm="libc_time"),
        Workload("python", "python3 running a pure-Python loop (its `main` is inlined into"
                 " `Py_BytesMain`)", [python, "-c", PYTHON_LOOP],
                 roots=("Py_BytesMain", "_start", "start_thread"),
                 env={"BENCH_PYTHON_ROUNDS": "120"}, comm=Path(python).name[:15]),
        Workload("threads16", "16 threads with the same work; stacksample samples main only,"
                 " perf and gperftools all 16 (perf rows count main's samples)",
                 [binaries["sixteen_threads"], "100000"], comm="sixteen_threads"),
        Workload("depth10", "recurse.c at depth 6: stacks of 10 frames, for handler time",
                 [binaries["recurse"], "6", "400"], comm="recurse",
                 families=("plain",) + STACKSAMPLE_FAMILIES),
        Workload("depth50", "recurse.c at depth 46: stacks of 50 frames, for handler time",
                 [binaries["recurse"], "46", "400"], comm="recurse",
                 families=("plain",) + STACKSAMPLE_FAMILIES),
    ]
    wanted = env_list("BENCH_WORKLOADS", ",".join(w.name for w in every))
    unknown = set(wanted) - {w.name for w in every}
    if unknown:
        die(f"BENCH_WORKLOADS: unknown {sorted(unknown)}")
    return [w for w in every if w.name in wanted]


def check_tool(argv, scratch, what):
    """Empty when the command works, else a note saying why it does not."""
    result = subprocess.run(argv, cwd=scratch, capture_output=True, text=True)
    if result.returncode == 0:
        return ""
    lines = [line for line in result.stderr.splitlines() if line.strip()
             and not line.startswith("[ perf record")]
    return f"unavailable: {what} failed: {lines[0] if lines else result.returncode}"


def configs(binaries, scratch):
    rates = [int(r) for r in env_list("BENCH_RATES", "100,1000,10000")]
    profilers = env_list("BENCH_PROFILERS", "stacksample,gperftools,perf")
    result = [Config("plain")]
    if "stacksample" in profilers:
        for mode in ("wall", "cpu"):
            result += [Config("stacksample", hz, mode) for hz in rates]
        if os.environ.get("BENCH_BASELINE_LIB"):
            result += [Config("baseline", hz, "wall") for hz in rates]
        result.append(Config("floor", max(rates), "wall"))
    if "gperftools" in profilers:
        note = "" if LIBPROFILER.exists() else f"unavailable: {LIBPROFILER} not installed"
        result += [Config("gperftools", hz, note=note) for hz in rates]
    if "perf" in profilers:
        probe = [str(binaries["hot"]), "1"]
        fp_note = check_tool(["perf", "record", "-q", "-e", "cpu-clock", "-F", "100", "-g", "-o",
                              "probe.data", "--"] + probe, scratch, "perf record -g")
        dwarf_note = fp_note or check_tool(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "100", "--call-graph", "dwarf",
             "-o", "probe.data", "--"] + probe, scratch, "perf record --call-graph dwarf")
        result += [Config("perf-fp", hz, note=fp_note) for hz in rates]
        result += [Config("perf-dwarf", hz, note=dwarf_note) for hz in rates]
    return result


def run_once(workload, config, index, binaries, scratch):
    directory = scratch / f"{workload.name}-{config.family}-{config.mode}-{config.hz}-{index}"
    directory.mkdir()
    times, stamp = directory / "times", directory / "end-stamp"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STACKSAMPLE_", "CPUPROFILE", "LD_PRELOAD"))}
    env.update(workload.env)
    env["BENCH_END_STAMP"] = str(stamp)
    command = [str(binaries["timeit"]), str(times)] + [str(a) for a in workload.argv]
    if config.family in STACKSAMPLE_FAMILIES:
        libraries = {"floor": FLOOR_LIB, "baseline": os.environ.get("BENCH_BASELINE_LIB")}
        env["BENCH_CHILD_PRELOAD"] = str(libraries.get(config.family, LIB))
        env["STACKSAMPLE_INTERVAL"] = f"{1_000_000 / config.hz:g}us"
        env["STACKSAMPLE_MODE"] = config.mode
        env["STACKSAMPLE_OUTPUT"] = str(directory / "profile")
        env.update(workload.settings)
    elif config.family == "gperftools":
        env["BENCH_CHILD_PRELOAD"] = str(LIBPROFILER)
        env["CPUPROFILE"] = str(directory / "gperftools.prof")
        env["CPUPROFILE_FREQUENCY"] = str(config.hz)
    elif config.family.startswith("perf-"):
        graph = ["-g"] if config.family == "perf-fp" else ["--call-graph", "dwarf"]
        command = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(config.hz)] + graph + [
            "-o", str(directory / "perf.data"), "--"] + command
    with open(directory / "stdout", "wb") as out, open(directory / "stderr", "wb") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        ended_ns = time.time_ns()
        child.returncode = os.waitstatus_to_exitcode(status)
    stdout = (directory / "stdout").read_text()
    if child.returncode != 0 or not stdout.startswith("done"):
        sys.stderr.write((directory / "stderr").read_text())
        die(f"{directory.name}: {shlex.join(command)} exited with {child.returncode},"
            f" output {stdout!r}")
    wall, user, system, rss = (directory / "times").read_text().split()
    end_ns, thread_cpu_ns = (int(v) for v in stamp.read_text().split())
    run = Run(wall=float(wall), cpu=float(user) + float(system), thread_cpu=thread_cpu_ns / 1e9,
              command_cpu=usage.ru_utime + usage.ru_stime, rss_kib=int(rss))
    # File times are too coarse (the kernel's tick); every profiler here has its profile on
    # disk when the command has ended, so that moment counts.
    run.to_disk_ms = (ended_ns - end_ns) / 1e6
    return directory, run


# --- reading the profiles -------------------------------------------------------------------

SAMPLES = re.compile(r"^samples:\s+(\d+) in profile, (\d+) taken of (\d+) requested$", re.M)
HANDLER = re.compile(r"^handler time: median ([\d.]+) us, p99 ([\d.]+) us, max [\d.]+ us;"
                     r" total [\d.]+ ms, ([\d.]+)% of", re.M)
GPERF_TAKEN = re.compile(r"PROFILE: interrupts/evictions/bytes = (\d+)/")
ADDRESS_SUFFIX = re.compile(r"<[0-9a-f]+>$")


def read_folded(path):
    """(count, frames root first) per line of a folded file."""
    stacks = []
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            frames = [ADDRESS_SUFFIX.sub("", f) for f in stack.split(";")]
            stacks.append((int(count), [f for f in frames if f != "[truncated]"]))
    return stacks


def read_stacksample(directory, run):
    text = next(directory.glob("profile*.txt")).read_text()
    samples, handler = SAMPLES.search(text), HANDLER.search(text)
    if not samples:
        die(f"{directory}: no samples: line in the report")
    run.taken, run.requested = int(samples[2]), int(samples[3])
    if handler:
        run.handler_median_us, run.handler_p99_us = float(handler[1]), float(handler[2])
        run.handler_share = float(handler[3])
    return read_folded(next(directory.glob("profile*.folded")))


def read_gperftools(directory, run, program):
    profile = directory / "gperftools.prof"
    taken = GPERF_TAKEN.search((directory / "stderr").read_text())
    run.taken = int(taken[1]) if taken else None
    collapsed = directory / "gperftools.folded"
    with open(collapsed, "w") as out:
        subprocess.run(["google-pprof", "--collapsed", str(program), str(profile)], stdout=out,
                       stderr=subprocess.DEVNULL, check=True)
    return read_folded(collapsed)


def read_perf(directory, run, comm):
    """Stacks of the samples of thread `comm` in perf script output."""
    result = subprocess.run(["perf", "script", "-F", "comm,ip,sym", "-i",
                             str(directory / "perf.data")], capture_output=True, text=True)
    if result.returncode != 0:
        die(f"perf script -i {directory}/perf.data failed: {result.stderr.strip()}")
    stacks, frames, ours = [], [], False
    for line in result.stdout.splitlines() + [""]:
        if line and line[0].isspace():
            fields = line.split(None, 1)
            if ours:
                frames.append(fields[1].strip() if len(fields) > 1 else "[unknown]")
            continue
        if ours:
            stacks.append((1, list(reversed(frames))))
        ours, frames = line.strip() == comm, []
    run.taken = len(stacks)
    return stacks


def profile_files(directory, config):
    if config.family in STACKSAMPLE_FAMILIES:
        return list(directory.glob("profile*"))
    if config.family == "gperftools":
        return [directory / "gperftools.prof"]
    if config.family.startswith("perf-"):
        return [directory / "perf.data"]
    return []


def analyse(workload, config, directory, run):
    """Fills in what the profile says: samples, completeness, depth, attribution."""
    if config.family == "plain":
        return
    run.bytes = sum(f.stat().st_size for f in profile_files(directory, config))
    if config.family in STACKSAMPLE_FAMILIES:
        stacks = read_stacksample(directory, run)
    elif config.family == "gperftools":
        stacks = read_gperftools(directory, run, workload.argv[0])
    else:
        stacks = read_perf(directory, run, workload.comm)
    if config.family == "floor":
        return
    total = sum(count for count, _ in stacks)
    run.in_profile = total
    if total == 0:
        return
    run.complete = sum(c for c, f in stacks if any(r in f for r in workload.roots)) / total
    run.deepest = max(len(f) for _, f in stacks)
    if workload.split:
        errors = []
        for function, expected in workload.split.items():
            share = 100 * sum(c for c, f in stacks if function in f) / total
            errors.append(abs(share - expected))
        run.attribution_pp = max(errors)


def kernel_tick_rate():
    """CONFIG_HZ from the kernel's config, which bounds ITIMER_PROF-based profilers."""
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as config:
                for line in config:
                    if line.startswith("CONFIG_HZ="):
                        return f"{line.split('=', 1)[1].strip()} Hz (CONFIG_HZ, {path})"
        except OSError:
            continue
    return "unknown (no kernel config readable)"


# --- the per-process cost --------------------------------------------------------------------

def cpu_idle_share(seconds):
    """Share of CPU time that was idle over the next `seconds`."""
    def sample():
        fields = list(map(int, open("/proc/stat").readline().split()[1:]))
        return sum(fields), fields[3] + fields[4]
    total_before, idle_before = sample()
    time.sleep(seconds)
    total, idle = sample()
    return (idle - idle_before) / max(1, total - total_before)


def startup_cost(scratch):
    """Added wall time of /bin/true with the library preloaded: rounds of interleaved runs
    (plain, preloaded, plain, ...), each round started once the CPUs were idle for 2 s (a
    process costs well under a millisecond, so any other work on the machine swamps it);
    the median over rounds of each round's median."""
    rounds = int(os.environ.get("BENCH_STARTUP_ROUNDS", "5"))
    runs = int(os.environ.get("BENCH_STARTUP_RUNS", "40"))
    # The files go to BENCH_STARTUP_DIR: on this VM's ext4 creating a file costs 65-270 us
    # depending on how many were just deleted, which would swamp the library's own cost.
    directory = Path(tempfile.mkdtemp(prefix="startup-", dir=os.environ.get(
        "BENCH_STARTUP_DIR", "/dev/shm" if Path("/dev/shm").is_dir() else scratch)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSAMPLE_")}
    preloaded = dict(env, LD_PRELOAD=str(LIB), STACKSAMPLE_OUTPUT=str(directory / "p-%p"))
    plain_ms, loaded_ms = [], []
    give_up = time.monotonic() + 600
    while len(plain_ms) < rounds and (not plain_ms or time.monotonic() < give_up):
        if cpu_idle_share(2) < 0.93 and time.monotonic() < give_up:
            continue
        times = {"plain": [], "preloaded": []}
        for _ in range(runs):
            for name, environment in (("plain", env), ("preloaded", preloaded)):
                started = time.perf_counter()
                subprocess.run(["/bin/true"], env=environment, check=True)
                times[name].append(time.perf_counter() - started)
        plain_ms.append(median(times["plain"]) * 1e3)
        loaded_ms.append(median(times["preloaded"]) * 1e3)
    written = len(list(directory.glob("p-*.txt")))
    shutil.rmtree(directory)
    return len(plain_ms) * runs, median(plain_ms), median(loaded_ms), written


# --- the report ------------------------------------------------------------------------------

def fmt(value, spec, suffix=""):
    return "-" if value is None else f"{value:{spec}}{suffix}"


def summarise(runs, key):
    values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
    return median(values) if values else None


def table(workload, configs_, results):
    plain = results[(workload.name, "plain")]
    plain_wall, plain_cpu = summarise(plain, "wall"), summarise(plain, "cpu")
    plain_command, plain_rss = summarise(plain, "command_cpu"), summarise(plain, "rss_kib")
    lines = [
        f"### {workload.name}: {workload.what}",
        "",
        "| profiler | wall ratio | thread CPU ratio | process CPU ratio | command CPU ratio"
        " | samples (% of rate x wall) | complete stacks | attribution error pp | deepest"
        " | RSS added MiB | bytes written | to disk ms | handler median / p99 us"
        " | handler % of thread CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for config in configs_:
        key = (workload.name, config.label)
        if config.note or key not in results:
            if config.note:
                lines.append(f"| {config.label} | {config.note} |" + " |" * 12)
            continue
        runs = results[key]
        wall, cpu = summarise(runs, "wall"), summarise(runs, "cpu")
        taken = summarise(runs, "taken")
        expected = config.hz * wall if config.hz else None
        samples = "-" if taken is None else f"{taken:,.0f} ({100 * taken / expected:.0f}%)"
        median_us, p99_us = summarise(runs, "handler_median_us"), summarise(runs, "handler_p99_us")
        handler = "-" if median_us is None else f"{median_us:.2f} / {p99_us:.2f}"
        cells = [
            config.label,
            f"{wall / plain_wall:.3f}",
            f"{summarise(runs, 'thread_cpu') / summarise(plain, 'thread_cpu'):.3f}",
            f"{cpu / plain_cpu:.3f}",
            f"{summarise(runs, 'command_cpu') / plain_command:.3f}",
            samples if config.family != "plain" else "-",
            fmt(summarise(runs, "complete"), ".1%"),
            fmt(summarise(runs, "attribution_pp"), ".1f"),
            fmt(summarise(runs, "deepest"), ".0f"),
            f"{(summarise(runs, 'rss_kib') - plain_rss) / 1024:.1f}"
            if config.family != "plain" else "-",
            fmt(summarise(runs, "bytes"), ",.0f") if config.family != "plain" else "-",
            fmt(summarise(runs, "to_disk_ms"), ".1f"),  # plain: the process exit alone
            handler,
            fmt(summarise(runs, "handler_share"), ".3f", "%"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def overhead(results, workload, label, key):
    """Median extra CPU seconds of a configuration over the plain runs."""
    runs = results.get((workload, label))
    if not runs:
        return None
    return summarise(runs, key) - summarise(results[(workload, "plain")], key)


def targets(results, startup):
    """The issue's targets, each with the figure it is judged on."""
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def row(target, measured, met):
        verdict = "-" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {target} | {measured} | {verdict} |")

    for workload, limit in (("depth10", 1.0), ("depth50", 2.0)):
        for hz in (1000, 10000):
            runs = results.get((workload, f"stacksample wall {hz} Hz"))
            value = summarise(runs, "handler_median_us") if runs else None
            row(f"handler median <= {limit:g} us, {workload} at {hz} Hz",
                fmt(value, ".2f", " us"), None if value is None else value <= limit)
    for workload in ("hot", "deep", "libc", "python", "threads16"):
        ours = overhead(results, workload, "stacksample wall 1000 Hz", "thread_cpu")
        perf = overhead(results, workload, "perf -g 1000 Hz", "thread_cpu")
        complete = summarise(results.get((workload, "stacksample wall 1000 Hz"), []), "complete")
        if ours is not None and perf is not None and complete is not None:
            row(f"{workload} at 1000 Hz: sampled thread's CPU overhead <= half of perf -g's,"
                " every stack complete",
                f"{ours * 1e3:.1f} ms vs perf -g {perf * 1e3:.1f} ms; complete {complete:.1%}",
                ours <= perf / 2 and complete == 1.0)
    for workload in ("hot", "deep", "libc", "python", "threads16"):
        floor = overhead(results, workload, "empty signal (floor) 10000 Hz", "thread_cpu")
        ours = overhead(results, workload, "stacksample wall 10000 Hz", "thread_cpu")
        if floor is not None and ours is not None and floor > 0:
            row(f"{workload} at 10000 Hz: sampled thread's CPU overhead <= 1.2x the"
                " empty-signal floor's",
                f"{ours * 1e3:.1f} ms vs floor {floor * 1e3:.1f} ms = {ours / floor:.2f}x",
                ours <= 1.2 * floor)
    runs, plain_ms, loaded_ms, _ = startup
    row("startup < 1 ms per process", f"{loaded_ms - plain_ms:.2f} ms ({runs} runs of /bin/true)",
        loaded_ms - plain_ms < 1.0)
    rss = [(key, summarise(r, "rss_kib") - summarise(results[(key[0], "plain")], "rss_kib"))
           for key, r in results.items() if key[1].startswith("stacksample")]
    if rss:
        (workload, label), worst = max(rss, key=lambda item: item[1])
        row("added RSS < 16 MiB", f"at most {worst / 1024:.1f} MiB ({workload}, {label})",
            worst < 16 * 1024)
    runs = results.get(("hot", "stacksample wall 10000 Hz"))
    if runs:
        taken, disk = summarise(runs, "taken"), summarise(runs, "to_disk_ms")
        row("profile on disk within 100 ms of exit for 10 000 samples",
            f"{disk:.1f} ms for {taken:,.0f} samples (hot)", disk <= 100)
    for workload in ("hot", "libc", "deep"):
        shares = [(label, summarise(r, "complete")) for (w, label), r in results.items()
                  if w == workload and label.startswith("stacksample ")]
        if shares:
            worst = min(share for _, share in shares)
            row(f"100% of stacks complete (reach `main` or `_start`): {workload}, every"
                " stacksample rate and mode",
                f"lowest {worst:.2%}", worst == 1.0)
    return lines


def main():
    runs = int(os.environ.get("BENCH_RUNS", "5"))
    if runs < 1:
        die("BENCH_RUNS must be at least 1")
    output = Path(os.environ.get("BENCH_OUTPUT", ROOT / "scripts" / "bench-results.md"))
    command = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                       if k.startswith("BENCH_") and k != "BENCH_OUTPUT")
    command = (command + " scripts/bench.sh").strip()
    with tempfile.TemporaryDirectory(prefix="stacksample-bench-") as scratch_name:
        scratch = Path(scratch_name)
        binaries = build(scratch)
        all_workloads = workloads(binaries)
        all_configs = configs(binaries, scratch)
        results = {}
        for workload in all_workloads:
            runnable = [c for c in all_configs if not c.note and
                        (workload.families is None or c.family in workload.families)]
            print(f"{workload.name}: warm-up, then {runs} x {len(runnable)} configurations",
                  file=sys.stderr)
            run_once(workload, Config("plain"), 0, binaries, scratch)
            for index in range(1, runs + 1):
                for config in runnable:
                    directory, run = run_once(workload, config, index, binaries, scratch)
                    analyse(workload, config, directory, run)
                    results.setdefault((workload.name, config.label), []).append(run)
                    shutil.rmtree(directory)
        print("startup cost...", file=sys.stderr)
        startup = startup_cost(scratch)
    report = [
        f"# Benchmark {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}`",
        "",
        f"Kernel {os.uname().release}, tick rate {kernel_tick_rate()}, {os.cpu_count()} CPUs;"
        f" {runs} interleaved runs per"
        " configuration, medians. Ratios are over the plain runs: wall time; CPU time of the"
        " sampled thread (the one whose stacks are asked for: main); CPU time of the whole"
        " program (all its threads, a preloaded profiler's own threads included); CPU time of"
        " the whole command (perf record itself included). Samples: taken, and as a share of"
        " rate x wall time (interval timers are limited by the kernel's tick rate). Complete"
        " stacks reach `main`, or the root (`_start`, `start_thread`: a sample in `exit()`"
        " after `main` returned is complete without `main`)."
        " Attribution error: largest difference, in percentage points, between a function's"
        " share of the samples and its known share of the work. To disk: from the program's"
        " last instruction to the end of the command, when every profiler here has its profile"
        " on disk (the plain row is the process exit alone). Handler times come from the"
        " library's .txt header.",
        "",
    ]
    for workload in all_workloads:
        report += table(workload, all_configs, results) + [""]
    runs_, plain_ms, loaded_ms, written = startup
    report += [
        "## Per-process cost",
        "",
        f"`/bin/true`, {runs_} runs each, interleaved, in rounds started on idle CPUs,"
        f" profiles written to {os.environ.get('BENCH_STARTUP_DIR', '/dev/shm')}:"
        f" plain {plain_ms:.2f} ms, with"
        f" `LD_PRELOAD=libstacksample.so` {loaded_ms:.2f} ms (median), {loaded_ms - plain_ms:.2f}"
        f" ms added per process; {written} profiles written.",
        "",
    ]
    report += targets(results, startup)
    text = "\n".join(report) + "\n"
    output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
