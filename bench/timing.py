"""How steady a timing score is: one ``perf_counter`` reading against ``timing.measure``.

A fitness test that times a function gives the loop a noisy score, and the loop keeps luck when
the noise is large. This measures, on this machine, the same small function many times with each
method and reports how much the results move between measurements (each measurement is what one
trial's fitness test would record): a single ``perf_counter`` reading of one call, and
``measure`` with wall or CPU time and the min or median of its rounds. The methods are
interleaved so that changes in the machine's load hit them alike; with ``--load N`` (default:
one per core), N busy-loop processes run beside it the whole time.

    .venv/bin/python bench/timing.py [--runs 40] [--load N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import random
import statistics
import time
from collections.abc import Callable

from pytest_autoresearch.timing import measure

_RNG = random.Random(0)
DATA = [_RNG.random() for _ in range(2000)]


def work() -> object:
    """The function a fitness test would time: about 0.2 ms of sorting and summing."""
    return sum(sorted(DATA)[::7])


def single_call() -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def helper(clock: str, stat: str) -> Callable[[], float]:
    return lambda: measure(work, clock=clock, stat=stat).value


METHODS: dict[str, Callable[[], float]] = {
    "one perf_counter call": single_call,
    "measure wall min": helper("wall", "min"),
    "measure wall median": helper("wall", "median"),
    "measure cpu min": helper("cpu", "min"),
    "measure cpu median": helper("cpu", "median"),
}


def burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        for _ in range(100_000):
            pass


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    median = statistics.median(ordered)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return {
        "median_us": 1e6 * median,
        "cv_pct": 100 * statistics.stdev(ordered) / statistics.fmean(ordered),
        "iqr_pct": 100 * (q3 - q1) / median,
        "range_pct": 100 * (ordered[-1] - ordered[0]) / median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="measurements per method")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy-loop processes beside it")
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args()

    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for p in burners:
        p.start()
    samples: dict[str, list[float]] = {name: [] for name in METHODS}
    cost: dict[str, float] = {name: 0.0 for name in METHODS}
    try:
        time.sleep(0.5)
        for name in METHODS:  # untimed: imports and caches
            METHODS[name]()
        for _ in range(args.runs):
            for name, method in METHODS.items():
                start = time.perf_counter()
                samples[name].append(method())
                cost[name] += time.perf_counter() - start
    finally:
        stop.set()
        for p in burners:
            p.join()

    print(f"{platform.node()}: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
          f"{args.load} busy-loop processes beside it, {args.runs} measurements per method")
    print(f"{'method':<24} {'median':>10} {'CV':>8} {'IQR':>8} {'range':>8} {'cost each':>10}")
    figures = {}
    for name, values in samples.items():
        s = spread(values)
        figures[name] = {**s, "cost_s": cost[name] / args.runs, "values": values}
        print(f"{name:<24} {s['median_us']:>8.1f}us {s['cv_pct']:>7.1f}% {s['iqr_pct']:>7.1f}% "
              f"{s['range_pct']:>7.1f}% {cost[name] / args.runs:>9.3f}s")
    print("CV: standard deviation / mean of the measurements; IQR and range: relative to their median")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load": args.load, "runs": args.runs, "figures": figures}, f, indent=1)
    assert all(math.isfinite(v) for values in samples.values() for v in values)


if __name__ == "__main__":
    main()
