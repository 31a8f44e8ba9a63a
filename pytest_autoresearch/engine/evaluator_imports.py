"""What the fitness tests import from the mutable surface, read statically.

A glob such as ``*.py`` as ``autoresearch_mutable`` silently takes in the evaluator's own
modules too (its data, its metric), and then the agent may change what the score is measured
against. After the baseline, the run reads each fitness test's file and the conftest files
above it with :mod:`ast` (the driver never imports your code) and says, once per file, which
modules it imports that only a glob of the surface makes mutable. A file named literally in
``autoresearch_mutable`` is the user's own choice and is not mentioned.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..proposals.surface import Surface, normalize
from .carry import is_glob


def _imports(tree: ast.AST, package: Sequence[str]) -> list[tuple[str, ...]]:
    """Dotted names (as parts) a module imports, relative imports resolved against ``package``;
    ``from a import b`` gives both ``a`` and ``a.b`` (b may be a submodule)."""
    out: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = tuple(package[: len(package) - node.level + 1]) if node.level <= len(package) + 1 else ()
            else:
                base = ()
            head = base + tuple((node.module or "").split(".")) if node.module else base
            out.append(head)
            out += [head + (alias.name,) for alias in node.names if alias.name != "*"]
    return [name for name in out if name]


def _files_of(name: tuple[str, ...], roots: Iterable[Path], rootdir: Path) -> list[str]:
    """The rootdir-relative files a dotted name can be, under any of the import roots."""
    out = []
    for root in roots:
        for candidate in (root.joinpath(*name).with_suffix(".py"), root.joinpath(*name, "__init__.py")):
            try:
                rel = candidate.relative_to(rootdir).as_posix()
            except ValueError:
                continue
            if normalize(rel) is not None:
                out.append(rel)
    return out


def notes(rootdir: Path, fitness_files: Iterable[str], import_roots: Iterable[Path], surface: Surface, surface_files: Sequence[str]) -> list[str]:
    """One note per fitness test file that imports modules only a glob makes mutable."""
    literal = {normalize(g) for g in surface.globs if not is_glob(g)}
    mutable = set(surface_files)
    extra_roots = list(import_roots)
    out = []
    for rel in sorted(set(fitness_files)):
        path = rootdir / rel
        readers = [path] + [folder / "conftest.py" for folder in path.parents if folder.is_relative_to(rootdir) and (folder / "conftest.py").is_file()]
        roots = [rootdir, *extra_roots, *(folder for folder in path.parents if folder.is_relative_to(rootdir))]
        found: dict[str, None] = {}
        for reader in readers:
            try:
                tree = ast.parse(reader.read_text(encoding="utf-8"), filename=str(reader))
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            package = reader.parent.relative_to(rootdir).parts
            for name in _imports(tree, package):
                for file in _files_of(name, roots, rootdir):
                    if file in mutable and file not in literal and file != rel:
                        found[file] = None
        if found:
            globs = ", ".join(g for g in surface.globs if is_glob(g))
            out.append(
                f"{rel} imports {', '.join(sorted(found))}, which autoresearch_mutable ({globs}) makes mutable: the agent "
                "may change what the fitness test reads; if it is the evaluator's (its data, its metric), narrow the glob"
            )
    return out
