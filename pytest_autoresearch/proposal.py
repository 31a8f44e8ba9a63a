"""Proposals: what an agent wants to change, and whether it may apply.

Whatever form an agent answers in (whole files, a unified diff, later SEARCH/REPLACE blocks
or an external tool's edits), it ends up as a :class:`Proposal` holding the full new text of
each file it changes. The driver checks that against the surface before anything touches the
worktree, so one check guards every agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from .diffs import PatchError, apply_unified_diff
from .records import Usage
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


def from_patch(description: str, patch: str, read: Callable[[str], str | None]) -> Proposal:
    """A proposal from a unified diff against the current files; a diff that does not apply
    becomes a proposal with an error (an ``invalid`` trial), not an exception."""
    try:
        files = apply_unified_diff(patch, read)
    except PatchError as exc:
        return Proposal(description, error=f"the patch does not apply: {exc}")
    return Proposal(description, files)
