"""The holdout: fitness tests marked ``holdout=True``, which no trial runs and no agent sees.

They are scored at the baseline and on the final best only, so the summary can warn when the
trial metric improved but the holdout did not (the kept changes may overfit the data the trials
see). The files that define them are left out of the agent's context, taken out of every slot
before a candidate runs there (they stay in every commit, being frozen), and their lines are
redacted from whatever a trial prints (a candidate could still read them from git's objects).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..store.runfolder import RunMeta
from .evaluation import Evaluator
from .setup import Run


#: Holdout lines shorter than this (stripped) are too common to redact.
MIN_HIDDEN = 12


class Holdout:
    def __init__(self, run: Run, evaluator: Evaluator) -> None:
        self.run = run
        self.evaluator = evaluator
        self.scores: dict[str, dict[str, float]] = {}  # "baseline"/"best" -> holdout test -> score
        self.best_trial: int | None = None  # the trial the "best" scores belong to
        self.goals: dict[str, str] = {}
        self.files: set[str] = set()  # rootdir-relative files defining holdout tests

    def resume(self, meta: RunMeta) -> None:
        self.scores = {k: dict(v) for k, v in meta.holdout.items()}
        self.best_trial = meta.holdout_best_trial
        self.goals = dict(meta.holdout_goals)
        self.hide(meta.holdout_files)

    def hide(self, files: Sequence[str]) -> None:
        """Holdout test files are never shown to an agent, not even as read-only context, nor
        left where a candidate runs, and their text never reaches the log or a prompt."""
        self.files = set(files)
        run = self.run
        listed = [p for p in run.context_paths if p in self.files]
        if listed:
            run.context_paths = [p for p in run.context_paths if p not in self.files]
            run.notes.append(f"left {', '.join(listed)} out of the agent's context: it holds holdout tests")
        if run.slots is not None:
            run.slots.hidden = sorted(run.prefix + p for p in self.files)
        self.evaluator.hide_text(self._lines())

    def _lines(self) -> dict[str, str]:
        """The holdout files' distinctive lines -> a label: long enough to tell, and in no other
        test file of their folders (so common lines, imports say, stay readable elsewhere)."""
        worktree, prefix = self.run.home.worktree, self.run.prefix
        folders = {p.rpartition("/")[0] for p in self.files}
        others: set[str] = set()
        for path in self.run.repo.tracked_files(self.run.start_commit):
            rel = path[len(prefix):] if path.startswith(prefix) else None
            if rel and rel.endswith(".py") and rel not in self.files and rel.rpartition("/")[0] in folders:
                others |= {line.strip() for line in (worktree.read(path) or "").splitlines()}
        lines: dict[str, str] = {}
        for file in sorted(self.files):
            for line in (worktree.read(prefix + file) or "").splitlines():
                if len(line.strip()) >= MIN_HIDDEN and line.strip() not in others:
                    lines.setdefault(line.strip(), f"holdout text of {file}")
        return lines

    def score(self, number: int, note: Callable[[str], None]) -> dict[str, float]:
        """Run the holdout tests on slot 0's worktree (the current best) as trial ``number``."""
        result = self.evaluator.evaluate(number, holdout_only=True)
        if not result.finished or result.failed_tests:
            note(f"the holdout tests failed on trial {number}: {result.failure_text(300)}")
        self.goals.update({f.nodeid: f.goal for f in result.fitness})
        return {f.nodeid: f.score for f in result.fitness if f.score is not None}
