"""What the terminal shows of a run: a live line per trial, the final table and summary.

Pure formatting over :class:`~pytest_autoresearch.records.TrialRecord` lists, so the same
text serves the live run and, later, reports reprinted from a results.tsv. Everything it
returns is free of control and bidi characters (:func:`~pytest_autoresearch.core.text.neutralise`),
whatever a description, a reason or an older results.tsv holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..core.history import History, change_words
from ..core.records import STATUSES, Reproduction, Rescore, TrialRecord, improvement
from ..core.text import neutralise
from ..names import review_name, trial_ref_pattern

_COLOURS: dict[str, dict[str, bool]] = {
    "baseline": {"cyan": True},
    "keep": {"green": True, "bold": True},
    "discard": {"yellow": True},
    "crash": {"red": True},
    "timeout": {"red": True},
    "invalid": {"purple": True},
    "tamper": {"red": True, "bold": True},
    "review": {"blue": True},
}

#: pytest colours for trial items: one entry per status of results.tsv, in its order (one
#: without a colour in ``_COLOURS`` is shown plain).
STATUS_MARKUP: dict[str, dict[str, bool]] = {
    status: _COLOURS.get(status, {}) for status in dict.fromkeys((*STATUSES, *_COLOURS))
}


def fmt_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def fmt_delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.4g}"


def clean(text: object) -> str:
    """``text`` as one terminal line may show it: control and bidi characters escaped, tabs
    and newlines as spaces."""
    return neutralise(str(text), newlines=False)


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def shown_reason(record: TrialRecord, goal: str | None) -> str:
    """The reason a trial line and the final table show: why it failed, why a keep that does
    not look better was kept (simpler, as good within the noise), and why a better score was
    discarded (not beyond the noise, a bound broken); not the reason of a score that is merely
    worse, which its delta says already. Without ``goal`` every discard shows its reason."""
    if not record.reason or record.status == "baseline":
        return ""
    if record.status == "discard" and goal is not None:
        if record.delta is None or improvement(record.delta, 0.0, goal) <= 0:  # the delta is score - its parent's
            return ""
    return clean(record.reason)


def what_it_did(record: TrialRecord, goal: str | None, room: int | None = None) -> str:
    """The description and, in brackets, :func:`shown_reason`; with ``room``, the description
    is cut first so that the reason stays readable."""
    what, reason = clean(record.description), shown_reason(record, goal)
    if not reason:
        return what if room is None else shorten(what, room)
    reason = shorten(reason, 300)
    if room is not None:
        what = shorten(what, max(12, room - len(reason) - 4))
    return f"{what}  [{reason}]"


def details(record: TrialRecord, width: int | None = None, *, goal: str | None = None) -> str:
    """Score, delta to the best before it, time, and what the trial did (and why it failed,
    or why a better score was not kept: :func:`shown_reason`)."""
    delta = f"({fmt_delta(record.delta)})" if record.delta is not None else ""
    head = f"{fmt_score(record.score):>11} {delta:<12} {record.seconds:6.1f}s  "
    return head + what_it_did(record, goal, None if width is None else max(20, width - len(head) - 30))


def live_line(record: TrialRecord, width: int | None = None, progress: str = "", *, goal: str | None = None) -> str:
    """One line for a finished trial: number, status, then :func:`details`; ``progress``
    (see :func:`progress`) goes after it."""
    head = f"trial {record.trial:>3}  {clean(record.status):<8}  "
    tail = f"  | {clean(progress)}" if progress else ""
    return head + details(record, None if width is None else width - len(head) - len(tail), goal=goal) + tail


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress(
    *,
    done: int,
    total: int | None,
    elapsed: float,
    time_limit: float | None,
    best: TrialRecord | None,
    best_kept: TrialRecord | None = None,
) -> str:
    """Where the run stands after ``done`` trials of this session: trial k of N (or the time
    used of the budget), the best so far (the branch tip, and the best score kept when a
    simpler change replaced it), and an ETA from the trials' pace."""
    parts = []
    if total is not None:
        parts.append(f"{done}/{total}")
    if time_limit is not None:
        parts.append(f"{clock(elapsed)} of {clock(time_limit)}")
    if best is not None and best.score is not None:
        if best_kept is not None and best_kept.trial != best.trial and best_kept.score is not None:
            parts.append(f"branch {fmt_score(best.score)} (trial {best.trial}), best kept {fmt_score(best_kept.score)} (trial {best_kept.trial})")
        else:
            parts.append(f"best {fmt_score(best.score)} (trial {best.trial})")
    pace = elapsed / done if done else None
    left = []
    if total is not None and pace is not None:
        left.append(pace * (total - done))
    if time_limit is not None:
        left.append(time_limit - elapsed)
    if left and done:
        parts.append(f"eta {clock(min(left))}")
    return ", ".join(parts)


