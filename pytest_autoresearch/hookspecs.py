"""Hooks other plugins (and conftest files) implement to extend the research loop.

Each policy that later work or users may replace has exactly one seam here, in the style of
pytest-timeout and pytest-xdist: a ``firstresult`` hook whose built-in implementation is
registered ``trylast``, so any other implementation that returns a value wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .agents import Agent
    from .core.verdict import Decision
    from .core.noise import Noise
    from .core.records import MetricSpec, TrialRecord


@pytest.hookspec(firstresult=True)
def pytest_autoresearch_make_agent(config: pytest.Config, spec: str) -> Agent | None:
    """Return the agent for ``--autoresearch-agent=SPEC``, or None when SPEC is not yours.

    The built-in implementation (:mod:`pytest_autoresearch.agents.builtin`) knows
    ``mutate[:SEED]``, ``litellm:MODEL``, ``cmd:COMMAND`` and ``replay:PATH``. A plugin adds
    an agent by returning an :class:`pytest_autoresearch.agents.Agent` for its own specs:

    .. code-block:: python

        def pytest_autoresearch_make_agent(config, spec):
            if spec.startswith("myagent:"):
                return MyAgent(spec.partition(":")[2])
    """


@pytest.hookspec(firstresult=True)
def pytest_autoresearch_decide(
    config: pytest.Config, metric: MetricSpec, candidate: TrialRecord, best: TrialRecord, noise: Noise
) -> Decision | None:
    """Decide whether a candidate that passed every test (and every metric bound) is kept.

    ``metric`` is the primary fitness test (its name and goal); ``candidate`` has a primary
    score (the mean of ``candidate.runs`` runs), its ``spread`` and net ``lines``; ``best`` is
    the best the candidate was made from (the baseline at first); ``noise`` is what the run
    knew of the evaluator's noise before the candidate ran (its own runs are not in it). Return a :class:`pytest_autoresearch.core.verdict.Decision`.
    The built-in rule is :func:`pytest_autoresearch.core.verdict.decide`, described in
    :mod:`pytest_autoresearch.core.verdict`; its ``trylast`` implementation of this hook is in
    :mod:`pytest_autoresearch.engine.hooks`.
    """


@pytest.hookspec()
def pytest_autoresearch_trial_logged(config: pytest.Config, record: TrialRecord) -> None:
    """Called after a trial's row was appended to results.tsv (the baseline included), its refs
    moved and its audit record written.

    For observers: progress plots, dashboards, notifications. The record is final.
    """
