"""Proposals: what an agent wants to change, and whether it may apply.

Whatever form an agent answers in (whole files, a unified diff, SEARCH/REPLACE blocks
(:mod:`pytest_autoresearch.proposals.answers`) or an external tool's edits), it ends up as a
:class:`Proposal` holding the full new text of each file it changes. The engine checks that
with :func:`check` (:mod:`pytest_autoresearch.engine.loop`) before anything touches the
worktree, so one check guards every agent.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from .diffs import PatchError, apply_unified_diff, lines_of
from ..core.records import Usage
from ..core.text import is_clean, neutralise, one_line
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
    usage: Usage | None = None  # tokens and cost of asking a model for it
    prompt: str | None = None  # what the agent was asked, and what it answered, kept for the audit
    answer: str | None = None
    #: a tool-using conversation as JSON data (messages, tool calls and results, each request's
    #: usage), kept as the trial's ``NNN.conversation.json``
    transcript: Mapping[str, Any] | None = None




@dataclasses.dataclass(frozen=True)
class Limits:
    """The user's limits on what a proposal may do, beyond the surface globs.

    Deletions are off by default because a deleted file cannot be judged by its diff alone
    (the tests may simply stop importing it); the size cap keeps a runaway agent from
    filling the worktree, the prompt of the next trial and the git history.
    """

    allow_delete: bool = False  # ini autoresearch_allow_delete
    max_file_bytes: int = 1_048_576  # ini autoresearch_max_file_kb * 1024


Changes = dict[str, str | None]
Current = Callable[[str], str | None]


def check(
    proposal: Proposal, surface: Surface, current: Current, limits: Limits = Limits()
) -> tuple[dict[str, str | None], str | None]:
    """Validate a proposal against the surface, the limits and the current files.

    Returns (effective changes, reason); ``reason`` is None when the proposal may apply, and
    then the changes hold only the files whose text really changes. ``current(path)`` returns
    the text of a file at the current best, or None if absent. Rules run in a fixed order
    (paths, conftest files, deletions, content, EVOLVE-BLOCK regions, no change) so that the
    same proposal always gets the same reason.
    """
    if proposal.error:
        return {}, proposal.error
    if not proposal.files:
        return {}, "the proposal changes no file"
    changes, reason = _surface_paths(proposal.files, surface)
    if reason is not None:
        return {}, reason
    changed = {p: t for p, t in changes.items() if current(p) != t}
    reason = (
        _conftest_reason(changed)
        or _deletion_reason(changes, current, limits)
        or _content_reason(changed, limits)
        or _evolve_reason(changed, current)
    )
    if reason is not None:
        return {}, reason
    if not changed:
        return {}, "the proposal leaves every file as it is"
    return changed, None


def _surface_paths(files: Mapping[str, str | None], surface: Surface) -> tuple[Changes, str | None]:
    """Normalise the proposal's paths; every one must be free of control and bidi characters
    (which would disguise it in a terminal, a log or a commit) and lie in the surface and
    outside ``.git``."""
    hidden = sorted(_escaped(str(p)) for p in files if not is_clean(str(p), newlines=False))
    if hidden:
        return {}, "paths may not contain control or bidi characters: " + ", ".join(hidden)
    changes: Changes = {}
    outside: list[str] = []
    for raw_path, text in files.items():
        path = normalize(str(raw_path))
        if path is None or ".git" in path.lower().split("/") or not surface.matches(path):
            outside.append(str(raw_path))
        else:
            changes[path] = text  # checked to be text by _content_reason
    if outside:
        return {}, "touches paths outside the mutable surface: " + ", ".join(sorted(outside))
    return changes, None


def _escaped(path: str) -> str:
    """``path`` with every control and bidi character shown as an escape, tabs and newlines too."""
    return neutralise(path).replace("\t", "\\x09").replace("\n", "\\x0a")


def is_conftest(path: str) -> bool:
    """Whether pytest would load ``path`` as a conftest; any case, because on a
    case-insensitive filesystem ``Conftest.py`` is the same file."""
    return posixpath.basename(path).lower() == "conftest.py"


def _conftest_reason(changed: Changes) -> str | None:
    """conftest.py files steer pytest itself (fixtures, hooks, collection), so a changed one
    could override the evaluator whatever the tests say: never, whatever the globs admit."""
    touched = sorted(p for p in changed if is_conftest(p))
    if not touched:
        return None
    return (
        f"{', '.join(touched)}: conftest.py files may never be created, changed or deleted, whatever "
        "autoresearch_mutable admits: they steer pytest itself (fixtures, hooks) and could override the evaluator"
    )


def _deletion_reason(changes: Changes, current: Current, limits: Limits) -> str | None:
    """Deletions need ``autoresearch_allow_delete``, and a file that exists to delete."""
    deleted = sorted(p for p, t in changes.items() if t is None)
    if not deleted:
        return None
    if not limits.allow_delete:
        return (
            "deletes surface files, which is not allowed: "
            + ", ".join(deleted)
            + " (deletions need autoresearch_allow_delete = true)"
        )
    missing = [p for p in deleted if current(p) is None]
    if missing:
        return "deletes surface files that do not exist: " + ", ".join(missing)
    return None


def _content_reason(changed: Changes, limits: Limits) -> str | None:
    """New texts must be text the worktree can hold: a str, UTF-8, no NUL, within the size cap."""
    for path in sorted(changed):
        text = changed[path]
        if text is None:
            continue
        if not isinstance(text, str):
            return f"the new content of {path} is not text"
        reason = _text_reason(path, text, limits.max_file_bytes)
        if reason is not None:
            return reason
    return None


def _text_reason(path: str, text: str, max_bytes: int) -> str | None:
    if "\0" in text:
        return f"{path}: binary content (NUL bytes) cannot be proposed"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return f"{path}: binary content (not valid UTF-8 text at character {exc.start}) cannot be proposed"
    if size > max_bytes:
        have, limit = _size(size), _size(max_bytes)
        if have == limit:  # rounding hides the difference: say it in bytes
            have, limit = f"{size} bytes", f"{max_bytes}-byte"
        return f"{path}: {have} exceeds the {limit} limit (autoresearch_max_file_kb)"
    return None


def _size(n: int) -> str:
    """A byte count as people say it, in the binary units autoresearch_max_file_kb uses."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


