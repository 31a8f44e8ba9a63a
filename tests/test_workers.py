"""Several trials in flight (``--autoresearch-workers``): the same results as one worker for a
deterministic evaluator, re-application on a best that moved, conflicts, devices, Ctrl-C with
trials in flight, and the plugins a trial's start-up leaves out."""

from __future__ import annotations

import difflib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import Project, processes_with

from pytest_autoresearch.store.gitstate import merge_texts

KNOBS = "ABCDEF"


def knobs_text(delay: float = 0, **values: int) -> str:
    """Independent settings, each between lines of its own that never change, so that a
    patch to one applies whatever was done to the others."""
    parts = ['"""Settings the fitness test scores; each is one knob."""\n', f"DELAY = {delay}\n"]
    for name in KNOBS:
        parts.append(f"# --- {name} ---\n# the {name} knob\n# (best at 3)\n{name} = {values.get(name, 5)}\n# end of {name}\n# -\n# -\n")
    return "".join(parts)


FITNESS = '''import os
import time

import pytest

import knobs


@pytest.mark.fitness(goal="min")
def test_distance(fitness, request):
    time.sleep(knobs.DELAY)
    fitness(float(sum((getattr(knobs, k) - 3) ** 2 for k in "ABCDEF")))
    fitness.metric("device", float(os.environ.get("CUDA_VISIBLE_DEVICES", "-1")))
    fitness.metric("loaded", float(request.config.pluginmanager.has_plugin("any" + "io")))
'''

PYPROJECT = '''[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
autoresearch_mutable = ["knobs.py"]
autoresearch_baseline_runs = 1
'''


def patch(description: str, delay: float = 0, **values: int) -> dict[str, object]:
    """A replay line: a unified diff from the starting knobs to these values."""
    old, new = knobs_text().splitlines(keepends=True), knobs_text(delay, **values).splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(old, new, "a/knobs.py", "b/knobs.py"))
    return {"description": description, "patch": diff}


@pytest.fixture
def knobs_project(project: Project) -> Project:
    project.init({"knobs.py": knobs_text(), "tests/test_distance.py": FITNESS, "pyproject.toml": PYPROJECT})
    return project


def _finished_cleanly(project: Project, tag: str) -> list[dict[str, str]]:
    """Whole rows, every trial's ref, the branch at the last keep, no worktree left over."""
    rows = project.rows(tag)
    assert sorted(int(r["trial"]) for r in rows) == list(range(len(rows)))
    for r in rows[1:]:
        assert project.git("rev-parse", f"refs/autoresearch/{tag}/trials/{int(r['trial']):03d}") == r["commit"]
        assert r["parent"] != ""
    kept = [r for r in rows if r["status"] in ("baseline", "keep")]
    assert project.git("rev-parse", f"autoresearch/{tag}") == kept[-1]["commit"]
    assert len(project.git("worktree", "list").splitlines()) == 1
    assert project.git("status", "--porcelain") == ""
    return rows


def test_two_workers_keep_what_one_worker_keeps(knobs_project: Project) -> None:
    project = knobs_project
    agent = project.replay(
        patch("A 5 -> 3", A=3),
        patch("B 5 -> 9", B=9),
        patch("C 5 -> 4", C=4),
        patch("D 5 -> 3", D=3),
        patch("E 5 -> 8", E=8),
        patch("F 5 -> 2", F=2),
        patch("B 5 -> 4", B=4),
    )
    one = project.loop(agent, tag="one")
    assert one.ret == 0, one.stdout.str()
    two = project.loop(agent, "--autoresearch-workers=2", tag="two")
    assert two.ret == 0, two.stdout.str()
    rows_one, rows_two = _finished_cleanly(project, "one"), _finished_cleanly(project, "two")
    kept = lambda rows: sorted(r["description"] for r in rows if r["status"] == "keep")
    assert kept(rows_two) == kept(rows_one) == ["A 5 -> 3", "B 5 -> 4", "C 5 -> 4", "D 5 -> 3", "F 5 -> 2"]
    assert len(rows_one) == len(rows_two) == 8
    assert project.git("diff", "autoresearch/one", "autoresearch/two") == ""
    best = lambda rows: min(float(r["score"]) for r in rows if r["status"] in ("baseline", "keep"))
    assert best(rows_two) == best(rows_one) == 0 + 1 + 1 + 0 + 4 + 1
    assert "2 workers" in two.stdout.str()


def test_a_candidate_that_beat_a_moved_best_is_reapplied_and_run_again(knobs_project: Project) -> None:
    project = knobs_project
    agent = project.replay(patch("C 5 -> 3, slowly", delay=2, C=3), patch("A 5 -> 3", A=3))
    result = project.loop(agent, "--autoresearch-workers=2")
    assert result.ret == 0, result.stdout.str()
    rows = _finished_cleanly(project, "t")
    assert [(r["trial"], r["status"], r["parent"]) for r in rows] == [("0", "baseline", ""), ("2", "keep", "0"), ("1", "keep", "2")]
    assert "re-applied on trial 2" in rows[2]["reason"]
    assert float(rows[2]["score"]) == 16.0  # both changes: it was scored again on top of trial 2
    final = project.git("show", "autoresearch/t:knobs.py")
    assert "\nA = 3\n" in final and "\nC = 3\n" in final


