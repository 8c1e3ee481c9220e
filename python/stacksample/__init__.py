"""Native call stacks of Python threads, sampled by stacksample's engine (DWARF unwinding in
a signal handler that allocates nothing and takes no lock; names looked up on an ordinary
thread). On CPython 3.11-3.13 the Python functions stand in the stacks where the
interpreter's loop ran them, with their file and line.

Thread ids may be kernel ids (``threading.get_native_id()``) or ``pthread_t`` values
(``threading.get_ident()``), as users of numba's ``stacktrace`` pass them. Timers and
Profilers may run at once, and beside the library preloaded with ``LD_PRELOAD``: one
sampler serves them all.

The ``stacktrace`` package of this distribution offers the same things under numba's
``stacktrace`` names.
"""

import ctypes
import os
import sys
import threading
from collections import namedtuple

from ._native import CALLBACK, KINDS, StacksampleError, check, lib

__all__ = [
    "StackEntry",
    "StacksampleError",
    "Timer",
    "Profiler",
    "native_thread_id",
    "get_stack",
    "get_thread_stack",
    "print_stack",
    "print_thread_stack",
]

#: The seed API's defaults: 20 Hz, 100 frames.
DEFAULT_INTERVAL = 0.05
DEFAULT_MAXDEPTH = 100


class StackEntry(namedtuple("StackEntry", "addr name offset is_python module kind file line",
                            defaults=("", "native", None, None))):
    """One frame, innermost first in a stack: its address, symbol name (``?`` when nothing is
    known), offset into the symbol, whether it is CPython interpreter code, its module, and
    its kind: ``"native"``, ``"interpreter"`` (``is_python``) or ``"python"``, a Python
    function in place of the interpreter's evaluation loop that ran it, named
    ``qualname (file.py:line)``, with the whole ``file`` and the ``line`` apart (``None``
    when unknown)."""

    def __str__(self):
        if self.kind == "python":
            return "[python] {}".format(self.name)
        offset = " +{}".format(self.offset) if self.offset else ""
        module = " ({})".format(self.module) if self.module else ""
        return "[0x{:x}] {}{}{}".format(self.addr, self.name, offset, module)


def native_thread_id(tid):
    """The kernel thread id of ``tid``, a kernel id or a ``pthread_t`` of this process."""
    found = ctypes.c_int32()
    check(lib.stacksample_kernel_tid(tid, ctypes.byref(found)))
    return found.value


def _decode(raw):
    return raw.decode("utf-8", "replace") if raw else ""


def _entries(pointer, count):
    return [
        StackEntry(e.address, _decode(e.name), e.offset, bool(e.is_python), _decode(e.module),
                   KINDS[e.kind], _decode(e.file) or None, e.line or None)
        for e in pointer[:count]
    ]


def _stack(thread, maxdepth, show_python):
    handle = ctypes.c_void_p()
    check(lib.stacksample_thread_stack(thread, maxdepth, int(show_python), ctypes.byref(handle)))
    try:
        return _entries(lib.stacksample_stack_entries(handle), lib.stacksample_stack_len(handle))
    finally:
        lib.stacksample_stack_free(handle)


#: Where this distribution's Python files are: their frames on the calling thread's own
#: stack are the call into the library, not the caller's.
_OWN_FILES = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                package, "") for package in ("stacksample", "stacktrace"))


def _from_caller(entries):
    """Drops the innermost entries of the call into the library: the native call path, this
    distribution's Python frames, and the interpreter code between them and the caller's
    first frame (which a call with ``**kwargs`` has); the stack starts at the caller."""
    start, seen_own = 0, False
    for index, entry in enumerate(entries):
        if entry.kind == "python" and (entry.file or "").startswith(_OWN_FILES):
            start, seen_own = index + 1, True
        elif entry.kind == "python" or (seen_own and entry.kind == "native"):
            break
        elif seen_own:
            start = index + 1
    return entries[start:]


def get_stack(maxdepth=DEFAULT_MAXDEPTH, show_python=True):
    """The calling thread's stack, innermost first, as a list of StackEntry; with Python
    frames, from its caller's frame on."""
    # Room for the call into the library (libffi, ctypes, this package), cut off below.
    room = 32
    return _from_caller(_stack(0, maxdepth + room, show_python))[:maxdepth]


def get_thread_stack(tid, maxdepth=DEFAULT_MAXDEPTH, show_python=True):
    """Thread ``tid``'s stack, innermost first, as a list of StackEntry (the calling
    thread's own id gives ``get_stack()``)."""
    if tid in (threading.get_ident(), threading.get_native_id()):
        return get_stack(maxdepth, show_python)
    return _stack(tid, maxdepth, show_python)


def print_stack(file=None, maxdepth=DEFAULT_MAXDEPTH, show_python=True):
    """Prints the calling thread's stack, one entry a line."""
    for entry in get_stack(maxdepth, show_python):
        print(entry, file=file or sys.stdout)


