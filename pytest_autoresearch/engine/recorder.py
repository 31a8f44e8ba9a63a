"""The recorder: the only writer of a trial's verdict, in the order that keeps log and git agreeing.

Row first (results.tsv), then the refs (the trial's, a review ref, the branch), then the audit
record; the three are written with Ctrl-C and SIGTERM held off, so a run interrupted while a
verdict is written still writes all of it, and a driver killed outright in between is repaired
on resume (a row whose refs did not move). What takes time is done before that section (the
audit record's hashes, the trial's files hashed) or after it (a user's
``pytest_autoresearch_trial_logged`` hook).

Being the only writer, the recorder also knows what the run's state must be, for
:mod:`.integrity` to check after every run: every ref it wrote (:attr:`Recorder.refs`: the
branch, each trial's ref, each review ref), the lines of audit.jsonl (:attr:`Recorder.audit`)
and the files of every logged trial (:attr:`Recorder.files`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ..core.history import History
from ..core.records import RunResult, Status, TrialRecord
from ..names import branch_ref, candidate_ref, evaluated_ref, review_ref, trial_ref
from ..store.audit import AuditTrail
from ..store.gitstate import Repository, trailers
from ..store.results_log import ResultsLog
from ..store.runfolder import TrialFiles


_held: list[int] = []  # signals caught while held; the outermost section delivers them
_depth = 0


@contextlib.contextmanager
def signals_held(deliver: bool = True) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM off while a verdict is written, then deliver them (as
    KeyboardInterrupt; ``deliver=False``: dropped, for the clean-up of a run that is ending anyway).

    Sections nest: an inner one (a verdict written as part of a larger step, the baseline's
    row and the end of set-up) leaves the delivery to the outermost."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    _held.clear()
    previous = {sig: signal.signal(sig, lambda signum, frame: _held.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if _held:
            _held.clear()
            if deliver:
                raise KeyboardInterrupt


def message(record: TrialRecord) -> str:
    """A trial commit's message: its description, then trailers for the machine."""
    score = record.score if record.score is not None else "none"
    return f"{record.description}\n\n" + trailers({"Trial": record.trial, "Status": record.status, "Score": score})


def run_refs(tag: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The for-each-ref patterns of the refs a run writes in your repository (its branch and
    ``refs/autoresearch/<tag>/``), and the folders under them that are not the run's there
    (the candidates and evaluated runs of a Ray run live in its remote)."""
    ours = (branch_ref(tag), trial_ref(tag, 0).rsplit("/", 2)[0] + "/")
    remote = tuple(ref(tag, 0).rsplit("/", 1)[0] + "/" for ref in (candidate_ref, evaluated_ref))
    return ours, remote


class Recorder:
    #: Whether a trial's files are hashed and kept when it is logged (bench/integrity.py
    #: switches this off, with Integrity.check_run_state, to measure what the checks cost).
    seal_files = True

    def __init__(self, config: pytest.Config, repo: Repository, tag: str, history: History, audit: AuditTrail) -> None:
        self.config = config
        self.repo = repo
        self.tag = tag
        self.history = history
        self.audit = audit
        self.log: ResultsLog | None = None  # set once the baseline stands (or the run resumes)
        self.refs: dict[str, str] = {}  # every ref of the run's (run_refs) -> the commit it must name
        self.files = TrialFiles(audit.folder)
        #: called with each record once it is logged, after the hook (the agent's ``logged``)
        self.observers: list[Callable[[TrialRecord], None]] = []

    def open_log(self, path: Path, metric_columns: Sequence[str], *, usage: bool, resume: bool) -> None:
        """results.tsv: created with its header for a new run, taken up as it is for a resumed
        one, with the rest of the run's state (its refs, audit.jsonl, the trials' files)."""
        self.log = ResultsLog(path, metric_columns, usage=usage)
        if resume:
            self.log.adopt()
            self.audit.adopt()
            self.refs = self.listed_refs()
            self.files.adopt(r.trial for r in self.history.records)
        else:
            self.log.create()

    def listed_refs(self) -> dict[str, str]:
        """The run's refs as your repository has them now (one git call)."""
        ours, remote = run_refs(self.tag)
        return {ref: value for ref, value in self.repo.refs(*ours).items() if not ref.startswith(remote)}

    def watch_files(self, trial: int, names: Sequence[str]) -> None:
        """Watch more files of a logged trial, which the driver wrote after it (the holdout's)."""
        if self.seal_files:
            folder = self.files.folder
            self.files.watch(self.files.seal(rel for name in names if (folder / (rel := f"trials/{trial:03d}.{name}")).is_file()))

    def _own_files(self, entry: dict[str, Any], results: Sequence[RunResult]) -> list[str]:
        """The files the driver wrote for a trial: a log per run, a result file per run that
        reported, the prompt, the answer and a conversation (paths relative to the run folder)."""
        folder = self.files.folder
        rels = [*entry["logs"], entry["prompt_file"], entry["answer_file"], entry.get("conversation_file")]
        for r in results:
            if r.finished and r.log_path is not None and r.log_path.is_relative_to(folder):
                rels.append(str(r.log_path.with_suffix(".result.json").relative_to(folder)))
        return [rel for rel in rels if rel is not None]

    def record(self, record: TrialRecord, *, branch_from: str | None, **audit: Any) -> None:
        """Log ``record`` (final, its commit made), move its refs and append its audit record.

        ``branch_from`` is where the branch must be for it to move to ``record.commit`` (None:
        it does not move); ``audit`` holds what results.tsv does not: runs, timings, the prompt and answer, the tree.
        """
        assert self.log is not None
        audit.setdefault("ended", time.time())
        entry = self.audit.entry(record, **audit)
        sealed = self.files.seal(self._own_files(entry, audit.get("results", ()))) if self.seal_files else {}
        entry["files"] = {rel: s.sha256 for rel, s in sealed.items()}
        updates = [(trial_ref(self.tag, record.trial), record.commit, None)] if record.commit else []
        if record.status == Status.REVIEW:
            updates.append((review_ref(self.tag, record.trial), record.commit, None))
        if branch_from is not None:
            updates.append((branch_ref(self.tag), record.commit, branch_from))
        with signals_held():
            self.log.append(record)
            self.history.append(record)
            if updates:
                self.repo.update_refs(*updates)
            self.refs.update((ref, commit) for ref, commit, _ in updates)
            if record.status == Status.BASELINE:
                self.refs[branch_ref(self.tag)] = record.commit  # a baseline scores the commit the branch is at
            self.files.watch(sealed)
            self.audit.append(entry)
        self.config.hook.pytest_autoresearch_trial_logged(config=self.config, record=record)
        for observe in self.observers:
            observe(record)