def test_a_candidate_that_conflicts_with_the_moved_best_is_discarded(knobs_project: Project) -> None:
    project = knobs_project
    agent = project.replay(patch("A 5 -> 4, slowly", delay=2, A=4), patch("A 5 -> 3", A=3))
    result = project.loop(agent, "--autoresearch-workers=2")
    assert result.ret == 0, result.stdout.str()
    rows = _finished_cleanly(project, "t")
    assert [(r["trial"], r["status"]) for r in rows] == [("0", "baseline"), ("2", "keep"), ("1", "discard")]
    assert "conflicts with trial 2, kept while it ran" in rows[2]["reason"]
    assert "\nA = 3\n" in project.git("show", "autoresearch/t:knobs.py")


def test_each_worker_gets_its_own_device(knobs_project: Project) -> None:
    project = knobs_project
    agent = project.replay(*(patch(f"{k} 5 -> 4", **{k: 4}) for k in "ABCD"))
    result = project.loop(agent, "--autoresearch-devices=7,9")
    assert result.ret == 0, result.stdout.str()
    rows = _finished_cleanly(project, "t")
    assert rows[0]["device"] == "7.0"
    assert {r["device"] for r in rows[1:]} == {"7.0", "9.0"}  # two devices: two workers
    audit = [json.loads(line) for line in (project.path / ".autoresearch" / "t" / "audit.jsonl").read_text().splitlines()]
    assert [(a["trial"], a["device"]) for a in audit] == [(int(r["trial"]), r["device"][0]) for r in rows]


def test_ctrl_c_logs_every_trial_in_flight_and_the_run_resumes(knobs_project: Project, no_leftovers: str) -> None:
    project = knobs_project
    hang = knobs_text(A=4) + f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{no_leftovers}'])\ntime.sleep(600)\n"
    agent = project.replay(
        {"description": "hang 1", "files": {"knobs.py": hang}},
        {"description": "hang 2", "files": {"knobs.py": hang.replace("A = 4", "B = 4")}},
        patch("A 5 -> 3", A=3),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", "--autoresearch-tag=t", agent, "--autoresearch-workers=2"],
        cwd=project.path,
        stdout=(project.outside / "out.txt").open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while len(processes_with(no_leftovers)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_with(no_leftovers)) == 2, (project.outside / "out.txt").read_text()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) != 0
    time.sleep(0.2)
    assert processes_with(no_leftovers) == []
    rows = _finished_cleanly(project, "t")
    assert [(r["trial"], r["status"], r["reason"]) for r in rows[1:]] == [
        ("1", "crash", "interrupted (Ctrl-C or SIGTERM) before it was judged"),
        ("2", "crash", "interrupted (Ctrl-C or SIGTERM) before it was judged"),
    ]
    result = project.loop(agent, "--autoresearch-workers=2")
    assert result.ret == 0, result.stdout.str()
    rows = _finished_cleanly(project, "t")
    assert [(r["status"], r["description"]) for r in rows[3:]] == [("keep", "A 5 -> 3")]


def test_a_trial_starts_without_plugins_it_does_not_need(knobs_project: Project) -> None:
    pytest.importorskip("anyio")
    project = knobs_project
    result = project.loop("--autoresearch-trials=0")
    assert result.ret == 0, result.stdout.str()
    assert project.rows()[0]["loaded"] == "0.0"  # the driver has anyio's plugin; the trial left it out
    project.write({"tests/test_async.py": "# these tests use anyio\n"})
    project.git("add", "-A")
    project.git("commit", "-qm", "mentions anyio")
    result = project.loop("--autoresearch-trials=0", tag="u")
    assert result.ret == 0, result.stdout.str()
    assert project.rows("u")[0]["loaded"] == "1.0"
    result = project.loop("--autoresearch-trials=0", "-o", "autoresearch_trim_plugins=false", tag="v")
    assert project.rows("v")[0]["loaded"] == "1.0"


@pytest.mark.parametrize(
    ("ours", "base", "theirs", "merged"),
    [
        ("a\nB\nc\n", "a\nb\nc\n", "a\nb\nC\n", "a\nB\nC\n"),  # neighbouring lines combine
        ("a\nB\nc\n", "a\nb\nc\n", "a\nX\nc\n", None),  # the same line two ways: a conflict
        ("a\nB\nc\n", "a\nb\nc\n", "a\nB\nc\n", "a\nB\nc\n"),
        ("a\nB\nc\nd\ne\n", "a\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\nf\n", "a\nB\nc\nd\nE\nf\n"),  # lines added: git merge-file
    ],
)
def test_merge_texts(ours: str, base: str, theirs: str, merged: str | None) -> None:
    assert merge_texts(ours, base, theirs) == merged


def test_workers_must_be_a_positive_count(knobs_project: Project) -> None:
    result = knobs_project.loop("--autoresearch-workers=0")
    assert result.ret != 0
    assert "number of workers from --autoresearch-workers must be >= 1, got 0" in result.stderr.str()
    assert os.path.exists(knobs_project.path / ".autoresearch") is False
