"""What a trial changed that it must not: the check made after every run, and the repair.

Frozen files (by git's account, by the manifest's, by the trial's own), the run's own files
(results.tsv, run.json, the slot's manifest) and the user's repository (its hooks, config and
exclude file). Whatever is found is restored before the next trial, and the verdict makes the
trial ``tamper``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.records import RunResult, TrialRecord
from ..store.gitstate import RepoGuard
from ..store.results_log import ResultsLog
from ..store.runfolder import RunFolder
from .slots import Slot


class Integrity:
    def __init__(self, log: Callable[[], ResultsLog | None], folder: RunFolder, guard: RepoGuard | None, records: Callable[[], Sequence[TrialRecord]]) -> None:
        self._log = log
        self.folder = folder
        self.guard = guard
        self._records = records

    def check(self, result: RunResult, slot: Slot) -> list[str]:
        """What the trial that produced ``result`` in ``slot`` changed that it must not, repaired.

        With several workers, a change to a file trials share (the log, your .git) is laid at
        the door of the trial judged when it is found; every trial's own files are its own.
        """
        frozen = set(slot.manifest.blobs)
        found = {p for p in slot.worktree.changed_tracked() if p in frozen}
        found |= set(slot.manifest.changed())
        found |= {p for p in result.tampered if p in frozen or p.startswith("<")}
        log = self._log()
        if log is not None and not log.intact():
            log.rewrite(self._records())
            found.add("<results.tsv>")
        if slot.manifest.changed_file(slot.manifest_file):
            slot.manifest.save(slot.manifest_file)
            found.add(f"<{slot.manifest_file.name}>")
        if not self.folder.meta_intact():
            self.folder.restore_meta()
            found.add("<run.json>")
        if self.guard is not None:
            found |= {f"<your repository's {what}>" for what in self.guard.restore_changes()}
        return sorted(found)
