"""The stop rules: when a run stops starting trials (``--autoresearch-time``, ``-target``,
``-patience``, ``-max-cost``). The trial budget is counted by the scheduler's caller; the STOP
file is looked for by the engine; this is the arithmetic."""

from __future__ import annotations

from .history import History
from .records import is_better


def stop_reason(
    history: History,
    *,
    goal: str,
    elapsed: float,
    session_start: int,
    spent: float,
    time_limit: float | None = None,
    target: float | None = None,
    patience: int | None = None,
    max_cost: float | None = None,
) -> str | None:
    """Why the run must stop now, if a rule says so."""
    if time_limit is not None and elapsed >= time_limit:
        return f"the time limit of {time_limit:g}s (--autoresearch-time) is used up"
    best = history.best
    if target is not None and best.score is not None:
        if best.score == target or is_better(best.score, target, goal):
            return f"the target {target:g} is reached: {best.score:.6g} (trial {best.trial})"
    if patience is not None:
        since = history.since_best(session_start)
        if len(since) >= patience:
            return f"{len(since)} trials in a row without a keep (autoresearch_patience {patience})"
    if max_cost is not None and spent >= max_cost:
        return f"the agent's model calls cost ${spent:.4f}, reaching --autoresearch-max-cost ${max_cost:g}"
    return None
