"""The verdict: the one place a trial's status is chosen.

From a candidate's runs, the best it is judged against, the metric bounds and the settings, to
a status and its reason: :func:`assess` is called after each run of a candidate and answers
either the run to make next (a confirmation run, under noise) or the verdict. The statuses
chosen without a judged run live here too (:func:`invalid`, :func:`interrupted`,
:func:`refused`, :func:`parked`), and so does the keep rule, :func:`decide`, which the built-in
``pytest_autoresearch_decide`` wraps (a plugin that answers the hook replaces it).

The keep rule, asked only about candidates that passed every test, stayed within every metric
bound and recorded a primary score (the mean of their runs when the evaluator is noisy):

- A deterministic evaluator (identical baseline runs): keep a gain larger than
  ``autoresearch_min_delta`` (any gain, by default).
- A noisy one: keep a gain of the mean larger than ``max(min_delta, k * spread)``.
- Simplicity: a score equal within that rule (never worse than the best by more than it) is
  kept when the candidate has fewer surface lines than the best, and discarded otherwise.

The window is the noise known before the candidate ran (the baseline's runs and earlier
trials' repeated runs): its own runs count for the trials after it, never for itself, so a
candidate that scatters can neither widen the window that judges it nor narrow it.

Pure functions over records: the loop and ``bench/noise.py`` decide with the same code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence

from .bounds import broken_bound
from .columns import MetricColumns
from .noise import Noise, NoiseRule, mean, stdev
from .records import Alarm, MetricSpec, Rescore, Reproduction, RunResult, Status, TrialRecord, Usage, improvement
from .text import crash_line, one_line


@dataclasses.dataclass(frozen=True)
class Decision:
    """The keep rule's answer for a candidate that passed everything else."""

    keep: bool
    reason: str = ""


def decide(rule: NoiseRule, noise: Noise, metric: MetricSpec, candidate: TrialRecord, best: TrialRecord) -> Decision:
    """The built-in keep rule (see the module's docstring); ``noise`` is what the run knew
    before the candidate ran, and every reason says what the candidate would have needed."""
    assert candidate.score is not None and best.score is not None
    gain = improvement(candidate.score, best.score, metric.goal)
    noisy = noise.observed and not noise.deterministic
    threshold = rule.threshold(noise) if noisy else rule.min_delta
    fewer = -(candidate.lines or 0)
    score, than = f"{metric.name} {candidate.score:.6g}", f"the best {best.score:.6g}"
    if noisy and candidate.runs < 2:
        return Decision(False, f"{score} on one run does not look better than {than}; not confirmed")
    if gain > threshold:
        return Decision(True)
    if gain >= -threshold and fewer > 0:
        if threshold == 0:
            return Decision(True, f"{score} is equal to {than}, with {fewer} fewer lines")
        within = f"the noise ({threshold:.3g})" if noisy else f"autoresearch_min_delta ({threshold:.3g})"
        return Decision(True, f"{score} is as good as {than} within {within}, with {fewer} fewer lines")
    if gain > 0:
        target = best.score - threshold if metric.goal == "min" else best.score + threshold
        needs = f"needs {'<' if metric.goal == 'min' else '>'} {target:.6g}"
        if noisy:
            why = f"not beyond the noise ({needs}: max(min_delta {rule.min_delta:g}, {rule.k:g} x the noise spread {noise.spread:.3g}))"
        else:
            why = f"not by more than autoresearch_min_delta {rule.min_delta:g} ({needs})"
        return Decision(False, f"{score} is better than {than} but {why}")
    word = "equal to" if gain == 0 else "worse than"
    tail = ""
    if gain >= -threshold and (candidate.lines or 0) > 0:
        tail = f"; an equal score needs fewer lines, not {candidate.lines} more"
    elif gain < -threshold and fewer > 0:
        tail = f"; a simpler change is kept only within {threshold:.3g} of it" if threshold else "; a simpler change needs an equal score"
    return Decision(False, f"{score} is {word} {than}{tail}")


def primary_score(metric: MetricSpec, result: RunResult) -> float | None:
    return next((f.score for f in result.fitness if f.nodeid == metric.nodeid), None)


