"""Unified diffs, applied: each hunk located in the current file and the full new text built,
all or nothing.

Agents hand in diffs (replay files, LLM answers); :func:`apply_unified_diff` turns one into
the full new text of every file it touches, locating each hunk near where its header says,
as patch(1) does, and refusing anything ambiguous or out of the repository. Reading the diff
is :mod:`.diff_parsing`'s; this module is about where its hunks go and what they make.

Language models write diffs loosely (shifted indentation, stray trailing blanks), so a
tolerant mode accepts those when the result is still unambiguous. Its line matcher,
:func:`find_matches`, is shared with the SEARCH/REPLACE blocks of ``answers.py``, which
imports it, with :func:`lines_of` and :class:`PatchError`, from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .diff_parsing import FilePatch, Hunk, PatchError, file_starts, parse_unified_diff
from .surface import normalize

__all__ = [
    "EXACT",
    "INDENTATION",
    "TRAILING_WHITESPACE",
    "FilePatch",
    "Hunk",
    "Match",
    "PatchError",
    "apply_unified_diff",
    "file_starts",
    "find_matches",
    "keep_final_newline",
    "line_ending",
    "lines_of",
    "parse_unified_diff",
    "reindent",
]

NEAR = 20  # lines: a tolerant hunk this close to its header's line number needs no unique match


def lines_of(text: str) -> list[str]:
    """Split at "\n" only, keeping it: other line breaks (form feeds, "\r") are content."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


# --- tolerant line matching, shared with the SEARCH/REPLACE blocks of answers.py -------------

EXACT, TRAILING_WHITESPACE, INDENTATION = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Match:
    """Where a block of pattern lines occurs: at line ``start``, found at ``level``.

    ``shift`` is (removed, added): a pattern line becomes the file's line by dropping the
    ``removed`` indentation prefix and putting ``added`` in front (one of the two is empty).
    """

    start: int
    level: int
    shift: tuple[str, str] = ("", "")


def line_ending(text: str) -> str:
    """The file's own line ending: CRLF when most of its lines end so."""
    return "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"


def keep_final_newline(original: str, new: str) -> str:
    """Give ``new`` the final-newline state of ``original`` (a file without one keeps none)."""
    if original and not original.endswith("\n") and new.endswith("\n"):
        return new[:-2] if new.endswith("\r\n") else new[:-1]
    return new


def _bare(line: str) -> str:
    return line.removesuffix("\n").removesuffix("\r")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _shift(file_line: str, pattern_line: str) -> tuple[str, str] | None:
    """The indentation change that turns ``pattern_line`` into ``file_line``, if that is all."""
    have, want = file_line.rstrip(), pattern_line.rstrip()
    have_indent, want_indent = _indent(have), _indent(want)
    if have[len(have_indent) :] != want[len(want_indent) :]:
        return None
    if have_indent.startswith(want_indent):
        return "", have_indent[len(want_indent) :]
    if want_indent.startswith(have_indent):
        return want_indent[len(have_indent) :], ""
    return None


def _shift_at(lines: list[str], pattern: list[str], start: int) -> tuple[str, str] | None:
    """The one indentation shift under which ``pattern`` matches at ``start``, if any."""
    shift: tuple[str, str] | None = None
    for k, want in enumerate(pattern):
        have = lines[start + k]
        if not want.strip() or not have.strip():
            if want.strip() or have.strip():
                return None
            continue
        this = _shift(have, want)
        if this is None or (shift is not None and this != shift):
            return None
        shift = this
    return shift or ("", "")


def find_matches(lines: list[str], pattern: list[str], floor: int = 0) -> list[Match]:
    """Every place at or after ``floor`` where ``pattern`` occurs in ``lines``, at the strictest
    level where it occurs at all: exactly (line endings aside), then ignoring trailing
    whitespace, then with every non-blank line's indentation shifted by the same prefix."""
    if not pattern or len(pattern) > len(lines):
        return []
    starts = range(floor, len(lines) - len(pattern) + 1)
    for level, key in ((EXACT, _bare), (TRAILING_WHITESPACE, str.rstrip)):
        have, want = [key(line) for line in lines], [key(line) for line in pattern]
        found = [Match(s, level) for s in starts if have[s] == want[0] and have[s : s + len(want)] == want]
        if found:
            return found
    return [Match(s, INDENTATION, shift) for s in starts if (shift := _shift_at(lines, pattern, s)) is not None]


def reindent(line: str, shift: tuple[str, str]) -> str:
    """Move a non-blank line by an indentation shift found by :func:`find_matches`."""
    removed, added = shift
    if not line.strip():
        return line
    if line.startswith(removed):
        return added + line[len(removed) :]
    keep = 0
    while keep < len(removed) and keep < len(line) and line[keep] == removed[keep]:
        keep += 1
    return added + line[keep:]


# --- locating and applying hunks ------------------------------------------------------------


def _same(a: str, b: str) -> bool:
    return a.rstrip("\r\n") == b.rstrip("\r\n")


