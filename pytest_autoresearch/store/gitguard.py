"""What git reads that a trial could write: watched by the driver, put back before its git runs.

Every git command of the driver names its git dir, common dir and work tree (resolved once, at
set-up), so no ``.git`` link or ``commondir`` file steers it; and it switches off, as
command-line config, the keys that run a command (:data:`SAFE_CONFIG`). What is left is the
config that ``-c`` cannot name (a ``filter.<driver>.clean``, a ``diff.<driver>.textconv``),
the hooks, and the files that tie a worktree to the repository. Those are watched here as
files, with no git at all: a stat of each before every driver git call, a read only of a file
whose stat moved, and a changed one put back byte for byte and reported (the verdict makes the
trial that changed it ``tamper``).

Without the sandbox a trial runs with your permissions; this is repair before use, not
prevention. With several workers a trial runs while the driver uses git on other worktrees:
a config a running trial has just written can be read by a driver call that starts before the
next check (see the README's "What the loop cannot do").
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import FatalError
from .runfolder import Fingerprint, fingerprint, replace_bytes

#: Config that makes git run a command or sign, switched off on every git call of the driver
#: (command-line config beats every config file, includes included): hooks, the file-system
#: monitor, the pager and editors, signing and showing signatures, submodule recursion (a
#: submodule's own config is a file a trial can write), automatic gc and the ``ext::``
#: transport. Filter, textconv and merge drivers have names of their own that ``-c`` cannot
#: cover: diffs pass ``--no-ext-diff --no-textconv``, and the config that defines drivers is
#: watched (:class:`RepoGuard`) so only those you configured can run.
SAFE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("submodule.recurse", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("protocol.ext.allow", "never"),
)


def config_env(pairs: Iterable[tuple[str, str]] = SAFE_CONFIG) -> dict[str, str]:
    """``pairs`` as ``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n`` (git's command-line config,
    inherited by the git commands a git command starts)."""
    pairs = list(pairs)
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


SAFE_ENV = config_env()


@dataclasses.dataclass(frozen=True)
class GitPaths:
    """Where one checkout's git lives, as the driver resolved it: its git dir (for a linked
    worktree ``<common>/worktrees/<name>``), the common dir and the work tree."""

    git_dir: Path
    common_dir: Path
    work_tree: Path

    def env(self) -> dict[str, str]:
        return {"GIT_DIR": str(self.git_dir), "GIT_COMMON_DIR": str(self.common_dir), "GIT_WORK_TREE": str(self.work_tree)}


# what a watched path held: None (nothing there), ("file", bytes), ("link", target) or
# ("dir", its entries' names)
Held = tuple[str, bytes] | None


def _held(path: Path) -> Held:
    try:
        if path.is_symlink():
            return ("link", os.fsencode(os.readlink(path)))
        if path.is_dir():
            return ("dir", b"\0".join(sorted(os.fsencode(e.name) for e in os.scandir(path))))
        return ("file", path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError:
        return ("unreadable", b"")


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


class WatchedFiles:
    """Files (label -> path) that nothing but the driver may change: what each held when
    :meth:`seal` last looked, put back by :meth:`restore_changes` (a stat of each; a read only
    of one whose stat moved, so a file merely rewritten with the same bytes is no change)."""

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self.paths = dict(paths)
        self.held: dict[str, Held] = {}
        self.prints: dict[str, Fingerprint | None] = {}
        self.seal(self.paths)

    def seal(self, labels: Iterable[str]) -> None:
        for label in labels:
            path = self.paths[label]
            self.prints[label] = fingerprint(path)
            self.held[label] = _held(path)

    def changed(self) -> list[str]:
        out = []
        for label, path in self.paths.items():
            now = fingerprint(path)
            if now == self.prints[label]:
                continue
            if now is not None and _held(path) == self.held[label]:
                self.prints[label] = now
                continue
            out.append(label)
        return out

    def restore_changes(self) -> list[str]:
        """What changed, each put back as it was: the labels of the files, and for a folder the
        entries that appeared in it (an entry that went is a watched file of its own)."""
        out = []
        for label in self.changed():
            path, held = self.paths[label], self.held[label]
            shown: str | None = label
            with contextlib.suppress(OSError):
                if held is None or held[0] in ("link", "file"):
                    if held is None or held[0] == "link" or path.is_dir():
                        _remove(path)
                    if held is not None and held[0] == "link":
                        path.symlink_to(os.fsdecode(held[1]))
                    elif held is not None:
                        replace_bytes(path, held[1])
                elif held[0] == "dir":
                    shown = self._restore_folder(label, path, held[1])
            self.prints[label] = fingerprint(path)
            if shown is not None:
                out.append(shown)
        return out

    @staticmethod
    def _restore_folder(label: str, path: Path, listing: bytes) -> str | None:
        """A watched folder back to the entries it had; the label with what was removed, or
        None when nothing was (an entry that went is put back as a watched file)."""
        if path.is_symlink() or not path.is_dir():
            _remove(path)
            path.mkdir()
            return label
        had = set(listing.split(b"\0")) if listing else set()
        extra = sorted(e.name for e in os.scandir(path) if os.fsencode(e.name) not in had)
        for name in extra:
            _remove(path / name)
        return f"{label}/{', '.join(extra)}" if extra else None


def global_configs(env: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Your own git config files (label -> path), which every git command reads and a trial
    without the sandbox can write: ``$GIT_CONFIG_GLOBAL``, or ``~/.gitconfig`` and
    ``$XDG_CONFIG_HOME/git/config``; a symlinked one is watched at its target too."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    if env.get("GIT_CONFIG_GLOBAL"):
        found = {"$GIT_CONFIG_GLOBAL": Path(env["GIT_CONFIG_GLOBAL"])}
    else:
        xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
        found = {"~/.gitconfig": home / ".gitconfig", "$XDG_CONFIG_HOME/git/config": xdg / "git" / "config"}
    for label, path in list(found.items()):
        if path.is_symlink():
            found[f"{label} (its target)"] = path.resolve()
    return found


class RepoGuard:
    """What a trial must not change of your git setup: the common git dir's config, exclude and
    attributes files, grafts, alternates and hooks (a planted hook would run at your next
    commit), and your own git config files. Taken once the run is set up; :meth:`check` runs
    before every git call of the driver and puts back what changed, :meth:`take` says what
    that was (once), so the next trial judged is ``tamper``.

    Refs and the checkout are left out on purpose: you keep working while a run goes on, and
    your commits must never be "restored" away. A change you make yourself to these files
    during a run is undone the same way.
    """

    FILES = ("config", "config.worktree", "commondir", "info/exclude", "info/attributes", "info/grafts", "objects/info/alternates")

    def __init__(self, paths: GitPaths, configs: Mapping[str, Path] | None = None) -> None:
        self.gitdir = paths.common_dir
        watched = {f".git/{rel}": self.gitdir / rel for rel in self.FILES}
        if paths.git_dir != paths.common_dir:  # your checkout is itself a linked worktree
            watched[".git/worktrees/config.worktree"] = paths.git_dir / "config.worktree"
        hooks = self.gitdir / "hooks"
        with contextlib.suppress(OSError):
            watched |= {f".git/hooks/{entry.name}": hooks / entry.name for entry in os.scandir(hooks)}
        watched[".git/hooks"] = hooks  # its listing: a hook that appears
        self.files = WatchedFiles(watched)
        self.configs = WatchedFiles(global_configs() if configs is None else configs)
        self.pending: list[str] = []

    def check(self) -> None:
        """Put back whatever changed since the last look (no git runs here)."""
        self.pending += [f"your repository's {label}" for label in self.files.restore_changes()]
        self.pending += [f"your git config {label}" for label in self.configs.restore_changes()]

    def take(self) -> list[str]:
        """What :meth:`check` found since the last call, after one more check."""
        self.check()
        found, self.pending = sorted(set(self.pending)), []
        return found


def _object_id(path: Path) -> bool:
    """Whether ``path`` holds a detached HEAD: a bare object id, no symbolic ref."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


