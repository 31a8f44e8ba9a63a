"""results.tsv: the run's append-only memory, one whole row per trial, the baseline first.

Tab-separated (descriptions contain commas), a header row, and one row appended, flushed
and synced as each trial ends, so a killed run loses at most the trial in flight and a
reader never sees half a row. Cells never contain tabs or newlines.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

from .records import TrialRecord

LEADING = ("trial", "commit", "status", "score", "delta", "seconds")
USAGE = ("tokens_in", "tokens_out", "cost_usd")
TRAILING = ("reason", "description")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return " ".join(str(value).split())


class ResultsLog:
    def __init__(self, path: Path, metric_columns: Sequence[str], usage: bool = False) -> None:
        self.path = path
        self.columns = (*LEADING, *metric_columns, *(USAGE if usage else ()), *TRAILING)

    def create(self) -> None:
        """Write the header; a new run's log must not exist yet."""
        with self.path.open("x", encoding="utf-8", newline="") as f:
            f.write("\t".join(self.columns) + "\n")

    def row(self, record: TrialRecord) -> str:
        values = {
            "trial": record.trial,
            "commit": record.commit,
            "status": record.status,
            "score": record.score,
            "delta": record.delta,
            "seconds": round(record.seconds, 3),
            "reason": record.reason,
            "description": record.description,
            **record.metrics,
        }
        if record.usage is not None:
            values.update(
                tokens_in=record.usage.prompt_tokens, tokens_out=record.usage.completion_tokens, cost_usd=record.usage.cost
            )
        return "\t".join(_cell(values.get(column)) for column in self.columns) + "\n"

    def append(self, record: TrialRecord) -> None:
        line = self.row(record).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)  # one write of a whole row
            os.fsync(fd)
        finally:
            os.close(fd)


def read_results(path: Path) -> list[dict[str, str]]:
    """Rows of a results.tsv as dicts (for reports and resumption)."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
