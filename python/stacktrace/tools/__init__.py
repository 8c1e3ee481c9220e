"""``Timer`` and ``Profiler``, as numba's ``stacktrace.tools`` has them."""

from stacksample import Profiler, Timer

__all__ = ["Profiler", "Timer"]
