"""examples/tinygpt: a character-level GPT trained for a wall-clock budget, scored in bits per byte."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import example_copy, mutate_trials, run_pytest

NAME = "tinygpt"


def test_plain_pytest_trains_and_shows_the_score(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    result = run_pytest(copy, env={"TINYGPT_TIME_BUDGET": "1"})
    out = "\n".join(result.outlines)
    assert result.ret == 0, out
    match = re.search(r"tests/test_fitness.py::test_val_bpb\s+(\d+\.\d+)\s+min\s+params=\d+, peak_memory_mb=[\d.]+, train_seconds=([\d.]+)", out)
    assert match, out
    assert 0 < float(match.group(1)) < 7  # log2 of the vocabulary is 5.75: an untrained model's score
    assert float(match.group(2)) < 1 + 5, "the 1-second budget from TINYGPT_TIME_BUDGET was not honoured"


def test_a_diverging_run_fails_fast_and_clearly(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    train = copy / "train.py"
    train.write_text(re.sub(r"(?m)^LEARNING_RATE = .*$", "LEARNING_RATE = 10.0", train.read_text()))
    result = run_pytest(copy, "tests/test_fitness.py", env={"TINYGPT_TIME_BUDGET": "60"})
    out = "\n".join(result.outlines)
    assert result.ret == 1, out
    assert "FloatingPointError: training diverged at step" in out
    assert result.duration < 40, f"a diverging run should stop at once, not spend its 60 s budget ({result.duration:.0f} s)"


def test_the_shipped_corpus_is_what_make_corpus_writes(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    pinned = re.search(r'CORPUS_SHA256 = "([0-9a-f]{64})"', (copy / "prepare.py").read_text()).group(1)
    assert hashlib.sha256((copy / "corpus.txt").read_bytes()).hexdigest() == pinned
    (copy / "corpus.txt").unlink()
    subprocess.run([sys.executable, "make_corpus.py"], cwd=copy, check=True, capture_output=True)
    assert hashlib.sha256((copy / "corpus.txt").read_bytes()).hexdigest() == pinned


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_mutate_trials(tmp_path: Path) -> None:
    """A 1-second budget and one baseline run (the noise rule's five would triple the time):
    the loop's mechanics, not the noise rule, are what this checks."""
    rows = mutate_trials(NAME, tmp_path, "-o", "autoresearch_baseline_runs=1", env={"TINYGPT_TIME_BUDGET": "1"})
    # the trials saw TINYGPT_TIME_BUDGET: they trained for about 1 s, not the frozen 20 s
    trained = [float(r["train_seconds"]) for r in rows if r["train_seconds"]]
    assert trained and max(trained) < 1 + 5, rows
