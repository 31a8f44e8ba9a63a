"""A real model drives the loop: Qwen2.5-Coder 1.5B served on 127.0.0.1 by llama-cpp-python.

Opt-in (``--local-model``; CI never passes it): each test serves the model from the kit that
``local_model.py`` finds, skips with the reason when the kit, the model or llama-cpp-python is
missing, and runs a few trials of the quickstart. A minute or so per trial on one core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import example_copy, results_of, run_pytest
from local_model import AGENT, served

pytestmark = pytest.mark.local_model

TRIALS = 3


def _loop(copy: Path, url: str, *args: str) -> tuple[pytest.RunResult, list[dict[str, str]]]:
    result = run_pytest(
        copy,
        "--autoresearch",
        "--autoresearch-tag=t",
        f"--autoresearch-trials={TRIALS}",
        f"--autoresearch-agent={AGENT}",
        f"--autoresearch-api-base={url}",
        *args,
        timeout=1800,
        env={"OPENAI_API_KEY": "none"},
    )
    return result, results_of(copy)


@pytest.mark.parametrize("tools", [False, True], ids=["one-shot", "tools"])
def test_the_real_models_answers_apply_on_the_quickstart(tmp_path: Path, tools: bool) -> None:
    copy = example_copy("quickstart", tmp_path)
    with served("1.5b", tools=tools, log_dir=tmp_path) as server:
        result, rows = _loop(copy, server.url, *(["-o", "autoresearch_agent_tools=on"] if tools else []))
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, out
    trials = [r for r in rows if r["status"] != "baseline"]
    assert len(trials) == TRIALS, out
    applied = [r for r in trials if r["status"] != "invalid"]
    reasons = [r["reason"] for r in trials if r["status"] == "invalid"]
    assert len(applied) * 3 >= len(trials) * 2, f"only {len(applied)} of {len(trials)} answers applied: {reasons}"
    answers = sorted((copy / ".autoresearch" / "t" / "trials").glob("*.answer.md"))
    assert len(answers) == TRIALS and all(a.read_text().strip() for a in answers)  # the model's own words, kept
