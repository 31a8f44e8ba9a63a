"""Git as the loop's state machine, through GitPython's command wrapper.

The user's checkout (HEAD, index, working files) is never written: trials run in linked
worktrees on a detached HEAD (one per worker slot), the run's branch ``autoresearch/<tag>``
only ever moves by ``update-ref`` to a kept commit, and every trial's commit stays reachable
under ``refs/autoresearch/<tag>/trials/NNN`` (every ref name is made in
:mod:`pytest_autoresearch.names`; the engine's recorder moves them). Commits are built with
``commit-tree`` from the exact tree that was evaluated, so a test that scribbles on files
cannot change what is recorded, and no user hook, signing setting or missing identity can
interfere.

Only ``git`` subprocesses are used (no long-lived object database handles), as GitPython
advises for long-running processes. Each names its git dir, common dir and work tree, resolved
once at set-up (:class:`~.gitguard.GitPaths`), and runs with the keys that run a command
switched off (:data:`~.gitguard.SAFE_CONFIG`): a trial can rewrite a worktree's ``.git`` link
or its metadata, never redirect the driver's git with it. Before each call the files git would
read that a trial could write are checked and put back (:class:`~.gitguard.RepoGuard`, and a
worktree's :class:`~.gitguard.WorktreeLinks`), with no git at all.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import git

from .gitguard import SAFE_ENV, GitPaths, RepoGuard, WorktreeLinks

IDENTITY = {
    "GIT_AUTHOR_NAME": "pytest-autoresearch",
    "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
    "GIT_COMMITTER_NAME": "pytest-autoresearch",
    "GIT_COMMITTER_EMAIL": "autoresearch@localhost",
}
ZERO = "0" * 40
#: Every git command of the loop runs without the user's hooks (a reference-transaction or
#: post-checkout hook could veto or slow a trial, or run code in the driver's name), without
#: the file-system monitor, pager, editors and signing (:data:`~.gitguard.SAFE_CONFIG`).
NO_HOOKS = SAFE_ENV


class GitStateError(Exception):
    """The repository is not in a state the loop can start from."""


def _git(paths: GitPaths) -> git.Git:
    cmd = git.Git(str(paths.work_tree))
    cmd.update_environment(**IDENTITY, **SAFE_ENV, **paths.env())
    return cmd


class Repository:
    """The user's repository, read-only apart from refs and ``.git/info/exclude``."""

    def __init__(self, path: Path) -> None:
        try:
            repo = git.Repo(str(path), search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise GitStateError(
                f"{path} is not inside a git repository: the loop keeps its state in git. "
                "Run `git init` and commit your project first."
            ) from None
        try:
            if repo.bare or repo.working_tree_dir is None:
                raise GitStateError(f"{path} is in a bare git repository; run from a checkout")
            self.root = Path(repo.working_tree_dir).resolve()
        finally:
            repo.close()
        # found once, here, before any trial ran: from now on every call names them
        found = git.Git(str(self.root))
        git_dir = found.rev_parse("--absolute-git-dir")
        common = found.rev_parse("--path-format=absolute", "--git-common-dir")
        self.paths = GitPaths(Path(git_dir), Path(common), self.root)
        self._git = _git(self.paths)
        # not even the stat refresh `git status` would write into the user's index
        self._git.update_environment(GIT_OPTIONAL_LOCKS="0")
        self.guard: RepoGuard | None = None  # set once the run's worktrees exist

    @property
    def git(self) -> git.Git:
        """The repository's git, after the guard put back what a trial changed of your config."""
        self.check()
        return self._git

    def check(self) -> None:
        if self.guard is not None:
            self.guard.check()

    def env(self) -> dict[str, str]:
        """The environment of a git command of the driver in this repository."""
        return {**os.environ, **self._git.environment()}

    def head(self) -> str:
        try:
            return self.git.rev_parse("--verify", "-q", "HEAD^{commit}")
        except git.GitCommandError:
            raise GitStateError(f"the repository at {self.root} has no commits yet; commit your project first") from None

    def current_branch(self) -> str | None:
        try:
            return self.git.symbolic_ref("-q", "--short", "HEAD") or None
        except git.GitCommandError:
            return None

    def tracked_files(self, commit: str) -> list[str]:
        out = self.git.ls_tree("-r", "-z", "--name-only", commit)
        return [p for p in out.split("\0") if p]

    def blobs(self, commit: str) -> dict[str, str]:
        """Every file of ``commit`` (repository-relative path -> blob id); submodules left out."""
        out = {}
        for entry in self.git.ls_tree("-r", "-z", "--full-tree", commit).split("\0"):
            if not entry:
                continue
            info, _, path = entry.partition("\t")
            mode, kind, sha = info.split()
            if kind == "blob":
                out[path] = sha
        return out

    def show(self, commit: str, path: str) -> str | None:
        """The text of ``path`` in ``commit``; None when it has no such file (or it is not text)."""
        try:
            return self.git.show(f"{commit}:{path}", strip_newline_in_stdout=False)
        except (git.GitCommandError, UnicodeDecodeError):
            return None

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self.git.merge_base("--is-ancestor", older, newer)
            return True
        except git.GitCommandError:
            return False

    def rev(self, ref: str) -> str | None:
        try:
            return self.git.rev_parse("--verify", "-q", ref + "^{commit}")
        except git.GitCommandError:
            return None

    def dirty_files(self) -> list[str]:
        """Tracked files with staged or unstaged changes."""
        entries = iter(self.git.status("--porcelain=v1", "-z", "--untracked-files=no").split("\0"))
        paths = []
        for entry in entries:
            if len(entry) > 3:
                paths.append(entry[3:])
                if entry[0] in "RC":  # a rename or copy: its source path follows
                    next(entries, None)
        return paths

    def ref_exists(self, ref: str) -> bool:
        return self.rev(ref) is not None

    def exclude(self, pattern: str) -> bool:
        """Add ``pattern`` to ``.git/info/exclude`` unless present; True when added."""
        path = self._exclude_path()
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if pattern in text.splitlines():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(("\n" if text and not text.endswith("\n") else "") + pattern + "\n")
        self._wrote(".git/info/exclude")
        return True

    def unexclude(self, pattern: str) -> None:
        path = self._exclude_path()
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            path.write_text("".join(line for line in lines if line.rstrip("\n") != pattern), encoding="utf-8")
            self._wrote(".git/info/exclude")

    def _wrote(self, label: str) -> None:
        """The driver changed a file the guard watches: that is what it must hold now."""
        if self.guard is not None:
            self.guard.files.seal([label])

    def _exclude_path(self) -> Path:
        return self.paths.common_dir / "info" / "exclude"

    def refs(self, *patterns: str) -> dict[str, str]:
        """The refs matching ``patterns`` (for-each-ref's: a ref or a folder of refs) and their
        object ids, in one git call; a symbolic ref's value is ``symref:TARGET``."""
        out = self.git.for_each_ref("--format=%(refname)%00%(objectname)%00%(symref)", *patterns)
        found = {}
        for line in out.splitlines():
            ref, obj, target = line.split("\0")
            found[ref] = f"symref:{target}" if target else obj
        return found

    def update_refs(self, *updates: tuple[str, str, str | None]) -> None:
        """Atomically set refs: (ref, new, expected old or None for "don't care"; ZERO = must not
        exist; a new value of ZERO deletes). A ref is set itself, never through a symbolic ref
        a trial made of it (which could point at one of your branches)."""
        lines = [f"update {ref} {new}" + (f" {old}" if old is not None else "") for ref, new, old in updates]
        self.check()
        proc = subprocess.run(
            ["git", "update-ref", "--no-deref", "--stdin"],  # no reference-transaction hook (SAFE_CONFIG)
            cwd=self.root,
            env=self.env(),
            input="\n".join(lines) + "\n",
            text=True,
            capture_output=True,
        )
        if proc.returncode != 0:
            raise GitStateError(f"git update-ref failed: {proc.stderr.strip()}")

    def add_worktree(self, path: Path, commit: str) -> Worktree:
        self.git.worktree("add", "--detach", "--quiet", str(path), commit)
        # read once, right after git wrote it and before any trial ran there
        link = (path / ".git").read_text(encoding="utf-8").strip()
        meta = Path(link.removeprefix("gitdir:").strip())
        meta = (meta if meta.is_absolute() else path / meta).resolve()
        if meta.parent != (self.paths.common_dir / "worktrees").resolve():
            raise GitStateError(f"git put the metadata of the worktree {path} at {meta}, not under {self.paths.common_dir}/worktrees")
        return Worktree(path, GitPaths(meta, self.paths.common_dir, path.resolve()), self)

    def remove_worktree(self, path: Path) -> None:
        if path.is_symlink():  # a worktree a trial replaced: never followed
            path.unlink()
        try:
            self.git.worktree("remove", "--force", str(path))
        except git.GitCommandError:
            pass
        self.prune_worktrees()

    def prune_worktrees(self) -> None:
        """Forget worktrees whose folders are gone."""
        self.git.worktree("prune")


class Worktree:
    """One of the run's linked worktrees (a slot), where candidates are written and evaluated."""

    def __init__(self, path: Path, paths: GitPaths, repo: Repository | None = None) -> None:
        self.path = path
        self.paths = paths
        self.repo = repo
        self._git = _git(paths)
        self.links = WorktreeLinks(paths)

    @property
    def git(self) -> git.Git:
        """The worktree's git, after the checks of what a trial could have changed."""
        if self.repo is not None:
            self.repo.check()
        self.links.check()
        return self._git

    def git_env(self) -> dict[str, str]:
        """What a git command needs to work on this worktree as the driver does (an agent's)."""
        return {**SAFE_ENV, **self.paths.env()}

    def restore_links(self) -> list[str]:
        """What was changed of this worktree's link and metadata since the driver last used it
        (each put back now, with no git), including what its own git calls found meanwhile."""
        self.links.check()
        return self.links.take()

    def unsafe(self, repo_path: str) -> str | None:
        """Why writing ``repo_path`` would leave the worktree (through a symlink), if it would."""
        current = self.path
        parts = repo_path.split("/")
        for i, part in enumerate(parts):
            current = current / part
            if current.is_symlink():
                what = "is a symlink" if i == len(parts) - 1 else f"goes through the symlink {'/'.join(parts[: i + 1])}"
                return f"{repo_path} {what}; symlinks are never written through"
        return None

    def write(self, changes: dict[str, str | None], prefix: str) -> None:
        """Write each changed file (``prefix`` maps rootdir-relative paths into the repository)."""
        for rel, text in changes.items():
            if self.unsafe(prefix + rel):
                raise GitStateError(f"refusing to write {prefix + rel} through a symlink")
            target = self.path / prefix / rel
            if text is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "w", encoding="utf-8", newline="") as f:
                f.write(text)

    def stage(self, repo_paths: list[str]) -> str:
        """Stage the given repository-relative paths and return the tree of the index."""
        self.git.add("-A", "--", *repo_paths)
        return self.git.write_tree()

    def commit_tree(self, tree: str, parent: str, message: str) -> str:
        return self.git.commit_tree("--no-gpg-sign", tree, "-p", parent, "-m", message)

    def reset(self, commit: str, keep: tuple[str, ...] = ()) -> None:
        """Make the worktree exactly ``commit``: tracked files restored, untracked and ignored
        files a trial left removed, except the carried paths ``keep`` (repository-relative).

        Index flags that hide changes from git (assume-unchanged, skip-worktree), which a
        trial could set, are cleared first so that the reset really restores every file.
        """
        entries = [e for e in self.git.ls_files("-v", "-z").split("\0") if e]
        hidden = [e[2:] for e in entries if e[0] == "S"]
        assumed = [e[2:] for e in entries if e[0].islower()]
        if hidden:  # one flag per call: git applies only the last of several to the paths
            self.git.update_index("--no-skip-worktree", "--", *hidden)
        if assumed:
            self.git.update_index("--no-assume-unchanged", "--", *assumed)
        try:
            self.git.reset("--hard", "-q", commit)
        finally:
            self.links.moved_head()
        self.git.clean("-ffdqx", *[arg for path in keep for arg in ("-e", "/" + path)])

    def hide(self, repo_paths: list[str]) -> None:
        """Take files out of the worktree without git reporting them deleted (an agent working
        in the worktree must not see them; :meth:`reset` brings them back)."""
        present = [p for p in repo_paths if (self.path / p).exists()]
        if present:
            self.git.update_index("--skip-worktree", "--", *present)
            for p in present:
                (self.path / p).unlink()

    def restore(self, commit: str, repo_paths: list[str]) -> None:
        """Check these files out of ``commit`` again, whatever the index says."""
        self.git.checkout("-f", commit, "--", *repo_paths)

    def changed_tracked(self) -> list[str]:
        """Tracked files that differ from HEAD now (modified, deleted, type-changed)."""
        out = self.git.status("--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", "--ignore-submodules=all")
        return sorted(entry[3:] for entry in out.split("\0") if len(entry) > 3)

    def read(self, repo_path: str) -> str | None:
        target = self.path / repo_path
        try:
            return target.read_text(encoding="utf-8") if target.is_file() and not target.is_symlink() else None
        except (UnicodeDecodeError, OSError):
            return None


def merge_texts(ours: str, base: str, theirs: str) -> str | None:
    """Three-way merge of one file's texts; None on a conflict.

    When no side added or removed lines (the usual case for changed settings), each line is
    merged on its own, so changes to neighbouring lines combine; otherwise ``git merge-file``
    decides, which wants an unchanged line between two changes.
    """
    lines = [text.splitlines(keepends=True) for text in (ours, base, theirs)]
    if len({len(side) for side in lines}) == 1:
        merged = []
        for o, b, t in zip(*lines):
            if o != b and t != b and o != t:
                return None
            merged.append(t if o == b else o)
        return "".join(merged)
    with tempfile.TemporaryDirectory(prefix="autoresearch-merge-") as folder:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(folder) / name
            path.write_text(text, encoding="utf-8", newline="")
            paths.append(str(path))
        proc = subprocess.run(["git", "merge-file", "-p", "-q", *paths], cwd=folder, env={**os.environ, **SAFE_ENV}, capture_output=True)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8")


def trailers(pairs: dict[str, object]) -> str:
    return "\n".join(f"Autoresearch-{key}: {value}" for key, value in pairs.items())
