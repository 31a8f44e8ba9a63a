"""The keep/discard rule, in one replaceable place.

It is the built-in ``pytest_autoresearch_decide`` implementation, registered ``trylast``:
a plugin (or the noise-aware rule to come) that returns a :class:`Decision` replaces it.
It is only asked about candidates that passed every test and recorded a primary score.
"""

from __future__ import annotations

import dataclasses

import pytest

from .records import MetricSpec, TrialRecord, is_better


@dataclasses.dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str = ""


@pytest.hookimpl(trylast=True)
def pytest_autoresearch_decide(
    config: pytest.Config, metric: MetricSpec, candidate: TrialRecord, best: TrialRecord
) -> Decision:
    assert candidate.score is not None and best.score is not None
    if is_better(candidate.score, best.score, metric.goal):
        return Decision(True)
    word = "equal to" if candidate.score == best.score else "worse than"
    return Decision(False, f"{metric.name} {candidate.score:.6g} is {word} the best {best.score:.6g}")
