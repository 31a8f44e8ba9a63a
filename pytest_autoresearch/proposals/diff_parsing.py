"""Unified diffs, read: from the text an agent handed in to per-file lists of hunks.

Parsing is kept apart from applying (:mod:`.diffs`) because it is where the format's traps
are: hunk bodies counted by their headers (a removed line may look like a "--- " file
header), git's extended headers, and the loose diffs language models write, whose hunk
counts are read from their content instead. It also refuses what a text-only proposal cannot
carry (binary patches, symlinks, renames, mode changes), so an agent learns why rather than
seeing half of its change applied. A leaf: it imports nothing of the package.
"""

from __future__ import annotations

import dataclasses
import re


class PatchError(ValueError):
    """A unified diff that cannot be parsed or does not apply."""


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclasses.dataclass
class Hunk:
    """One ``@@`` block: where it says it starts in the old file, and its lines."""

    old_start: int
    old_count: int
    lines: list[str]  # each starts with ' ', '-' or '+'; "\n" excluded, "\r" kept
    no_newline_old: bool = False
    no_newline_new: bool = False
    numbered: bool = True  # False for a tolerant "@@ ... @@" header without line numbers


@dataclasses.dataclass
class FilePatch:
    """The hunks of one file; a path is None on the ``/dev/null`` side (a creation or deletion)."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk]


def _strip_prefix(path: str) -> str | None:
    path = path.split("\t")[0].rstrip("\r").strip()
    if path == "/dev/null":
        return None
    if path.startswith('"') and path.endswith('"'):
        path = path[1:-1]
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def _read_hunk(lines: list[str], i: int, header: re.Match[str]) -> tuple[Hunk, int]:
    """Read one hunk's body, counting lines by its header so that a removed line starting
    with "--- " or "+++ " is content, not the next file's header."""
    old_count = int(header.group(2)) if header.group(2) is not None else 1
    new_count = int(header.group(4)) if header.group(4) is not None else 1
    hunk = Hunk(int(header.group(1)), old_count, [])
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


def _hunk_from_body(body: list[str], old_start: int, numbered: bool) -> Hunk:
    hunk = Hunk(old_start, 0, [], numbered=numbered)
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


def _read_hunk_tolerant(lines: list[str], i: int, header: str) -> tuple[Hunk, int]:
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


def parse_unified_diff(text: str, *, tolerant: bool = False) -> list[FilePatch]:
    """Parse a unified diff (plain or git format) into per-file hunks.

    Git's extended headers are checked against the file they precede: mode changes,
    symlinks and binary patches raise :class:`PatchError` rather than being skipped, so an
    agent learns why, instead of seeing half of its change applied.
    """
    patches: list[FilePatch] = []
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
            current = FilePatch(_strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:]), [])
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
