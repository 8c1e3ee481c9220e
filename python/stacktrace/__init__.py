"""numba's ``stacktrace`` over stacksample: ``print_stack``, ``print_thread_stack`` and
``get_thread_stack`` here, ``Timer`` and ``Profiler`` in ``stacktrace.tools``, ``StackEntry``
in ``stacktrace.utils``, with numba's shapes (the ``stacksample`` package has richer entries:
module, and the library's own names)."""

from .basic import get_thread_stack, print_stack, print_thread_stack

__all__ = ["get_thread_stack", "print_stack", "print_thread_stack"]
