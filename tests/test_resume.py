"""Interrupting a run at each phase of a trial, killing it outright, and running it again:
the log keeps whole rows, git and the log agree, and the same tag continues the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import MODEL, Project, default_files, processes_with

SLOW_AGENT = '''
import os, time
from pathlib import Path

from pytest_autoresearch.agents import Agent
from pytest_autoresearch.proposal import Proposal

MARK = Path(os.environ["RESUME_MARK"])


class Slow(Agent):
    """Proposes SCALE = 1.5, 2.0, 2.5, ...; on the trial named by RESUME_SLOW_TRIAL it first
    signals the test and then thinks for a long time."""

    name = "slow"

    def propose(self, context):
        if str(context.trial) == os.environ.get("RESUME_SLOW_TRIAL"):
            MARK.write_text("proposing")
            time.sleep(120)
        scale = 1.0 + 0.5 * context.trial
        text = context.files["model.py"]
        line = next(line for line in text.splitlines() if line.startswith("SCALE = "))
        return Proposal(f"SCALE {scale}", {"model.py": text.replace(line, f"SCALE = {scale}")})


def pytest_autoresearch_make_agent(config, spec):
    return Slow() if spec == "slow" else None


def pytest_autoresearch_decide(config, metric, candidate, best):
    if str(candidate.trial) == os.environ.get("RESUME_SLOW_DECISION"):
        MARK.write_text("deciding")
        time.sleep(120)
    return None
'''

HANG = MODEL.replace("    return SCALE * x + OFFSET", "    import time\n    time.sleep(120)")


def _start(project: Project, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", "--autoresearch-tag=t", *args],
        cwd=project.path,
        env={**os.environ, **env},
        stdout=(project.outside / "out.txt").open("w"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(path: Path, text: str | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text is None or path.read_text() == text):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never showed {text!r}")


def _start_hanging(project: Project, marker: str) -> tuple[subprocess.Popen[bytes], str]:
    """A loop whose second trial hangs with a child process; returns once that trial runs."""
    project.init()
    hang = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n" + HANG
    agent = project.replay(
        {"description": "better", "files": project.model_with(SCALE=2.0)},
        {"description": "hang", "files": {"model.py": hang}},
        {"description": "best", "files": project.model_with(SCALE=2.5, OFFSET=3)},
    )
    proc = _start(project, agent, "--autoresearch-timeout=120", env={})
    deadline = time.monotonic() + 60
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, agent


def _consistent(project: Project) -> list[dict[str, str]]:
    """The log's rows are whole, numbered without gaps, and agree with git."""
    text = (project.path / ".autoresearch" / "t" / "results.tsv").read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    width = len(lines[0].split("\t"))
    assert all(len(line.split("\t")) == width for line in lines)
    rows = project.rows()
    assert [int(r["trial"]) for r in rows] == list(range(len(rows)))
    kept = [r for r in rows if r["status"] in ("baseline", "keep")]
    assert project.git("rev-parse", "autoresearch/t") == kept[-1]["commit"]
    for r in rows:
        if r["commit"]:
            assert project.git("rev-parse", f"refs/autoresearch/t/trials/{int(r['trial']):03d}") == r["commit"]
    assert project.git("status", "--porcelain") == ""
    return rows


@pytest.fixture
def slow_project(project: Project) -> Project:
    project.init({**default_files(), "conftest.py": SLOW_AGENT})
    return project


def _interrupt(project: Project, proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> str:
    proc.send_signal(sig)
    assert proc.wait(timeout=30) != 0
    return (project.outside / "out.txt").read_text()


def test_interrupted_while_the_agent_proposes_then_resumed(slow_project: Project, no_leftovers: str) -> None:
    project = slow_project
    mark = project.outside / "mark"
    env = {"RESUME_MARK": str(mark), "RESUME_SLOW_TRIAL": "2"}
    proc = _start(project, "--autoresearch-agent=slow", "--autoresearch-trials=3", env=env)
    _wait_for(mark, "proposing")
    out = _interrupt(project, proc)
    assert "stopped: interrupted; run again with --autoresearch-tag=t to continue this run" in out
    assert [r["status"] for r in _consistent(project)] == ["baseline", "keep"]  # trial 2 never started
    result = project.loop("--autoresearch-agent=slow", "--autoresearch-trials=2", env={"RESUME_MARK": str(mark)})
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["autoresearch: resuming run t after trial 1: best 64.5 from trial 1*"])
    rows = _consistent(project)
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep", "keep"]
    assert [r["description"] for r in rows[1:]] == ["SCALE 1.5", "SCALE 2.0", "SCALE 2.5"]
    assert sum(r["status"] == "baseline" for r in rows) == 1  # the baseline was not run again


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_while_a_trial_runs_then_resumed(project: Project, no_leftovers: str, sig: int) -> None:
    proc, agent = _start_hanging(project, no_leftovers)
    out = _interrupt(project, proc, sig)
    time.sleep(0.2)
    assert processes_with(no_leftovers) == []
    rows = _consistent(project)
    assert [r["status"] for r in rows] == ["baseline", "keep", "crash"]
    assert rows[2]["reason"] == "interrupted (Ctrl-C or SIGTERM) before it was judged"
    assert "3 trials" not in out and "2 trials: 1 keep, 1 crash" in out
    result = project.loop(agent, "--autoresearch-timeout=120")
    assert result.ret == 0, result.stdout.str()
    rows = _consistent(project)
    assert [r["status"] for r in rows] == ["baseline", "keep", "crash", "keep"]
    assert float(rows[3]["score"]) == 0.0


