#!/usr/bin/env python3
"""Ground-truth workload for a sampling profiler's integration test.

The main thread spends its CPU time in a handful of functions with clearly
different, *measured* shares.  Every slice of work is timed with
``time.thread_time()`` (CPU time of the calling thread), so the JSON written at
the end says how much main-thread CPU each function really used; a profiler's
sample counts can be compared with it.

Where the samples are expected to land (innermost Python frame):

    alpha          ~40 %  pure-Python integer arithmetic
    beta           ~22 %  pure-Python float arithmetic
    gamma          ~13 %  pure-Python branchy integer loop (Collatz)
    compress_work  ~10 %  zlib.compress(): mostly native libz deflate code
    deep_leaf       ~5 %  <module> -> main -> recurse x60 -> deep_leaf
    produce         ~5 %  generator body, driven by consume_generator
    async_work      ~5 %  coroutine run by asyncio.run(async_main())

plus a thread named "worker" spinning in ``worker_spin`` for the whole run.

Each function runs until a thread-CPU deadline passes (checked every ~100 us
of work), so shares are set by CPU time, not iteration counts.  The functions
run interleaved in rounds, each round's budgets making up for earlier
overshoots.  --seconds is main-thread CPU time; wall time is ~2.5-3x that,
because the worker thread shares the GIL.

Runs unchanged on CPython 3.8 .. 3.13, standard library only.
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import threading
import time
import zlib
from collections import defaultdict

RECURSION_DEPTH = 60

# Each hot loop checks its deadline once per chunk of roughly 100 us of work
# (the inner-loop counts below), so the time.thread_time() calls -- a real
# syscall, the vDSO cannot read per-thread CPU clocks -- stay near 0.5 % of
# every function's time, while a chunk is still small next to a slice.

# Intended share of the main thread's CPU time, per function.  They add up
# to 1.0; the measured shares come out slightly lower because of the little
# untimed work in between (loop bookkeeping, asyncio.run setup, ...).
TARGET_SHARES = {
    "alpha": 0.40,
    "beta": 0.22,
    "gamma": 0.13,
    "compress_work": 0.10,
    "deep_leaf": 0.05,
    "produce": 0.05,
    "async_work": 0.05,
}

thread_time = time.thread_time
perf_counter = time.perf_counter


class CpuMeter:
    """Accumulates thread CPU seconds per name; used as ``with meter(name):``.

    ``__enter__``/``__exit__`` return before/after the timed body runs, so the
    meter never adds a frame to the stacks a profiler sees inside the body.
    """

    def __init__(self):
        self.seconds = defaultdict(float)
        self.wall = defaultdict(float)
        self.calls = defaultdict(int)
        self.longest = defaultdict(float)

    def __call__(self, name):
        return _Span(self, name)


class _Span:
    __slots__ = ("meter", "name", "start", "wall_start")

    def __init__(self, meter, name):
        self.meter = meter
        self.name = name

    def __enter__(self):
        self.wall_start = perf_counter()
        self.start = thread_time()
        return self

    def __exit__(self, *exc):
        elapsed = thread_time() - self.start
        self.meter.wall[self.name] += perf_counter() - self.wall_start
        self.meter.seconds[self.name] += elapsed
        if elapsed > self.meter.longest[self.name]:
            self.meter.longest[self.name] = elapsed
        self.meter.calls[self.name] += 1
        return False


METER = CpuMeter()


# --------------------------------------------------------------------------
# Pure-Python CPU-bound functions.  Each keeps its hot loop in its own frame.
# --------------------------------------------------------------------------

def alpha(budget):
    """Integer linear-congruential arithmetic."""
    deadline = thread_time() + budget
    x = 12345
    while thread_time() < deadline:
        for i in range(1200):
            x = (x * 1103515245 + 12345 + i) & 0x7FFFFFFF
    return x


def beta(budget):
    """Floating-point arithmetic (a damped oscillator)."""
    deadline = thread_time() + budget
    pos, vel = 1.0, 0.0
    while thread_time() < deadline:
        for _ in range(2000):
            acc = -0.5 * pos - 0.01 * vel
            vel += acc * 0.01
            pos += vel * 0.01
    return pos


def gamma(budget):
    """Branchy integer loop: Collatz sequence lengths."""
    deadline = thread_time() + budget
    longest = 0
    first = 1000001
    while thread_time() < deadline:
        for start in range(first, first + 20):
            n = start
            steps = 0
            while n != 1:
                if n & 1:
                    n = 3 * n + 1
                else:
                    n >>= 1
                steps += 1
            if steps > longest:
                longest = steps
        first += 20
    return longest


def make_compress_input(size=32 * 1024):
    """Moderately compressible bytes: deflate must work to match them."""
    state = 2463534242
    out = bytearray()
    words = [b"alpha", b"beta", b"gamma", b"delta", b"omega", b"sigma", b"kappa"]
    while len(out) < size:
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out += words[state % len(words)]
        out.append(32 + (state >> 8) % 90)
    return bytes(out[:size])


COMPRESS_INPUT = make_compress_input()


def compress_work(budget):
    """Time spent almost entirely inside zlib's C deflate code.

    One zlib.compress() call costs ~1.5 ms, coarse next to a slice, so the
    loop stops when less than half a call's cost is left instead of
    overshooting the slice by half a call on average.
    """
    deadline = thread_time() + budget
    total = 0
    call_cost = 0.0
    now = thread_time()
    while deadline - now > call_cost / 2:
        total += len(zlib.compress(COMPRESS_INPUT, 6))
        after = thread_time()
        call_cost = after - now
        now = after
    return total


def deep_leaf(budget):
    """Leaf at the bottom of the 60-deep recursion (xorshift spin)."""
    deadline = thread_time() + budget
    x = 88172645
    while thread_time() < deadline:
        for _ in range(600):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 7
            x ^= (x << 17) & 0xFFFFFFFF
    return x


def recurse(n, budget):
    """recurse(60) -> recurse(59) -> ... -> recurse(1) -> deep_leaf: 60 frames."""
    if n > 1:
        return recurse(n - 1, budget)
    return deep_leaf(budget)


def produce(deadline):
    """Generator doing the CPU work in its own frame between yields."""
    n = 0
    while thread_time() < deadline:
        acc = n
        for i in range(2000):
            acc = (acc * 7 + i) % 65521
        n += 1
        yield acc


def consume_generator(budget):
    """Drives produce(); its own per-item work is trivial."""
    deadline = thread_time() + budget
    checksum = 0
    for value in produce(deadline):
        checksum ^= value
    return checksum


async def async_work(budget):
    """Coroutine: CPU work with no await inside the hot loop."""
    await asyncio.sleep(0)  # suspend once so the event loop resumes us
    with METER("async_work"):
        deadline = thread_time() + budget
        total = 0
        while thread_time() < deadline:
            for i in range(2000):
                total = (total + i * i) % 1000003
    return total


async def async_main(budget):
    return await async_work(budget)


# --------------------------------------------------------------------------
# Worker thread
# --------------------------------------------------------------------------

def worker_spin(stop, report):
    """CPU-bound pure-Python loop until ``stop`` is set."""
    report["native_id"] = threading.get_native_id()
    start = thread_time()
    a, b = 0, 1
    while not stop.is_set():
        for _ in range(3000):
            a, b = b, (a + b) & 0xFFFFFFFF
    report["cpu_seconds"] = thread_time() - start


# Function objects by result name (for the JSON's first_line entries).
FUNCTIONS = {
    "alpha": alpha,
    "beta": beta,
    "gamma": gamma,
    "compress_work": compress_work,
    "deep_leaf": deep_leaf,
    "produce": produce,
    "async_work": async_work,
}


class Plan:
    """Per-round CPU budgets that keep every function on its cumulative target.

    A function's budget in round ``done`` is its target for rounds 1..done
    minus what it has already used, so one slice that overshoots (a page
    fault, a stolen vCPU, a coarse zlib call) is paid back in later rounds
    instead of skewing the final shares.
    """

    def __init__(self, seconds, done, rounds):
        self.fraction = seconds * done / rounds

    def budget(self, name):
        target = self.fraction * TARGET_SHARES[name]
        return max(0.0, target - METER.seconds[name])


# --------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="main-thread CPU seconds to spend (default 1.5)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="interleaving rounds (default 20)")
    parser.add_argument("--out", default="python_truth.json",
                        help="where to write the JSON result")
    args = parser.parse_args(argv)

    stop = threading.Event()
    worker_report = {}
    worker = threading.Thread(target=worker_spin, args=(stop, worker_report),
                              name="worker")
    worker.start()
    while "native_id" not in worker_report:
        time.sleep(0.001)

    window_first_line = sys._getframe().f_lineno
    wall_start = time.perf_counter()
    cpu_start = thread_time()
    for done in range(1, args.rounds + 1):
        plan = Plan(args.seconds, done, args.rounds)
        with METER("alpha"):
            alpha(plan.budget("alpha"))
        with METER("beta"):
            beta(plan.budget("beta"))
        with METER("gamma"):
            gamma(plan.budget("gamma"))
        with METER("compress_work"):
            compress_work(plan.budget("compress_work"))
        with METER("deep_leaf"):
            recurse(RECURSION_DEPTH, plan.budget("deep_leaf"))
        with METER("produce"):
            consume_generator(plan.budget("produce"))
        # async_work times its own hot loop; this outer figure also holds
        # the event loop's setup and teardown.
        with METER("asyncio.run"):
            asyncio.run(async_main(plan.budget("async_work")))
    cpu_total = thread_time() - cpu_start
    wall_total = time.perf_counter() - wall_start
    window_last_line = sys._getframe().f_lineno

    stop.set()
    worker.join()

    functions = {}
    for name in TARGET_SHARES:
        seconds = METER.seconds[name]
        functions[name] = {
            "cpu_seconds": round(seconds, 6),
            "share": round(seconds / cpu_total, 4),
            "target_share": TARGET_SHARES[name],
            "wall_seconds": round(METER.wall[name], 6),
            "calls": METER.calls[name],
            "longest_call_cpu_seconds": round(METER.longest[name], 6),
            "first_line": FUNCTIONS[name].__code__.co_firstlineno,
        }
    measured = sum(METER.seconds[name] for name in TARGET_SHARES)
    result = {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "script": os.path.abspath(__file__),
        "pid": os.getpid(),
        "main_native_id": threading.get_native_id(),
        "worker_native_id": worker_report["native_id"],
        "seconds_requested": args.seconds,
        "rounds": args.rounds,
        "main_cpu_seconds": round(cpu_total, 6),
        "main_wall_seconds": round(wall_total, 6),
        # A sample is inside the measured window iff its main() frame is on
        # a line strictly between these two.
        "main_window_lines": [window_first_line, window_last_line],
        "measured_cpu_seconds": round(measured, 6),
        "measured_share_sum": round(measured / cpu_total, 4),
        "functions": functions,
        "asyncio_run_cpu_seconds": round(METER.seconds["asyncio.run"], 6),
        "asyncio_run_wall_seconds": round(METER.wall["asyncio.run"], 6),
        "recursion": {
            "depth": RECURSION_DEPTH,
            "chain": "<module> -> main -> recurse x%d -> deep_leaf" % RECURSION_DEPTH,
            "recurse_frames": RECURSION_DEPTH,
            "python_frames_in_deep_leaf": RECURSION_DEPTH + 3,
        },
        "worker": {
            "name": worker.name,
            "function": "worker_spin",
            "native_id": worker_report["native_id"],
            "cpu_seconds": round(worker_report["cpu_seconds"], 6),
        },
    }
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    return result


if __name__ == "__main__":
    main()
