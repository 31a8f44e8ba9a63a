"""Ctrl-C at any point of set-up and the baseline: the run either never happened (nothing of it
left: no folder, no branch, no trial ref) or stands with its baseline row; either way the same
command runs again, and the user's checkout is as it was.

The driver is interrupted at named points by ``tests/interrupter.py`` (a plugin loaded into the
driver only), so each point is hit every time; the slow sweep interrupts at every event it lists.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Project

HERE = Path(__file__).resolve().parent
ARGS = ("--autoresearch-trials=0", "-o", "autoresearch_baseline_runs=1")

#: The points where an interrupt once left something behind (refs, a registered worktree), and one of each phase.
POINTS = [
    "after Repository.add_worktree#1",  # the worktree registered, its undo not yet known
    "during Evaluator.evaluate#1",  # the baseline's trial running
    "after RunFolder.write_meta#1",  # run.json written, no row yet
    "after ResultsLog.append#1",  # the row written (signals held: its refs follow)
    "after Recorder.record#1",  # row, refs and audit written: the run stands
    "after score#1",  # the baseline returned
]


def _state(project: Project) -> dict[str, object]:
    git = project.path / ".git"
    return {
        "checkout": project.snapshot(),
        "worktrees": project.git("worktree", "list", "--porcelain"),
        "exclude": (git / "info" / "exclude").read_text() if (git / "info" / "exclude").exists() else None,
    }


def _run_refs(project: Project) -> dict[str, str]:
    out = project.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/autoresearch/", "refs/autoresearch/")
    return dict(line.split() for line in out.splitlines())


def _forget_run(project: Project) -> None:
    """Remove the run's folder and refs, for the next interruption to start from nothing."""
    for ref in _run_refs(project):
        project.git("update-ref", "-d", ref)
    shutil.rmtree(project.path / ".autoresearch", ignore_errors=True)


def _interrupted(project: Project, at: str, log: Path | None = None) -> pytest.RunResult:
    env = {"INTERRUPT_AT": at, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    if log is not None:
        env["INTERRUPT_LOG"] = str(log)
    return project.loop("-p", "interrupter", *ARGS, env=env, timeout=120)


def _ended_well(project: Project, code: int) -> bool:
    """Interrupted (or done) as pytest reports it; in pytest's own start-up, before the run began,
    or past the baseline, in pytest's summary, the process may also die of the signal (exit
    -SIGINT), which loses nothing when nothing of the run exists yet or the run stands."""
    stands = (project.path / ".autoresearch" / "t" / "run.json").exists()
    begun = (project.path / ".autoresearch").exists()
    return code in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.OK) or (code == -signal.SIGINT and (stands or not begun))


def _check_after_interrupt(project: Project, before: dict[str, object], head: str, what: str) -> None:
    """Nothing of the run, or the run with its baseline; then the same command runs again."""
    folder = project.path / ".autoresearch" / "t"
    refs = _run_refs(project)
    stands = (folder / "run.json").exists()
    if stands:
        assert refs == {"refs/heads/autoresearch/t": head, "refs/autoresearch/t/trials/000": head}, what
        assert project.statuses() == ["baseline"], what
    else:
        assert refs == {}, f"{what}: refs left without a run: {refs}"
        assert not folder.exists(), f"{what}: {sorted(p.name for p in folder.iterdir())} left without a run"
    assert _state(project)["checkout"] == before["checkout"], what
    again = project.loop(*ARGS)
    assert again.ret == 0, f"{what}:\n" + "\n".join(again.outlines + again.errlines)
    assert project.statuses() == ["baseline"], what
    assert _run_refs(project) == {"refs/heads/autoresearch/t": head, "refs/autoresearch/t/trials/000": head}, what
    after = _state(project)
    assert after["checkout"] == before["checkout"] and after["worktrees"] == before["worktrees"], what


@pytest.mark.parametrize("at", POINTS)
def test_interrupted_during_set_up_or_baseline_then_run_again(project: Project, at: str) -> None:
    project.init()
    before, head = _state(project), project.git("rev-parse", "HEAD")
    result = _interrupted(project, at)
    assert result.ret == pytest.ExitCode.INTERRUPTED, "\n".join(result.outlines + result.errlines)
    _check_after_interrupt(project, before, head, at)