def broken_bounds(results: Sequence[RunResult]) -> list[str]:
    """The metric bounds the mean of these runs leaves, described."""
    values: dict[tuple[str, str], list[float]] = {}
    bounds: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    for result in results:
        for fit in result.fitness:
            for name, bound in fit.bounds.items():
                if name in fit.metrics:
                    values.setdefault((fit.name, name), []).append(fit.metrics[name])
                    bounds[(fit.name, name)] = bound
    broken = []
    for key, vals in values.items():
        if why := broken_bound(mean(vals), bounds[key]):
            broken.append(f"{key[1]} {mean(vals):.6g} is {why}")
    return broken


@dataclasses.dataclass(frozen=True)
class Judging:
    """What judging one candidate needs besides its runs."""

    trial: int
    description: str
    metric: MetricSpec
    best: TrialRecord  # the best it started from (or was re-applied on): its parent
    lines: int  # surface lines it adds (negative: removes) against its parent
    rule: NoiseRule
    noise: Noise  # what the run knew of the noise before the candidate ran: its own runs never count for it
    columns: MetricColumns
    timeout: float | None  # the trial deadline in force
    memory_mb: float | None
    keep_rule: Callable[[TrialRecord, Noise], Decision]  # the decide hook (a plugin's, or :func:`decide`)


@dataclasses.dataclass
class Run:
    """One run of a candidate as the verdict sees it: its result, and what the integrity
    checks found it changed that it must not."""

    result: RunResult
    tampered: Sequence[str] = ()


@dataclasses.dataclass
class Assessment:
    """:func:`assess`'s answer: the verdict (``record``), or the run to make next (``attempt``)."""

    record: TrialRecord | None = None
    attempt: int | None = None
    failure: str | None = None  # what the agent is told of this trial in the next prompt
    noise: Noise | None = None  # the run's noise once the candidate's repeated runs count


def assess(j: Judging, runs: Sequence[Run]) -> Assessment:
    """The verdict on a candidate after ``runs`` (its first run first), or the confirmation run
    it needs next: under noise, a first run that looks promising is repeated before it is judged."""
    first = runs[0]
    record, failure = _judge_run(j, first)
    record.lines = j.lines
    if record.status != Status.DISCARD:  # tamper, timeout, crash: judged already
        return Assessment(record, failure=failure)
    assert record.score is not None and j.best.score is not None
    gain = improvement(record.score, j.best.score, j.metric.goal)
    noise = j.noise
    if j.rule.worth_confirming(gain, j.noise, fewer_lines=j.lines < 0):
        for attempt, again in enumerate(runs[1:], start=2):
            check, why = _judge_run(j, again)
            record.seconds += again.result.seconds
            if check.status != Status.DISCARD:
                check.reason = one_line(f"run {attempt} of {1 + j.rule.confirm_runs}: {check.reason}", 300)
                check.seconds, check.lines = record.seconds, j.lines
                return Assessment(check, failure=why)
        if len(runs) < 1 + j.rule.confirm_runs:
            return Assessment(attempt=len(runs) + 1)
        scores = [s for run in runs if (s := primary_score(j.metric, run.result)) is not None]
        record.score, record.runs, record.spread = mean(scores), len(scores), stdev(scores)
        noise = j.noise.plus(record.runs, record.spread)  # for the trials after it, not for itself
        record.delta = record.score - j.best.score
        record.metrics = j.columns.means([run.result for run in runs])
    broken = broken_bounds([run.result for run in runs])
    if broken:
        record.reason = one_line("breaks a bound: " + "; ".join(broken), 300)
        return Assessment(record, failure=f"trial {j.trial} improved nothing it may: {record.reason}", noise=noise)
    decision = j.keep_rule(record, j.noise)
    record.status = Status.KEEP if decision.keep else Status.DISCARD
    record.reason = one_line(decision.reason)
    return Assessment(record, noise=noise)


