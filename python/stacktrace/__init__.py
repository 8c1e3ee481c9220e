"""numba's ``stacktrace`` names over stacksample: ``print_stack``, ``print_thread_stack``,
``get_thread_stack``; ``stacktrace.tools`` has ``Timer`` and ``Profiler``,
``stacktrace.utils`` has ``StackEntry``."""

from stacksample import get_thread_stack, print_stack, print_thread_stack

__all__ = ["get_thread_stack", "print_stack", "print_thread_stack"]