# --- EVOLVE-BLOCK regions -------------------------------------------------------------------------

START_MARKER, END_MARKER = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"


def _scan_markers(lines: list[str]) -> tuple[list[tuple[int, int]], str | None]:
    """The regions marked in ``lines`` as 1-based (START line, END line) pairs, or a problem."""
    regions: list[tuple[int, int]] = []
    opened: int | None = None
    for number, line in enumerate(lines, 1):
        start, end = START_MARKER in line, END_MARKER in line
        if start and end:
            return regions, f"line {number} holds both {START_MARKER} and {END_MARKER}"
        if start:
            if opened is not None:
                return regions, f"line {number}: {START_MARKER} inside the block opened at line {opened}"
            opened = number
        elif end:
            if opened is None:
                return regions, f"line {number}: {END_MARKER} without an {START_MARKER} before it"
            regions.append((opened, number))
            opened = None
    if opened is not None:
        return regions, f"line {opened}: {START_MARKER} is never closed by an {END_MARKER}"
    return regions, None


def evolve_regions(text: str) -> list[tuple[int, int]] | None:
    """The EVOLVE-BLOCK regions of a file, as 1-based line numbers of their START and END
    marker lines (the editable lines lie strictly between); [] when the file has no markers,
    None when they are unbalanced or nested.

    A marker is any line containing ``EVOLVE-BLOCK-START`` / ``EVOLVE-BLOCK-END``, whatever
    the comment syntax around it (``#``, ``//``, ``--``, ``;``, ``<!-- -->``).
    """
    regions, problem = _scan_markers(lines_of(text))
    return None if problem else regions


