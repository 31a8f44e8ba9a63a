"""The recorder: the only writer of a trial's verdict, in the order that keeps log and git agreeing.

Row first (results.tsv), then the refs (the trial's, a review ref, the branch), then the audit
record; the three are written with Ctrl-C and SIGTERM held off, so a run interrupted while a
verdict is written still writes all of it, and a driver killed outright in between is repaired
on resume (a row whose refs did not move). What takes time is done before that section (the
audit record's hashes) or after it (a user's ``pytest_autoresearch_trial_logged`` hook).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ..core.history import History
from ..core.records import Status, TrialRecord
from ..names import branch_ref, review_ref, trial_ref
from ..store.audit import AuditTrail
from ..store.gitstate import Repository, trailers
from ..store.results_log import ResultsLog


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM off while a verdict is written, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise KeyboardInterrupt


def message(record: TrialRecord) -> str:
    """A trial commit's message: its description, then trailers for the machine."""
    score = record.score if record.score is not None else "none"
    return f"{record.description}\n\n" + trailers({"Trial": record.trial, "Status": record.status, "Score": score})


class Recorder:
    def __init__(self, config: pytest.Config, repo: Repository, tag: str, history: History, audit: AuditTrail) -> None:
        self.config = config
        self.repo = repo
        self.tag = tag
        self.history = history
        self.audit = audit
        self.log: ResultsLog | None = None  # set once the baseline stands (or the run resumes)

    def open_log(self, path: Path, metric_columns: Sequence[str], *, usage: bool, resume: bool) -> None:
        """results.tsv: created with its header for a new run, taken up as it is for a resumed one."""
        self.log = ResultsLog(path, metric_columns, usage=usage)
        if resume:
            self.log.adopt()
        else:
            self.log.create()

    def record(self, record: TrialRecord, *, branch_from: str | None, **audit: Any) -> None:
        """Log ``record`` (final, its commit made), move its refs and append its audit record.

        ``branch_from`` is where the branch must be for it to move to ``record.commit`` (None:
        it does not move); ``audit`` holds what results.tsv does not: runs, timings, the prompt and answer, the tree.
        """
        assert self.log is not None
        audit.setdefault("ended", time.time())
        entry = self.audit.entry(record, **audit)
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
            self.audit.append(entry)
        self.config.hook.pytest_autoresearch_trial_logged(config=self.config, record=record)
