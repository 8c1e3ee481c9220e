"""Frames that change all the time under a sampler: short-lived threads (their thread states
are freed while the sampler may still list them), recursion of random depth, generators
made and dropped, exceptions unwinding frames, and code compiled, run and freed."""
import random
import sys
import threading
import time


def recurse(n):
    if n == 0:
        return sum(range(50))
    return recurse(n - 1) + 1


def fail(n):
    if n == 0:
        raise ValueError(n)
    fail(n - 1)


def numbers(limit):
    for i in range(limit):
        yield recurse(i % 7)


def short_life(seed):
    rng = random.Random(seed)
    for _ in range(20):
        recurse(rng.randrange(30))


def churn(seconds):
    rng = random.Random(1)
    deadline = time.monotonic() + seconds
    threads = []
    rounds = 0
    while time.monotonic() < deadline:
        recurse(rng.randrange(80))
        sum(numbers(rng.randrange(20)))
        try:
            fail(rng.randrange(40))
        except ValueError:
            pass
        namespace = {}
        exec(f"def made_{rounds}(x):\n    return [x * i for i in range(30)]", namespace)
        namespace[f"made_{rounds}"](rounds)
        thread = threading.Thread(target=short_life, args=(rounds,))
        thread.start()
        threads.append(thread)
        if len(threads) > 4:
            threads.pop(0).join()
        rounds += 1
    for thread in threads:
        thread.join()
    return rounds


print("done", churn(float(sys.argv[1])) > 0)
