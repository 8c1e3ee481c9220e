"""``StackEntry(addr, name, offset, is_python)``, as numba's ``stacktrace.utils`` has it
(with the module as an optional fifth field)."""

from stacksample import StackEntry

__all__ = ["StackEntry"]
