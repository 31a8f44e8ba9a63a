"""Carried paths: the untracked files of your checkout a trial needs, linked into each worktree.

A worktree holds what git tracks, nothing else, so a data folder git ignores, a ``_version.py``
that setuptools-scm wrote or a compiled ``.mo`` catalogue is missing there. ``autoresearch_carry``
names them: paths, folders or globs (``data``, ``data/*.bin``, ``**/*.mo``), relative to the
rootdir. A folder that mixes tracked and untracked files carries only its untracked ones (git
checks the tracked ones out already), and so does a glob. A carried path is linked to your
checkout, so it may never be a tracked or mutable file, nor a link to one: a trial could change
what every later trial and your own checkout read.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..config_file import ConfigFile
from ..errors import SetupError
from ..names import RUN_DIR_NAME
from ..proposals.surface import Surface, normalize
from ..store.gitstate import Repository

_GLOB = set("*?[")
_SHOWN = 5


@dataclasses.dataclass
class Carried:
    """What ``autoresearch_carry`` resolved to: repository-relative paths, and notes for the user."""

    paths: tuple[str, ...]
    notes: list[str]


def is_glob(entry: str) -> bool:
    return any(c in _GLOB for c in entry)


def _untracked(repo: Repository, prefix: str, under: str = "", collapse: bool = False) -> list[str]:
    """Untracked files (ignored ones included) under ``under`` (rootdir-relative), rootdir-relative;
    with ``collapse``, a folder holding nothing tracked is one entry (ending in ``/``)."""
    spec = prefix + under if (prefix or under) else "."
    args = ["--others", "-z", *(["--directory"] if collapse else []), "--", spec, f":(exclude){prefix}{RUN_DIR_NAME}"]
    out = repo.git.ls_files(*args)
    return [p[len(prefix):] for p in out.split("\0") if p and p.startswith(prefix)]


def resolve(repo: Repository, rootdir: Path, prefix: str, entries: Sequence[str], tracked: Iterable[str], surface: Surface) -> Carried:
    """The paths to link for the user's ``autoresearch_carry`` entries. Raises SetupError for one
    that does not exist, is committed, is mutable, or links to a tracked or mutable file."""
    tracked_set = set(tracked)
    tracked_dirs = {p.rsplit("/", i)[0] for p in tracked_set for i in range(1, p.count("/") + 1)}
    chosen: dict[str, None] = {}
    notes: list[str] = []
    listing: list[str] | None = None
    for entry in entries:
        rel = normalize(entry.strip().rstrip("/"))
        if rel is None:
            raise SetupError(f"autoresearch_carry path {entry!r} is not a path inside the rootdir {rootdir}")
        if is_glob(rel):
            if listing is None:
                listing = _untracked(repo, prefix)
            pattern = Surface([rel])
            found = [p for p in listing if p not in tracked_set and not _aside(p, rel) and any(pattern.matches(a) for a in _self_and_parents(p))]
            if not found:
                notes.append(f"autoresearch_carry glob {entry!r} matches no untracked file under {rootdir}")
            chosen.update(dict.fromkeys(found))
            continue
        source = rootdir / rel
        if not os.path.lexists(source):
            raise SetupError(f"autoresearch_carry path {entry!r} does not exist under {rootdir}")
        if rel in tracked_set:
            raise SetupError(
                f"autoresearch_carry path {entry!r} is committed: git checks it out in every worktree already; "
                "carry only untracked files (a data folder git ignores, a generated _version.py)"
            )
        if rel in tracked_dirs and source.is_dir() and not source.is_symlink():
            inside = [p.rstrip("/") for p in _untracked(repo, prefix, rel, collapse=True)]
            if not inside:
                notes.append(f"autoresearch_carry folder {entry!r} holds no untracked file: nothing to carry")
            chosen.update(dict.fromkeys(inside))
        else:
            chosen[rel] = None
    chosen = {rel: None for rel in chosen if not any(up in chosen for up in _self_and_parents(rel)[:-1])}  # inside another: linked with it
    for rel in chosen:
        _check(repo, rootdir, prefix, rel, tracked_set, tracked_dirs, surface)
    paths = tuple(prefix + rel for rel in chosen)
    if paths:
        shown = ", ".join(rel + ("/" if (rootdir / rel).is_dir() else "") for rel in list(chosen)[:_SHOWN])
        more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
        notes.append(f"carried into each worktree (linked to your checkout): {shown}{more}")
    return Carried(paths, notes)


def _aside(path: str, glob: str) -> bool:
    """Whether a glob's match lies in an environment, cache or build folder the glob does not
    name (``**/*.so`` means the project's extensions, not every one in ``.venv``)."""
    named = set(glob.split("/"))
    return any(part in _SKIPPED and part not in named for part in path.split("/")[:-1])


def _self_and_parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _check(repo: Repository, rootdir: Path, prefix: str, rel: str, tracked: set[str], tracked_dirs: set[str], surface: Surface) -> None:
    """Refuse a carried path that is mutable, or is (or holds) a link to a tracked or mutable file."""
    if surface.matches(rel):
        raise SetupError(
            f"autoresearch_carry path {rel!r} matches autoresearch_mutable: a carried file is linked to your checkout, "
            "so a trial's change would reach every later trial and your checkout; narrow autoresearch_mutable, "
            "or let autoresearch_setup generate the file in each worktree"
        )
    source = rootdir / rel
    links = [source] if source.is_symlink() else []
    if source.is_dir() and not source.is_symlink():
        for folder, dirs, files in os.walk(source):
            for name in [*dirs, *files]:
                full = Path(folder) / name
                if full.is_symlink():
                    links.append(full)
                elif surface.matches(full.relative_to(rootdir).as_posix()):
                    raise SetupError(f"autoresearch_carry folder {rel!r} holds {full.relative_to(rootdir).as_posix()}, which matches autoresearch_mutable")
    for link in links:
        target = Path(os.path.realpath(link))
        if not target.is_relative_to(repo.root):
            continue
        inside = target.relative_to(repo.root).as_posix()
        if not inside.startswith(prefix) and prefix:
            continue
        in_root = inside[len(prefix):]
        if in_root in tracked or in_root in tracked_dirs or surface.matches(in_root):
            what = "mutable" if surface.matches(in_root) else "tracked"
            raise SetupError(
                f"autoresearch_carry path {link.relative_to(rootdir).as_posix()!r} is a link to the {what} {in_root}: "
                "carried paths are linked to your checkout, so only untracked files may be carried"
            )


def link(worktree: Path, repo_root: Path, paths: Iterable[str]) -> None:
    """Link each carried path (repository-relative) of ``repo_root`` into ``worktree``."""
    for rel in paths:
        target = worktree / rel
        if os.path.lexists(target):
            raise SetupError(f"autoresearch_carry path {rel!r} is in the worktree already: it is committed at the run's start commit")
        source = Path(os.path.realpath(repo_root / rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source, target_is_directory=source.is_dir())


# -- the hint when a baseline fails for want of a file git ignores --------------------------------

_MODULE = re.compile(r"No module named '([\w.]+)'|cannot import name '(\w+)' from '([\w.]+)'")
_PATHLIKE = re.compile(r"[\w.+-]*[\w+-](?:/[\w.+-]+)*\.(?:py|so|pyd|mo|dll|dylib|json|txt|csv|bin|npy|dat|pkl|cfg|ini|toml|yaml|yml)\b")
_NO_CATALOGUE = "No translation file found"
_SKIPPED = {".venv", "venv", "env", "build", "dist", "__pycache__", ".tox", ".nox", "node_modules", "site-packages", ".eggs", ".mypy_cache", ".pytest_cache", RUN_DIR_NAME}
_BUILT = (".so", ".pyd", ".dll", ".dylib", ".mo")


def _candidates(repo: Repository, prefix: str) -> list[str]:
    """Untracked files of the checkout a test could have wanted (not environments, caches, builds)."""
    out = []
    for rel in _untracked(repo, prefix):
        parts = rel.split("/")
        if rel.endswith((".pyc", ".pyo")) or any(p in _SKIPPED or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        out.append(rel)
    return out


def _module_files(module: str) -> list[tuple[str, str]]:
    """(folder, file-name test) pairs a dotted module name could be: ``pkg/_version.py``, ``pkg/_ext.*.so``."""
    *package, leaf = module.split(".")
    folder = "/".join(package)
    return [(folder, leaf + ".py"), (folder + ("/" if folder else "") + leaf, "__init__.py"), (folder, leaf + ".*")]


def _named(files: list[str], text: str) -> list[str]:
    """The files among ``files`` (rootdir-relative) that the failure text names, by path or module."""
    by_name: dict[str, list[str]] = {}
    for rel in files:
        by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    named: dict[str, None] = {}
    for token in _PATHLIKE.findall(text):
        token = token.lstrip("./")
        for rel in by_name.get(token.rsplit("/", 1)[-1], ()):
            if token.endswith(rel) or rel.endswith("/" + token) or rel == token:
                named[rel] = None
    modules = [m[0] or f"{m[2]}.{m[1]}" for m in _MODULE.findall(text)]
    modules += [m[2] for m in _MODULE.findall(text) if m[2]]
    for module in modules:
        for folder, pattern in _module_files(module):
            for rel in files:
                head, _, name = rel.rpartition("/")
                exact = pattern.endswith(".*") is False and name == pattern
                built = pattern.endswith(".*") and name.startswith(pattern[:-1]) and name.endswith(_BUILT)
                if (exact or built) and (head == folder or head.endswith("/" + folder) or (not folder and "/" not in head)):
                    named[rel] = None
    if _NO_CATALOGUE in text:
        named.update(dict.fromkeys(rel for rel in files if rel.endswith(".mo")))
    return list(named)


def missing_file_hint(repo: Repository, prefix: str, carried: Sequence[str], entries: Sequence[str], surface: Surface, config: ConfigFile, text: str) -> str:
    """What to add when a failing baseline names a file that git ignores in your checkout (and
    that is there): "" when it names none."""
    have = {c[len(prefix):] for c in carried}
    named = [rel for rel in _named(_candidates(repo, prefix), text) if rel not in have and not any(rel.startswith(c + "/") for c in have)]
    if not named:
        return ""
    whole = [d for d in _untracked(repo, prefix, collapse=True) if d.endswith("/")]
    named = list(dict.fromkeys(next((d.rstrip("/") for d in whole if rel.startswith(d)), rel) for rel in named))  # a folder git ignores whole: carry the folder
    shown = ", ".join(named[:_SHOWN]) + (f" and {len(named) - _SHOWN} more" if len(named) > _SHOWN else "")
    verb = "is" if len(named) == 1 else "are"
    lines = [f"hint: the baseline needs {shown}, which {verb} git-ignored in your checkout, so the run's worktrees lack {'it' if len(named) == 1 else 'them'}."]
    mutable = [rel for rel in named if surface.matches(rel)]
    built = [rel for rel in named if rel.endswith(_BUILT)]
    carryable = [rel for rel in named if rel not in mutable]
    if carryable:
        mo = [rel for rel in carryable if rel.endswith(".mo")]
        new = (["**/*.mo"] if len(mo) > 2 else mo) + [rel for rel in carryable if not rel.endswith(".mo")]
        lines.append("Carry it into each worktree: add " + config.setting("autoresearch_carry", [*entries, *(n for n in new if n not in entries)]))
    if mutable:
        lines.append(
            f"{', '.join(mutable)} matches autoresearch_mutable, so it cannot be carried: narrow autoresearch_mutable "
            "to the committed files, or generate it in each worktree with autoresearch_setup"
        )
    if built:
        example = "python setup.py build_ext --inplace" if any(not rel.endswith(".mo") for rel in built) else "make"
        lines.append("or build it in each worktree instead: " + config.setting("autoresearch_setup", example))
    return "\n".join(lines)