def print_thread_stack(tid, file=None, maxdepth=DEFAULT_MAXDEPTH, show_python=True):
    """Prints thread ``tid``'s stack, one entry a line."""
    for entry in get_thread_stack(tid, maxdepth, show_python):
        print(entry, file=file or sys.stdout)


class _StartJoin(object):
    """``with`` runs ``start()`` on entry and ``join()`` on exit."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exctype, excvalue, tb):
        self.join()


class Timer(_StartJoin):
    """Samples thread ``tid`` every ``interval`` seconds and calls ``func`` with each stack (a
    list of StackEntry, innermost first) on a thread of the library's own. With
    ``show_python=False`` each run of interpreter frames is one
    ``<skipped N Python entries>`` entry. An exception raised by ``func`` is raised again
    by ``join()``."""

    def __init__(self, tid, func, interval=DEFAULT_INTERVAL, maxdepth=DEFAULT_MAXDEPTH,
                 show_python=True):
        self.tid = tid
        self.func = func
        self.interval = interval
        self.maxdepth = maxdepth
        self.show_python = show_python
        self._handle = None
        self._callback = CALLBACK(self._on_stack)
        self._error = None

    def _on_stack(self, entries, count, _data):
        if self._error is not None:
            return
        try:
            self.func(_entries(entries, count))
        except BaseException as error:  # raised again by join(), never lost
            self._error = error

    def start(self):
        """Starts sampling."""
        handle = ctypes.c_void_p()
        check(lib.stacksample_timer_start(self.tid, self.interval, self.maxdepth,
                                          int(self.show_python), self._callback, None,
                                          ctypes.byref(handle)))
        self._handle = handle

    def join(self):
        """Stops sampling and waits until ``func`` has seen every stack taken."""
        handle, self._handle = self._handle, None
        if handle is not None:
            check(lib.stacksample_timer_join(handle))
        error, self._error = self._error, None
        if error is not None:
            raise error

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            lib.stacksample_timer_join(self._handle)


class Profiler(_StartJoin):
    """Counts how often each symbol (a Python function per line) is on thread ``tid``'s stack. Keyword arguments
    are the Timer's (``interval``, ``maxdepth``, ``show_python``: with False the
    interpreter's own functions are left out of the results, as the Timer folds them away).
    Samples are aggregated in the library and named only when a result is asked for."""

    def __init__(self, tid, interval=DEFAULT_INTERVAL, maxdepth=DEFAULT_MAXDEPTH,
                 show_python=True):
        self.tid = tid
        self.interval = interval
        self.maxdepth = maxdepth
        self.show_python = show_python
        self._handle = None

    def start(self):
        """Starts sampling (again: counts add up)."""
        if self._handle is not None:
            check(lib.stacksample_profiler_resume(self._handle))
            return
        handle = ctypes.c_void_p()
        check(lib.stacksample_profiler_start(self.tid, self.interval, self.maxdepth,
                                             ctypes.byref(handle)))
        self._handle = handle

    def join(self):
        """Stops sampling; results stay."""
        if self._handle is not None:
            check(lib.stacksample_profiler_stop(self._handle))

    def _symbols(self):
        if self._handle is None:
            return []
        symbols = ctypes.c_void_p()
        check(lib.stacksample_profiler_symbols(self._handle, ctypes.byref(symbols)))
        try:
            rows = lib.stacksample_symbols_get(symbols)
            count = lib.stacksample_symbols_count(symbols)
            return [(s.address, s.count, s.self_count, _decode(s.name), _decode(s.module))
                    for s in rows[:count] if self.show_python or not s.is_python]
        finally:
            lib.stacksample_symbols_free(symbols)

    def get_result(self):
        """``{symbol address: {'count': samples with it on the stack, 'name': name}}``."""
        return {address: {"count": count, "name": name}
                for address, count, _, name, _ in self._symbols()}

    def get_sorted(self):
        """``get_result().items()`` ordered by count, largest first."""
        return sorted(self.get_result().items(), key=lambda item: item[1]["count"],
                      reverse=True)

    def get_self_counts(self):
        """``{symbol address: samples with it innermost}``."""
        return {address: self_count for address, _, self_count, _, _ in self._symbols()}

    def get_modules(self):
        """``{symbol address: module file name}``."""
        return {address: module for address, _, _, _, module in self._symbols()}

    def write(self, prefix, formats="txt,folded,svg"):
        """Writes ``<prefix>.<ext>`` per format (txt, folded, svg, pprof, json, speedscope),
        as the preloaded library does."""
        if self._handle is None:
            raise StacksampleError(1, "stacksample: the profiler was never started")
        check(lib.stacksample_profiler_write(self._handle, str(prefix).encode(),
                                             formats.encode()))

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            lib.stacksample_profiler_free(self._handle)
