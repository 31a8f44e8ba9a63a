"""Timing as a score: a function's time per call, measured so that one busy neighbour does not
decide a trial.

One ``perf_counter`` reading of a quick function moves by tens of percent on a shared machine
(``bench/timing.py`` measured it): a neighbour's process takes the core, the cache is cold, the
garbage collector runs. A score like that keeps luck. :func:`measure` times ``repeats`` rounds
after ``warmup`` untimed calls, each round long enough to dwarf the clock's resolution, and
returns a robust statistic of the rounds (the median, or the minimum) with their spread, so the
noise that is left is visible beside the score. ``fitness.time(fn)`` records it as the score.

CPU time (``clock="cpu"``, this process's CPU seconds, every thread of it) does not count the
time the process waits for a core, so it is the steadier score on a loaded machine; it leaves out
time spent waiting (I/O, sleeps, locks) and in child processes, and it adds up the threads of
parallel code. Wall time (``clock="wall"``, ``time.perf_counter``) is what a user waits for:
use it when waiting or parallelism is what is being improved.

Stdlib only (``time``, ``math``): this module loads in every pytest run with the plugin.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

# Bound once, when the plugin loads and before any candidate code runs: a candidate that replaces
# time.process_time does not reach these, and rebinding them is a change a trial's harness check sees.
_WALL = time.perf_counter
_CPU = time.process_time
CLOCKS = ("wall", "cpu")
STATS = ("median", "min", "mean")

#: Defaults of :func:`measure`: 21 rounds of at least 10 ms each cost about 0.2 s for a quick function.
REPEATS = 21
WARMUP = 2
MIN_ROUND_TIME = 0.01


class Timing(NamedTuple):
    """What :func:`measure` found: ``value`` is the chosen statistic, in seconds per call."""

    value: float
    stat: str
    clock: str
    number: int  # calls per round
    times: tuple[float, ...]  # seconds per call, one per round, in the order measured

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return quantile(sorted(self.times), 0.5)

    @property
    def mean(self) -> float:
        return math.fsum(self.times) / len(self.times)

    @property
    def iqr(self) -> float:
        """The interquartile range of the rounds: their spread, in seconds, robust to a few
        rounds a neighbour slowed down."""
        ordered = sorted(self.times)
        return quantile(ordered, 0.75) - quantile(ordered, 0.25)

    @property
    def spread(self) -> float:
        """The interquartile range relative to the median (0.05: the middle half of the rounds
        lies within 5 % of the median's size)."""
        median = self.median
        return self.iqr / median if median > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.stat} {self.value:.6g} s per call ({self.clock} clock, {len(self.times)} rounds "
            f"of {self.number} call{'s' if self.number != 1 else ''}, spread {100 * self.spread:.1f} %)"
        )


def quantile(ordered: Sequence[float], p: float) -> float:
    """The ``p`` quantile of sorted values, interpolated linearly between neighbours (the
    'inclusive' method of :func:`statistics.quantiles`, which this module does not import)."""
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _clock(clock: str | Callable[[], float]) -> tuple[str, Callable[[], float]]:
    if callable(clock):
        return getattr(clock, "__name__", "custom"), clock
    if clock not in CLOCKS:
        raise ValueError(f'clock must be "wall" or "cpu" (or a function returning seconds), got {clock!r}')
    return clock, _WALL if clock == "wall" else _CPU


def _round(fn: Callable[[], object], number: int, timer: Callable[[], float]) -> float:
    start = timer()
    for _ in range(number):
        fn()
    return timer() - start


def measure(
    fn: Callable[[], object],
    *,
    repeats: int = REPEATS,
    warmup: int = WARMUP,
    clock: str | Callable[[], float] = "cpu",
    stat: str = "median",
    number: int | None = None,
    min_round_time: float = MIN_ROUND_TIME,
    disable_gc: bool = False,
) -> Timing:
    """Time ``fn()`` (no arguments: wrap a call in a lambda) and return its seconds per call.

    ``warmup`` calls run first, untimed (imports, caches, lazy set-up). Then ``repeats`` rounds of
    ``number`` calls each are timed with ``clock``; without ``number``, it is chosen so that one
    round takes at least ``min_round_time`` seconds (1 for a function slower than that), judged
    from the fastest warm-up call. ``stat`` picks the score: ``"median"`` (the default: steady
    under a neighbour's load, and it still moves when most rounds get faster), ``"min"`` (the
    least disturbed round: the steadiest on an idle machine, but one lucky round decides) or
    ``"mean"``. ``disable_gc`` turns the garbage collector off while rounds run.
    """
    name, timer = _clock(clock)
    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)}, got {stat!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of rounds, at least 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a whole number of calls, at least 0, got {warmup!r}")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
        raise ValueError(f"number must be a whole number of calls per round, at least 1, got {number!r}")
    fastest = math.inf
    for _ in range(warmup if number is not None else max(warmup, 1)):
        fastest = min(fastest, _round(fn, 1, timer))
    if number is None:
        number = 1 if fastest >= min_round_time else min(10**9, math.ceil(min_round_time / max(fastest, 1e-9)))
    enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        times = tuple(_round(fn, number, timer) / number for _ in range(repeats))
    finally:
        if disable_gc and enabled:
            gc.enable()
    timing = Timing(0.0, stat, name, number, times)
    return timing._replace(value=getattr(timing, stat))