def table(records: Sequence[TrialRecord], width: int | None = None, *, goal: str | None = None) -> str:
    """All trials as a table, each description with its :func:`shown_reason`; descriptions are
    cut to ``width`` columns when one is given (the reason is kept)."""
    from tabulate import tabulate

    headers = ("trial", "status", "score", "delta", "secs", "commit", "description")
    rows = [[r.trial, clean(r.status), fmt_score(r.score), fmt_delta(r.delta), f"{r.seconds:.1f}", clean(r.commit[:8]), ""] for r in records]
    room = None
    if width is not None:
        fixed = len(tabulate([row[:-1] for row in rows], headers=headers[:-1], tablefmt="simple").splitlines()[0])
        room = max(20, width - fixed - 3)
    for row, r in zip(rows, records):
        row[-1] = what_it_did(r, goal, room)
    return tabulate(
        rows,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("right", "left", "right", "right", "right", "left", "left"),
    )


def summary(
    records: Sequence[TrialRecord],
    *,
    goal: str,
    metric: str,
    branch: str,
    log_path: str,
    tag: str,
    base_ref: str,
    stop_reason: str | None,
    holdout: dict[str, dict[str, float]] | None = None,
    holdout_best_trial: int | None = None,
    holdout_goals: dict[str, str] | None = None,
    rescore: Rescore | None = None,
) -> list[str]:
    """The lines after the table: baseline -> best, counts, where things are, what to do next.
    A final best that did not reproduce outside the run is said beside the scores and again last."""
    if not records:
        return []
    baseline = records[0]
    kept = [r for r in records if r.status == "keep"]
    history = History(records)
    best = history.best
    counts = dict.fromkeys(STATUSES, 0)  # results.tsv's order; a status it lacks still counts, last
    for r in records[1:]:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    trials = len(records) - 1
    lines = []
    if baseline.score is not None and best.score is not None:
        lines.append(f"{metric} ({goal}): baseline {fmt_score(baseline.score)} -> " + standing(history, goal))
    tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "none yet"
    lines.append(f"{trials} trial{'s' if trials != 1 else ''}: {tally}")
    lines += holdout_lines(holdout or {}, holdout_goals or {}, goal, baseline, best, holdout_best_trial)
    rescored = rescore if rescore is not None and rescore.commit == best.commit and best.status == "keep" else None
    lines += rescore_lines(rescored, metric, log_path)
    usages = [r.usage for r in records if r.usage is not None]
    if usages:
        costs = [u.cost for u in usages if u.cost is not None]
        spent = f"${sum(costs):.4f}" + ("" if len(costs) == len(usages) else " (some calls unpriced)") if costs else "cost unknown"
        cached = sum(u.cached_tokens for u in usages)  # part of the tokens in, billed at the cache's rate
        lines.append(
            f"model calls: {sum(u.prompt_tokens for u in usages)} tokens in{f' ({cached} cached)' if cached else ''}, "
            f"{sum(u.completion_tokens for u in usages)} out, {spent}"
        )
    if stop_reason:
        lines.append(f"stopped: {stop_reason}")
    lines.append(f"log: {log_path}")
    if kept:
        lines.append(f"branch {branch} is at {best.commit[:10]} ({len(kept)} kept commit{'s' if len(kept) != 1 else ''} on {base_ref[:10]})")
        lines.append(f"  inspect: git log --oneline {base_ref[:10]}..{branch}   git diff {base_ref[:10]} {branch}")
        lines.append(f"  merge:   git merge {branch}")
    else:
        lines.append(f"no trial beat the baseline; branch {branch} is still at {base_ref[:10]}")
    reviews = [r for r in records if r.status == "review"]
    if reviews:
        lines.append(f"{len(reviews)} trial{'s' if len(reviews) != 1 else ''} wait for your review (autoresearch_review):")
        for r in reviews:
            lines.append(f"  trial {r.trial}: {fmt_score(r.score)} ({fmt_delta(r.delta)}) {shorten(r.description, 60)}")
            name = review_name(tag, r.trial)
            lines.append(f"    git show {name}   git cherry-pick {name}")
    lines.append(f"  any trial's change: git show {trial_ref_pattern(tag)}")
    if rescored is not None and rescored.agreed is False:
        lines.append(f"WARNING: review branch {branch} before you merge it: its final best did not reproduce outside the run (see above)")
    return [clean(line) for line in lines]


