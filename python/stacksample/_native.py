"""ctypes declarations of the C ABI (include/stacksample.h) and the library that holds it.

When the process already has libstacksample loaded globally (LD_PRELOAD), that copy is used,
so the preloaded profiler and this package share one engine and one signal handler;
otherwise the library built into this package at install time is loaded.
"""

import ctypes
import glob
import os


class Entry(ctypes.Structure):
    _fields_ = [
        ("address", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("name", ctypes.c_char_p),
        ("module", ctypes.c_char_p),
        ("is_python", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("file", ctypes.c_char_p),
        ("line", ctypes.c_uint32),
    ]


class Symbol(ctypes.Structure):
    _fields_ = [
        ("address", ctypes.c_uint64),
        ("count", ctypes.c_uint64),
        ("self_count", ctypes.c_uint64),
        ("name", ctypes.c_char_p),
        ("module", ctypes.c_char_p),
        ("is_python", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("file", ctypes.c_char_p),
        ("line", ctypes.c_uint32),
    ]


#: The C ABI's ``kind`` values (STACKSAMPLE_NATIVE, _INTERPRETER, _PYTHON) by name.
KINDS = ("native", "interpreter", "python")

CALLBACK = ctypes.CFUNCTYPE(None, ctypes.POINTER(Entry), ctypes.c_size_t, ctypes.c_void_p)

_SIGNATURES = {
    "stacksample_last_error": (ctypes.c_char_p, []),
    "stacksample_kernel_tid": (ctypes.c_int, [ctypes.c_uint64, ctypes.POINTER(ctypes.c_int32)]),
    "stacksample_thread_stack": (
        ctypes.c_int,
        [ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)],
    ),
    "stacksample_stack_len": (ctypes.c_size_t, [ctypes.c_void_p]),
    "stacksample_stack_entries": (ctypes.POINTER(Entry), [ctypes.c_void_p]),
    "stacksample_stack_free": (None, [ctypes.c_void_p]),
    "stacksample_timer_start": (
        ctypes.c_int,
        [
            ctypes.c_uint64,
            ctypes.c_double,
            ctypes.c_size_t,
            ctypes.c_int,
            CALLBACK,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
        ],
    ),
    "stacksample_timer_join": (ctypes.c_int, [ctypes.c_void_p]),
    "stacksample_profiler_start": (
        ctypes.c_int,
        [ctypes.c_uint64, ctypes.c_double, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)],
    ),
    "stacksample_profiler_stop": (ctypes.c_int, [ctypes.c_void_p]),
    "stacksample_profiler_resume": (ctypes.c_int, [ctypes.c_void_p]),
    "stacksample_profiler_write": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]),
    "stacksample_profiler_free": (None, [ctypes.c_void_p]),
    "stacksample_profiler_symbols": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]),
    "stacksample_symbols_count": (ctypes.c_size_t, [ctypes.c_void_p]),
    "stacksample_symbols_get": (ctypes.POINTER(Symbol), [ctypes.c_void_p]),
    "stacksample_symbols_free": (None, [ctypes.c_void_p]),
}


#: The layout of Entry and Symbol above (include/stacksample.h's STACKSAMPLE_ABI_VERSION).
ABI_VERSION = 2


def _load():
    already_loaded = ctypes.CDLL(None)
    if hasattr(already_loaded, "stacksample_timer_start"):
        # One engine per process: a preloaded library of another layout is refused, not
        # loaded beside (two signal handlers).
        version = getattr(already_loaded, "stacksample_abi_version", lambda: 1)()
        if version != ABI_VERSION:
            raise ImportError(
                "stacksample: the preloaded libstacksample has layout version %d, this package "
                "reads version %d; preload the library built with this package" %
                (version, ABI_VERSION))
        return already_loaded
    here = os.path.dirname(os.path.abspath(__file__))
    built = sorted(glob.glob(os.path.join(here, "_libstacksample*.so")))
    if not built:
        raise ImportError(
            "stacksample: the native library is missing from %s; install the package with "
            "`pip install ./python` so that it is built" % here
        )
    return ctypes.CDLL(built[0])


lib = _load()
for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _function = getattr(lib, _name)
    _function.restype = _restype
    _function.argtypes = _argtypes


class StacksampleError(RuntimeError):
    """A call into the library failed; the message says what, where and how to fix it."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def check(status):
    """Raises the library's last error for a failed call."""
    if status != 0:
        message = lib.stacksample_last_error().decode("utf-8", "replace")
        raise StacksampleError(status, message)
