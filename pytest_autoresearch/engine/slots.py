"""Worktree slots: where candidates are written, evaluated, and reset to the best again.

Slot 0 is the run's own worktree, which always holds the current best between trials (the
agent reads it; the baseline and holdout runs use it). With one worker it evaluates the
candidates too; with K workers, slots 1..K do, in worktrees of their own. A slot's manifest
pins the frozen files it must hold; a reset restores the tracked files, removes what a trial
left (carried paths excepted) and checks that the frozen files really came back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.noise import mean
from ..core.records import RunResult
from ..errors import FatalError, SetupError
from ..fitness_json import FILENAME, load, save
from ..store.gitstate import Worktree, merge_texts
from ..system.manifest import Manifest
from .candidate import Candidate
from .worktree_setup import Generated


@dataclasses.dataclass
class Slot:
    """Where one worker evaluates candidates: its worktree, the manifest pinned there, its device."""

    index: int
    worktree: Worktree
    manifest: Manifest
    manifest_file: Path
    env: dict[str, str]
    at: str  # the commit the worktree was last reset to
    generated: Generated | None = None  # what autoresearch_setup built there: kept across resets

    @property
    def device(self) -> str | None:
        return self.env.get("CUDA_VISIBLE_DEVICES")


class Slots:
    """Every slot of a run, and what writing into them and resetting them involves."""

    def __init__(self, home: Slot, workers: Sequence[Slot], prefix: str, carry: tuple[str, ...]) -> None:
        self.home = home
        self.workers = list(workers)  # where candidates are evaluated (the home slot, with one worker)
        self.prefix = prefix  # the rootdir inside the repository: "" or "sub/"
        self.carry = carry  # carried paths, repository-relative
        self.pins: dict[str, str] = {}  # frozen files the loop itself rewrote in a kept commit -> blob
        self.hidden: list[str] = []  # files no trial may see: they define holdout tests (repository-relative)

    @property
    def all(self) -> list[Slot]:
        return list({id(s): s for s in [self.home, *self.workers]}.values())

    def reset(self, slot: Slot, commit: str, tampered: Sequence[str] = ()) -> None:
        """Make a slot's worktree ``commit`` again, and its manifest what ``commit`` holds."""
        built = slot.generated
        slot.worktree.reset(commit, keep=self.carry + (built.paths if built else ()))  # hidden files come back with the reset
        slot.at = commit
        if built is not None and not built.intact():
            try:
                built.rebuild()
            except SetupError as exc:
                raise FatalError(f"a trial changed what autoresearch_setup built, and building it again failed: {exc}") from None
        moved = [p for p in sorted({*tampered, *slot.manifest.absent}) if p in slot.manifest.blobs]
        slot.manifest.absent.clear()
        for path, blob in self.pins.items():
            if slot.manifest.blobs.get(path) != blob:
                slot.manifest.blobs[path] = blob
                moved.append(path)
        if moved:
            self._restore_frozen(slot, commit, moved)

    def _restore_frozen(self, slot: Slot, commit: str, paths: list[str]) -> None:
        """After a reset: make sure it really restored these frozen files, then re-pin them."""
        manifest = slot.manifest
        stubborn = manifest.refresh(paths)
        if stubborn:
            slot.worktree.restore(commit, stubborn)
            stubborn = manifest.refresh(stubborn)
        if stubborn:
            raise FatalError(f"frozen files could not be restored in the worktree: {', '.join(stubborn)}")
        manifest.save(slot.manifest_file)

    def write(self, c: Candidate) -> None:
        """The candidate into its slot, on top of its parent; ``c.tree`` is what will be evaluated."""
        if c.slot.at != c.parent.commit:
            self.reset(c.slot, c.parent.commit)
        c.slot.worktree.write(c.changes, self.prefix)
        c.tree = c.slot.worktree.stage([self.prefix + path for path in c.changes])
        self.hide(c.slot)

    def hide(self, slot: Slot) -> None:
        """Take the holdout tests' files out of a slot about to run a candidate: the candidate
        cannot read what it never sees (the manifest knows they are meant to be gone)."""
        if not self.hidden:
            return
        slot.worktree.hide(self.hidden)
        slot.manifest.absent = set(self.hidden) & set(slot.manifest.blobs)
        slot.manifest.save(slot.manifest_file)

    def merge(self, c: Candidate, best_trial: int, base_of: Callable[[str], str | None], read: Callable[[str], str | None]) -> tuple[dict[str, str | None], str | None]:
        """The candidate's change, three-way merged into the best's files (``read``; ``base_of``
        reads its parent's); or why it cannot be."""
        merged: dict[str, str | None] = {}
        for path, theirs in c.changes.items():
            base, ours = base_of(path), read(path)
            if ours == base or theirs == ours:
                merged[path] = theirs
            elif theirs == base:
                merged[path] = ours
            elif ours is None or base is None or theirs is None or (text := merge_texts(ours, base, theirs)) is None:
                return {}, f"better than trial {c.parent.trial}, but its change to {path} conflicts with trial {best_trial}, kept while it ran"
            else:
                merged[path] = text
        if all(text == read(path) for path, text in merged.items()):
            return {}, f"better than trial {c.parent.trial}, but trial {best_trial}, kept while it ran, already holds its change"
        return merged, None

    def update_fitness_json(self, results: Sequence[RunResult], c: Candidate, tracked: bool) -> str:
        """In a kept commit, fitness.json (when the repository tracks one) gets the new scores;
        the tree to commit."""
        path = self.prefix + FILENAME
        if not tracked:
            return c.tree
        target = c.slot.worktree.path / path
        saved = load(target)
        scores: dict[str, list[float]] = {}
        goals: dict[str, str] = {}
        for result in results:
            for fit in result.fitness:
                if fit.score is not None:
                    scores.setdefault(fit.nodeid, []).append(fit.score)
                    goals[fit.nodeid] = fit.goal
        for nodeid, values in scores.items():
            saved[nodeid] = {"score": mean(values), "goal": goals[nodeid]}
        save(target, saved)
        tree = c.slot.worktree.stage([path])
        self.pins[path] = c.slot.worktree.git.hash_object(str(target))  # slots re-pin it as they reset to the new best
        return tree
