"""The tools a model may call within one trial's conversation: ``list``, ``read`` and ``search``.

A surface larger than a prompt cannot be shown whole, so the model reads what it needs, the way
a coding agent does. What it may read is what the one-shot prompt may show: the mutable files
and the read-only context files at the current best. Any other path (outside the repository,
in ``.git``, a holdout test file, a file of the repository not named to the agent) gets a tool
error that names the rule, and the conversation goes on. ``read`` returns the exact text, not
numbered lines, so that a SEARCH block can copy it; every result is capped in size.

The schemas are OpenAI's function-calling format, which litellm translates for other providers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .base import ProposalContext
from ..proposals.surface import normalize

#: the most lines, and characters, one ``read`` returns
READ_LINES = 400
READ_CHARS = 24000
#: the most matches one ``search`` returns, and the longest line it shows
SEARCH_MATCHES = 60
SEARCH_LINE_CHARS = 200

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "list",
            "description": "List the mutable files (the only ones you may edit) and the read-only context files, with their line counts.",
            "parameters": {"type": "object", "properties": {}, "required": []},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read",
            "description": (
                f"Read lines start_line..end_line (1-based, inclusive) of a mutable or read-only context file, as exact "
                f"text to copy into SEARCH blocks; at most {READ_LINES} lines per call."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "the file's path as list() names it"},
                    "start_line": {"type": "integer", "description": "the first line to read (default 1)"},
                    "end_line": {"type": "integer", "description": "the last line to read (default: as many as allowed)"},
                },
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": (
                "Search the mutable and read-only context files for a regular expression (or plain text if it is not "
                f"one); results as path:line: text, at most {SEARCH_MATCHES}."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "a Python regular expression or plain text"},
                    "path": {"type": "string", "description": "search only this file (default: all of them)"},
                },
                "required": ["pattern"],
            },
        },
    },
]

NAMES = tuple(schema["function"]["name"] for schema in SCHEMAS)


class ToolError(Exception):
    """A call the tools refuse, worded for the model: its message is the tool's result."""


class Toolbox:
    """The tools over one trial's context: only its mutable and read-only context files."""

    def __init__(self, context: ProposalContext) -> None:
        self.context = context
        #: path -> (kind, text): the mutable files first, then the read-only context
        self.files: dict[str, tuple[str, str]] = {p: ("mutable", t) for p, t in sorted(context.files.items())}
        self.files.update((p, ("read-only", t)) for p, t in sorted(context.context_files.items()) if p not in self.files)

    def call(self, name: str, arguments: str | None) -> tuple[str, bool]:
        """The result of one call as the model sees it, and whether it was an error."""
        try:
            if name not in NAMES:
                raise ToolError(f"there is no tool {name!r}: the tools are {', '.join(NAMES)}")
            args = _arguments(arguments)
            if name == "list":
                return self.list(), False
            if name == "read":
                return self.read(_text(args, "path"), _line(args, "start_line"), _line(args, "end_line")), False
            return self.search(_text(args, "pattern"), _text(args, "path") if args.get("path") not in (None, "") else None), False
        except ToolError as exc:
            return f"error: {exc}", True

    def list(self) -> str:
        lines = [f"{path}: {_count(text)} lines, {kind}" for path, (kind, text) in self.files.items()]
        return "\n".join(lines) if lines else "no files"

    def text(self, raw: str) -> tuple[str, str]:
        """(path, text) of a file the model may read, or the rule that refuses it."""
        path = normalize(raw)
        if path is None:
            raise ToolError(f"{raw!r} is outside the repository: give a path relative to the rootdir, as list() names it")
        if ".git" in path.lower().split("/"):
            raise ToolError(f"{path} is inside .git, which no agent reads")
        if path in self.files:
            return path, self.files[path][1]
        if self.context.read(path) is None and (self.context.workdir / path).is_file():
            raise ToolError(f"{path} is a holdout test file: agents never see it")
        if (self.context.workdir / path).exists():
            raise ToolError(f"{path} is neither a mutable file nor a read-only context file: you may read only the files list() names")
        raise ToolError(f"there is no file {path}: you may read only the files list() names")

    def read(self, raw: str, start: int | None, end: int | None) -> str:
        path, text = self.text(raw)
        lines = text.splitlines(keepends=True)
        if not lines:
            return f"{path} is empty\n"
        first = max(1, start or 1)
        if first > len(lines):
            raise ToolError(f"{path} has {len(lines)} lines: start_line {first} is past its end")
        last = min(len(lines), end if end is not None else first + READ_LINES - 1)
        if last < first:
            raise ToolError(f"end_line {last} is before start_line {first}")
        cut = min(last, first + READ_LINES - 1)
        body, size = [], 0
        for number in range(first, cut + 1):
            size += len(lines[number - 1])
            if size > READ_CHARS and body:
                cut = number - 1
                break
            body.append(lines[number - 1])
        shown = "".join(body)
        parts = [f"{path} lines {first}-{cut} of {len(lines)} (the exact text, to copy into SEARCH blocks):\n", shown]
        if shown and not shown.endswith("\n"):
            parts.append("\n")
        if cut < last:
            parts.append(f"(cut at line {cut}: one read returns at most {READ_LINES} lines or {READ_CHARS} characters; "
                         f"read from line {cut + 1} for more)\n")
        return "".join(parts)

    def search(self, pattern: str, raw: str | None) -> str:
        try:
            regex = re.compile(pattern)
        except re.error:
            regex = re.compile(re.escape(pattern))
        targets = dict([self.text(raw)]) if raw is not None else {p: t for p, (_, t) in self.files.items()}
        hits: list[str] = []
        total = 0
        for path, text in targets.items():
            for number, line in enumerate(text.splitlines(), 1):
                if regex.search(line):
                    total += 1
                    if len(hits) < SEARCH_MATCHES:
                        shown = line if len(line) <= SEARCH_LINE_CHARS else line[: SEARCH_LINE_CHARS - 3] + "..."
                        hits.append(f"{path}:{number}: {shown}")
        if not hits:
            return f"no match for {pattern!r}"
        if total > len(hits):
            hits.append(f"({total} matches, the first {len(hits)} shown: narrow the pattern or give a path)")
        return "\n".join(hits)


def _count(text: str) -> int:
    return len(text.splitlines())


def _arguments(raw: str | None) -> Mapping[str, Any]:
    if raw is None or not raw.strip():
        return {}
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise ToolError(f"the arguments are not valid JSON ({exc}): give them as a JSON object") from None
    if not isinstance(args, dict):
        raise ToolError("the arguments must be a JSON object")
    return args


def _text(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise ToolError(f"the argument {key!r} is missing")
    if not isinstance(value, str):
        raise ToolError(f"the argument {key!r} must be a string")
    return value


def _line(args: Mapping[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolError(f"the argument {key!r} must be a line number, got {value!r}") from None
