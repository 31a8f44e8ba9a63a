"""The run folder ``.autoresearch/<tag>/``: its layout, its lock, and what a resumed run reads.

One loop per tag: the lock is an advisory ``flock`` the kernel releases when the driver
exits, however it exits, so a crashed run never leaves a stale lock behind. ``run.json``
holds what a later run needs to continue this one (the primary metric, the log's columns,
where the run started), as a :class:`RunMeta`: the only reader and writer of that file, for
the loop, the report and finalize alike. results.tsv holds the trials.

``trials/`` holds each trial's files: its log per run, the result file of each run that
reported, the prompt and the answer. Once a trial is logged they are the record of it, and
:class:`TrialFiles` watches them: it hashes each when its trial is logged (the hashes go into
the audit record), keeps a compressed copy of each file up to :data:`KEEP_BYTES`, and after every
trial compares a stat of each, hashing a file only when its stat moved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.records import MetricSpec, Rescore

#: The version of run.json this code writes.
META_VERSION = 1

#: A trial file up to this size is kept (zlib-compressed) in the driver's memory, so that a
#: rewritten or deleted one can be put back byte for byte; a larger one (a long log) is
#: watched by its hash only: a change is found and reported, not undone.
KEEP_BYTES = 256 * 1024
#: The most compressed bytes kept for a run; beyond it, files are watched by hash only.
KEEP_TOTAL = 64 * 2**20

Fingerprint = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode (of the path itself)


def fingerprint(path: Path) -> Fingerprint | None:
    """A file's stat (not following a symlink), git's rule for "unchanged": ctime cannot be
    set from user code, so a write always moves it. None when there is no such file."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def replace_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` anew (a fresh file moved over whatever is there, a symlink included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".restore")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclasses.dataclass
class Sealed:
    """A watched file as its trial left it."""

    print: Fingerprint | None  # None: hash it at the next check
    sha256: str
    copy: bytes | None  # its content, compressed, when kept


