"""``SUMMARY.md``: the pull-request description of a finalized run, and the gains it quotes.

Rendering is apart from :mod:`.finalize`, which builds the review branch, because it is a
different job read for different reasons: finalize is git plumbing and the checks that the
log and the branch agree; this is wording and numbers, pure functions over a :class:`RunView`
(what finalize read of the run) and its :class:`Step` list (one per review commit), which can
be rendered and tested without a repository. Finalize imports from here, never the reverse;
the view types live here so that neither module needs the other's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..core.history import History, change_words
from ..core.records import Reproduction, TrialRecord, improvement
from ..names import RUN_DIR_NAME, branch, finalized_branch, review_ref, trial_ref_pattern
from ..store.runfolder import RunMeta
from .terminal import fmt_delta, fmt_score

SUMMARY_NAME = "SUMMARY.md"


@dataclasses.dataclass(frozen=True)
class Step:
    """One commit of the review branch: a kept trial, or hand-made changes the loop re-baselined.

    ``before`` is the best the trial was judged against (the kept row before it), so the
    message can say "from X to Y" with the numbers of the log.
    """

    record: TrialRecord
    before: TrialRecord

    @property
    def outside(self) -> bool:
        """Changes made on the run's branch by hand (the loop scored them as a new baseline)."""
        return self.record.status == "baseline"


@dataclasses.dataclass(frozen=True)
class RunView:
    """What finalize reads of a run: run.json and results.tsv, checked against the branch."""

    tag: str
    meta: RunMeta
    records: list[TrialRecord]
    start: str  # run.json head
    tip: str  # autoresearch/<tag>

    @property
    def metric(self) -> str:
        return self.meta.metric.name

    @property
    def nodeid(self) -> str:
        return self.meta.metric.nodeid

    @property
    def goal(self) -> str:
        return self.meta.metric.goal

    @property
    def base_ref(self) -> str:
        return self.meta.base_ref or self.start


def change(step: Step, goal: str) -> str:
    """The gain of a step as "delta, N% better", or "delta, N% worse" with why it was kept
    (a simpler change, as good within the noise), or why an equal score was kept."""
    before, after = step.before.score, step.record.score
    if before is None or after is None:
        return "no score"
    delta = fmt_delta(after - before)
    gain = improvement(after, before, goal)
    if gain > 0:
        return f"{delta}, {change_words(after, before, goal)}"
    if gain < 0:
        why = f", kept: {step.record.reason}" if step.record.reason and step.record.status == "keep" else ""
        return f"{delta}, {change_words(after, before, goal)}{why}"
    return f"{delta}, {step.record.reason}" if step.record.reason else f"{delta}, as good"


# -- SUMMARY.md ------------------------------------------------------------------------------


def title(run: RunView, steps: Sequence[Step]) -> str:
    """One line for the pull request's title: the run, the metric, baseline -> best."""
    baseline, best = run.records[0], steps[-1].record
    gain = f"{fmt_score(baseline.score)} -> {fmt_score(best.score)}"
    if baseline.score is not None and best.score is not None:
        gain += f" ({change_words(best.score, baseline.score, run.goal)})"
    return f"autoresearch run {run.tag}: {run.metric} {gain}"


def render_summary(run: RunView, steps: Sequence[Step], commits: Sequence[str], diffstat: str) -> str:
    """The pull-request description of the review branch, in Markdown."""
    baseline, best = run.records[0], steps[-1].record
    parts = [
        f"# {title(run, steps)}",
        _introduction(run, steps),
        _metric_section(run, baseline, best),
        *_rescore_section(run, best),
        _kept_section(run, steps, commits),
        *_holdout_section(run, baseline, best),
        *_review_section(run),
        "## The whole change\n\n```\n" + diffstat + "\n```",
        _take_section(run, title(run, steps)),
    ]
    return "\n\n".join(parts) + "\n"


