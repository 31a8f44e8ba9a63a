"""The holdout: fitness tests marked ``holdout=True``, which no trial runs and no agent sees.

They are scored at the baseline and on the final best only, so the summary can warn when the
trial metric improved but the holdout did not (the kept changes may overfit the data the trials
see). The files that define them are left out of the agent's context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..store.runfolder import RunMeta
from .evaluation import Evaluator
from .setup import Run


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
        """Holdout test files are never shown to an agent, not even as read-only context."""
        self.files = set(files)
        run = self.run
        listed = [p for p in run.context_paths if p in self.files]
        if listed:
            run.context_paths = [p for p in run.context_paths if p not in self.files]
            run.notes.append(f"left {', '.join(listed)} out of the agent's context: it holds holdout tests")

    def score(self, number: int, note: Callable[[str], None]) -> dict[str, float]:
        """Run the holdout tests on slot 0's worktree (the current best) as trial ``number``."""
        result = self.evaluator.evaluate(number, holdout_only=True)
        if not result.finished or result.failed_tests:
            note(f"the holdout tests failed on trial {number}: {result.failure_text(300)}")
        self.goals.update({f.nodeid: f.goal for f in result.fitness})
        return {f.nodeid: f.score for f in result.fitness if f.score is not None}
