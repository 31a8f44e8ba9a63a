"""``finalize``: a run's kept trials as a review branch and a pull-request summary.

Every run here is a real one, made the way a user makes it (``pytest --autoresearch`` with a
replayed agent in a fresh git repository); finalize then runs on what that run left.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import MODEL, PYPROJECT, Project, default_files

from pytest_autoresearch.ui.finalize import Finalized, FinalizeError, finalize
from pytest_autoresearch.ui.summary_md import RunView, Step, render_summary
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.ui.terminal import fmt_delta, fmt_score
from pytest_autoresearch.store.runfolder import RunFolder, RunMeta

REVIEW = "autoresearch-review/t"


def _run(project: Project, *proposals: dict[str, object], cwd: Path | None = None, trials: int | None = None) -> None:
    """A loop session of tag t over ``proposals``, as a user starts it (a resumed session
    replays from the line after the trials logged so far, so it is given them all again)."""
    count = len(proposals) if trials is None else trials
    args = ["--autoresearch", "--autoresearch-tag=t", project.replay(*proposals), f"--autoresearch-trials={count}"]
    result = project.run(*args, cwd=cwd)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def _three_trials(project: Project) -> None:
    _run(
        project,
        {"description": "steeper slope", "files": project.model_with(SCALE=2.5)},
        {"description": "negative slope", "files": project.model_with(SCALE=-1.0)},
        {"description": "offset three | the right one", "files": project.model_with(SCALE=2.5, OFFSET=3)},
    )


def _review_commits(project: Project, start: str, branch: str = REVIEW) -> list[str]:
    return project.git("rev-list", "--reverse", f"{start}..{branch}").split()


def _tree(project: Project, commit: str) -> str:
    return project.git("rev-parse", f"{commit}^{{tree}}")


def _hand_commit(project: Project, branch: str, files: dict[str, str], message: str = "by hand") -> str:
    """A commit on ``branch`` made without touching the checkout (as another clone would push it)."""
    index = project.outside / "hand-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "read-tree", f"{branch}^{{tree}}"], cwd=project.path, env=env, check=True)
    for path, text in files.items():
        blob = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=project.path, input=text, capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=project.path, env=env, check=True)
    tree = subprocess.run(["git", "write-tree"], cwd=project.path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    index.unlink()
    commit = project.git("commit-tree", tree, "-p", branch, "-m", message)
    project.git("update-ref", f"refs/heads/{branch}", commit)
    return commit


def test_the_review_branch_has_one_commit_per_kept_trial(project: Project) -> None:
    project.init()
    head = project.git("rev-parse", "HEAD")
    _three_trials(project)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "discard", "keep"]
    kept = [r for r in rows if r["status"] == "keep"]
    run_tip = project.git("rev-parse", "autoresearch/t")
    folder = project.path / ".autoresearch" / "t"
    logged = {name: (folder / name).read_bytes() for name in ("results.tsv", "run.json")}
    # hooks that would fail (and leave a mark): finalize must run none of them
    marker = project.outside / "hook-ran"
    for hook in ("pre-commit", "commit-msg", "post-commit", "reference-transaction"):
        path = project.path / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\nexit 1\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    before = project.snapshot()

    done = finalize(project.path, "t")

    assert project.snapshot() == before  # HEAD, index, working files: untouched
    assert not marker.exists()
    assert isinstance(done, Finalized) and done.branch == REVIEW and done.previous is None and done.start == head
    commits = _review_commits(project, head)
    assert commits == done.commits and len(commits) == len(kept) == 2
    assert project.git("rev-parse", REVIEW) == commits[-1]
    # a straight line from the start: each commit has exactly one parent, the one before it
    for commit, parent in zip(commits, [head, *commits]):
        assert project.git("rev-list", "--parents", "-n", "1", commit).split() == [commit, parent]
    # each commit has the tree the loop kept; the last one is the run's final tree
    assert [_tree(project, c) for c in commits] == [_tree(project, r["commit"]) for r in kept]
    assert _tree(project, REVIEW) == _tree(project, "autoresearch/t")
    assert project.git("rev-parse", "autoresearch/t") == run_tip  # the run's branch did not move
    assert {name: (folder / name).read_bytes() for name in logged} == logged

    messages = [project.git("log", "-1", "--format=%B", c) for c in commits]
    assert messages[0] == (
        "steeper slope\n\n"
        "Trial 1 of run t: test_error from 113.625 to 9 (-104.6, 92.1% better).\n\n"
        "Autoresearch-Trial: 1\nAutoresearch-Status: keep\nAutoresearch-Score: 9.0\n"
        f"Autoresearch-Commit: {kept[0]['commit']}\nAutoresearch-Finalize: t"
    )
    assert messages[1].startswith("offset three | the right one\n\nTrial 3 of run t: test_error from 9 to 0 (-9, 100.0% better).\n")
    assert f"Autoresearch-Score: {float(kept[1]['score'])!r}" in messages[1]
    assert project.git("log", "-1", "--format=%an <%ae>", commits[0]) == "pytest-autoresearch <autoresearch@localhost>"
    # dated as the loop's commits, so the same run always gives the same commits
    assert project.git("log", "-1", "--format=%at %ct", commits[0]) == project.git("log", "-1", "--format=%at %ct", kept[0]["commit"])

    summary = (folder / "SUMMARY.md").read_text(encoding="utf-8")
    assert summary == done.text and done.summary_path == folder / "SUMMARY.md"
    baseline = float(rows[0]["score"])
    assert summary.startswith("# autoresearch run t: test_error 113.625 -> 0 (100.0% better)\n")
    assert f"on top of `{head[:10]}` (`main`)" in summary
    assert "- metric: `test_error` (`tests/test_fitness.py::test_error`), goal min, lower is better" in summary
    assert f"- baseline {fmt_score(baseline)} -> best 0 (trial 3): -113.6, 100.0% better" in summary
    assert "- 3 trials: 2 kept, 1 discarded, 0 crashed\n" in summary
    for row, commit in zip(kept, commits):
        description = row["description"].replace("|", "\\|")
        line = f"| {row['trial']} | {fmt_score(float(row['score']))} | {fmt_delta(float(row['delta']))} | {description} | `{commit[:10]}` |"
        assert line in summary
    assert "negative slope" not in summary
    diffstat = subprocess.run(["git", "diff", "--stat", f"{head}..{REVIEW}"], cwd=project.path, capture_output=True, text=True, check=True).stdout
    assert "## The whole change\n\n```\n" + diffstat + "```" in summary
    assert " model.py | 4 ++--" in summary
    assert f"git merge {REVIEW}" in summary and f"git push origin {REVIEW}" in summary
    assert "## Holdout" not in summary and "Warning" not in summary and "## Parked for review" not in summary
    assert summary.isascii()


def test_finalizing_again_moves_the_branch_without_rewriting_it(project: Project) -> None:
    project.init()
    head = project.git("rev-parse", "HEAD")
    steeper = {"description": "steeper slope", "files": project.model_with(SCALE=2.5)}
    _run(project, steeper)
    first = finalize(project.path, "t")
    again = finalize(project.path, "t")
    assert again.commits == first.commits and again.previous == first.commits[-1]  # same run, same commits

    # the run goes on and keeps one more trial: finalize moves the branch forward
    _run(project, steeper, {"description": "offset three", "files": project.model_with(SCALE=2.5, OFFSET=3)}, trials=1)
    assert project.statuses() == ["baseline", "keep", "keep"]
    later = finalize(project.path, "t")
    assert later.previous == first.commits[-1]
    assert later.commits[0] == first.commits[0] and len(later.commits) == 2
    assert _review_commits(project, head) == later.commits
    assert _tree(project, REVIEW) == _tree(project, "autoresearch/t")
    summary = (project.path / ".autoresearch" / "t" / "SUMMARY.md").read_text()
    assert "- 2 trials: 2 kept, 0 discarded, 0 crashed" in summary
    assert "| 2 | 0 | -9 | offset three |" in summary


def test_a_review_branch_with_someone_elses_commits_is_left_alone(project: Project) -> None:
    project.init()
    _run(project, {"description": "steeper slope", "files": project.model_with(SCALE=2.5)})
    ours = finalize(project.path, "t").commits[-1]

    # checked out: moving it would change that checkout
    project.git("checkout", "-q", REVIEW)
    before = project.snapshot()
    with pytest.raises(FinalizeError, match=f"branch {REVIEW} is checked out in .*switch that checkout"):
        finalize(project.path, "t")
    assert project.snapshot() == before

    # the user committed on it
    (project.path / "NOTES.md").write_text("my notes on the change\n")
    project.git("add", "NOTES.md")
    project.git("commit", "-q", "-m", "my notes")
    project.git("checkout", "-q", "main")
    theirs = project.git("rev-parse", REVIEW)
    assert theirs != ours
    with pytest.raises(FinalizeError, match=f"its tip {theirs[:10]} was not made by finalizing run 't'.*not ours"):
        finalize(project.path, "t")
    assert project.git("rev-parse", REVIEW) == theirs

    # a branch of that name that never was ours
    project.git("branch", "-f", REVIEW, "main")
    with pytest.raises(FinalizeError, match="not ours"):
        finalize(project.path, "t")
    assert project.git("rev-parse", REVIEW) == project.git("rev-parse", "main")
    assert not (project.path / ".autoresearch" / "t" / "SUMMARY.md.tmp").exists()


def test_unknown_runs_and_runs_in_use_are_refused(project: Project) -> None:
    project.init()
    with pytest.raises(FinalizeError, match="no run 't' to finalize: there is no .autoresearch/t .* There are no runs here"):
        finalize(project.path, "t")
    _run(project, {"description": "steeper slope", "files": project.model_with(SCALE=2.5)})
    with pytest.raises(FinalizeError, match=r"no run 'nov26' to finalize.*Runs here: t\.$"):
        finalize(project.path, "nov26")

    # a loop holds the run: its branch and log may change under us
    lock = RunFolder(project.path / ".autoresearch" / "t")
    lock.lock()
    try:
        with pytest.raises(FinalizeError, match="run 't' is in use by a loop .*pid"):
            finalize(project.path, "t")
    finally:
        lock.unlock()

    tip = project.git("rev-parse", "autoresearch/t")
    project.git("branch", "-D", "autoresearch/t")
    with pytest.raises(FinalizeError, match="has .autoresearch/t but no branch autoresearch/t"):
        finalize(project.path, "t")
    project.git("branch", "autoresearch/t", tip)
    assert finalize(project.path, "t").commits

    outside = project.outside / "not-a-repo"
    outside.mkdir()
    with pytest.raises(FinalizeError, match="not inside a git repository"):
        finalize(outside, "t")


def test_a_run_that_kept_nothing_has_nothing_to_review(project: Project) -> None:
    project.init()
    _run(
        project,
        {"description": "negative slope", "files": project.model_with(SCALE=-1.0)},
        {"description": "breaks the gate", "files": {"model.py": MODEL.replace("return SCALE * x + OFFSET", "return str(x)")}},
    )
    assert project.statuses() == ["baseline", "discard", "crash"]
    with pytest.raises(FinalizeError, match=r"run 't' kept no trial \(2 trials, none better than the baseline\)"):
        finalize(project.path, "t")
    assert project.git("rev-parse", "--verify", "-q", REVIEW, check=False) == ""
    assert not (project.path / ".autoresearch" / "t" / "SUMMARY.md").exists()


def test_a_log_that_disagrees_with_the_branch_is_refused(project: Project) -> None:
    project.init()
    head = project.git("rev-parse", "HEAD")
    _run(
        project,
        {"description": "steeper slope", "files": project.model_with(SCALE=2.5)},
        {"description": "offset three", "files": project.model_with(SCALE=2.5, OFFSET=3)},
    )
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep"]
    tip = project.git("rev-parse", "autoresearch/t")

    # kept trials in another order than the branch's (a results.tsv edited by hand)
    log = project.path / ".autoresearch" / "t" / "results.tsv"
    text = log.read_text(encoding="utf-8")
    first, second = rows[1]["commit"], rows[2]["commit"]
    log.write_text(text.replace(first, "@").replace(second, first).replace("@", second), encoding="utf-8")
    with pytest.raises(FinalizeError, match=r"keep trial 2 \(commit [0-9a-f]{10}\) is not on the branch in the order of the log"):
        finalize(project.path, "t")
    # a last row cut short (a loop killed outright while writing it)
    log.write_text(text + "3\t2\tabc", encoding="utf-8")
    with pytest.raises(FinalizeError, match="ends in a half-written row .*let the loop repair it first"):
        finalize(project.path, "t")
    log.write_text(text, encoding="utf-8")

    # the branch behind the log (a loop killed between its row and moving the branch)
    project.git("update-ref", "refs/heads/autoresearch/t", head)
    with pytest.raises(FinalizeError, match=r"disagree: keep trial 1 \(commit [0-9a-f]{10}\) is not on the branch.*--autoresearch-trials=0"):
        finalize(project.path, "t")

    # commits on the branch that the log does not know
    project.git("update-ref", "refs/heads/autoresearch/t", tip)
    unknown = _hand_commit(project, "autoresearch/t", project.model_with(SCALE=2.4))
    with pytest.raises(FinalizeError, match=f"is at {unknown[:10]}, which results.tsv does not know .*last kept trial is 2"):
        finalize(project.path, "t")

    # a branch that no longer grows from the start
    other = project.git("commit-tree", _tree(project, tip), "-m", "unrelated")
    project.git("update-ref", "refs/heads/autoresearch/t", other)
    with pytest.raises(FinalizeError, match="no longer grows from"):
        finalize(project.path, "t")

    assert project.git("rev-parse", "--verify", "-q", REVIEW, check=False) == ""
    assert not (project.path / ".autoresearch" / "t" / "SUMMARY.md").exists()
    project.git("update-ref", "refs/heads/autoresearch/t", tip)
    assert len(finalize(project.path, "t").commits) == 2  # agreeing again, it goes through


def test_changes_made_on_the_run_branch_by_hand_get_a_commit_of_their_own(project: Project) -> None:
    project.init()
    head = project.git("rev-parse", "HEAD")
    steeper = {"description": "steeper slope", "files": project.model_with(SCALE=2.0)}
    _run(project, steeper)
    hand = _hand_commit(project, "autoresearch/t", project.model_with(SCALE=2.5))
    _run(project, steeper, {"description": "offset three", "files": project.model_with(SCALE=2.5, OFFSET=3)}, trials=1)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "baseline", "keep"]
    assert rows[2]["commit"] == hand

    done = finalize(project.path, "t")
    assert _review_commits(project, head) == done.commits and len(done.commits) == 3
    assert [_tree(project, c) for c in done.commits] == [_tree(project, rows[n]["commit"]) for n in (1, 2, 3)]
    outside = project.git("log", "-1", "--format=%B", done.commits[1])
    assert outside.startswith("Changes made on autoresearch/t outside the loop\n\n")
    assert float(rows[1]["score"]) == 29.625 and float(rows[2]["score"]) == 9.0
    assert "scored them as a new baseline (trial 2): test_error 29.625 before, 9 after." in outside
    assert "Autoresearch-Status: baseline" in outside and f"Autoresearch-Commit: {hand}" in outside
    last = project.git("log", "-1", "--format=%B", done.commits[2])
    assert "Trial 3 of run t: test_error from 9 to 0 (-9, 100.0% better)." in last  # against the new baseline
    summary = done.text
    assert "holds the 2 changes" in summary and "1 more commit holds changes made on `autoresearch/t` outside the loop" in summary
    assert f"| 2 | 9 | {fmt_delta(9 - 29.625)} | changes made on the branch outside the loop (re-baselined) |" in summary
    assert "- 2 trials: 2 kept, 0 discarded, 0 crashed" in summary


HOLDOUT_TEST = '''import pytest

import model


@pytest.mark.fitness(goal="min", holdout=True)
def test_holdout_error(fitness):
    # points the trials never see: here a steeper model does worse
    fitness(sum((model.predict(x) - (1.0 * x + 0)) ** 2 for x in range(20, 30)) / 10)
'''


def test_the_summary_shows_the_holdout_and_the_parked_trials(project: Project) -> None:
    files = default_files()
    files["offset.py"] = "OFFSET = 0\n"
    files["model.py"] = MODEL.replace("OFFSET = 0\n", "from offset import OFFSET\n")
    files["tests/test_holdout.py"] = HOLDOUT_TEST
    files["pyproject.toml"] = PYPROJECT.replace('["model.py"]', '["model.py", "offset.py"]') + 'autoresearch_review = ["offset.py"]\n'
    project.init(files)
    _run(
        project,
        {"description": "risky offset", "files": {"offset.py": "OFFSET = 3\n"}},
        {"description": "steeper slope", "files": {"model.py": files["model.py"].replace("SCALE = 1.0", "SCALE = 2.5")}},
    )
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "review", "keep"]
    meta = RunFolder(project.path / ".autoresearch" / "t").read_meta()
    holdout = meta.holdout
    nodeid = "tests/test_holdout.py::test_holdout_error"
    assert meta.holdout_best_trial == 2

    done = finalize(project.path, "t")
    assert len(done.commits) == 1  # the parked trial is not in the branch
    assert project.git("show", f"{REVIEW}:offset.py") == "OFFSET = 0"
    summary = done.text
    assert "- 2 trials: 1 kept, 0 discarded, 0 crashed, 1 parked for review" in summary
    before, after = holdout["baseline"][nodeid], holdout["best"][nodeid]
    assert (before, after) == (0, pytest.approx(1369.125))
    assert f"| `{nodeid}` | {fmt_score(before)} | {fmt_score(after)} | {fmt_delta(after - before)}, worse |" in summary
    assert f"**Warning:** the trial metric improved but the holdout did not (`{nodeid}`)" in summary
    risky = rows[1]
    assert (
        f"- trial 1: {fmt_score(float(risky['score']))} ({fmt_delta(float(risky['delta']))}), risky offset. "
        "Inspect: `git show refs/autoresearch/t/review/001`; take it: `git cherry-pick refs/autoresearch/t/review/001`"
    ) in summary
    assert project.git("rev-parse", "refs/autoresearch/t/review/001") == risky["commit"]


def test_a_rootdir_below_the_repository_root(project: Project) -> None:
    project.init({"README.md": "the repository\n", **{f"sub/{k}": v for k, v in default_files().items()}})
    head = project.git("rev-parse", "HEAD")
    sub = project.path / "sub"
    _run(project, {"description": "steeper slope", "files": project.model_with(SCALE=2.5)}, cwd=sub)
    before = project.snapshot()
    done = finalize(sub, "t")
    assert project.snapshot() == before
    assert done.summary_path == sub / ".autoresearch" / "t" / "SUMMARY.md"
    assert _tree(project, REVIEW) == _tree(project, "autoresearch/t")
    assert project.git("diff", "--name-only", head, REVIEW) == "sub/model.py"
    assert " sub/model.py | 2 +-" in done.text
    with pytest.raises(FinalizeError, match="has branch autoresearch/t but no .autoresearch/t/run.json"):
        finalize(project.path, "t")  # the repository root is not the rootdir the run used


def _view(goal: str, holdout: dict[str, dict[str, float]]) -> RunView:
    records = [
        TrialRecord(0, "baseline", "baseline", commit="a" * 40, score=10.0),
        TrialRecord(1, "keep", "halve it", commit="b" * 40, score=5.0, delta=-5.0),
    ]
    meta = RunMeta(
        tag="x",
        head="a" * 40,
        base_ref="main",
        metric=MetricSpec("t.py::test_m", "test_m", goal, True),
        columns=[],
        column_keys=[],
        usage=False,
        timeout=None,
        holdout=holdout,
        holdout_best_trial=1,
        holdout_goals={"h.py::test_h": "min"},
    )
    return RunView("x", meta, records, "a" * 40, "b" * 40)


def test_the_holdout_warning_needs_a_gain_the_holdout_does_not_share() -> None:
    def summary(view: RunView) -> str:
        steps = [Step(view.records[1], view.records[0])]
        return render_summary(view, steps, ["c" * 40], " m.py | 2 +-")

    improved = summary(_view("min", {"baseline": {"h.py::test_h": 4.0}, "best": {"h.py::test_h": 3.0}}))
    assert "| `h.py::test_h` | 4 | 3 | -1, 25.0% better |" in improved and "Warning" not in improved
    held = summary(_view("min", {"baseline": {"h.py::test_h": 4.0}, "best": {"h.py::test_h": 4.0}}))
    assert "**Warning:** the trial metric improved but the holdout did not (`h.py::test_h`)" in held
    # with goal max, 10 -> 5 is no gain, so a flat holdout is no warning
    worse = _view("max", {"baseline": {"h.py::test_h": 4.0}, "best": {"h.py::test_h": 4.0}})
    assert "Warning" not in summary(worse)
    unscored = summary(_view("min", {"baseline": {"h.py::test_h": 4.0}}))
    assert "| `h.py::test_h` | 4 | not scored | |" in unscored and "Warning" not in unscored
    stale = dataclasses.replace(_view("min", {"baseline": {"h.py::test_h": 4.0}, "best": {"h.py::test_h": 3.0}}))
    stale.meta.holdout_best_trial = 0
    assert "The holdout was last scored at trial 0; the best is now trial 1." in summary(stale)
