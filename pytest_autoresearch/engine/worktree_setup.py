"""``autoresearch_setup``: a shell command run once in each new worktree, before anything is scored.

Some files a project needs are built, not committed: a ``_version.py`` setuptools-scm or hatch-vcs
writes, compiled ``.mo`` catalogues, extension modules (``python setup.py build_ext --inplace``).
The command builds them in each worktree the run makes (the baseline's, each worker's, the
rescore clone), with the rootdir there as its working folder, and its output goes to a log in the
run folder. What it creates is kept across the resets between trials; a trial that changes it
gets it built again before the next trial. It may not change tracked files, nor your
environment (an install would make every trial import one worktree's code).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..core.defaults import SETUP_TIMEOUT
from ..errors import SetupError
from ..store.gitstate import Worktree
from ..system.manifest import Fingerprint, fingerprint
from ..system.procs import kill_group, start_group, wait_unreaped

_INSTALLS = re.compile(r"\b(pip3?|uv\s+pip|conda|mamba|poetry|pipx)\s+install\b|\bsetup\.py\s+(develop|install)\b")
_TAIL_LINES = 20


def check_command(command: str) -> None:
    """Refuse a command that would change your environment rather than the worktree."""
    if _INSTALLS.search(command):
        raise SetupError(
            f"autoresearch_setup {command!r} installs into your environment: every trial would import what one "
            "worktree installed. Build in place instead (python setup.py build_ext --inplace, make, a version "
            "file written by a script), and install the project once yourself"
        )


#: git in the tree the command runs in: ``git(["ls-files", ...])`` answers its output
Git = Callable[[Sequence[str]], str]


def worktree_git(worktree: Worktree) -> Git:
    return lambda args: worktree.git.execute(["git", *args], strip_newline_in_stdout=False)


def _untracked(git: Git) -> set[str]:
    return {p.rstrip("/") for p in git(["ls-files", "--others", "--directory", "-z"]).split("\0") if p}


def _changed_tracked(git: Git) -> list[str]:
    out = git(["status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", "--ignore-submodules=all"])
    return sorted(entry[3:] for entry in out.split("\0") if len(entry) > 3)


def run(command: str, root: Path, git: Git, cwd: Path, log: Path, env: Mapping[str, str], keep_log: bool = True) -> tuple[str, ...]:
    """Run ``command`` in the tree at ``root`` (from ``cwd``) with its output in ``log``; returns
    the untracked paths it created (repository-relative). Raises SetupError when it fails; the
    message names the command, its exit status and the log (copied out of the run folder when
    ``keep_log`` is false, since a run that fails to start removes its folder)."""
    before = _untracked(git)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:  # a rebuild adds to the first build's log
        out.write(f"$ {command}\n(in {cwd})\n".encode())
        out.flush()
        proc = start_group(["/bin/sh", "-c", command], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            finished = wait_unreaped(proc, SETUP_TIMEOUT)
        finally:
            kill_group(proc)  # what it left running in the background ends with it (the status stays)
        status = proc.returncode
    if not finished or status != 0:
        what = f"did not finish within {SETUP_TIMEOUT:g}s" if not finished else f"exited with status {status}"
        where = log if keep_log else _copy_out(log)
        raise SetupError(f"autoresearch_setup {command!r} {what} in {root}; its output (full log in {where}):\n{_tail(log)}")
    changed = _changed_tracked(git)
    if changed:
        raise SetupError(
            f"autoresearch_setup {command!r} changed tracked files ({', '.join(changed[:5])}): it may only create "
            f"untracked files (log: {log if keep_log else _copy_out(log)})"
        )
    return tuple(sorted(_untracked(git) - before))


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[2:]
    return "\n".join(lines[-_TAIL_LINES:]) or "(no output)"


def _copy_out(log: Path) -> Path:
    """A copy of the log outside the repository, for a run whose folder is about to be removed."""
    fd, name = tempfile.mkstemp(prefix="autoresearch-setup-", suffix=".log")
    os.close(fd)
    shutil.copyfile(log, name)
    return Path(name)


def fingerprints(root: Path, paths: tuple[str, ...]) -> dict[str, Fingerprint | None]:
    """Every file under the generated paths, fingerprinted (a change means: build again)."""
    out: dict[str, Fingerprint | None] = {}
    for rel in paths:
        top = root / rel
        if top.is_dir() and not top.is_symlink():
            for folder, _, files in os.walk(top):
                for name in files:
                    full = Path(folder) / name
                    out[full.relative_to(root).as_posix()] = fingerprint(full)
        else:
            out[rel] = fingerprint(top)
    return out


class Generated:
    """What the setup command built in one worktree, and how to build it again."""

    def __init__(self, root: Path, paths: tuple[str, ...], rebuild: Callable[[], tuple[str, ...]]) -> None:
        self.root = root
        self.paths = paths
        self._rebuild = rebuild
        self.prints = fingerprints(root, paths)

    def intact(self) -> bool:
        return fingerprints(self.root, self.paths) == self.prints

    def rebuild(self) -> None:
        """Remove what it built and run the command again (a trial changed what it built)."""
        for rel in self.paths:
            target = self.root / rel
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            elif os.path.lexists(target):
                target.unlink()
        self.paths = self._rebuild()
        self.prints = fingerprints(self.root, self.paths)
