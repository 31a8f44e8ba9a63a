"""examples/clinical: a lesion classifier scored by validation AUC, gated by sensitivity, with a
holdout and human review of its preprocessing and loss."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from helpers import example_copy, mutate_trials, results_of, run_pytest

NAME = "clinical"


def test_plain_pytest_shows_auc_and_the_gate(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    result = run_pytest(copy)
    out = "\n".join(result.outlines)
    assert result.ret == 0, out
    assert re.search(r"tests/test_fitness.py::test_validation_auc\s+0.747159\s+max\s+sensitivity_at_spec90=0.360656, parameters=177", out), out
    assert re.search(r"tests/test_holdout.py::test_test_split_auc\s+0.723289\s+max", out), out


def test_a_class_weight_that_starves_the_malignant_class_breaks_the_gate(tmp_path: Path) -> None:
    """The sensitivity floor is a real gate: a knob the agent can reach falls below it."""
    copy = example_copy(NAME, tmp_path)
    loss = copy / "loss.py"
    loss.write_text(loss.read_text().replace("POS_WEIGHT = 1.0", "POS_WEIGHT = 0.3"))
    result = run_pytest(copy, "tests/test_fitness.py")
    out = "\n".join(result.outlines)
    assert result.ret == 0, out
    assert re.search(r"sensitivity_at_spec90=0.27\d* \(below its min 0.3\)", out), out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_mutate_trials(tmp_path: Path) -> None:
    rows = mutate_trials(NAME, tmp_path)
    assert all(r["sensitivity_at_spec90"] for r in rows if r["status"] in ("baseline", "keep", "discard")), rows


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_better_preprocessing_is_parked_for_review_not_kept(tmp_path: Path) -> None:
    """Log-scaling the lesion size raises the AUC, but preprocessing.py is reviewed: the loop
    parks that change and goes on from the previous best, where a model.py change is kept."""
    copy = example_copy(NAME, tmp_path)
    preprocessing = (copy / "preprocessing.py").read_text()
    model = (copy / "model.py").read_text()
    proposals = [
        {"description": "log-scale the size", "files": {"preprocessing.py": preprocessing.replace("LOG_SIZE = False", "LOG_SIZE = True")}},
        {"description": "train longer", "files": {"model.py": re.sub(r"(?m)^EPOCHS = \d+$", "EPOCHS = 80", model)}},
    ]
    replay = tmp_path / "proposals.jsonl"
    replay.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    result = run_pytest(copy, "--autoresearch", f"--autoresearch-agent=replay:{replay}", "--autoresearch-tag=t")
    out = "\n".join(result.outlines + result.errlines)
    assert result.ret == 0, out
    rows = results_of(copy)
    assert [r["status"] for r in rows] == ["baseline", "review", "keep"], rows
    assert float(rows[1]["score"]) > float(rows[0]["score"]), "the parked change must be one the loop would have kept"
    assert rows[1]["reason"] == "touches preprocessing.py (autoresearch_review)"
    assert "git cherry-pick autoresearch/t/review/001" in out

    def show(ref: str, path: str) -> str:
        return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=copy, capture_output=True, text=True, check=True).stdout

    assert "LOG_SIZE = True" in show("autoresearch/t/review/001", "preprocessing.py")
    assert "LOG_SIZE = False" in show("autoresearch/t", "preprocessing.py")
    assert "EPOCHS = 80" in show("autoresearch/t", "model.py")