def _frozen_segments(lines: list[str], regions: list[tuple[int, int]]) -> list[tuple[int, list[str]]]:
    """The runs of lines that may not change, each with the 1-based number of its first line:
    everything outside the regions, marker lines included."""
    segments: list[tuple[int, list[str]]] = []
    begin = 1
    for start, end in regions:
        segments.append((begin, lines[begin - 1 : start]))
        begin = end
    segments.append((begin, lines[begin - 1 :]))
    return segments


def _show(line: str) -> str:
    return one_line(line.rstrip("\r\n"), 80)


def _segment_reason(path: str, first: int, old: list[str], new: list[str]) -> str | None:
    """The first difference between a frozen run of the current file and the new text's."""
    for k, (was, now) in enumerate(zip(old, new)):
        if was != now:
            number = first + k
            if START_MARKER in was or END_MARKER in was:
                return f"{path}: line {number} is an EVOLVE-BLOCK marker and may not change (`{_show(was)}`)"
            ending = " (its line ending or final newline changed)" if _show(was) == _show(now) else ""
            return (
                f"{path}: line {number} is outside the EVOLVE-BLOCK regions and may not change "
                f"(`{_show(was)}`){ending}"
            )
    if len(new) > len(old):
        after = f"after line {first + len(old) - 1}" if old else f"before line {first}"
        return f"{path}: a line is added {after}, outside the EVOLVE-BLOCK regions (`{_show(new[len(old)])}`)"
    if len(old) > len(new):
        number = first + len(new)
        return f"{path}: line {number} is outside the EVOLVE-BLOCK regions and may not be removed (`{_show(old[len(new)])}`)"
    return None


def evolve_reason(path: str, old: str, new: str | None) -> str | None:
    """Why ``new`` may not replace ``old`` under the EVOLVE-BLOCK markers of ``old``, or None.

    Markers let a user open a few regions of a file to the agent and freeze the rest (its
    imports, its interface, its constants); a file without markers is open as a whole.
    """
    old_lines = lines_of(old)
    regions, problem = _scan_markers(old_lines)
    if problem:
        return f"{path} has unbalanced EVOLVE-BLOCK markers ({problem}); fix the file so that each START has its END"
    if not regions:
        return None
    if new is None:
        return f"{path}: only its EVOLVE-BLOCK regions may change, so it may not be deleted"
    new_lines = lines_of(new)
    new_regions, new_problem = _scan_markers(new_lines)
    if new_problem:
        return f"{path}: the new text has unbalanced EVOLVE-BLOCK markers ({new_problem}); keep every marker line as it is"
    if len(new_regions) != len(regions):
        return (
            f"{path}: the number of EVOLVE-BLOCK regions must stay {len(regions)} (the new text has "
            f"{len(new_regions)}); keep every marker line as it is and change only the lines between them"
        )
    old_segments = _frozen_segments(old_lines, regions)
    new_segments = _frozen_segments(new_lines, new_regions)
    for (first, was), (_, now) in zip(old_segments, new_segments):
        reason = _segment_reason(path, first, was, now)
        if reason is not None:
            return reason
    return None


def _evolve_reason(changed: Changes, current: Current) -> str | None:
    for path in sorted(changed):
        old = current(path)
        if old is not None:  # a new file has no markers to keep
            reason = evolve_reason(path, old, changed[path])
            if reason is not None:
                return reason
    return None


def from_patch(description: str, patch: str, read: Callable[[str], str | None]) -> Proposal:
    """A proposal from a unified diff against the current files; a diff that does not apply
    becomes a proposal with an error (an ``invalid`` trial), not an exception."""
    try:
        files = apply_unified_diff(patch, read)
    except PatchError as exc:
        return Proposal(description, error=f"the patch does not apply: {exc}")
    return Proposal(description, files)
