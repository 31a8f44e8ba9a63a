"""The mutation surface: which paths an agent may change, by the user's globs.

Paths here are POSIX strings relative to the pytest rootdir, the same base as
``autoresearch_mutable``. Matching is by pattern, not by listing, so a glob such as
``src/*.py`` also admits a new file the agent creates.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable, Sequence


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    """Translate a glob to a regex: ``*`` and ``?`` stay within one path segment, ``**`` spans
    any number of segments, ``[...]`` is a character class."""
    pattern = pattern.strip().lstrip("/")
    pattern = pattern.removeprefix("./")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^/" + body[1:]  # a negated class never matches a separator either
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def normalize(path: str) -> str | None:
    """Return a clean relative POSIX path, or None when the path leaves the tree or is absolute."""
    if not path or "\0" in path:
        return None
    path = path.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return None
    clean = posixpath.normpath(path)
    if clean in (".", "") or clean == ".." or clean.startswith("../"):
        return None
    return clean


class Surface:
    """The user's mutable globs."""

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = tuple(g for g in (g.strip() for g in globs) if g)

    def __bool__(self) -> bool:
        return bool(self.globs)

    def matches(self, path: str) -> bool:
        clean = normalize(path)
        return clean is not None and any(_compile(g).match(clean) for g in self.globs)

    def select(self, paths: Iterable[str]) -> list[str]:
        return sorted(p for p in paths if self.matches(p))

    def unmatched_globs(self, paths: Iterable[str]) -> list[str]:
        clean = [c for c in (normalize(p) for p in paths) if c is not None]
        return [g for g in self.globs if not any(_compile(g).match(p) for p in clean)]

    def __repr__(self) -> str:
        return f"Surface({list(self.globs)!r})"
