"""numba's ``print_stack``, ``print_thread_stack`` and ``get_thread_stack``, with its
defaults and its answers for the edge cases: ``maxdepth=0`` gives nothing, a thread that has
ended (or never was) gives an empty stack at once, the calling thread's own id gives its
local stack, and ``print_stack`` prints at most ``_bufsize`` bytes."""

import sys
import threading

import stacksample
from stacksample import StacksampleError

from .utils import from_native

DEFAULT_MAXDEPTH = 100
DEFAULT_BUFSIZE = 4 * 1024

#: Modules of the call path from Python into the library (ctypes and libffi): the local
#: stack starts at their caller, as ``traceback.print_stack`` starts at its caller.
_CALL_PATH_MODULES = ("libffi.so", "_ctypes.")

#: ``StacksampleError.code`` of an argument the library refuses: a thread id that is not a
#: thread of this process (any more).
_EINVAL = 1


def _local_stack(maxdepth, show_python):
    # Room for the call path, which is cut off below.
    entries = stacksample.get_stack(maxdepth + 16, show_python)
    start = 0
    while start < len(entries) and entries[start].module.startswith(_CALL_PATH_MODULES):
        start += 1
    return [from_native(e) for e in entries[start:start + maxdepth]]


def get_thread_stack(tid, maxdepth=DEFAULT_MAXDEPTH, show_python=True):
    """Thread ``tid``'s native stack (``threading.get_ident()`` or a kernel thread id),
    innermost first, as a list of ``StackEntry``; empty for a thread that has ended."""
    if maxdepth <= 0:
        return []
    if tid == threading.get_ident() or tid == threading.get_native_id():
        return _local_stack(maxdepth, show_python)
    try:
        entries = stacksample.get_thread_stack(tid, maxdepth, show_python)
    except StacksampleError as error:
        if error.code != _EINVAL:
            raise
        return []
    return [from_native(e) for e in entries]


def print_stack(file=None, maxdepth=DEFAULT_MAXDEPTH, show_python=True,
                _bufsize=DEFAULT_BUFSIZE):
    """Prints the calling thread's native stack, one entry a line, starting at the caller;
    whole lines only, at most ``_bufsize`` bytes in all."""
    if maxdepth <= 0:
        return
    file = file or sys.stdout
    left = _bufsize
    for entry in _local_stack(maxdepth, show_python):
        line = str(entry)
        left -= len(line.encode()) + 1
        if left < 0:
            break
        print(line, file=file)


def print_thread_stack(tid, file=None, maxdepth=DEFAULT_MAXDEPTH, show_python=True):
    """Prints thread ``tid``'s native stack, one entry a line (nothing for a thread that has
    ended)."""
    file = file or sys.stdout
    for entry in get_thread_stack(tid, maxdepth, show_python):
        print(entry, file=file)