def _find(lines: list[str], old: list[str], hint: int, floor: int) -> int | None:
    """Where ``old`` occurs at or after ``floor``, nearest to ``hint`` (as patch(1) does)."""
    for start in sorted(range(floor, len(lines) - len(old) + 1), key=lambda s: abs(s - hint)):
        if all(_same(lines[start + k], old[k]) for k in range(len(old))):
            return start
    return None


def _apply_hunks(original: str, hunks: list[Hunk], path: str) -> str:
    lines = lines_of(original)
    out: list[str] = []
    pos = 0
    for number, hunk in enumerate(hunks, 1):
        old = [h[1:] for h in hunk.lines if h[0] in " -"]
        # a pure insertion names the line it goes after; otherwise the first line it replaces
        hint = hunk.old_start if hunk.old_count == 0 else max(hunk.old_start - 1, 0)
        start = _find(lines, old, hint, pos)
        if start is None:
            raise PatchError(f"hunk {number} of {path} does not match the current file")
        out.extend(lines[pos:start])
        k = start
        for entry in hunk.lines:
            kind, content = entry[0], entry[1:]
            if kind == " ":
                out.append(lines[k])  # the file's own line, with its own line ending
                k += 1
            elif kind == "-":
                k += 1
            else:
                out.append(content + "\n")
        pos = start + len(old)
        if hunk.no_newline_new and out and out[-1].endswith("\n") and pos >= len(lines):
            out[-1] = out[-1][:-1]
    out.extend(lines[pos:])
    return "".join(out)


def _place(lines: list[str], old: list[str], hunk: Hunk, floor: int, what: str) -> Match:
    """Where a tolerant hunk goes: its best-level match nearest its header's line number."""
    # a pure insertion names the line it goes after; otherwise the first line it replaces
    hint = hunk.old_start if hunk.old_count == 0 else max(hunk.old_start - 1, 0)
    if not old:
        if not hunk.numbered:
            raise PatchError(f"{what} has neither context lines nor a line number")
        return Match(min(max(hint, floor), len(lines)), EXACT)
    found = find_matches(lines, old, floor)
    if not found:
        first = next((line.strip() for line in old if line.strip()), "")
        raise PatchError(f"{what} does not match the current file (its first line: {first[:80]!r})")
    best = min(found, key=lambda m: abs(m.start - hint))
    if len(found) > 1 and (not hunk.numbered or abs(best.start - hint) > NEAR):
        raise PatchError(f"{what} matches {len(found)} places, none near its line number; include more context")
    return best


def _apply_hunks_tolerant(original: str, hunks: list[Hunk], path: str) -> str:
    lines = lines_of(original)
    eol = line_ending(original)
    out: list[str] = []
    pos = 0
    for number, hunk in enumerate(hunks, 1):
        old = [h[1:] for h in hunk.lines if h[0] in " -"]
        match = _place(lines, old, hunk, pos, f"hunk {number} of {path}")
        out.extend(lines[pos : match.start])
        k = match.start
        for entry in hunk.lines:
            if entry[0] == "+":
                out.append(reindent(entry[1:].rstrip("\r"), match.shift) + eol)
            else:
                if entry[0] == " ":
                    out.append(lines[k])
                k += 1
        pos = match.start + len(old)
        if hunk.no_newline_new and out and out[-1].endswith("\n") and pos >= len(lines):
            out[-1] = out[-1].rstrip("\r\n")
    out.extend(lines[pos:])
    result = "".join(out)
    if any(h.no_newline_old or h.no_newline_new for h in hunks):
        return result
    return keep_final_newline(original, result)


def apply_unified_diff(text: str, read: Callable[[str], str | None], *, tolerant: bool = False) -> dict[str, str | None]:
    """Apply a unified diff to the files ``read`` returns; all or nothing.

    Returns the full new text of each file the diff touches (None for a deletion).
    ``tolerant`` recounts hunks whose header counts are off, matches lines by the ladder of
    :func:`find_matches`, and keeps the file's line endings and final-newline state.
    """
    result: dict[str, str | None] = {}
    for patch in parse_unified_diff(text, tolerant=tolerant):
        path = patch.new_path if patch.new_path is not None else patch.old_path
        if path is None:
            raise PatchError("a file patch names /dev/null on both sides")
        for named in (patch.old_path, patch.new_path):
            if named is not None and normalize(named) is None:
                raise PatchError(f"the path {named!r} leaves the repository")
        if patch.new_path is None:
            result[path] = None
            continue
        if patch.old_path is None:
            existing = read(path)
            if existing is not None and (existing or not tolerant):  # tolerant: an empty file may be filled
                raise PatchError(f"the patch creates {path}, which exists already")
            original = ""
        else:
            original_text = result.get(patch.old_path) if patch.old_path in result else read(patch.old_path)
            if original_text is None:
                raise PatchError(f"the patch changes {patch.old_path}, which does not exist")
            original = original_text
        apply = _apply_hunks_tolerant if tolerant else _apply_hunks
        result[path] = apply(original, patch.hunks, path)
    return result
