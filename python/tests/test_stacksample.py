"""The fuller API of the stacksample module: thread ids, formats, several samplers at once,
errors, and sharing the engine with the preloaded library."""

import os
import subprocess
import sys
import threading
import time

import pytest

import stacksample
from stacksample import Profiler, StacksampleError, Timer


def test_pthread_and_kernel_ids_name_the_same_thread(worker):
    assert stacksample.native_thread_id(worker.ident) == worker.native_id
    assert stacksample.native_thread_id(worker.native_id) == worker.native_id
    assert stacksample.native_thread_id(threading.get_ident()) == threading.get_native_id()
    with pytest.raises(StacksampleError, match="not a thread of this process"):
        stacksample.native_thread_id(12)


def test_profiler_writes_the_preload_formats_and_self_counts(worker, tmp_path):
    with Profiler(worker.ident, interval=0.001) as prof:
        time.sleep(0.3)
    prof.write(tmp_path / "prof", "txt,folded,pprof")
    for name in ["prof.txt", "prof.folded", "prof.pb.gz"]:
        assert (tmp_path / name).stat().st_size > 0, name
    assert "python_and_regex_work (conftest.py:" in (tmp_path / "prof.folded").read_text()
    self_counts = prof.get_self_counts()
    result = prof.get_result()
    assert set(self_counts) == set(result)
    assert all(self_counts[a] <= result[a]["count"] for a in result)
    with pytest.raises(StacksampleError, match="unknown format"):
        prof.write(tmp_path / "prof", "png")
    before = sum(v["count"] for v in result.values())
    with prof:
        time.sleep(0.1)
    assert sum(v["count"] for v in prof.get_result().values()) > before


def test_a_timer_and_a_profiler_sample_one_thread_at_once(worker):
    stacks = []
    timer = Timer(worker.ident, stacks.append, interval=0.005)
    with Profiler(worker.ident, interval=0.001) as prof:
        timer.start()
        time.sleep(0.3)
        timer.join()
    profiled = sum(v["count"] for v in prof.get_result().values())
    assert 0 < len(stacks) < profiled, (len(stacks), profiled)
    with_python = [s for s in stacks if any(e.kind == "python" for e in s)]
    assert len(with_python) * 10 >= len(stacks) * 9, (len(with_python), len(stacks))


def test_an_exception_in_the_callback_is_raised_by_join(worker):
    def fails(stack):
        raise ValueError("from the callback")

    timer = Timer(worker.ident, fails, interval=0.001)
    timer.start()
    time.sleep(0.1)
    with pytest.raises(ValueError, match="from the callback"):
        timer.join()


PRELOADED = """
import threading, time, stacksample
from stacksample import Profiler
assert stacksample._native.lib._name is None, "the preloaded copy is not the one used"
with Profiler(threading.get_ident(), interval=0.001) as prof:
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        sum(i * i for i in range(1000))
result = prof.get_result()
print("profiled:", sum(v["count"] for v in result.values()))
print("names:", " ".join(v["name"] for v in result.values()))
"""


