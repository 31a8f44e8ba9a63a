"""The frozen-file manifest: what every tracked file outside the surface must stay.

The engine pins one for each worktree slot when a run starts or resumes
(:mod:`pytest_autoresearch.engine.setup`; a distributed worker pins its own), from git (blob
hashes) plus the files' stat fingerprints in the worktree; inside a trial the ``fitness``
fixture and the trial reporter (:mod:`pytest_autoresearch.trial_plugin`) verify it, and the
engine checks again with git after every trial (:mod:`pytest_autoresearch.engine.integrity`).
Any difference makes the trial a ``tamper``: never kept, worktree restored.

Verification is cheap: a file whose size, mtime, ctime and inode are unchanged is taken as
unchanged (ctime cannot be set from user code; this is git's own rule); only files whose
fingerprint moved are hashed. This module loads inside every trial, so it stays stdlib-only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

Fingerprint = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def blob_sha(path: Path) -> str | None:
    """git's object id of the file's content (of a symlink, of its target text); None if absent."""
    try:
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return "unreadable"
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Manifest:
    """Blob hashes and fingerprints of the frozen files under ``root`` (repository-relative paths)."""

    def __init__(
        self, root: Path, blobs: Mapping[str, str], prints: Mapping[str, Fingerprint | None], absent: Iterable[str] = ()
    ) -> None:
        self.root = root
        self.blobs = dict(blobs)
        self.prints = dict(prints)
        #: frozen files meant to be missing from the worktree now (the holdout tests' files in a
        #: trial): gone is as pinned; present again, they must still hold their pinned content
        self.absent = set(absent)

    @classmethod
    def pin(cls, root: Path, blobs: Mapping[str, str]) -> Manifest:
        return cls(root, blobs, {p: fingerprint(root / p) for p in blobs})

    def refresh(self, paths: Iterable[str]) -> list[str]:
        """Take new fingerprints of files the engine restored (a slot reset), once their
        content is verified; returns the files that still differ from their pinned blob."""
        wrong = []
        for p in paths:
            if p not in self.blobs:
                continue
            if blob_sha(self.root / p) == self.blobs[p]:
                self.prints[p] = fingerprint(self.root / p)
            else:
                wrong.append(p)
        return wrong

    def changed(self) -> list[str]:
        """Frozen files whose content differs from the pinned blobs (or that are gone)."""
        out = []
        for path, sha in self.blobs.items():
            target = self.root / path
            if self.prints.get(path) is not None and fingerprint(target) == self.prints[path]:
                continue
            now = blob_sha(target)
            if now != sha and not (now is None and path in self.absent):
                out.append(path)
        return sorted(out)

    def save(self, file: Path) -> None:
        data = {
            "root": str(self.root),
            "files": {p: [self.blobs[p], self.prints.get(p)] for p in self.blobs},
            "absent": sorted(self.absent),
        }
        text = json.dumps(data).encode()
        tmp = file.with_name(file.name + ".tmp")
        tmp.write_bytes(text)
        os.replace(tmp, file)
        self._saved = hashlib.sha256(text).digest()

    def changed_file(self, file: Path) -> bool:
        """Whether the saved manifest file was altered since this manifest wrote it."""
        try:
            return hashlib.sha256(file.read_bytes()).digest() != getattr(self, "_saved", None)
        except OSError:
            return True

    @classmethod
    def load(cls, file: Path) -> Manifest:
        data = json.loads(file.read_text(encoding="utf-8"))
        files = data["files"]
        return cls(
            Path(data["root"]),
            {p: v[0] for p, v in files.items()},
            {p: tuple(v[1]) if v[1] is not None else None for p, v in files.items()},  # type: ignore[misc]
            data.get("absent", ()),
        )
