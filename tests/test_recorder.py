"""The recorder writes a verdict as row -> refs -> audit record with Ctrl-C held off, hashes
before that section and the user's trial_logged hook after it (engine.recorder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import GIT_ENV

from pytest_autoresearch.core.history import History
from pytest_autoresearch.core.records import Status, TrialRecord
from pytest_autoresearch.engine import recorder as recorder_module
from pytest_autoresearch.engine.recorder import Recorder, signals_held
from pytest_autoresearch.names import branch_ref, review_ref, trial_ref
from pytest_autoresearch.store.audit import AuditTrail
from pytest_autoresearch.store.gitstate import Repository


class FakeConfig:
    def __init__(self, on_logged: Any) -> None:
        self.hook = type("H", (), {"pytest_autoresearch_trial_logged": staticmethod(on_logged)})()


def _git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, env={**os.environ, **GIT_ENV}, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Repository, list[str]]:
    """A repository with three commits: the start, a candidate, a second candidate."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    commits = []
    for i in range(3):
        (path / "model.py").write_text(f"SCALE = {i}\n")
        _git(path, "add", "-A")
        _git(path, "commit", "-qm", f"c{i}")
        commits.append(_git(path, "rev-parse", "HEAD"))
    return Repository(path), commits


def _recorder(tmp_path: Path, repo: Repository, on_logged: Any) -> Recorder:
    folder = tmp_path / "run"
    folder.mkdir()
    audit = AuditTrail(folder, repo.git, "replay", None)
    rec = Recorder(FakeConfig(on_logged), repo, "t", History(), audit)  # type: ignore[arg-type]
    rec.open_log(folder / "results.tsv", [], usage=False, resume=False)
    return rec


def test_an_interrupt_while_the_row_is_written_still_writes_refs_and_audit(tmp_path: Path, repo: tuple[Repository, list[str]]) -> None:
    git_repo, (start, candidate, _) = repo
    rec = _recorder(tmp_path, git_repo, lambda config, record: None)
    git_repo.update_refs((branch_ref("t"), start, None))
    assert rec.log is not None
    append = rec.log.append

    def append_then_interrupt(record: TrialRecord) -> None:
        append(record)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right after the row

    rec.log.append = append_then_interrupt  # type: ignore[method-assign]
    record = TrialRecord(1, Status.KEEP, "steeper", commit=candidate, parent=start, parent_trial=0, score=1.0)
    with pytest.raises(KeyboardInterrupt):
        rec.record(record, branch_from=start)
    assert (tmp_path / "run" / "results.tsv").read_text().count("\n") == 2  # header and the row
    assert git_repo.rev(branch_ref("t")) == candidate and git_repo.rev(trial_ref("t", 1)) == candidate
    entries = [json.loads(line) for line in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    assert [(e["trial"], e["status"], e["commit"]) for e in entries] == [(1, "keep", candidate)]
    assert rec.history.records == [record]


def test_hashes_come_before_the_held_section_and_the_hook_after_it(
    tmp_path: Path, repo: tuple[Repository, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo, (start, candidate, other) = repo
    default = signal.getsignal(signal.SIGINT)
    seen: dict[str, Any] = {}

    def logged(config: object, record: TrialRecord) -> None:
        seen["hook handler"] = signal.getsignal(signal.SIGINT)
        seen["audit lines at hook"] = (tmp_path / "run" / "audit.jsonl").read_text().count("\n")

    rec = _recorder(tmp_path, git_repo, logged)
    entry = rec.audit.entry

    def entry_spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen["entry handler"] = signal.getsignal(signal.SIGINT)
        return entry(*args, **kwargs)

    monkeypatch.setattr(rec.audit, "entry", entry_spy)
    record = TrialRecord(2, Status.REVIEW, "touches the loss", commit=other, parent=candidate, parent_trial=1, score=0.5)
    rec.record(record, branch_from=None)
    assert seen["entry handler"] is default and seen["hook handler"] is default  # neither runs with signals held
    assert seen["audit lines at hook"] == 1  # the hook sees the whole verdict
    assert git_repo.rev(review_ref("t", 2)) == other and git_repo.rev(trial_ref("t", 2)) == other
    assert git_repo.rev(branch_ref("t")) is None  # not kept: the branch does not move


def test_signals_held_delivers_the_interrupt_after_the_section() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("finished the section")
    assert done == ["finished the section"]
    assert recorder_module.signal.getsignal(signal.SIGINT) is signal.default_int_handler
