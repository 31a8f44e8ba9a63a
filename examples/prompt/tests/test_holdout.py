"""40 other reports, never run in trials and never shown to the agent: a prompt fitted to the
dev reports shows here. Scored on the baseline and on the final best."""

from __future__ import annotations

import pytest

from harness import evaluate, load_prompt


@pytest.mark.fitness(goal="max", holdout=True)
def test_holdout_field_f1(fitness, task_model):
    fitness(evaluate(load_prompt(), "holdout", task_model)["f1"])