class WorktreeLinks:
    """What ties one of the run's worktrees to the repository, as the driver made it: the
    worktree's folder itself, its ``.git`` link file, and its metadata in
    ``<common>/worktrees/<name>``: ``gitdir``, ``commondir``, ``HEAD`` (a symbolic ref to one of
    your branches would have the driver's reset move that branch; a HEAD moved to another
    commit is put back without a word, as an agent that commits moves it), no ``config.worktree``
    (per-worktree config) and no ``locked`` (a lock that keeps the worktree from being removed).

    Checked and put back before every driver git call in that worktree, never while its trial
    runs (the driver uses a worktree only between its trials); what was found waits in
    :attr:`pending` for the integrity check.
    """

    FILES = ("gitdir", "commondir", "HEAD", "config.worktree", "locked")

    def __init__(self, paths: GitPaths) -> None:
        self.paths = paths
        self.folder = self._identity()
        watched = {".git link": paths.work_tree / ".git"} | {f"git metadata {rel}": paths.git_dir / rel for rel in self.FILES}
        self.files = WatchedFiles(watched)
        self.pending: list[str] = []

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.lstat(self.paths.work_tree)
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if not Path(self.paths.work_tree).is_symlink() else None

    def check(self) -> None:
        """Put back what changed; refuse (FatalError: the run stops) a worktree folder that was
        replaced, which the driver's git must never write through."""
        if self._identity() != self.folder or self.folder is None:
            raise FatalError(f"the worktree {self.paths.work_tree} was replaced (moved away, or made a symlink) during a trial; the loop stops without touching it")
        head = "git metadata HEAD"
        detached = head in self.files.changed() and _object_id(self.files.paths[head])
        found = self.files.restore_changes()
        if detached:  # moved to a commit (an agent that committed): put back, and harmless
            found.remove(head)
        self.pending += [f"the worktree's {label}" for label in found]

    def moved_head(self) -> None:
        """The driver itself moved HEAD (a reset): that is what HEAD must hold now."""
        self.files.seal(["git metadata HEAD"])

    def take(self) -> list[str]:
        found, self.pending = sorted(set(self.pending)), []
        return found
