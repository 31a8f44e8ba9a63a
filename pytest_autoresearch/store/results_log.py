"""results.tsv: the run's append-only memory, one whole row per trial, the baseline first.

Tab-separated (descriptions contain commas), a header row, and one row appended, flushed
and synced as each trial ends, so a killed run loses at most the trial in flight and a
reader never sees half a row. Cells never contain tabs, newlines or any other control or
bidi character (they are written as visible escapes, ``\\x1b``).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..core.records import TrialRecord, Usage
from ..core.text import neutralise

LEADING = ("trial", "parent", "commit", "status", "score", "delta", "runs", "spread", "lines", "seconds")
#: a model agent's columns; a log from before ``tokens_cached`` keeps the three it was started with
USAGE = ("tokens_in", "tokens_cached", "tokens_out", "cost_usd")
TRAILING = ("reason", "description")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return neutralise(" ".join(str(value).split()), newlines=False)  # no raw control or bidi character


class ResultsLog:
    def __init__(self, path: Path, metric_columns: Sequence[str], usage: bool = False) -> None:
        self.path = path
        self.columns = (*LEADING, *metric_columns, *(USAGE if usage else ()), *TRAILING)
        self._digest = hashlib.sha256()

    def header(self) -> str:
        return "\t".join(self.columns) + "\n"

    def create(self) -> None:
        """Write the header; a new run's log must not exist yet."""
        self._digest = hashlib.sha256()
        with self.path.open("x", encoding="utf-8", newline="") as f:
            f.write(self.header())
        self._digest.update(self.header().encode())

    def adopt(self) -> None:
        """Continue an existing log (a resumed run): what is in it now is what it should hold,
        and its header says the columns (a log from an older version may lack some)."""
        data = self.path.read_bytes()
        self._digest = hashlib.sha256(data)
        header = data.split(b"\n", 1)[0].decode("utf-8")
        if header:
            self.columns = tuple(header.split("\t"))

    def intact(self) -> bool:
        """Whether the file still holds exactly what this log wrote (a trial may not edit it)."""
        try:
            return hashlib.sha256(self.path.read_bytes()).digest() == self._digest.digest()
        except OSError:
            return False

    def rewrite(self, records: Sequence[TrialRecord]) -> None:
        """Restore the file from the records (after something else wrote to it)."""
        text = self.header() + "".join(self.row(r) for r in records)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, self.path)
        self._digest = hashlib.sha256(text.encode())

    def row(self, record: TrialRecord) -> str:
        values = {
            "trial": record.trial,
            "parent": record.parent_trial,
            "commit": record.commit,
            "status": record.status,
            "score": record.score,
            "delta": record.delta,
            "seconds": round(record.seconds, 3),
            "runs": record.runs if record.commit or record.status == "baseline" else "",
            "spread": record.spread,
            "lines": record.lines,
            "reason": record.reason,
            "description": record.description,
            **record.metrics,
        }
        if record.usage is not None:
            usage = record.usage
            values.update(
                tokens_in=usage.prompt_tokens, tokens_cached=usage.cached_tokens, tokens_out=usage.completion_tokens, cost_usd=usage.cost
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
        self._digest.update(line)


def read_results(path: Path) -> list[dict[str, str]]:
    """Rows of a results.tsv as dicts (for reports and resumption)."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _number(cell: str) -> float | None:
    try:
        return float(cell) if cell else None
    except ValueError:
        return None


def repair(path: Path) -> bool:
    """Drop a last row cut short by a killed run (no final newline); True if one was dropped."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with path.open("r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
    return True


def read_records(path: Path, metric_columns: Sequence[str]) -> list[TrialRecord]:
    """The trials of a results.tsv as records again (for resuming a run)."""
    records = []
    for row in read_results(path):
        usage = None
        if row.get("tokens_in"):
            usage = Usage(
                int(float(row["tokens_in"])),
                int(float(row.get("tokens_out") or 0)),
                _number(row.get("cost_usd", "")),
                cached_tokens=int(float(row.get("tokens_cached") or 0)),  # absent from an older run's log
            )
        records.append(
            TrialRecord(
                trial=int(row["trial"]),
                status=row["status"],
                description=row.get("description", ""),
                commit=row.get("commit", ""),
                score=_number(row.get("score", "")),
                delta=_number(row.get("delta", "")),
                seconds=_number(row.get("seconds", "")) or 0.0,
                metrics={c: v for c in metric_columns if (v := _number(row.get(c, ""))) is not None},
                reason=row.get("reason", ""),
                usage=usage,
                runs=int(row["runs"]) if row.get("runs") else 1,
                spread=_number(row.get("spread", "")),
                lines=int(row["lines"]) if row.get("lines") else None,
                parent_trial=int(row["parent"]) if row.get("parent") else None,
            )
        )
    return records
