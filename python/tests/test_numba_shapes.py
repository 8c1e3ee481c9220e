"""numba's ``stacktrace`` package, shape for shape: entries, lines, ``_bufsize``,
``maxdepth=0``, ended and unknown threads, the calling thread's own id, and the Timer's
entries."""

import io
import re
import signal
import threading
import time

import pytest

import stacktrace
from stacktrace.tools import Timer
from stacktrace.utils import StackEntry

# numba's own test of a printed line: `[0x...] name +offset`.
NUMBA_LINE = re.compile(r"\[0x[0-9a-z]+\]\s+[_a-zA-Z0-9]+\s+\+\d+")
# A Python frame: `[0x<id>] qualname (file.py:line)`, or `(<frozen runpy>:88)`.
PYTHON_LINE = re.compile(r"\[0xfffff[0-9a-f]{11}\] \S+ \(.+:\d+\)$")
ANY_LINE = re.compile(r"\[0x[0-9a-f]+\] \S+( \+\d+)?( \[PY\])?$|" + PYTHON_LINE.pattern)


def is_python_frame(entry):
    return entry.addr >> 44 == 0xFFFFF


def printed(**kwargs):
    with io.StringIO() as buf:
        stacktrace.print_stack(file=buf, **kwargs)
        return buf.getvalue()


def test_entries_have_numbas_four_fields_and_print_as_numba_does():
    entry = StackEntry(0x7F9C3E95861D, "_PyObject_MakeTpCall", 125, False)
    assert entry._fields == ("addr", "name", "offset", "is_python")
    assert str(entry) == "[0x7f9c3e95861d] _PyObject_MakeTpCall +125"
    assert str(entry._replace(is_python=True)) == "[0x7f9c3e95861d] _PyObject_MakeTpCall +125 [PY]"
    assert str(entry._replace(offset=0)) == "[0x7f9c3e95861d] _PyObject_MakeTpCall"


def test_the_local_stack_starts_at_the_caller():
    lines = printed().splitlines()
    assert lines, "nothing printed"
    assert all(ANY_LINE.match(line) for line in lines), lines
    # No frame of the call path into the library (ctypes, libffi, the library itself, its
    # Python functions).
    assert not any(re.search(r"ffi|ctypes|stacksample|basic\.py", line) for line in lines), lines
    # The innermost frame is the caller's (the helper above), then this test's.
    assert PYTHON_LINE.match(lines[0]), lines
    assert " printed (test_numba_shapes.py:" in lines[0], lines
    assert " test_the_local_stack_starts_at_the_caller (test_numba_shapes.py:" in lines[1], lines


def test_named_lines_read_as_numbas_and_libc_is_named():
    # With libc's debug file installed (scripts/install-deps.sh), libc's frames have names;
    # code without any symbol (a stripped interpreter's static functions) is the exception.
    stack = stacktrace.get_thread_stack(threading.get_ident())
    libc = [e for e in stack if e.name.startswith("libc.so") or "libc_start" in e.name]
    assert libc and all(not e.name.startswith("libc.so") for e in libc), stack
    named = [str(e) for e in stack if "+0x" not in e.name and not is_python_frame(e)]
    assert named and all(NUMBA_LINE.match(line) for line in named), named
    python = [str(e) for e in stack if is_python_frame(e)]
    assert python and all(PYTHON_LINE.match(line) for line in python), python


@pytest.mark.parametrize("bufsize", [0, 10, 50, 100, 300])
def test_what_print_stack_prints_fits_in_bufsize(bufsize):
    output = printed(_bufsize=bufsize)
    assert len(output) <= bufsize
    assert all(ANY_LINE.match(line) for line in output.splitlines())
    if bufsize >= 300:
        assert output.count("\n") >= 2, output


@pytest.mark.parametrize("maxdepth", [0, 3, 13])
def test_maxdepth_bounds_every_form(maxdepth):
    assert len(printed(maxdepth=maxdepth).splitlines()) <= maxdepth
    local = stacktrace.get_thread_stack(threading.get_ident(), maxdepth=maxdepth)
    assert len(local) <= maxdepth
    assert (maxdepth == 0) == (local == [])


def test_the_calling_threads_own_id_gives_its_local_stack():
    by_ident = stacktrace.get_thread_stack(threading.get_ident())
    assert by_ident and all(isinstance(e, StackEntry) for e in by_ident)
    assert not any("ffi" in e.name or "stacksample" in e.name for e in by_ident)
    assert by_ident[0].name.startswith("test_the_calling_threads_own_id_gives_its_local_stack (")
    assert any(e.is_python for e in by_ident)


def test_an_ended_or_unknown_thread_gives_an_empty_stack_at_once():
    thread = threading.Thread(target=time.sleep, args=(0.01,))
    thread.start()
    thread.join()
    for tid in [thread.ident, thread.native_id, 2**31 - 1]:
        started = time.monotonic()
        assert stacktrace.get_thread_stack(tid) == []
        with io.StringIO() as buf:
            stacktrace.print_thread_stack(tid, file=buf)
            assert buf.getvalue() == ""
        assert time.monotonic() - started < 1.0


def test_a_thread_that_ends_while_asked_gives_an_empty_stack_within_a_second():
    # Blocks the sampling signal and keeps running (a blocked call would be read from
    # outside), so no stack can be taken; then ends.
    def blocked_then_gone():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGPROF])
        ready.set()
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass

    ready = threading.Event()
    thread = threading.Thread(target=blocked_then_gone)
    thread.start()
    ready.wait()
    started = time.monotonic()
    assert stacktrace.get_thread_stack(thread.ident) == []
    assert time.monotonic() - started < 1.0
    thread.join()


def test_a_running_thread_prints_numba_lines(worker):
    stack = stacktrace.get_thread_stack(worker.ident, maxdepth=29)
    assert 0 < len(stack) <= 29
    assert all(isinstance(e, StackEntry) for e in stack)
    assert any(e.name.startswith("python_and_regex_work (conftest.py:") for e in stack), stack
    assert any(e.is_python for e in stack)
    with io.StringIO() as buf:
        stacktrace.print_thread_stack(worker.ident, file=buf, maxdepth=13)
        lines = buf.getvalue().splitlines()
    assert 0 < len(lines) <= 13 and all(ANY_LINE.match(line) for line in lines), lines


def test_the_timer_of_stacktrace_tools_gives_numba_entries(worker):
    stacks = []
    with Timer(worker.ident, stacks.append, interval=0.001):
        time.sleep(0.2)
    assert stacks
    assert all(type(e) is StackEntry for stack in stacks for e in stack)
