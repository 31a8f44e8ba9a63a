"""How much of a score is luck: the evaluator's noise, and the rule that keeps luck off the branch.

The baseline runs more than once. Identical scores mean a deterministic evaluator, and one
run per trial decides. Differing scores mean noise: its spread (the standard deviation of a
single run) is estimated from every group of repeated runs the loop makes, pooled, and a
candidate is kept only when the mean of its runs beats the best by more than
``max(min_delta, k * spread)``, the spread being what was known before the candidate ran
(its own runs join the pool for the trials after it). Candidates that do not look promising on their first run are
not repeated, so noise costs extra runs only where a keep is possible.

Pure arithmetic, no I/O: the same code decides in the loop and in the benchmark that chose
its defaults (``bench/noise.py``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

from . import defaults

#: Defaults chosen by bench/noise.py (see the README's "Noise" section for the figures).
DEFAULT_BASELINE_RUNS = defaults.BASELINE_RUNS
DEFAULT_NOISY_BASELINE_RUNS = defaults.NOISY_BASELINE_RUNS
DEFAULT_CONFIRM_RUNS = defaults.CONFIRM_RUNS
DEFAULT_K = defaults.NOISE_K


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclasses.dataclass
class Noise:
    """What the run knows of its evaluator's noise: pooled over groups of repeated runs."""

    sum_squares: float = 0.0  # sum over groups of (runs - 1) * variance
    dof: int = 0  # sum over groups of (runs - 1)
    observed: bool = False  # some group of repeated runs

    def add(self, scores: Sequence[float]) -> None:
        if len(scores) < 2:
            return
        self.observed = True
        self.sum_squares += (len(scores) - 1) * stdev(scores) ** 2
        self.dof += len(scores) - 1

    def add_summary(self, runs: int, spread: float | None) -> None:
        """A group known only by its run count and spread (a resumed run's log rows)."""
        if runs >= 2 and spread is not None:
            self.observed = True
            self.sum_squares += (runs - 1) * spread**2
            self.dof += runs - 1

    def plus(self, runs: int, spread: float) -> Noise:
        """What the run knows once a group of ``runs`` repeated runs with this spread is added
        (self is unchanged)."""
        grown = dataclasses.replace(self)
        grown.add_summary(runs, spread)
        return grown

    @property
    def deterministic(self) -> bool:
        return self.observed and self.sum_squares == 0.0

    @property
    def spread(self) -> float:
        return math.sqrt(self.sum_squares / self.dof) if self.dof else 0.0


@dataclasses.dataclass(frozen=True)
class NoiseRule:
    min_delta: float = defaults.MIN_DELTA
    k: float = DEFAULT_K
    confirm_runs: int = DEFAULT_CONFIRM_RUNS

    def threshold(self, noise: Noise) -> float:
        """The improvement a candidate's mean must exceed to be kept."""
        return max(self.min_delta, self.k * noise.spread)

    def worth_confirming(self, gain: float, noise: Noise, fewer_lines: bool) -> bool:
        """Whether a first run is promising enough to pay for confirmation runs: any gain at
        all, or, for a simpler candidate, a score within the threshold of the best."""
        if noise.deterministic or not noise.observed:
            return False
        return gain > 0 or (fewer_lines and gain > -self.threshold(noise))
