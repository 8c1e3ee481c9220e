"""``StackEntry(addr, name, offset, is_python)``, numba's shape of one native frame, and the
conversion from the richer entries of the ``stacksample`` package."""

from collections import namedtuple


class StackEntry(namedtuple("StackEntry", "addr,name,offset,is_python")):
    """One frame: its address, the symbol's name, the offset into it, and whether it is
    CPython interpreter code. Printed as numba prints it: ``[0x7f9c3e95861d] name +125``,
    with `` [PY]`` after interpreter code; no ``+offset`` when the offset is 0. Code that no
    symbol covers is named ``<file name>+0x<offset of its function in the file>``, offset 0. A
Python function's frame is named ``qualname (file.py:line)``; its address is an id (at or
above ``0xfffff00000000000``), the same for one function and line within one Timer or call."""

    def __str__(self):
        offset = " +{}".format(self.offset) if self.offset else ""
        python = " [PY]" if self.is_python else ""
        return "[0x{:x}] {}{}{}".format(self.addr, self.name, offset, python)


def from_native(entry):
    """The numba-shaped entry of a ``stacksample.StackEntry``."""
    return StackEntry(entry.addr, entry.name, entry.offset, entry.is_python)


__all__ = ["StackEntry", "from_native"]