def _introduction(run: RunView, steps: Sequence[Step]) -> str:
    kept = sum(1 for s in steps if not s.outside)
    outside = len(steps) - kept
    where = f"`{run.start[:10]}`" + (f" (`{run.base_ref}`)" if run.base_ref != run.start else "")
    text = (
        f"Branch `{finalized_branch(run.tag)}` holds the {kept} change{'s' if kept != 1 else ''} that the autoresearch loop "
        f"kept in run `{run.tag}`, one commit per kept trial, on top of {where}, where the run started. "
        "Each commit has exactly the tree the loop evaluated and kept: every test passed on it."
    )
    if outside:
        text += (
            f" {outside} more commit{'s' if outside != 1 else ''} hold{'s' if outside == 1 else ''} changes made on "
            f"`{branch(run.tag)}` outside the loop, which the loop scored as a new baseline when the run resumed."
        )
    return text


def _metric_section(run: RunView, baseline: TrialRecord, best: TrialRecord) -> str:
    goal = "min, lower is better" if run.goal == "min" else "max, higher is better"
    lines = [
        "## Result",
        "",
        f"- metric: `{run.metric}` (`{run.nodeid}`), goal {goal}",
        f"- baseline {fmt_score(baseline.score)} -> best {fmt_score(best.score)} (trial {best.trial}): "
        + change(Step(best, baseline), run.goal),
        f"- {_tally(run.records)}",
    ]
    top = History(run.records).best_kept(run.goal)
    if top.trial != best.trial and top.commit != best.commit:
        lines[3] = (
            f"- baseline {fmt_score(baseline.score)} -> {fmt_score(best.score)} at the branch tip (trial {best.trial}): "
            + change(Step(dataclasses.replace(best, reason=""), baseline), run.goal)
        )
        at = "the baseline" if top.trial == baseline.trial else f"trial {top.trial}: " + change(Step(top, baseline), run.goal)
        lines.insert(4, f"- best score kept {fmt_score(top.score)} ({at}); later changes with fewer lines, as good within the noise, replaced it")
    return "\n".join(lines)


def _rescore_section(run: RunView, best: TrialRecord) -> list[str]:
    """What the re-score of the final best in a fresh clone outside the run found; a warning
    first thing a reviewer reads when it did not reproduce."""
    rescore = run.meta.rescore
    if rescore is None or rescore.commit != best.commit:
        return []
    where = "in a fresh clone outside the run" + (", sandboxed" if rescore.sandbox else "")
    if rescore.outcome == Reproduction.REPRODUCED:
        return [f"The final best (trial {rescore.trial}) was scored again {where}: {fmt_score(rescore.score)}, reproduced."]
    if rescore.outcome == Reproduction.NOT_RUN:
        return [f"**Warning:** the final best (trial {rescore.trial}) could not be scored again {where}: {_cell(rescore.reason)}."]
    what = f"scored {fmt_score(rescore.score)} against {fmt_score(rescore.recorded)} recorded" if rescore.outcome == Reproduction.DIFFERS else "failed"
    return [
        f"**Warning: the final best did not reproduce.** Trial {rescore.trial} {what} {where}: {_cell(rescore.reason)}. "
        "A candidate can behave differently when it can tell it is being evaluated: read the change before you merge it "
        f"(log: `{RUN_DIR_NAME}/{run.tag}/{rescore.log}`)."
    ]


def _tally(records: Sequence[TrialRecord]) -> str:
    """How many trials ran and how each ended; kept, discarded and crashed are always named."""
    trials = [r for r in records if r.status != "baseline"]
    count = {status: sum(1 for r in trials if r.status == status) for status in {r.status for r in trials}}
    words = [("keep", "kept"), ("discard", "discarded"), ("crash", "crashed")]
    others = [("timeout", "timed out"), ("invalid", "invalid"), ("tamper", "tampered"), ("review", "parked for review")]
    parts = [f"{count.get(s, 0)} {w}" for s, w in words] + [f"{count[s]} {w}" for s, w in others if count.get(s)]
    known = {s for s, _ in words + others}
    parts += [f"{n} {s}" for s, n in sorted(count.items()) if s not in known]
    return f"{len(trials)} trial{'s' if len(trials) != 1 else ''}: " + ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _kept_section(run: RunView, steps: Sequence[Step], commits: Sequence[str]) -> str:
    rows = ["| trial | score | delta | description | commit |", "|---:|---:|---:|---|---|"]
    for step, commit in zip(steps, commits):
        r = step.record
        what = "changes made on the branch outside the loop (re-baselined)" if step.outside else r.description
        delta = fmt_delta(r.score - step.before.score) if r.score is not None and step.before.score is not None else ""
        rows.append(f"| {r.trial} | {fmt_score(r.score)} | {delta} | {_cell(what)} | `{commit[:10]}` |")
    note = (
        f"Delta is against the best before the trial. The loop's own commit of any trial, kept or not: "
        f"`git show {trial_ref_pattern(run.tag)}`; the full log: `{RUN_DIR_NAME}/{run.tag}/results.tsv`."
    )
    return "## Kept trials\n\n" + "\n".join(rows) + "\n\n" + note