#: Calls that change nothing: an interrupt before or after one is the same point as its neighbours'.
READS = {
    "check", "rev", "ref_exists", "refs", "head", "tracked_files", "blobs", "dirty_files", "current_branch", "env", "_exclude_path",
    "_wrote", "worktree_of", "manifest_of", "_pgid_file", "header", "row", "entry", "_own_files",
}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_interrupted_at_every_point_of_set_up_and_baseline(project: Project) -> None:
    project.init()
    before, head = _state(project), project.git("rev-parse", "HEAD")
    listing = project.outside / "events.txt"
    assert _interrupted(project, "0", listing).ret == 0
    events = [e for e in listing.with_suffix(".done").read_text().splitlines() if e]
    assert len(events) > 50 and all(point in events for point in POINTS)
    events = [e for e in events if e.split()[1].split("#")[0].rsplit(".", 1)[-1] not in READS]
    for event in events:
        _forget_run(project)
        result = _interrupted(project, event)
        assert _ended_well(project, result.ret), f"{event}:\n" + "\n".join(result.outlines + result.errlines)
        _check_after_interrupt(project, before, head, event)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_real_ctrl_c_spread_over_the_baseline(project: Project) -> None:
    """``timeout -s INT`` as a user's script sends it, at delays spread over the whole set-up and baseline."""
    project.init()
    before, head = _state(project), project.git("rev-parse", "HEAD")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", "--autoresearch-tag=t", *ARGS]
    started = time.monotonic()
    subprocess.run(command, cwd=project.path, capture_output=True, check=True)
    window = time.monotonic() - started
    for step in range(20):
        _forget_run(project)
        delay = window * (0.3 + 0.75 * step / 20)
        out = project.outside / "out.txt"
        with out.open("w") as f:
            proc = subprocess.Popen(command, cwd=project.path, stdout=f, stderr=subprocess.STDOUT)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
        assert _ended_well(project, code), f"SIGINT after {delay:.2f}s:\n" + out.read_text()
        _check_after_interrupt(project, before, head, f"SIGINT after {delay:.2f}s")


def test_what_an_older_version_left_after_a_ctrl_c_is_cleared(project: Project) -> None:
    """Older versions left the branch and trial 0's ref without the run folder: nothing of value
    (both name your own commit), so the same command starts the run afresh and says so."""
    project.init()
    head = project.git("rev-parse", "HEAD")
    assert project.loop(*ARGS).ret == 0
    shutil.rmtree(project.path / ".autoresearch")
    result = project.loop(*ARGS)
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    result.stdout.fnmatch_lines(["autoresearch: starting run t afresh: removed what an earlier start left before its baseline was logged (autoresearch/t, refs/autoresearch/t/trials/000)"])
    assert project.statuses() == ["baseline"]
    assert _run_refs(project) == {"refs/heads/autoresearch/t": head, "refs/autoresearch/t/trials/000": head}


def test_leftovers_with_work_in_them_are_refused_with_how_to_remove_them(project: Project) -> None:
    project.init()
    agent = project.replay({"description": "better", "files": project.model_with(SCALE=2.0)})
    assert project.loop(agent, "--autoresearch-trials=1", "-o", "autoresearch_baseline_runs=1").ret == 0
    refs = _run_refs(project)
    shutil.rmtree(project.path / ".autoresearch")  # the log gone, a kept commit only on the branch
    result = project.loop(*ARGS)
    assert result.ret != 0
    message = result.stderr.str()
    assert "ERROR: autoresearch: run 't' cannot be resumed: a run needs its branch, run.json and results.tsv with rows" in message
    assert "branch autoresearch/t and 3 refs under refs/autoresearch/t/" in message
    assert "git for-each-ref --format='delete %(refname)' refs/heads/autoresearch/t refs/autoresearch/t/ | git update-ref --stdin" in message
    assert _run_refs(project) == refs  # nothing removed
    subprocess.run(message.split("remove what is left: ")[1].strip(), shell=True, cwd=project.path, check=True)
    assert _run_refs(project) == {}
    assert project.loop(*ARGS).ret == 0  # the commands given were enough
