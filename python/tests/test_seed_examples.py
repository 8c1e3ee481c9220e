"""The seed documentation's examples (numba's stacktrace.tools) as tests, at 1 ms."""

import re
import time

import pytest

import stacktrace
from stacktrace.tools import Profiler, Timer
from stacktrace.utils import StackEntry

INTERVAL = 0.001
SAMPLING_TIME = 0.5
# Hundreds of samples on an idle machine, a dozen or more on a 2-core machine at load 12;
# none when sampling is broken.
MIN_SAMPLES = 10
SKIPPED = re.compile(r"<skipped (\d+) Python entries>")


def check_result_shape(result):
    assert result, "no symbols"
    for address, value in result.items():
        assert isinstance(address, int) and address > 0
        assert set(value) == {"count", "name"}
        assert isinstance(value["count"], int) and value["count"] > 0
        assert isinstance(value["name"], str) and value["name"]


def top_names(prof, n):
    return [value["name"] for _, value in prof.get_sorted()[:n]]


def is_work(name):
    """A line of the worker's Python function, which stands where the interpreter's loop ran
    it."""
    return name.startswith("python_and_regex_work (conftest.py:")


def assert_mostly_in_work(result, samples):
    """The worker's function is on the stack, at one line or another, in nearly every sample
    (a Python function is counted per line)."""
    in_work = sum(v["count"] for v in result.values() if is_work(v["name"]))
    assert in_work * 10 >= samples * 9, (in_work, samples)


def test_context_manager_form_counts_the_python_function(worker):
    with Profiler(worker.native_id, interval=INTERVAL) as prof:
        time.sleep(SAMPLING_TIME)
    result = prof.get_result()
    check_result_shape(result)
    samples = max(v["count"] for v in result.values())
    assert samples >= MIN_SAMPLES
    assert_mostly_in_work(result, samples)
    names = {v["name"] for v in result.values()}
    assert any("sre" in name for name in names), sorted(names)


def test_start_join_form_with_a_pthread_id(worker):
    prof = Profiler(worker.ident, interval=INTERVAL)
    prof.start()
    time.sleep(SAMPLING_TIME)
    prof.join()
    result = prof.get_result()
    check_result_shape(result)
    assert_mostly_in_work(result, max(v["count"] for v in result.values()))


def test_get_sorted_is_get_result_ordered_by_count(worker):
    with Profiler(worker.ident, interval=INTERVAL) as prof:
        time.sleep(SAMPLING_TIME)
    ordered = prof.get_sorted()
    counts = [value["count"] for _, value in ordered]
    assert counts == sorted(counts, reverse=True)
    assert dict(ordered) == prof.get_result()
    assert all(isinstance(item, tuple) and len(item) == 2 for item in ordered)


def sample_with_timer(tid, **kwargs):
    stacks = []
    timer = Timer(tid, stacks.append, interval=INTERVAL, **kwargs)
    timer.start()
    time.sleep(SAMPLING_TIME)
    timer.join()
    assert len(stacks) >= MIN_SAMPLES, len(stacks)
    return stacks


def test_timer_callbacks_receive_lists_of_stack_entries(worker):
    stacks = sample_with_timer(worker.ident)
    for stack in stacks:
        assert isinstance(stack, list) and stack
        for entry in stack:
            assert isinstance(entry, StackEntry)
            assert isinstance(entry.addr, int)
            assert isinstance(entry.name, str) and entry.name
            assert isinstance(entry.offset, int)
            assert isinstance(entry.is_python, bool)
    with_work = [s for s in stacks if any(is_work(e.name) for e in s)]
    assert len(with_work) * 10 >= len(stacks) * 9
    # The interpreter's C functions between the Python frames.
    calls = [e for s in stacks for e in s if e.is_python]
    assert calls and all(e.offset < 1 << 20 for e in calls)
    assert any(e.offset > 0 for e in calls)


def test_maxdepth_is_honoured(worker):
    stacks = sample_with_timer(worker.native_id, maxdepth=4)
    assert all(len(stack) <= 4 for stack in stacks)
    assert any(len(stack) == 4 for stack in stacks)


def test_show_python_false_folds_interpreter_runs(worker):
    shown = sample_with_timer(worker.native_id)
    assert any(e.is_python for s in shown for e in s)
    assert all(not SKIPPED.match(e.name) for s in shown for e in s)
    folded = sample_with_timer(worker.native_id, show_python=False)
    folds = 0
    for stack in folded:
        for before, after in zip(stack, stack[1:]):
            assert not (before.is_python and after.is_python), [str(e) for e in stack]
        for entry in stack:
            if entry.is_python:
                match = SKIPPED.fullmatch(entry.name)
                assert match and int(match.group(1)) >= 1, entry
                folds += 1
    assert folds >= len(folded)
    # The thread start (libc) stays below the folded interpreter frames.
    assert sum(map(len, folded)) < sum(map(len, shown)) * len(folded) / len(shown)


def test_one_stack_of_a_thread_and_of_the_caller(worker, capsys):
    stack = stacktrace.get_thread_stack(worker.ident)
    assert any(is_work(e.name) for e in stack), [str(e) for e in stack]
    stacktrace.print_thread_stack(worker.native_id)
    stacktrace.print_stack()
    printed = capsys.readouterr().out.splitlines()
    assert sum("Thread.run (threading.py:" in line for line in printed) == 1, printed
    assert sum(" test_one_stack_of_a_thread_and_of_the_caller (" in line for line in printed) == 1
    assert not any("stacksample::" in line for line in printed), printed


def test_profiler_show_python_false_leaves_out_the_interpreter(worker):
    with Profiler(worker.native_id, interval=INTERVAL, show_python=False) as prof:
        time.sleep(SAMPLING_TIME)
    names = {value["name"] for value in prof.get_result().values()}
    modules = set(prof.get_modules().values())
    # What is left is outside the interpreter: the thread's start, the calls into libc, and
    # the Python functions (module "python").
    assert names, "no symbols"
    assert any(map(is_work, names)), sorted(names)
    assert "python" in modules
    assert not any(m.startswith(("python3", "libpython")) for m in modules), modules
