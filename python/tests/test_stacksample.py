"""The fuller API of the stacksample module: thread ids, formats, one sampler per process,
errors, and sharing the engine with the preloaded library."""

import os
import subprocess
import sys
import threading
import time

import pytest

import stacksample
from stacksample import BUSY, Profiler, StacksampleError, Timer


def test_pthread_and_kernel_ids_name_the_same_thread(worker):
    assert stacksample.native_thread_id(worker.ident) == worker.native_id
    assert stacksample.native_thread_id(worker.native_id) == worker.native_id
    assert stacksample.native_thread_id(threading.get_ident()) == threading.get_native_id()
    with pytest.raises(StacksampleError, match="not a thread of this process"):
        stacksample.native_thread_id(12)


def test_profiler_writes_the_preload_formats_and_self_counts(worker, tmp_path):
    with Profiler(worker.ident, interval=0.001) as prof:
        time.sleep(0.3)
    prof.write(tmp_path / "prof", "txt,folded,pprof")
    for name in ["prof.txt", "prof.folded", "prof.pb.gz"]:
        assert (tmp_path / name).stat().st_size > 0, name
    assert "_PyEval_EvalFrameDefault" in (tmp_path / "prof.folded").read_text()
    self_counts = prof.get_self_counts()
    result = prof.get_result()
    assert set(self_counts) == set(result)
    assert all(self_counts[a] <= result[a]["count"] for a in result)
    with pytest.raises(StacksampleError, match="unknown format"):
        prof.write(tmp_path / "prof", "png")
    before = sum(v["count"] for v in result.values())
    with prof:
        time.sleep(0.1)
    assert sum(v["count"] for v in prof.get_result().values()) > before


def test_a_second_sampler_is_refused_while_one_runs(worker):
    with Profiler(worker.ident, interval=0.001):
        with pytest.raises(StacksampleError, match="another Timer or Profiler") as refused:
            Timer(worker.ident, lambda stack: None).start()
        assert refused.value.code == BUSY
    timer = Timer(worker.ident, lambda stack: None, interval=0.001)
    timer.start()
    timer.join()


def test_an_exception_in_the_callback_is_raised_by_join(worker):
    def fails(stack):
        raise ValueError("from the callback")

    timer = Timer(worker.ident, fails, interval=0.001)
    timer.start()
    time.sleep(0.1)
    with pytest.raises(ValueError, match="from the callback"):
        timer.join()


PRELOADED = """
import threading, time, stacksample
from stacksample import Profiler, StacksampleError, BUSY
assert stacksample._native.lib._name is None, "the preloaded copy is not the one used"
try:
    Profiler(threading.get_ident()).start()
except StacksampleError as error:
    assert error.code == BUSY, error
    print("refused:", error)
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    sum(i * i for i in range(1000))
"""


def test_under_ld_preload_the_api_uses_the_preloaded_engine_and_never_competes(tmp_path):
    library = stacksample._native.lib._name
    env = dict(os.environ, LD_PRELOAD=library, STACKSAMPLE_OUTPUT=str(tmp_path / "pre"),
               STACKSAMPLE_FORMAT="folded")
    done = subprocess.run([sys.executable, "-c", PRELOADED], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused: stacksample: cannot start sampling: a profiling session" in done.stdout
    folded = (tmp_path / "pre.folded").read_text()
    assert "_PyEval_EvalFrameDefault" in folded
