"""A thread doing pure-Python and regular-expression work, for the tests to sample."""

import re
import threading

import pytest

BACKTRACKING = re.compile(r"(a+)+b")


def python_and_regex_work(stop):
    while not stop.is_set():
        sum(i * i for i in range(2000))
        BACKTRACKING.match("a" * 16 + "c")


@pytest.fixture
def worker():
    stop = threading.Event()
    thread = threading.Thread(target=python_and_regex_work, args=(stop,), name="worker")
    thread.start()
    yield thread
    stop.set()
    thread.join()
