"""What Python frames cost: a CPU-bound loop 50 Python frames deep (python_deep.py), run
without a profiler, under stacksample with Python frames off and on, and under
`py-spy record --native`, at each rate, interleaved run by run so load hits all alike.

Reports per configuration the medians of the program's wall time and process CPU time and
their ratio to the unprofiled run, and stacksample's handler median (from its report).
Settings: PYBENCH_PYTHON (interpreter, default /usr/bin/python3), PYBENCH_RUNS (default 5),
PYBENCH_RATES (Hz, default 100,1000), PYBENCH_ROUNDS (work a run, default 5000: about
0.7 s on Debian's python3 here).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "target/release/libstacksample.so"
WORKLOAD = Path(__file__).with_name("python_deep.py")
PYTHON = os.environ.get("PYBENCH_PYTHON", "/usr/bin/python3")
RUNS = int(os.environ.get("PYBENCH_RUNS", "5"))
RATES = [int(r) for r in os.environ.get("PYBENCH_RATES", "100,1000").split(",")]
ROUNDS = os.environ.get("PYBENCH_ROUNDS", "5000")


def py_spy():
    """py-spy from PyPI in target/bench-tools, installed on first use."""
    tools = ROOT / "target/bench-tools"
    binary = tools / "bin/py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
        subprocess.run([str(tools / "bin/pip"), "install", "-q", "py-spy"], check=True)
    return str(binary)


def run(config, rate, out_dir):
    """One run: the program's own wall and CPU figures, and the handler median if any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSAMPLE_")}
    command = [PYTHON, str(WORKLOAD), "--rounds", ROUNDS]
    prefix = out_dir / f"{config}-{rate}-{time.monotonic_ns()}"
    if config.startswith("stacksample"):
        env.update(
            LD_PRELOAD=str(LIBRARY),
            STACKSAMPLE_INTERVAL=f"{1_000_000 // rate}us",
            STACKSAMPLE_OUTPUT=str(prefix),
            STACKSAMPLE_PYTHON="0" if config == "stacksample python off" else "auto",
        )
    elif config == "py-spy --native":
        command = [py_spy(), "record", "--native", "-r", str(rate), "-f", "raw", "-o",
                   str(prefix) + ".raw", "--"] + command
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    # py-spy prints its own lines around the program's.
    figures = json.loads([l for l in done.stdout.splitlines() if l.startswith("{")][-1])
    figures["process_wall"] = elapsed
    report = Path(str(prefix) + ".txt")
    if report.exists():
        text = report.read_text()
        median = re.search(r"handler time: median ([0-9.]+) us", text)
        figures["handler_us"] = float(median.group(1)) if median else None
        frames = re.search(r"python: +(\d+) samples with Python frames", text)
        figures["python_samples"] = int(frames.group(1)) if frames else 0
    return figures


def main():
    if not LIBRARY.exists():
        sys.exit("python_frames.py: build first: cargo build --release")
    configs = ["none", "stacksample python off", "stacksample python on", "py-spy --native"]
    version = subprocess.run([PYTHON, "--version"], capture_output=True, text=True).stdout
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rate in RATES:
            for _ in range(RUNS):
                for config in configs:
                    results.setdefault((rate, config), []).append(run(config, rate, Path(tmp)))
    print(f"# {version.strip()}, {ROUNDS} rounds of work at the bottom of 51 Python frames, "
          f"median of {RUNS} interleaved runs\n")
    print("| rate | profiler | process wall s | ratio | program CPU s | ratio | handler median us |"
          " samples with Python frames |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for rate in RATES:
        base = results[(rate, "none")]
        base_wall = statistics.median(r["process_wall"] for r in base)
        base_cpu = statistics.median(r["cpu"] for r in base)
        for config in configs:
            rows = results[(rate, config)]
            wall = statistics.median(r["process_wall"] for r in rows)
            cpu = statistics.median(r["cpu"] for r in rows)
            handler = [r["handler_us"] for r in rows if r.get("handler_us") is not None]
            handler = f"{statistics.median(handler):.2f}" if handler else "-"
            python = [r.get("python_samples", 0) for r in rows]
            python = str(int(statistics.median(python))) if config.startswith("stacksample") else "-"
            print(f"| {rate} Hz | {config} | {wall:.3f} | {wall / base_wall:.3f} | {cpu:.3f} | "
                  f"{cpu / base_cpu:.3f} | {handler} | {python} |")


main()
