"""results.tsv's metric columns: which fitness test's score or named metric goes in which column.

Fixed by the baseline (each secondary fitness test's score, each named metric), kept in
run.json so a resumed run writes the same columns, and used to average a trial's runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .noise import mean
from .records import FitnessResult, MetricSpec, RunResult

#: Column names results.tsv uses for itself; a metric by such a name gets a longer column name.
RESERVED = frozenset({
    "trial", "parent", "commit", "status", "score", "delta", "runs", "spread", "lines", "seconds",
    "tokens_in", "tokens_cached", "tokens_out", "cost_usd", "reason", "description",
})  # fmt: skip


class MetricColumns:
    def __init__(self, keys: Iterable[tuple[str, str, str]] = ()) -> None:
        self._columns: dict[tuple[str, str], str] = {(nodeid, metric): column for nodeid, metric, column in keys}

    @classmethod
    def of_baseline(cls, primary: MetricSpec, fitness: Sequence[FitnessResult]) -> MetricColumns:
        """The columns a new run's log gets from its baseline's fitness tests."""
        columns = cls()
        for fit in fitness:
            if fit.nodeid != primary.nodeid:
                columns._add(fit.nodeid, "", fit.name)
            for name in fit.metrics:
                columns._add(fit.nodeid, name, name if fit.nodeid == primary.nodeid else f"{fit.name}.{name}")
        return columns

    def _add(self, nodeid: str, metric: str, name: str) -> None:
        taken = set(self._columns.values()) | RESERVED
        self._columns[(nodeid, metric)] = name if name not in taken else f"{nodeid}:{metric}" if metric else nodeid

    @property
    def names(self) -> list[str]:
        return list(self._columns.values())

    @property
    def keys(self) -> list[tuple[str, str, str]]:
        return [(nodeid, metric, column) for (nodeid, metric), column in self._columns.items()]

    def means(self, results: Sequence[RunResult]) -> dict[str, float]:
        """Secondary scores and named metrics, as means over the runs that recorded them."""
        seen: dict[str, list[float]] = {}
        for result in results:
            for fit in result.fitness:
                if (fit.nodeid, "") in self._columns and fit.score is not None:
                    seen.setdefault(self._columns[(fit.nodeid, "")], []).append(fit.score)
                for name, value in fit.metrics.items():
                    if (fit.nodeid, name) in self._columns:
                        seen.setdefault(self._columns[(fit.nodeid, name)], []).append(value)
        return {column: mean(values) for column, values in seen.items()}