class TrialFiles:
    """The files of logged trials (``trials/NNN.*``, paths relative to the run folder), which
    nothing may change once their trial is logged."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sealed: dict[str, Sealed] = {}
        self.kept = 0  # compressed bytes held

    def seal(self, rels: Iterable[str]) -> dict[str, Sealed]:
        """Hash (and keep, when small) these files as they are now; :meth:`watch` then watches them."""
        out = {}
        for rel in rels:
            path = self.folder / rel
            before = fingerprint(path)
            try:
                data = path.read_bytes() if before is not None and not path.is_symlink() else None
            except OSError:
                data = None
            if data is None:
                continue
            copy = None
            if len(data) <= KEEP_BYTES and self.kept < KEEP_TOTAL:
                copy = zlib.compress(data, 1)
                self.kept += len(copy)
            out[rel] = Sealed(before if fingerprint(path) == before else None, hashlib.sha256(data).hexdigest(), copy)
        return out

    def watch(self, sealed: dict[str, Sealed]) -> None:
        for rel, old in ((rel, self.sealed.get(rel)) for rel in sealed):
            if old is not None and old.copy is not None:
                self.kept -= len(old.copy)
        self.sealed.update(sealed)

    def adopt(self, trials: Iterable[int]) -> None:
        """A resumed run: the files of the logged ``trials``, as they are now."""
        numbers = set(trials)
        folder = self.folder / "trials"
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        prefix = [(name, name.split(".", 1)[0]) for name in names]
        self.watch(self.seal(f"trials/{name}" for name, n in prefix if n.isdigit() and int(n) in numbers))

    def changed(self) -> list[str]:
        """Watched files that no longer hold what they held: a stat of each, and a hash only
        of those whose stat moved (a file merely touched is watched with its new stat)."""
        out = []
        for rel, sealed in self.sealed.items():
            path = self.folder / rel
            now = fingerprint(path)
            if now is not None and now == sealed.print:
                continue
            try:
                same = now is not None and not path.is_symlink() and hashlib.sha256(path.read_bytes()).hexdigest() == sealed.sha256
            except OSError:
                same = False
            if same and fingerprint(path) == now:
                sealed.print = now
            elif not same:
                out.append(rel)
        return sorted(out)

    def restore(self, rels: Iterable[str]) -> list[str]:
        """Put these files back from the copies kept; returns those that had no copy, which
        are watched from now on as they are (or no longer, when they are gone)."""
        lost = []
        for rel in rels:
            sealed, path = self.sealed[rel], self.folder / rel
            if sealed.copy is not None:
                replace_bytes(path, zlib.decompress(sealed.copy))
                sealed.print = fingerprint(path)
                continue
            lost.append(rel)
            del self.sealed[rel]
            self.watch(self.seal([rel]))
        return lost


@dataclasses.dataclass
class RunMeta:
    """What ``run.json`` holds: what a later run (or a report) needs to read this one."""

    tag: str
    head: str  # the user's HEAD when the run started
    base_ref: str  # the user's branch (or HEAD's commit) the run started from
    metric: MetricSpec  # the primary fitness test
    columns: list[str]  # results.tsv's metric columns, in order
    column_keys: list[tuple[str, str, str]]  # (nodeid, metric name or "", column)
    usage: bool  # whether results.tsv has the token and cost columns
    timeout: float | None  # the trial deadline in force
    holdout: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # "baseline"/"best" -> test -> score
    holdout_best_trial: int | None = None  # the trial the "best" holdout scores belong to
    holdout_goals: dict[str, str] = dataclasses.field(default_factory=dict)
    holdout_files: list[str] = dataclasses.field(default_factory=list)  # files that define holdout tests
    rescore: Rescore | None = None  # the final best scored again in a fresh clone outside the run
    mutable: list[str] | None = None  # autoresearch_mutable's globs the run started with (None: not recorded)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": META_VERSION,
            "tag": self.tag,
            "head": self.head,
            "base_ref": self.base_ref,
            "metric": {"nodeid": self.metric.nodeid, "name": self.metric.name, "goal": self.metric.goal},
            "columns": list(self.columns),
            "column_keys": [list(key) for key in self.column_keys],
            "usage": self.usage,
            "timeout": self.timeout,
            "holdout": self.holdout,
            "holdout_best_trial": self.holdout_best_trial,
            "holdout_goals": self.holdout_goals,
            "holdout_files": sorted(self.holdout_files),
            "rescore": None if self.rescore is None else self.rescore.to_json(),
            "mutable": self.mutable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunMeta:
        """Read a run.json; keys that older versions did not write take their defaults."""
        metric = data["metric"]
        return cls(
            tag=str(data.get("tag", "")),
            head=str(data["head"]),
            base_ref=str(data.get("base_ref") or data["head"]),
            metric=MetricSpec(metric["nodeid"], metric["name"], metric["goal"], True),
            columns=[str(c) for c in data["columns"]],
            column_keys=[(str(n), str(m), str(c)) for n, m, c in data.get("column_keys", [])],
            usage=bool(data.get("usage", False)),
            timeout=data.get("timeout"),
            holdout={k: dict(v) for k, v in (data.get("holdout") or {}).items()},
            holdout_best_trial=data.get("holdout_best_trial"),
            holdout_goals=dict(data.get("holdout_goals") or {}),
            holdout_files=list(data.get("holdout_files") or []),
            rescore=Rescore.from_json(data["rescore"]) if data.get("rescore") else None,
            mutable=[str(g) for g in data["mutable"]] if isinstance(data.get("mutable"), list) else None,
        )


def read_meta(path: Path) -> RunMeta:
    """A run.json, for readers that only read (the report, finalize)."""
    return RunMeta.from_json(json.loads(path.read_text(encoding="utf-8")))


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

    def write_meta(self, meta: RunMeta) -> None:
        text = json.dumps(meta.to_json(), indent=1).encode()
        tmp = self.meta.with_name("run.json.tmp")
        tmp.write_bytes(text)
        os.replace(tmp, self.meta)
        self._meta_text = text

    def read_meta(self) -> RunMeta:
        """run.json as the loop wrote it; what is in it now is what a trial must leave alone."""
        self._meta_text = self.meta.read_bytes()
        return RunMeta.from_json(json.loads(self._meta_text))

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
