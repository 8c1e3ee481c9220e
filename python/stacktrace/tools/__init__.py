"""``Timer`` and ``Profiler``, as numba's ``stacktrace.tools`` has them: the Timer's function
gets lists of ``stacktrace.utils.StackEntry``."""

import stacksample
from stacksample import Profiler

from ..utils import from_native

__all__ = ["Profiler", "Timer"]


class Timer(stacksample.Timer):
    __doc__ = stacksample.Timer.__doc__

    def __init__(self, tid, func, *args, **kwargs):
        def numba_shaped(stack):
            func([from_native(entry) for entry in stack])

        super().__init__(tid, numba_shaped, *args, **kwargs)
