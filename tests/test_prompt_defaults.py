"""What the model is told by default, read from the requests a scripted server receives: the
fitness test's source (never a holdout's), the noise and the gain a keep needs, the trial's time
budget, the bounds of gated metrics and the simplicity rule."""

from __future__ import annotations

import pytest
from helpers import GATE_TEST, MODEL, PYPROJECT, Project
from llm_server import answer, scripted_server

from pytest_autoresearch.core import defaults

pytest.importorskip("litellm")

NOISY_FITNESS = '''import random

import pytest

import model


@pytest.mark.fitness(goal="min")
def test_error(fitness):
    errors = [abs(model.predict(x) - (2.5 * x + 3)) for x in range(10)]
    fitness(sum(e * e for e in errors) / 10 + random.random())  # a noisy evaluator
    fitness.metric("max_error", max(errors), max=50.0)
'''

HOLDOUT = '''import pytest

import model

HOLDOUT_ONLY_MARKER = "the model must never see this file"


@pytest.mark.fitness(goal="min", holdout=True)
def test_holdout_error(fitness):
    fitness(abs(model.predict(20.0) - 53.0))
'''

EDIT = "A steeper slope.\n\nmodel.py\n<<<<<<< SEARCH\nSCALE = 1.0\n=======\nSCALE = 2.5\n>>>>>>> REPLACE\n"


def test_the_prompt_shows_the_fitness_test_the_noise_the_gain_the_time_budget_and_the_bounds(project: Project) -> None:
    project.init({
        "model.py": MODEL, "tests/test_fitness.py": NOISY_FITNESS, "tests/test_holdout.py": HOLDOUT, "tests/test_gate.py": GATE_TEST,
        "pyproject.toml": PYPROJECT,
    })
    with scripted_server(answer(EDIT)) as server:
        result = project.loop(
            "--autoresearch-agent=litellm:openai/test-model", "-o", f"autoresearch_api_base={server.url}", "--autoresearch-trials=1",
            "--autoresearch-timeout=77", env={"OPENAI_API_KEY": "sk-test"},
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    baseline = project.rows()[0]
    runs, spread = int(baseline["runs"]), float(baseline["spread"])
    assert runs == defaults.NOISY_BASELINE_RUNS and spread > 0
    (prompt,) = server.prompts()
    # the evaluator's source, read-only, with no autoresearch_context set; the holdout's never
    assert "## Read-only context (frozen: do not edit)\n\n### tests/test_fitness.py" in prompt
    assert "fitness.metric(\"max_error\", max(errors), max=50.0)" in prompt
    assert "HOLDOUT_ONLY_MARKER" not in prompt and "tests/test_holdout.py" not in prompt
    # the numbers the keep rule uses: the spread the baseline measured, and k times it
    gain = max(defaults.MIN_DELTA, defaults.NOISE_K * spread)
    assert f"one run of the evaluator varies by about {spread:.3g} (standard deviation)" in prompt
    assert f"must improve by more than {gain:.3g} to be kept" in prompt
    assert f"run {1 + defaults.CONFIRM_RUNS} times and judged on its mean" in prompt
    assert "each trial's test run is killed after 77 seconds" in prompt
    assert "Gated metrics (a change that leaves a bound is never kept): max_error <= 50 (now 16.5)." in prompt
    assert "Simpler is better" in prompt


def test_a_deterministic_evaluator_and_a_baseline_timed_budget_are_said_plainly(project: Project) -> None:
    project.init()
    with scripted_server(answer(EDIT)) as server:
        result = project.loop(
            "--autoresearch-agent=litellm:openai/test-model", "-o", f"autoresearch_api_base={server.url}", "--autoresearch-trials=1",
            env={"OPENAI_API_KEY": "sk-test"},
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    (prompt,) = server.prompts()
    assert "### tests/test_fitness.py" in prompt.split("## Mutable files")[0]
    assert "Noise: none: the evaluator is deterministic; the primary metric must improve by more than 0 to be kept." in prompt
    timeout = next(line for line in result.stdout.lines if "trial timeout" in line).split("trial timeout ")[1].split("s ")[0]
    assert f"each trial's test run is killed after {timeout} seconds" in prompt
    assert "Gated metrics" not in prompt