def _holdout_section(run: RunView, baseline: TrialRecord, best: TrialRecord) -> list[str]:
    """The holdout scores at the baseline and at the best, with a warning when the trial
    metric improved and a holdout did not: the kept changes may fit the trials' data only."""
    holdout = run.meta.holdout
    if not holdout.get("baseline"):
        return []
    after = holdout.get("best") or {}
    at = run.meta.holdout_best_trial
    goals = run.meta.holdout_goals
    rows = [f"| holdout test | baseline | best (trial {at}) | change |", "|---|---:|---:|---|"]
    worse = []
    for nodeid, score in holdout["baseline"].items():
        if nodeid in after and at is not None:
            step = Step(dataclasses.replace(best, score=after[nodeid], reason=""), dataclasses.replace(baseline, score=score))
            rows.append(f"| `{nodeid}` | {fmt_score(score)} | {fmt_score(after[nodeid])} | {change(step, goals.get(nodeid, run.goal))} |")
            if improvement(after[nodeid], score, goals.get(nodeid, run.goal)) <= 0:
                worse.append(nodeid)
        else:
            rows.append(f"| `{nodeid}` | {fmt_score(score)} | not scored | |")
    parts = ["## Holdout\n\nHoldout tests never run in trials; they score the baseline and the final best.\n\n" + "\n".join(rows)]
    if at is not None and at != best.trial:
        parts.append(f"The holdout was last scored at trial {at}; the best is now trial {best.trial}.")
    improved = best.score is not None and baseline.score is not None and improvement(best.score, baseline.score, run.goal) > 0
    if improved and worse:
        parts.append(
            "**Warning:** the trial metric improved but the holdout did not ("
            + ", ".join(f"`{n}`" for n in worse)
            + "): the kept changes may overfit the data the trials see."
        )
    return ["\n\n".join(parts)]


def _review_section(run: RunView) -> list[str]:
    parked = [r for r in run.records if r.status == "review"]
    if not parked:
        return []
    lines = [
        "## Parked for review",
        "",
        "These trials would have been kept but touch files under `autoresearch_review`; they are not in this branch.",
        "",
    ]
    for r in parked:
        ref = review_ref(run.tag, r.trial)
        lines.append(
            f"- trial {r.trial}: {fmt_score(r.score)} ({fmt_delta(r.delta)}), {_cell(r.description)}. "
            f"Inspect: `git show {ref}`; take it: `git cherry-pick {ref}`"
        )
    return ["\n".join(lines)]


def _take_section(run: RunView, heading: str) -> str:
    review = finalized_branch(run.tag)
    into = f"`{run.base_ref}`" if run.base_ref != run.start else "your branch"
    summary = f"{RUN_DIR_NAME}/{run.tag}/{SUMMARY_NAME}"
    quoted = heading.replace('"', "'").replace("`", "'").replace("$", "")
    return (
        "## How to take it\n\n"
        f"Read the commits, then merge the branch into {into}:\n\n"
        f"```sh\ngit log --reverse -p {run.start[:10]}..{review}\ngit merge {review}\n```\n\n"
        "or push it and open a pull request from it, with this file as its description:\n\n"
        f'```sh\ngit push origin {review}\ngh pr create --head {review} --title "{quoted}" --body-file {summary}\n```'
    )
