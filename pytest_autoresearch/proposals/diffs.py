"""Unified diffs: parse them (plain or git format) and apply them to text, all or nothing.

Agents hand in diffs (replay files, LLM answers); this module turns one into the full new
text of every file it touches, locating each hunk near where its header says, as patch(1)
does, and refusing anything ambiguous or out of the repository.

Language models write diffs loosely (wrong hunk counts, shifted indentation, stray trailing
blanks), so a tolerant mode accepts those when the result is still unambiguous. Its line
matcher, :func:`find_matches`, is shared with the SEARCH/REPLACE blocks of ``answers.py``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from .surface import normalize


class PatchError(ValueError):
    """A unified diff that cannot be parsed or does not apply."""


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


NEAR = 20  # lines: a tolerant hunk this close to its header's line number needs no unique match


@dataclasses.dataclass
class _Hunk:
    old_start: int
    old_count: int
    lines: list[str]  # each starts with ' ', '-' or '+'; "\n" excluded, "\r" kept
    no_newline_old: bool = False
    no_newline_new: bool = False
    numbered: bool = True  # False for a tolerant "@@ ... @@" header without line numbers


@dataclasses.dataclass
class _FilePatch:
    old_path: str | None
    new_path: str | None
    hunks: list[_Hunk]


def _strip_prefix(path: str) -> str | None:
    path = path.split("\t")[0].rstrip("\r").strip()
    if path == "/dev/null":
        return None
    if path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def lines_of(text: str) -> list[str]:
    """Split at "\n" only, keeping it: other line breaks (form feeds, "\r") are content."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _read_hunk(lines: list[str], i: int, header: re.Match[str]) -> tuple[_Hunk, int]:
    """Read one hunk's body, counting lines by its header so that a removed line starting
    with "--- " or "+++ " is content, not the next file's header."""
    old_count = int(header.group(2)) if header.group(2) is not None else 1
    new_count = int(header.group(4)) if header.group(4) is not None else 1
    hunk = _Hunk(int(header.group(1)), old_count, [])
    old_seen = new_seen = 0
    while i < len(lines) and (old_seen < old_count or new_seen < new_count):
        body = lines[i]
        if body.startswith("\\"):
            i += 1
            continue
        kind = body[:1] if body else " "
        if kind not in " -+":
            raise PatchError(f"hunk at line {header.group(1)} ends early: {body!r} is not a diff line")
        hunk.lines.append(kind + body[1:])
        old_seen += kind in " -"
        new_seen += kind in " +"
        i += 1
    if old_seen != old_count or new_seen != new_count:
        raise PatchError(f"hunk at line {header.group(1)} is shorter than its header says")
    while i < len(lines) and lines[i].startswith("\\"):  # "\ No newline at end of file"
        last = hunk.lines[-1][0] if hunk.lines else " "
        if last in " -":
            hunk.no_newline_old = True
        if last in " +":
            hunk.no_newline_new = True
        i += 1
    return hunk, i


def file_starts(lines: list[str], i: int) -> bool:
    """Whether line ``i`` begins a file's patch: ``diff --git`` or a ``---`` line followed by ``+++``."""
    if lines[i].startswith("diff --git "):
        return True
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _body_end(lines: list[str], i: int) -> int:
    """Where a hunk body starting at ``i`` ends, by its content rather than its header: at the
    next hunk or file header, or the first line that is no diff line. Empty lines at the end
    separate the diff from what follows; inside, they are blank context."""
    j = i
    while j < len(lines):
        line = lines[j]
        if line.startswith("@@") or file_starts(lines, j) or (line.strip() and line[0] not in " -+\\"):
            break
        j += 1
    while j > i and not lines[j - 1].strip() and not lines[j - 1].startswith(" "):
        j -= 1
    return j


def _hunk_from_body(body: list[str], old_start: int, numbered: bool) -> _Hunk:
    hunk = _Hunk(old_start, 0, [], numbered=numbered)
    for line in body:
        if line.startswith("\\"):
            last = hunk.lines[-1][0] if hunk.lines else " "
            hunk.no_newline_old |= last in " -"
            hunk.no_newline_new |= last in " +"
            continue
        entry = line if line[:1] in (" ", "-", "+") else " "  # a blank line that lost its space
        hunk.lines.append(entry)
        hunk.old_count += entry[0] in " -"
    return hunk


def _read_hunk_tolerant(lines: list[str], i: int, header: str) -> tuple[_Hunk, int]:
    """Read one hunk by its content; its header's counts decide only where they reach past a
    removed or added line that merely looks like a file header."""
    match = _HUNK_RE.match(header)
    end = _body_end(lines, i)
    if match:
        try:
            counted = _read_hunk(lines, i, match)[1]
        except PatchError:
            counted = end
        if counted > end and "".join(lines[end:counted]).strip():
            end = counted
    return _hunk_from_body(lines[i:end], int(match.group(1)) if match else 0, numbered=match is not None), end