def _judge_run(j: Judging, run: Run) -> tuple[TrialRecord, str | None]:
    """The verdict on one run, short of the keep rule: DISCARD (for now) when the run passed
    everything, else tamper, timeout or crash with the reason; and the failure for the agent."""
    result = run.result
    record = TrialRecord(j.trial, Status.CRASH, j.description, parent=j.best.commit, parent_trial=j.best.trial, seconds=result.seconds)
    primary = next((f for f in result.fitness if f.nodeid == j.metric.nodeid), None)
    if run.tampered:
        record.status = Status.TAMPER
        record.reason = one_line("changed what a trial must not: " + ", ".join(run.tampered), 300)
        return record, f"trial {j.trial} (tamper): it changed files that must stay frozen: {', '.join(run.tampered)}"
    if result.timed_out:
        record.status = Status.TIMEOUT
        hung = next((t.nodeid for t in result.tests if t.timed_out), None)
        record.reason = f"{hung} exceeded its time limit" if hung else f"killed at the {j.timeout:g}s trial deadline"
    elif result.memory_exceeded:
        record.reason = f"killed: its processes used more than {j.memory_mb:g} MiB (autoresearch_memory_mb)"
    elif not result.finished:
        record.reason = f"the pytest session did not finish (exit code {result.exit_code})"
    elif result.failed_tests:
        failed = result.failed_tests[0]
        record.reason = one_line(f"{failed.nodeid} {failed.outcome}: {crash_line(failed.failure)}", 200)
    elif primary is None or primary.score is None:
        record.reason = f"the primary fitness test {j.metric.nodeid} recorded no score"
    else:
        record.status = Status.DISCARD  # passed everything: the keep rule decides
    failure = f"trial {j.trial} ({record.status}): {record.reason}\n{result.failure_text()}" if record.reason else None
    if primary is not None and primary.score is not None and record.status != Status.TIMEOUT:
        record.score = primary.score
        record.delta = primary.score - j.best.score if j.best.score is not None else None
    record.metrics = j.columns.means([result])
    return record, failure


# -- statuses chosen without a judged run ------------------------------------------------


def baseline(trial: int, commit: str, scores: Sequence[float], results: Sequence[RunResult], columns: MetricColumns) -> TrialRecord:
    """The start commit's row: the mean of its runs (the first run of a new run is trial 0)."""
    return TrialRecord(
        trial=trial,
        status=Status.BASELINE,
        description="baseline" if trial == 0 else "baseline again: the branch changed outside the loop",
        commit=commit,
        score=mean(scores),
        seconds=sum(r.seconds for r in results),
        metrics=columns.means(results),
        runs=len(scores),
        spread=stdev(scores) if len(scores) > 1 else None,
    )


def invalid(trial: int, description: str, best: TrialRecord, reason: str, usage: Usage | None) -> tuple[TrialRecord, str]:
    """A proposal refused before anything ran, and what the agent is told of it."""
    record = TrialRecord(trial, Status.INVALID, description, parent=best.commit, parent_trial=best.trial, reason=one_line(reason), usage=usage)
    return record, f"trial {trial} was rejected before running: {reason}"


def interrupted(trial: int, description: str, parent: TrialRecord, seconds: float, reason: str, usage: Usage | None, lines: int) -> TrialRecord:
    """A trial in flight when the run stopped (Ctrl-C, SIGTERM, an error elsewhere)."""
    return TrialRecord(
        trial, Status.CRASH, description, parent=parent.commit, parent_trial=parent.trial, seconds=seconds, reason=reason, usage=usage, lines=lines
    )


def refused(record: TrialRecord, why: str) -> None:
    """A would-be keep that cannot be re-applied on the best that moved while it ran."""
    record.status, record.reason = Status.DISCARD, one_line(why, 300)


def reapplied(record: TrialRecord, bests: Sequence[int]) -> None:
    """Say in the reason which kept trials the candidate was re-applied on."""
    if bests:
        again = f"re-applied on trial {', '.join(map(str, bests))}, kept while it ran"
        record.reason = one_line(f"{record.reason}; {again}" if record.reason else again, 300)


def new_alarms(results: Sequence[RunResult], known: Collection[tuple[str, str, str]]) -> list[Alarm]:
    """The alarms of a candidate's runs that are its own doing: those the baseline's runs did
    not raise too (the same event from the same line of code is the user's original code)."""
    found: dict[tuple[str, str, str], Alarm] = {}
    for result in results:
        for alarm in result.alarms:
            if alarm.key not in known:
                found.setdefault(alarm.key, alarm)
    return list(found.values())


def parked(record: TrialRecord, review_paths: Sequence[str], reaches: Sequence[str] = (), alarms: Sequence[Alarm] = ()) -> None:
    """A keep that touches files a person reviews, or whose code reaches for what a fair
    candidate does not (statically in its added lines, :mod:`pytest_autoresearch.proposals.reach`,
    or at run time, seen by the trial's audit hook: ``alarms``), waits for a person instead of
    moving the branch. An attempt counts even where it was blocked (by the sandbox, say): the
    kept commit is code the user will run later without one."""
    if record.status != Status.KEEP or not (review_paths or reaches or alarms):
        return
    why = []
    if review_paths:
        why.append("touches " + ", ".join(sorted(review_paths)) + " (autoresearch_review)")
    if reaches:
        why.append("its code reaches for " + "; ".join(reaches))
    if alarms:
        shown = [alarm.describe() for alarm in alarms[:3]]
        why.append("; ".join(shown) + (f" (and {len(alarms) - 3} more)" if len(alarms) > 3 else ""))
    record.status = Status.REVIEW
    record.reason = one_line("; ".join(why), 300)