def test_under_ld_preload_the_api_shares_the_preloaded_engine_with_the_session(tmp_path):
    library = stacksample._native.lib._name
    env = dict(os.environ, LD_PRELOAD=library, STACKSAMPLE_OUTPUT=str(tmp_path / "pre"),
               STACKSAMPLE_FORMAT="folded")
    done = subprocess.run([sys.executable, "-c", PRELOADED], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    profiled = int(done.stdout.split("profiled: ")[1].split()[0])
    assert profiled >= 10, done.stdout
    assert "<module> (<string>:" in done.stdout.split("names: ")[1], done.stdout
    folded = (tmp_path / "pre.folded").read_text()
    assert "<module> (<string>:" in folded
    # The preloaded session sampled the main thread at its own interval meanwhile.
    session_samples = sum(int(line.rsplit(" ", 1)[1]) for line in folded.splitlines())
    assert session_samples >= 10, folded


EXEC_CHAIN = """
import os, sys, threading, time, stacksample
left = int(sys.argv[1])
if left == 0:
    print("chain done")
    sys.exit(0)
# A timer at the shortest interval on the thread that calls exec: no request of it may
# reach the next program, where SIGPROF would kill it.
timer = stacksample.Timer(threading.get_ident(), lambda stack: None, interval=0.00005)
timer.start()
deadline = time.monotonic() + 0.02
while time.monotonic() < deadline:
    pass
os.execv(sys.executable, [sys.executable, sys.argv[0], str(left - 1)])
"""


def test_exec_with_a_timer_running_under_ld_preload_starts_the_next_program_cleanly(tmp_path):
    script = tmp_path / "chain.py"
    script.write_text(EXEC_CHAIN)
    env = dict(os.environ, LD_PRELOAD=stacksample._native.lib._name,
               STACKSAMPLE_OUTPUT=str(tmp_path / "chain"), STACKSAMPLE_FORMAT="txt")
    done = subprocess.run([sys.executable, str(script), "20"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout == "chain done\n", done.stdout


python_frames = pytest.mark.skipif(
    not (3, 11) <= sys.version_info[:2] <= (3, 13),
    reason="Python frames are read on CPython 3.11-3.13 only")


def conftest_line(needle):
    """The line of conftest.py that holds ``needle``."""
    path = os.path.join(os.path.dirname(__file__), "conftest.py")
    with open(path) as source:
        return next(n for n, line in enumerate(source, 1) if needle in line)


def python_names(stack):
    """The qualnames of a stack's Python frames, innermost first."""
    return [e.name.split(" (")[0] for e in stack if e.kind == "python"]


def timer_stacks(worker, **options):
    stacks = []
    timer = Timer(worker.ident, stacks.append, interval=0.002, **options)
    timer.start()
    time.sleep(0.3)
    timer.join()
    assert len(stacks) >= 50, len(stacks)
    return stacks


@python_frames
def test_timer_stacks_carry_the_python_functions_with_file_and_line(worker):
    stacks = timer_stacks(worker)
    with_python = [s for s in stacks if python_names(s)]
    assert len(with_python) * 10 >= len(stacks) * 9, (len(with_python), len(stacks))
    whole = [python_names(s) for s in with_python if "Thread.run" in python_names(s)]
    assert len(whole) * 10 >= len(stacks) * 9, (len(whole), len(stacks))
    for names in whole:
        assert "python_and_regex_work" in names, names
        assert names.index("python_and_regex_work") < names.index("Thread.run"), names
    work = [e for s in with_python for e in s if e.name.startswith("python_and_regex_work (")]
    body = {conftest_line("while not stop"), conftest_line("sum(i * i"),
            conftest_line("BACKTRACKING.match")}
    assert {e.line for e in work} <= body, {e.line for e in work}
    assert len({e.line for e in work}) >= 2, {e.line for e in work}
    for entry in work:
        assert entry.file == os.path.join(os.path.dirname(__file__), "conftest.py"), entry
        assert entry.name == "python_and_regex_work (conftest.py:{})".format(entry.line)
        assert (entry.module, entry.is_python, entry.addr >> 44) == ("python", False, 0xfffff)
        assert str(entry) == "[python] " + entry.name
    native = [e for s in stacks for e in s if e.kind != "python"]
    assert all(e.file is None and e.line is None for e in native)


@python_frames
def test_show_python_false_folds_the_interpreter_and_keeps_the_python_functions(worker):
    stacks = timer_stacks(worker, show_python=False)
    interpreter = [e for s in stacks for e in s if e.kind == "interpreter"]
    assert interpreter and all(e.name.startswith("<skipped ") for e in interpreter)
    with_work = [s for s in stacks if "python_and_regex_work" in python_names(s)]
    assert len(with_work) * 10 >= len(stacks) * 9, (len(with_work), len(stacks))


@python_frames
def test_the_profiler_counts_python_functions_per_line():
    deadline = time.monotonic() + 0.3
    with Profiler(threading.get_ident(), interval=0.001) as prof:
        while time.monotonic() < deadline:
            sum(i * i for i in range(1000))
    names = {v["name"]: v["count"] for v in prof.get_result().values()}
    name = next(n for n in names if n.startswith(
        "test_the_profiler_counts_python_functions_per_line (test_stacksample.py:"))
    assert names[name] >= 100, names


@python_frames
def test_get_stack_shows_the_calling_python_function():
    stack = stacksample.get_stack()
    assert stack[0].name.startswith("test_get_stack_shows_the_calling_python_function ("), stack
    assert stack[0].file == __file__ and stack[0].kind == "python"
