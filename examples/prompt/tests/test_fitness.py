"""The frozen evaluator: field-level F1 of the task model's answers on 40 reports, goal max."""

from __future__ import annotations

import pytest

from harness import evaluate, load_prompt

PROMPT_BUDGET = 700  # mean prompt tokens per report (characters / 4): worked examples are not free


@pytest.mark.fitness(goal="max")
def test_field_f1(fitness, task_model):
    result = evaluate(load_prompt(), "dev", task_model)
    fitness(result["f1"])
    for field, f1 in result["per_field"].items():
        fitness.metric(f"f1_{field}", f1)
    fitness.metric("prompt_tokens", result["prompt_tokens"], max=PROMPT_BUDGET)
