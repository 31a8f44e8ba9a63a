"""The run's history: every logged trial in order, and what follows from it.

One definition of each: the best (the incumbent, where the branch is: the last kept row, the
baseline at first), the best score kept (which a simpler change, as good within the noise,
may since have replaced: the two are not the same thing and reports name both), the next
trial number, the trials since the best, and what the agent's model calls cost so far. The
engine appends; the driver, the stop rules and the agents read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .records import TrialRecord, improvement, is_better


class History:
    def __init__(self, records: Sequence[TrialRecord] = ()) -> None:
        self.records: list[TrialRecord] = list(records)

    def __iter__(self) -> Iterator[TrialRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __bool__(self) -> bool:
        return bool(self.records)

    def append(self, record: TrialRecord) -> None:
        self.records.append(record)

    @property
    def baseline(self) -> TrialRecord:
        """The first row: the start commit's score."""
        return self.records[0]

    @property
    def best(self) -> TrialRecord:
        """The incumbent: the last trial the branch moved to (the baseline at first)."""
        return next(r for r in reversed(self.records) if r.kept)

    def best_kept(self, goal: str) -> TrialRecord:
        """The kept row (the baseline included) with the best score: the incumbent itself
        unless a later keep, simpler and as good within the noise, scored worse than it."""
        top = self.best
        for r in self.records:
            if r.kept and r.score is not None and (top.score is None or is_better(r.score, top.score, goal)):
                top = r
        return top

    @property
    def next_trial(self) -> int:
        return max(r.trial for r in self.records) + 1 if self.records else 0

    def since_best(self, first: int = 0) -> list[TrialRecord]:
        """The trials logged after the best, from trial ``first`` on (this session's first)."""
        best = self.best.trial
        return [r for r in self.records if r.trial > best and r.trial >= first]

    def find(self, trial: int) -> TrialRecord | None:
        return next((r for r in reversed(self.records) if r.trial == trial), None)

    @property
    def spent(self) -> float:
        """US dollars the agent's priced model calls cost, over the whole run."""
        return sum(r.usage.cost for r in self.records if r.usage is not None and r.usage.cost is not None)


def change_words(score: float, than: float, goal: str) -> str:
    """How ``score`` compares with ``than`` in words a reader cannot misread: "16.5% worse",
    "2.0% better", "no change" (just "better" or "worse" when ``than`` is 0)."""
    gain = improvement(score, than, goal)
    if gain == 0:
        return "no change"
    word = "better" if gain > 0 else "worse"
    return f"{100 * abs(gain) / abs(than):.1f}% {word}" if than else word