# -- the re-score of the final best ----------------------------------------------------------

#: Scores closer than this (relative) are one number, whatever order the arithmetic ran in.
SAME_NUMBER = 1e-6


def reproduction_threshold(rule: NoiseRule, noise: Noise, recorded: float, again: float) -> float:
    """The largest difference between a recorded score and the same commit scored again that
    is still the same score: the keep rule's threshold (``max(min_delta, k * spread)`` under
    noise, ``min_delta`` otherwise), and never less than :data:`SAME_NUMBER` of the score."""
    noisy = noise.observed and not noise.deterministic
    return max(rule.threshold(noise) if noisy else rule.min_delta, SAME_NUMBER * max(abs(recorded), abs(again)))


def rescored(
    draft: Rescore, metric: MetricSpec, rule: NoiseRule, noise: Noise, results: Sequence[RunResult],
    *, timeout: float | None, memory_mb: float | None, tampered: Sequence[str] = (),
) -> Rescore | None:
    """The verdict on the final best's re-score after ``results`` (its runs so far), or None
    when it needs another run: under noise a first run beyond the rule is repeated
    ``confirm_runs`` times and the mean judged, as a candidate's first run is; where the
    evaluator looked exact (or ran once), too, at least twice, and when those runs differ among
    themselves their own spread widens the rule: a timing that merely varies is not a cheat."""
    if tampered:
        return dataclasses.replace(draft, outcome=Reproduction.FAILED, reason=one_line("it changed what a trial must not: " + ", ".join(tampered), 300))
    for result in results:
        if why := _rescore_failure(metric, result, timeout, memory_mb):
            scores = [s for r in results if (s := primary_score(metric, r)) is not None]
            return dataclasses.replace(draft, outcome=Reproduction.FAILED, reason=one_line(why, 300), scores=scores)
    broken = broken_bounds(results)
    scores = [s for r in results if (s := primary_score(metric, r)) is not None]
    again, recorded = mean(scores), draft.recorded
    if recorded is None:  # a best without a score: nothing to compare, but every test passed
        return dataclasses.replace(draft, outcome=Reproduction.REPRODUCED, scores=scores)
    threshold = reproduction_threshold(rule, noise, recorded, again)
    noisy = noise.observed and not noise.deterministic
    if not noisy and len(scores) > 1:  # the evaluator looked exact; its runs here say otherwise
        threshold = max(threshold, rule.k * stdev(scores))
    out = dataclasses.replace(draft, scores=scores, threshold=threshold)
    if broken:
        out.outcome, out.reason = Reproduction.FAILED, one_line("breaks a bound: " + "; ".join(broken), 300)
        return out
    if abs(again - recorded) <= threshold:
        out.outcome = Reproduction.REPRODUCED
        return out
    if len(results) < 1 + (rule.confirm_runs if noisy else max(rule.confirm_runs, 2)):
        return None
    runs = f"the mean of {len(scores)} runs, " if len(scores) > 1 else ""
    out.outcome = Reproduction.DIFFERS
    out.reason = one_line(
        f"{metric.name} {again:.6g} ({runs}goal {metric.goal}) against {recorded:.6g} recorded: a difference of "
        f"{abs(again - recorded):.3g}, more than the {threshold:.3g} the noise rule allows", 300,
    )
    return out


def _rescore_failure(metric: MetricSpec, result: RunResult, timeout: float | None, memory_mb: float | None) -> str | None:
    if result.killed:
        return f"killed at the {timeout:g}s deadline" if timeout is not None else "killed"
    if result.memory_exceeded:
        return f"killed: its processes used more than {memory_mb:g} MiB (autoresearch_memory_mb)"
    if result.failed_tests:
        failed = result.failed_tests[0]
        return f"{failed.nodeid} {failed.outcome}: {crash_line(failed.failure)}"
    if not result.finished:
        return f"the pytest session did not finish (exit code {result.exit_code})"
    if primary_score(metric, result) is None:
        return f"the primary fitness test {metric.nodeid} recorded no score"
    return None
