"""Proposals: what an agent wants to change, how a unified diff becomes one, and whether it may apply.

Whatever form an agent answers in (whole files, a unified diff, later SEARCH/REPLACE blocks
or an external tool's edits), it ends up as a :class:`Proposal` holding the full new text of
each file it changes. The driver checks that against the surface before anything touches the
worktree, so one check guards every agent.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

from .surface import Surface, normalize


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One trial's change.

    ``files`` maps rootdir-relative POSIX paths to their full new text (None deletes the
    file). ``error`` is set when the agent answered but produced nothing applicable: the
    trial is then logged ``invalid`` with that reason, never run.
    """

    description: str
    files: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    error: str | None = None


class PatchError(ValueError):
    """A unified diff that cannot be parsed or does not apply."""


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so a description or reason fits one TSV cell and one terminal line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(proposal: Proposal, surface: Surface, current: Callable[[str], str | None]) -> tuple[dict[str, str | None], str | None]:
    """Validate a proposal against the surface and the current files.

    Returns (normalised changes, reason); ``reason`` is None when the proposal may apply.
    ``current(path)`` returns the text of a file at the current best, or None if absent.
    """
    if proposal.error:
        return {}, proposal.error
    if not proposal.files:
        return {}, "the proposal changes no file"
    changes: dict[str, str | None] = {}
    outside: list[str] = []
    for raw_path, text in proposal.files.items():
        path = normalize(str(raw_path))
        if path is None or ".git" in path.lower().split("/") or not surface.matches(path):
            outside.append(str(raw_path))
            continue
        if text is not None and not isinstance(text, str):
            return {}, f"the new content of {path} is not text"
        changes[path] = text
    if outside:
        return {}, "touches paths outside the mutable surface: " + ", ".join(sorted(outside))
    deleted = sorted(p for p, t in changes.items() if t is None)
    if deleted:
        return {}, "deletes surface files, which is not allowed: " + ", ".join(deleted)
    effective = {p: t for p, t in changes.items() if current(p) != t}
    if not effective:
        return {}, "the proposal leaves every file as it is"
    return effective, None


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclasses.dataclass
class _Hunk:
    old_start: int
    old_count: int
    lines: list[str]  # each starts with ' ', '-' or '+'; "\n" excluded, "\r" kept
    no_newline_old: bool = False
    no_newline_new: bool = False


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


def parse_unified_diff(text: str) -> list[_FilePatch]:
    """Parse a unified diff (plain or git format) into per-file hunks."""
    patches: list[_FilePatch] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            current = _FilePatch(_strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:]), [])
            patches.append(current)
            i += 2
            while i < len(lines) and lines[i].startswith("@@"):
                match = _HUNK_RE.match(lines[i])
                if not match:
                    raise PatchError(f"malformed hunk header: {lines[i]!r}")
                hunk, i = _read_hunk(lines, i + 1, match)
                current.hunks.append(hunk)
            continue
        i += 1
    if not patches:
        raise PatchError("no file headers (---/+++) found in the patch")
    return patches


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


def apply_unified_diff(text: str, read: Callable[[str], str | None]) -> dict[str, str | None]:
    """Apply a unified diff to the files ``read`` returns; all or nothing.

    Returns the full new text of each file the diff touches (None for a deletion).
    """
    result: dict[str, str | None] = {}
    for patch in parse_unified_diff(text):
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
            if read(path) is not None:
                raise PatchError(f"the patch creates {path}, which exists already")
            original = ""
        else:
            original_text = result.get(patch.old_path) if patch.old_path in result else read(patch.old_path)
            if original_text is None:
                raise PatchError(f"the patch changes {patch.old_path}, which does not exist")
            original = original_text
        result[path] = _apply_hunks(original, patch.hunks, path)
    return result


def from_patch(description: str, patch: str, read: Callable[[str], str | None]) -> Proposal:
    """A proposal from a unified diff against the current files; a diff that does not apply
    becomes a proposal with an error (an ``invalid`` trial), not an exception."""
    try:
        files = apply_unified_diff(patch, read)
    except PatchError as exc:
        return Proposal(description, error=f"the patch does not apply: {exc}")
    return Proposal(description, files)