def standing(history: History, goal: str) -> str:
    """Where the run ended against its baseline: "best S (trial n, x% better)" when the branch
    tip holds the best score kept; else the tip and the best kept, each named (a simpler change,
    as good within the noise, may have replaced a better score)."""
    baseline, tip, top = history.baseline, history.best, history.best_kept(goal)
    assert baseline.score is not None and tip.score is not None

    def versus(r: TrialRecord) -> str:
        if r.trial == baseline.trial:
            return "the baseline"
        assert r.score is not None and baseline.score is not None
        words = change_words(r.score, baseline.score, goal)
        return f"trial {r.trial}" + ("" if words == "no change" else f", {words}")

    if top.trial == tip.trial:
        return f"best {fmt_score(tip.score)} ({versus(tip)})"
    return f"{fmt_score(tip.score)} on the branch ({versus(tip)}); best kept {fmt_score(top.score)} ({versus(top)})"


def rescore_lines(rescore: Rescore | None, metric: str, log_path: str) -> list[str]:
    """What the re-score of the final best in a fresh clone found: one short line when it
    reproduced, a warning (with the reason and its log) when it did not or could not run."""
    if rescore is None:
        return []
    where = "in a fresh clone outside the run" + (" (sandboxed)" if rescore.sandbox else "")
    log = f"{os.path.dirname(log_path)}/{rescore.log}" if rescore.log else "no log"
    if rescore.outcome == Reproduction.REPRODUCED:
        return [f"re-score of the best (trial {rescore.trial}) {where}: {metric} {fmt_score(rescore.score)}, reproduced"]
    if rescore.outcome == Reproduction.NOT_RUN:
        return [f"WARNING: the final best (trial {rescore.trial}) could not be re-scored {where}: {rescore.reason}"]
    what = f"scored {fmt_score(rescore.score)}, recorded {fmt_score(rescore.recorded)}" if rescore.outcome == Reproduction.DIFFERS else "failed"
    return [
        f"WARNING: the final best did not reproduce: trial {rescore.trial} {what} {where}: {rescore.reason}",
        f"  a candidate can behave differently when it can tell it is being evaluated; log: {log}",
    ]


def holdout_lines(
    holdout: dict[str, dict[str, float]],
    goals: dict[str, str],
    goal: str,
    baseline: TrialRecord,
    best: TrialRecord,
    best_trial: int | None,
) -> list[str]:
    """The holdout scores at the baseline and at the final best, and a warning when the
    trial metric improved but the holdout did not (the kept changes may overfit)."""
    if "baseline" not in holdout:
        return []
    before, after = holdout["baseline"], holdout.get("best", {})
    lines = []
    worse = []
    for nodeid, score in before.items():
        if nodeid in after and best_trial is not None:
            lines.append(f"holdout {nodeid}: baseline {fmt_score(score)} -> {fmt_score(after[nodeid])} at the best (trial {best_trial})")
            if improvement(after[nodeid], score, goals.get(nodeid, goal)) <= 0:
                worse.append(nodeid)
        else:
            lines.append(f"holdout {nodeid}: baseline {fmt_score(score)}")
    improved = best.score is not None and baseline.score is not None and improvement(best.score, baseline.score, goal) > 0
    if improved and worse:
        lines.append(
            "WARNING: the trial metric improved but the holdout did not ("
            + ", ".join(worse)
            + "): the kept changes may overfit the data the trials see"
        )
    return [clean(line) for line in lines]