def test_interrupted_while_a_trial_is_judged(slow_project: Project) -> None:
    project = slow_project
    mark = project.outside / "mark"
    env = {"RESUME_MARK": str(mark), "RESUME_SLOW_DECISION": "2"}
    proc = _start(project, "--autoresearch-agent=slow", "--autoresearch-trials=3", env=env)
    _wait_for(mark, "deciding")
    _interrupt(project, proc)
    rows = _consistent(project)
    assert [r["status"] for r in rows] == ["baseline", "keep", "crash"]
    assert rows[2]["reason"] == "interrupted (Ctrl-C or SIGTERM) before it was judged"
    result = project.loop("--autoresearch-agent=slow", "--autoresearch-trials=1", env={"RESUME_MARK": str(mark)})
    assert result.ret == 0, result.stdout.str()
    assert [r["status"] for r in _consistent(project)] == ["baseline", "keep", "crash", "keep"]


def test_a_driver_killed_outright_loses_only_the_trial_in_flight(project: Project, no_leftovers: str) -> None:
    proc, agent = _start_hanging(project, no_leftovers)
    proc.kill()  # SIGKILL: no cleanup of any kind in the driver
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while processes_with(no_leftovers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(no_leftovers) == []  # the trial died with its driver
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep"]  # the trial in flight is lost, nothing else
    result = project.loop(agent, "--autoresearch-timeout=4")
    assert result.ret == 0, result.stdout.str()
    rows = _consistent(project)
    # the replay agent counts the trials logged, so the lost trial's proposal is the next one again
    assert [(r["status"], r["description"]) for r in rows[1:]] == [("keep", "better"), ("timeout", "hang"), ("keep", "best")]


def test_a_second_loop_on_the_same_tag_is_refused(project: Project) -> None:
    project.init()
    agent = project.replay(
        {"description": "hang", "files": {"model.py": HANG}},
    )
    proc = _start(project, agent, "--autoresearch-timeout=120", env={})
    try:
        _wait_for(project.path / ".autoresearch" / "t" / "trials" / "001.log")
        result = project.loop("--autoresearch-trials=1")
        assert result.ret != 0
        result.stderr.fnmatch_lines(["ERROR: autoresearch: run 't' is in use by another loop (pid *); wait for it or choose another tag"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert [r["status"] for r in _consistent(project)] == ["baseline", "crash"]


def test_a_half_written_row_and_a_branch_behind_the_log_are_repaired(project: Project) -> None:
    project.init()
    agent = project.replay(
        {"description": "better", "files": project.model_with(SCALE=2.0)},
        {"description": "best", "files": project.model_with(SCALE=2.5, OFFSET=3)},
    )
    assert project.loop(agent, "--autoresearch-trials=1").ret == 0
    rows = project.rows()
    # what a driver killed between writing the row and moving the branch leaves behind
    project.git("update-ref", "refs/heads/autoresearch/t", rows[0]["commit"])
    with (project.path / ".autoresearch" / "t" / "results.tsv").open("a") as f:
        f.write("2\tdeadbeef\tkee")
    result = project.loop(agent, "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*dropped a half-written last row of results.tsv*",
            "*moved branch autoresearch/t to the best logged trial (1)*",
        ]
    )
    assert [r["status"] for r in _consistent(project)] == ["baseline", "keep", "keep"]


def test_a_branch_changed_outside_the_loop_gets_a_new_baseline(project: Project) -> None:
    project.init()
    agent = project.replay({"description": "better", "files": project.model_with(SCALE=2.0)})
    assert project.loop(agent, "--autoresearch-trials=1").ret == 0
    # someone commits a hand-made change onto the run's branch
    tree = project.git("rev-parse", "autoresearch/t^{tree}")
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=project.path, input=project.model_with(SCALE=2.5)["model.py"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    index = project.outside / "index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "read-tree", tree], cwd=project.path, env=env, check=True)
    subprocess.run(["git", "update-index", "--cacheinfo", f"100644,{blob},model.py"], cwd=project.path, env=env, check=True)
    new_tree = subprocess.run(["git", "write-tree"], cwd=project.path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    commit = project.git("commit-tree", new_tree, "-p", "autoresearch/t", "-m", "by hand")
    project.git("update-ref", "refs/heads/autoresearch/t", commit)
    result = project.loop("--autoresearch-agent=mutate", "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*branch autoresearch/t has commits the log does not know: scoring it as a new baseline*"])
    rows = _consistent(project)
    assert [r["status"] for r in rows[:3]] == ["baseline", "keep", "baseline"]
    assert rows[2]["commit"] == commit
    assert float(rows[2]["score"]) == pytest.approx(9.0)  # SCALE 2.5, OFFSET 0


def test_running_again_with_the_default_tag_continues_todays_run(project: Project) -> None:
    project.init()
    first = project.run("--autoresearch", "--autoresearch-trials=1")
    second = project.run("--autoresearch", "--autoresearch-trials=1")
    assert first.ret == 0 and second.ret == 0, second.stdout.str()
    from pytest_autoresearch.settings import default_tag

    tag = default_tag()
    second.stdout.fnmatch_lines([f"autoresearch: resuming run {tag} after trial 1*"])
    assert project.git("branch", "--list", "autoresearch/*").split() == [f"autoresearch/{tag}"]
    rows = project.rows(tag)
    assert [int(r["trial"]) for r in rows] == [0, 1, 2]


def test_the_header_says_where_a_run_starts_and_where_its_branch_is(project: Project) -> None:
    project.init()
    head = project.git("rev-parse", "HEAD")
    first = project.loop(project.replay({"description": "better", "files": project.model_with(SCALE=2.0)}), "--autoresearch-trials=1")
    assert first.ret == 0, first.stdout.str()
    first.stdout.fnmatch_lines([f"autoresearch: run t from main at {head[:10]}, branch autoresearch/t, folder *", "*; stops at 1 trial or after*"])
    tip = project.git("rev-parse", "autoresearch/t")
    assert tip != head
    again = project.loop(project.replay({"description": "more", "files": project.model_with(SCALE=2.5)}), "--autoresearch-trials=2")
    assert again.ret == 0, again.stdout.str()
    again.stdout.fnmatch_lines(
        [f"autoresearch: continuing run t from main at {head[:10]}, branch autoresearch/t at {tip[:10]}, folder *", "*; stops at 2 trials or after*"]
    )
    project.git("checkout", "-q", "--detach", "HEAD")
    detached = project.loop("--autoresearch-trials=0", tag="d")
    assert detached.ret == 0, detached.stdout.str()
    detached.stdout.fnmatch_lines([f"autoresearch: run d from commit {head[:10]} (a detached HEAD), branch autoresearch/d, folder *"])


def test_a_resumed_run_with_a_different_surface_is_refused_and_loses_nothing(project: Project) -> None:
    project.init({**default_files(), "data.py": "N = 10\n"})
    assert project.loop("--autoresearch-trials=1").ret == 0
    log = (project.path / ".autoresearch" / "t" / "results.tsv").read_bytes()
    meta = (project.path / ".autoresearch" / "t" / "run.json").read_bytes()
    tip = project.git("rev-parse", "autoresearch/t")
    widened = project.loop("--autoresearch-trials=1", "-o", 'autoresearch_mutable=model.py data.py')
    assert widened.ret != 0
    assert "ERROR: autoresearch: run 't' was started with autoresearch_mutable ['model.py'], and it is now ['model.py', 'data.py']" in widened.stderr.str()
    assert "another --autoresearch-tag" in widened.stderr.str()
    assert (project.path / ".autoresearch" / "t" / "results.tsv").read_bytes() == log
    assert (project.path / ".autoresearch" / "t" / "run.json").read_bytes() == meta
    assert project.git("rev-parse", "autoresearch/t") == tip
    again = project.loop("--autoresearch-trials=1")  # the surface it started with: continues
    assert again.ret == 0, again.stdout.str()
    assert [int(r["trial"]) for r in project.rows()] == [0, 1, 2]
    meta_path = project.path / ".autoresearch" / "t" / "run.json"
    older = {k: v for k, v in json.loads(meta_path.read_text()).items() if k != "mutable"}  # as an older version wrote it
    meta_path.write_text(json.dumps(older))
    old = project.loop("--autoresearch-trials=0")
    assert old.ret == 0, old.stdout.str()
    old.stdout.fnmatch_lines(["autoresearch: run.json does not record the run's surface (an older version wrote it): continuing with *model.py*"])
