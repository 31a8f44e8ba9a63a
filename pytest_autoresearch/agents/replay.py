"""``replay:PATH``: proposals read from a JSON Lines file, one per trial, in order.

Each line is ``{"description": str, "files": {relpath: full new text}}`` or
``{"description": str, "patch": "unified diff"}`` (git format accepted). For tests, demos
and replaying a past run. A line that is not a valid proposal becomes an ``invalid`` trial
with the reason, so one bad line loses nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ..proposals.proposal import Proposal, from_patch
from .base import Agent, AgentExhausted, ProposalContext


class ReplayAgent(Agent):
    name = "replay"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines = [
            (number, line)
            # "\n" only: JSON strings may hold U+2028 and friends, which splitlines() breaks at
            for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), 1)
            if line.strip()
        ]
        self._next: int | None = None

    def describe(self) -> str:
        return f"replay {self.path} ({len(self._lines)} proposals)"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        if self._lines:
            return None
        return f"replay: {self.path} holds no proposals: write one JSON object per line (see the README's replay section)"

    def runs_out(self) -> str:
        return f"after the last of the {len(self._lines)} proposals in {self.path.name}"

    def propose(self, context: ProposalContext) -> Proposal:
        if self._next is None:
            # one line per trial so far, so that a resumed run picks up where the last one stopped
            self._next = sum(1 for r in context.history if r.status != "baseline")
        if self._next >= len(self._lines):
            raise AgentExhausted(f"replay: all {len(self._lines)} proposals of {self.path.name} were used")
        number, line = self._lines[self._next]
        self._next += 1
        where = f"{self.path.name} line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            return Proposal(f"({where})", error=f"{where} is not valid JSON: {exc}")
        if not isinstance(entry, dict):
            return Proposal(f"({where})", error=f"{where} is not a JSON object")
        description = entry.get("description")
        if not isinstance(description, str) or not description.strip():
            description = f"({where})"
        files, patch = entry.get("files"), entry.get("patch")
        if (files is None) == (patch is None):
            return Proposal(description, error=f'{where} needs exactly one of "files" and "patch"')
        if patch is not None:
            if not isinstance(patch, str):
                return Proposal(description, error=f'{where}: "patch" must be a string')
            return from_patch(description, patch, context.read)
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in files.items()
        ):
            return Proposal(description, error=f'{where}: "files" must map paths to text')
        return Proposal(description, files)