def _file_header(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


# git's extended header lines, which sit between "diff --git" and "---"
_GIT_HEADER_PREFIXES = (
    "old mode ",
    "new mode ",
    "deleted file mode ",
    "new file mode ",
    "copy from ",
    "copy to ",
    "rename from ",
    "rename to ",
    "similarity index ",
    "dissimilarity index ",
    "index ",
    "Binary files ",
    "GIT binary patch",
)
_BINARY_FILES_RE = re.compile(r"^Binary files (.+) and (.+) differ\s*$")
SYMLINK_MODE = "120000"


def _git_header_end(lines: list[str], i: int) -> int:
    """Where the extended header of the ``diff --git`` line at ``i`` ends: at the first line
    that is not one of git's header lines (normally the ``---`` line)."""
    j = i + 1
    while j < len(lines) and lines[j].rstrip("\r").startswith(_GIT_HEADER_PREFIXES):
        j += 1
    return j


def _git_header_path(lines: list[str], i: int, end: int) -> str:
    """The file a git header describes, for messages: its ``---``/``+++`` names when they
    follow, else the ``b/`` side of the ``diff --git`` line."""
    if end < len(lines) and _file_header(lines, end):
        named = _strip_prefix(lines[end + 1][4:]) or _strip_prefix(lines[end][4:])
        if named:
            return named
    rest = lines[i][len("diff --git ") :].rstrip("\r").strip()
    half = (len(rest) - 1) // 2
    if rest[:half] and rest[half] == " " and rest[:half][2:] == rest[half + 1 :][2:]:
        return _strip_prefix(rest[half + 1 :]) or rest  # "a/P b/P": the same path twice
    return _strip_prefix(rest.split(" b/", 1)[-1] if " b/" in rest else rest) or rest


def _refuse_unsupported(line: str, path: str | None) -> None:
    """Refuse a binary patch wherever its marker stands: the worktree receives text only."""
    bare = line.rstrip("\r")
    if bare.startswith("GIT binary patch"):
        raise PatchError(f"binary patches are not accepted ({path or 'a file'} has a GIT binary patch)")
    binary = _BINARY_FILES_RE.match(bare)
    if binary:
        named = path or _strip_prefix(binary.group(2)) or _strip_prefix(binary.group(1))
        raise PatchError(f"binary patches are not accepted (binary files differ: {named})")


def _refuse_git_header(header: list[str], path: str) -> None:
    """Refuse what a git header asks beyond text: a symlink, a binary patch, a mode change.

    Proposals carry file text only, so applying such a patch would silently drop part of it
    (the mode, the link) or write a link's target as a regular file.
    """
    for line in header:
        bare = line.rstrip("\r")
        modes = ("old mode ", "new mode ", "new file mode ", "deleted file mode ", "index ")
        if bare.startswith(modes) and bare.split()[-1] == SYMLINK_MODE:
            what = "creates a symlink" if bare.startswith("new") else "touches a symlink"
            raise PatchError(f"the patch {what} at {path}; symlinks are not accepted, only regular text files")
    for line in header:
        _refuse_unsupported(line, path)
    moves = [line.rstrip() for line in header if line.startswith(("rename from ", "copy from "))]
    if moves:
        raise PatchError(
            f"the patch renames or copies a file ({moves[0]}); give the new file's full text and, if "
            "deletions are allowed, delete the old one instead"
        )
    modes = [line.rstrip() for line in header if line.startswith(("old mode ", "new mode "))]
    if modes:
        raise PatchError(
            f"the patch changes the mode of {path} ({', '.join(modes)}); mode changes are not accepted, "
            "drop the 'old mode'/'new mode' lines"
        )


def parse_unified_diff(text: str, *, tolerant: bool = False) -> list[_FilePatch]:
    """Parse a unified diff (plain or git format) into per-file hunks.

    Git's extended headers are checked against the file they precede: mode changes,
    symlinks and binary patches raise :class:`PatchError` rather than being skipped, so an
    agent learns why, instead of seeing half of its change applied.
    """
    patches: list[_FilePatch] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("diff --git "):
            end = _git_header_end(lines, i)
            _refuse_git_header(lines[i + 1 : end], _git_header_path(lines, i, end))
            i = end
            continue
        _refuse_unsupported(lines[i], None)
        if _file_header(lines, i):
            current = _FilePatch(_strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:]), [])
            patches.append(current)
            i += 2
            while i < len(lines):
                if tolerant and lines[i] in ("", "\r"):
                    i += 1
                    continue
                if not lines[i].startswith("@@"):
                    break
                if tolerant:
                    hunk, i = _read_hunk_tolerant(lines, i + 1, lines[i])
                else:
                    match = _HUNK_RE.match(lines[i])
                    if not match:
                        raise PatchError(f"malformed hunk header: {lines[i]!r}")
                    hunk, i = _read_hunk(lines, i + 1, match)
                    if i < len(lines) and lines[i][:1] in (" ", "+", "-") and not _file_header(lines, i):
                        raise PatchError(f"hunk at line {match.group(1)} is longer than its header says")
                current.hunks.append(hunk)
            continue
        i += 1
    if not patches:
        raise PatchError("no file headers (---/+++) found in the patch")
    return patches


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


def _same(a: str, b: str) -> bool:
    return a.rstrip("\r\n") == b.rstrip("\r\n")


def _find(lines: list[str], old: list[str], hint: int, floor: int) -> int | None:
    """Where ``old`` occurs at or after ``floor``, nearest to ``hint`` (as patch(1) does)."""
    for start in sorted(range(floor, len(lines) - len(old) + 1), key=lambda s: abs(s - hint)):
        if all(_same(lines[start + k], old[k]) for k in range(len(old))):
            return start
    return None


def _apply_hunks(original: str, hunks: list[_Hunk], path: str) -> str:
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


def _place(lines: list[str], old: list[str], hunk: _Hunk, floor: int, what: str) -> Match:
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


def _apply_hunks_tolerant(original: str, hunks: list[_Hunk], path: str) -> str:
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
