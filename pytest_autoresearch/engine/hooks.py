"""The built-in ``pytest_autoresearch_decide``: a thin wrapper over the verdict's keep rule.

Registered ``trylast`` by the driver, so a plugin (or conftest) that returns a
:class:`~pytest_autoresearch.core.verdict.Decision` wins.
"""

from __future__ import annotations

import pytest

from ..core.noise import Noise, NoiseRule
from ..core.records import MetricSpec, TrialRecord
from ..core.verdict import Decision, decide
from ..settings import SETTINGS_KEY


def rule_of(config: pytest.Config) -> NoiseRule:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return NoiseRule()
    return NoiseRule(min_delta=settings.min_delta, k=settings.noise_k, confirm_runs=settings.confirm_runs)


@pytest.hookimpl(trylast=True)
def pytest_autoresearch_decide(
    config: pytest.Config, metric: MetricSpec, candidate: TrialRecord, best: TrialRecord, noise: Noise
) -> Decision:
    return decide(rule_of(config), noise, metric, candidate, best)
