"""The surface files as logged trials' commits hold them, read with git for the offline operators.

``mutate`` reads them so a resumed run never proposes a version tried before; ``optuna`` reads
them to tell its study what a re-applied candidate really ran and to warm-start a new study with
every evaluation of the same program. One ``git cat-file --batch`` for all commits, in the current
best's worktree with its git dirs named (``context.git_env``), so nothing of the trials' own
checkout is trusted.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping

from .base import ProposalContext

_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")
#: What reading commits can fail with: the caller says so and goes on without them.
ReadError = (OSError, subprocess.SubprocessError, ValueError)


def commit_files(context: ProposalContext, commits: Iterable[str], paths: Iterable[str]) -> dict[str, dict[str, str | None]]:
    """Each commit's text of each path (rootdir-relative; None where the commit lacks it or it
    is not text); raises one of :data:`ReadError`."""
    commits, paths = sorted(set(commits)), sorted(set(paths))
    if not commits or not paths:
        return {}
    prefix = _git(context, "rev-parse", "--show-prefix").decode().strip()
    wanted = "".join(f"{commit}:{prefix}{path}\n" for commit in commits for path in paths)
    blobs = _batch(_git(context, "cat-file", "--batch", stdin=wanted.encode()))
    if len(blobs) != len(commits) * len(paths):
        raise ValueError(f"git cat-file answered {len(blobs)} of {len(commits) * len(paths)} requests")
    rows = [blobs[i : i + len(paths)] for i in range(0, len(blobs), len(paths))]
    return {commit: dict(zip(paths, row)) for commit, row in zip(commits, rows)}


def tried_versions(context: ProposalContext) -> set[str]:
    """Digests of the surface as each logged trial's commit has it: what a resumed run tried."""
    found = commit_files(context, (r.commit for r in context.history if r.commit), context.files)
    return {digest({path: text for path, text in files.items() if text is not None}) for files in found.values()}


def _git(context: ProposalContext, *args: str, stdin: bytes | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update({**context.git_env, "GIT_OPTIONAL_LOCKS": "0"})
    proc = subprocess.run(["git", *args], cwd=context.workdir, env=env, input=stdin, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise subprocess.SubprocessError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _batch(out: bytes) -> list[str | None]:
    """``git cat-file --batch`` output: each blob's text as the worktree's reader decodes it
    (UTF-8, universal newlines), None for a path the commit lacks or a file that is not text."""
    blobs: list[str | None] = []
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3 or not header[2].isdigit():
            blobs.append(None)  # "<name> missing"
            continue
        size = int(header[2])
        data, pos = out[pos : pos + size], pos + size + 1
        try:
            blobs.append(data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n") if header[1] == b"blob" else None)
        except UnicodeDecodeError:
            blobs.append(None)
    return blobs


def digest(files: Mapping[str, str | None]) -> str:
    """One version of the surface, as a hash of its paths and texts."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()
