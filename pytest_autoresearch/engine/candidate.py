"""A trial in flight: the candidate written into a worker's slot, and its runs so far."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from ..core.records import TrialRecord
from ..core.verdict import Run
from ..proposals.proposal import Proposal

if TYPE_CHECKING:
    from .slots import Slot


@dataclasses.dataclass
class Candidate:
    number: int
    proposal: Proposal
    description: str
    slot: Slot
    parent: TrialRecord  # the best it started from (or was re-applied on)
    changes: dict[str, str | None]  # rootdir-relative path -> new text (None: deleted)
    lines: int  # surface lines it adds (negative: removes) against its parent
    tree: str = ""  # the tree written into its slot: what its runs evaluate
    runs: list[Run] = dataclasses.field(default_factory=list)  # its runs on ``tree``, first first
    attempt: int = 1  # the run to make next (2, 3: confirmation runs)
    started: float = dataclasses.field(default_factory=time.monotonic)
    wall_started: float = dataclasses.field(default_factory=time.time)
    reapplied: list[int] = dataclasses.field(default_factory=list)  # bests it was re-applied on
