"""The run folder ``.autoresearch/<tag>/``: its layout, its lock, and what a resumed run reads.

One loop per tag: the lock is an advisory ``flock`` the kernel releases when the driver
exits, however it exits, so a crashed run never leaves a stale lock behind. ``run.json``
holds what a later run needs to continue this one (the primary metric, the log's columns,
where the run started); results.tsv holds the trials.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from pathlib import Path
from typing import Any


class RunLocked(Exception):
    """Another loop holds this run."""


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.trials = path / "trials"
        self.results = path / "results.tsv"
        self.meta = path / "run.json"
        self.manifest = path / "manifest.json"
        self.cache = path / "cache"  # pytest's cache_dir for the trials
        self.worktree = path / "worktree"  # worker 0's; with several workers, also worktree-1, ...
        self._lock_file: Any = None

    def create(self) -> None:
        for folder in (self.trials, self.cache):
            folder.mkdir(parents=True, exist_ok=True)

    def lock(self) -> None:
        """Take the run's lock or raise RunLocked naming the holder."""
        self.path.mkdir(parents=True, exist_ok=True)
        f = (self.path / "lock").open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunLocked(holder) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._lock_file = f

    def unlock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def write_meta(self, meta: dict[str, Any]) -> None:
        text = json.dumps(meta, indent=1).encode()
        tmp = self.meta.with_name("run.json.tmp")
        tmp.write_bytes(text)
        os.replace(tmp, self.meta)
        self._meta_text = text

    def read_meta(self) -> dict[str, Any]:
        self._meta_text = self.meta.read_bytes()
        return json.loads(self._meta_text)

    def meta_intact(self) -> bool:
        """Whether run.json still holds what the loop wrote (a trial may not edit it)."""
        try:
            return self.meta.read_bytes() == getattr(self, "_meta_text", None)
        except OSError:
            return False

    def restore_meta(self) -> None:
        tmp = self.meta.with_name("run.json.tmp")
        tmp.write_bytes(self._meta_text)
        os.replace(tmp, self.meta)

    # -- the trials in flight, so that a run killed outright can be cleaned up after -------

    def worktree_of(self, slot: int) -> Path:
        """Where worker ``slot`` evaluates candidates (worker 0 uses the run's own worktree)."""
        return self.worktree if slot == 0 else self.path / f"worktree-{slot}"

    def manifest_of(self, slot: int) -> Path:
        return self.manifest if slot == 0 else self.path / f"manifest-{slot}.json"

    def _pgid_file(self, slot: int) -> Path:
        return self.path / ("trial.pgid" if slot == 0 else f"trial-{slot}.pgid")

    def trial_started(self, pgid: int, slot: int = 0) -> None:
        self._pgid_file(slot).write_text(str(pgid))

    def trial_ended(self, slot: int = 0) -> None:
        self._pgid_file(slot).unlink(missing_ok=True)

    def kill_leftover_trial(self) -> bool:
        """Kill the process groups of trials whose driver was killed outright; True if one lived."""
        killed = False
        for marker in sorted(self.path.glob("trial*.pgid")):
            try:
                pgid = int(marker.read_text())
            except (OSError, ValueError):
                continue
            marker.unlink(missing_ok=True)
            try:
                os.killpg(pgid, signal.SIGKILL)
                killed = True
            except (ProcessLookupError, PermissionError):
                pass
        return killed
