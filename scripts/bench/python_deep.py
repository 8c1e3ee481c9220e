"""Benchmark workload: a fixed amount of pure-Python work (--rounds of 2,000 steps) at the
bottom of a 50-deep Python recursion; prints its wall and CPU seconds as JSON."""
import argparse
import json
import time

DEPTH = 50


def spin(rounds):
    x = 1
    for _ in range(rounds):
        for i in range(2000):
            x = (x * 1103515245 + 12345 + i) & 0x7FFFFFFF
    return x


def recurse(n, rounds):
    # recurse(50) ... recurse(2) -> recurse(1) -> spin: 51 frames below <module>.
    if n > 1:
        return recurse(n - 1, rounds)
    return spin(rounds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    wall, cpu = time.perf_counter(), time.process_time()
    recurse(DEPTH, args.rounds)
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))


main()
