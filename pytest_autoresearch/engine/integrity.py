"""What a trial changed that it must not: the check made after every run, and the repair.

Frozen files (by git's account, by the manifest's, by the trial's own), the run's own files
(results.tsv, run.json, the slot's manifest, audit.jsonl, the files of every logged trial),
the run's own refs (its branch, every trial and review ref), the user's repository (its
hooks, config, exclude and attributes files; your own git config) and what ties the trial's
worktree to it (its ``.git`` link, its metadata). Whatever is found is restored before the next trial, and the
verdict makes the trial ``tamper``.

The run's refs and files are checked against what the recorder (their only writer) knows it
wrote: one ``git for-each-ref`` for the refs, and a stat per file (a hash only of a file whose
stat moved), so the check costs the same whether the run is ten trials old or a thousand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..core.records import RunResult, TrialRecord
from ..store.gitguard import RepoGuard
from ..store.gitstate import ZERO, GitStateError, Worktree
from ..store.results_log import ResultsLog
from ..store.runfolder import RunFolder
from .slots import Slot

if TYPE_CHECKING:
    from .recorder import Recorder


class Integrity:
    #: Whether the run's refs, audit.jsonl and trial files are checked (bench/integrity.py
    #: switches this off, with Recorder.seal_files, to measure what the checks cost).
    check_run_state = True

    def __init__(
        self,
        log: Callable[[], ResultsLog | None],
        folder: RunFolder,
        guard: RepoGuard | None,
        records: Callable[[], Sequence[TrialRecord]],
        recorder: Recorder | None = None,
        worktrees: Callable[[], Sequence[Worktree]] = list,
    ) -> None:
        self._log = log
        self.folder = folder
        self.guard = guard
        self._records = records
        self.recorder = recorder
        self._worktrees = worktrees

    def check(self, result: RunResult, slot: Slot) -> list[str]:
        """What the trial that produced ``result`` in ``slot`` changed that it must not, repaired.

        With several workers, a change to a file trials share (the log, your .git) is laid at
        the door of the trial judged when it is found; every trial's own files are its own.
        What git reads (your config, the worktree's link and metadata) is checked first, with
        no git, and put back before the first git command runs.
        """
        found: set[str] = set()
        if self.guard is not None:
            found |= {f"<{what}>" for what in self.guard.take()}
        found |= {f"<{what}>" for what in slot.worktree.restore_links()}
        for other in self._worktrees():  # what the driver's own calls found there since
            if other is not slot.worktree:
                found |= {f"<{what}>" for what in other.links.take()}
        frozen = set(slot.manifest.blobs)
        found |= {p for p in slot.worktree.changed_tracked() if p in frozen}
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
        if self.recorder is not None and self.check_run_state:
            found |= set(self.run_state(self.recorder))
        return sorted(found)

    @staticmethod
    def run_state(recorder: Recorder) -> list[str]:
        """The run's refs, audit.jsonl and logged trial files that differ from what the
        recorder wrote, each put back (a file too large to have been copied is only reported)."""
        found = []
        refs = restore_refs(recorder)
        if refs:
            found.append(f"<the run's refs: {', '.join(refs)}>")
        if not recorder.audit.intact():
            recorder.audit.restore()
            found.append(f"<{recorder.audit.path.name}>")
        changed = recorder.files.changed()
        if changed:
            lost = set(recorder.files.restore(changed))
            found += [f"<{rel}>" if rel not in lost else f"<{rel} (not restored: no copy kept; its hash is in audit.jsonl)>" for rel in changed]
        return found


def restore_refs(recorder: Recorder) -> list[str]:
    """Set every ref of the run back to what the recorder wrote (removing refs it did not
    write); returns the refs that were wrong. A ref whose commit is gone from the repository
    cannot be restored: it is reported and no longer expected."""
    expected, now = recorder.refs, recorder.listed_refs()
    if now == expected:
        return []
    wrong = sorted(ref for ref in expected.keys() | now.keys() if expected.get(ref) != now.get(ref))
    extra = [(ref, ZERO, None) for ref in wrong if ref in now]  # removed first: a ref may block one's path
    back = [(ref, expected[ref], None) for ref in wrong if ref in expected]
    for batch in (extra, back):
        if not batch:
            continue
        try:
            recorder.repo.update_refs(*batch)
        except GitStateError:
            for update in batch:
                try:
                    recorder.repo.update_refs(update)
                except GitStateError:
                    expected.pop(update[0], None)
    return wrong
