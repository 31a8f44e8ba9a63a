"""The keep/discard rule, in one replaceable place.

It is the built-in ``pytest_autoresearch_decide`` implementation, registered ``trylast``:
a plugin that returns a :class:`Decision` replaces it. It is only asked about candidates that
passed every test, stayed within every metric bound and recorded a primary score (the mean
of their runs when the evaluator is noisy).

- A deterministic evaluator (identical baseline runs): keep a gain larger than
  ``autoresearch_min_delta`` (any gain, by default).
- A noisy one: keep a gain of the mean larger than ``max(min_delta, k * spread)``.
- Simplicity: a score equal within that rule is kept when the candidate has fewer surface
  lines than the best, and discarded otherwise.
"""

from __future__ import annotations

import dataclasses

import pytest

from .noise import Noise, NoiseRule
from .records import MetricSpec, TrialRecord, improvement
from ..settings import SETTINGS_KEY


@dataclasses.dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str = ""




def decide(rule: NoiseRule, noise: Noise, metric: MetricSpec, candidate: TrialRecord, best: TrialRecord) -> Decision:
    assert candidate.score is not None and best.score is not None
    gain = improvement(candidate.score, best.score, metric.goal)
    noisy = noise.observed and not noise.deterministic
    threshold = rule.threshold(noise) if noisy else rule.min_delta
    fewer = (candidate.lines or 0) < 0
    if noisy and candidate.runs < 2:
        return Decision(False, f"{metric.name} {candidate.score:.6g} on one run does not look better than the best {best.score:.6g}; not confirmed")
    if gain > threshold:
        return Decision(True)
    if gain >= -threshold and fewer:
        return Decision(True, f"as good as the best within {threshold:.3g}, with {-candidate.lines} fewer lines")  # type: ignore[operator]
    if gain > 0:
        return Decision(False, f"{metric.name} gained {gain:.3g}, not more than {threshold:.3g} ({_why(noisy, rule)})")
    word = "equal to" if gain == 0 else "worse than"
    tail = ""
    if gain >= -threshold and (candidate.lines or 0) > 0:
        tail = f"; an equal score needs fewer lines, not {candidate.lines} more"
    return Decision(False, f"{metric.name} {candidate.score:.6g} is {word} the best {best.score:.6g}{tail}")


def _why(noisy: bool, rule: NoiseRule) -> str:
    return f"max(min_delta {rule.min_delta:g}, {rule.k:g} x the noise spread)" if noisy else "autoresearch_min_delta"


