"""The prompt every language-model agent gets: policy, task, files, history, last failure.

One renderer serves the litellm agent and external coding-agent commands alike, so a user
who reads one trial's prompt file knows what any agent saw. The history can be shortened
(older trials summarised) so that a prompt fits a model's context window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..core.history import History, change_words
from ..core.records import TrialRecord
from .base import ProposalContext

FAILURE_CHARS = 3000
REASON_CHARS = 160

_FENCE_LANG = {".py": "python", ".sql": "sql", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
               ".md": "markdown", ".sh": "bash", ".cfg": "ini", ".ini": "ini", ".js": "javascript", ".ts": "typescript"}


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A trial's prompt in the order that lets a provider cache it: the system part (policy and
    answer format) and ``stable`` (the files and read-only context, unchanged until a keep) come
    first and are the same from trial to trial; ``recent`` (the task, the log, the last failure)
    changes every trial and comes last."""

    system: str
    stable: str
    recent: str

    @property
    def user(self) -> str:
        """The user message as one text: the stable part first."""
        return f"{self.stable}\n\n{self.recent}" if self.stable else self.recent

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    def text(self) -> str:
        """Both parts as one document, for agents that take a single prompt."""
        return f"{self.system}\n\n{self.user}"


OUTLINED = (
    "Too large to show whole here: {files}. Each is shown as an outline (its classes, functions and sections "
    "with their line ranges) and excerpts of its current text after this task. SEARCH text for these files "
    "must be copied exactly from the lines of an excerpt (never from the outline), and never answer with a "
    "whole file for them; an edit elsewhere in them needs a SEARCH you know is exact, so prefer the parts shown."
)
SIMPLICITY = (
    "Simpler is better: a small gain that adds ugly complexity is not worth it, and removing code for an equal "
    "score is a win."
)


def _terms(context: ProposalContext) -> list[str]:
    """What decides a keep, in numbers: the noise, the gain needed, the time budget, the
    bounds a candidate must stay within, and the simplicity rule."""
    lines = []
    if context.keep_gain is not None:
        if context.noise_spread:
            runs = f"; a promising change is run {1 + context.confirm_runs} times and judged on its mean" if context.confirm_runs else ""
            lines.append(
                f"Noise: one run of the evaluator varies by about {context.noise_spread:.3g} (standard deviation), so the "
                f"primary metric must improve by more than {context.keep_gain:.3g} to be kept{runs}."
            )
        else:
            known = "not measured (one baseline run)" if context.noise_spread is None else "none: the evaluator is deterministic"
            lines.append(f"Noise: {known}; the primary metric must improve by more than {context.keep_gain:.3g} to be kept.")
    if context.timeout is not None:
        lines.append(f"Time budget: each trial's test run is killed after {context.timeout:g} seconds (a crash, never kept).")
    else:
        lines.append("Time budget: a trial's test run has no time limit.")
    if context.bounds:
        gates = []
        for name, (low, high) in sorted(context.bounds.items()):
            now = context.best.metrics.get(name)
            rule = " and ".join(part for part in (f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else "") if part)
            gates.append(f"{name} {rule}" + (f" (now {_fmt(now)})" if now is not None else ""))
        lines.append("Gated metrics (a change that leaves a bound is never kept): " + "; ".join(gates) + ".")
    lines.append(SIMPLICITY)
    return lines


def _outlined(path: str, outline: str) -> str:
    return f"### {path}\nOutline (line ranges are the file's own; its text is in the excerpts below):\n```text\n{outline.rstrip()}\n```"


def _excerpt(path: str, first: int, last: int, text: str) -> str:
    lines = text.splitlines(keepends=True)[first - 1 : last]
    return _fence(path, "".join(lines)).replace(f"### {path}\n", f"### {path} lines {first}-{last} (excerpt)\n", 1)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _fence(path: str, text: str) -> str:
    lang = _FENCE_LANG.get("." + path.rsplit(".", 1)[-1] if "." in path else "", "")
    fence = "````" if "```" in text else "```"
    return f"### {path}\n{fence}{lang}\n{text}{'' if text.endswith(chr(10)) else chr(10)}{fence}"


def _row(r: TrialRecord) -> str:
    reason = r.reason if len(r.reason) <= REASON_CHARS else r.reason[: REASON_CHARS - 3] + "..."
    delta = f"{r.delta:+.4g}" if r.delta is not None else ""
    return f"| {r.trial} | {r.status} | {_fmt(r.score)} | {delta} | {r.description} | {reason} |"


def history_section(history: Sequence[TrialRecord], limit: int | None) -> str:
    """The log as a table; with ``limit``, only the newest ``limit`` trials in full and a
    summary of the older ones (their counts and the kept changes, which made the best)."""
    if not history:
        return "## Trials so far\n\nNone yet."
    baseline, trials = history[0], list(history[1:])
    shown = trials if limit is None or len(trials) <= limit else trials[len(trials) - limit :]
    older = trials[: len(trials) - len(shown)]
    lines = ["## Trials so far (newest last)", ""]
    if older:
        counts: dict[str, int] = {}
        for r in older:
            counts[r.status] = counts.get(r.status, 0) + 1
        tally = ", ".join(f"{n} {s}" for s, n in counts.items())
        lines.append(f"Trials {older[0].trial}-{older[-1].trial} are summarised: {tally}.")
        kept = [r for r in older if r.status == "keep"][-20:]
        if kept:
            lines.append("Kept changes among them: " + "; ".join(f"trial {r.trial}: {r.description} ({_fmt(r.score)})" for r in kept) + ".")
        lines.append("")
    lines += ["| trial | status | score | delta | description | reason |", "|---|---|---|---|---|---|", _row(baseline)]
    lines += [_row(r) for r in shown]
    return "\n".join(lines)


def _versus(record: TrialRecord, baseline: TrialRecord, goal: str) -> str:
    if record.trial == baseline.trial or record.score is None or baseline.score is None:
        return ""
    words = change_words(record.score, baseline.score, goal)
    return " (as good as the baseline)" if words == "no change" else f" ({words} than the baseline)"


def _standing(context: ProposalContext) -> list[str]:
    """The baseline, the branch tip the change starts from, and the best score kept when a
    simpler change (as good within the noise) has since replaced it: never a worse score
    called the best or better."""
    metric, best, baseline = context.metric, context.best, context.baseline
    top = History(context.history).best_kept(metric.goal) if context.history else best
    if top.trial == best.trial or top.score is None:
        return [f"Baseline: {_fmt(baseline.score)}. Current best: {_fmt(best.score)} from trial {best.trial}{_versus(best, baseline, metric.goal)}."]
    kept = "the baseline" if top.trial == baseline.trial else f"trial {top.trial}{_versus(top, baseline, metric.goal)}"
    return [
        f"Baseline: {_fmt(baseline.score)}. The branch is at {_fmt(best.score)} from trial {best.trial}"
        f"{_versus(best, baseline, metric.goal)}; your change starts from it.",
        f"The best score kept: {_fmt(top.score)} from {kept}; a later change with fewer lines, as good within the "
        "noise, replaced it. Changes are judged against the branch.",
    ]


def render_prompt(
    context: ProposalContext,
    instructions: str,
    *,
    history_limit: int | None = None,
    include_context_files: bool = True,
    outlines: Mapping[str, str] | None = None,
    excerpts: Sequence[tuple[str, int, int]] = (),
    note: str | None = None,
) -> Prompt:
    """The prompt for trial ``context.trial``; ``instructions`` says how to answer.

    A file in ``outlines`` (path -> its outline) is shown as that outline instead of its text,
    and ``excerpts`` (path, first line, last line) show parts of such files exactly, after the
    task: the outline stays the same from trial to trial (it is part of the cacheable prefix),
    the excerpts change with what the trials touch. ``note`` says what had to be left out."""
    metric, best, baseline = context.metric, context.best, context.baseline
    direction = "lower is better" if metric.goal == "min" else "higher is better"
    budget = "no trial limit" if context.trials_left is None else f"{context.trials_left} trials left including this one"
    task = [
        "## Task",
        "",
        f"This is trial {context.trial} of run {context.tag} ({budget}).",
        f"The primary metric is {metric.name} ({metric.goal}: {direction}), measured by {metric.nodeid}.",
        *_standing(context),
    ]
    if best.metrics:
        task.append("Other metrics at the current best: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in best.metrics.items()) + ".")
    task += [
        "A change is kept only if every test still passes and the primary metric improves (beyond the evaluator's noise, "
        "when it has any), or, with fewer lines, stays as good within that noise.",
        *_terms(context),
        "Mutable files (the only ones you may change): " + ", ".join(sorted(context.files)) + ".",
    ]
    outlines = dict(outlines or {})
    if outlines:
        task.append(OUTLINED.format(files=", ".join(sorted(outlines))))
    if note:
        task.append(note)
    stable = []  # frozen context first: it never changes, the surface changes with each keep
    if include_context_files and context.context_files:
        stable.append(
            "## Read-only context (frozen: do not edit)\n\n"
            + "\n\n".join(_fence(p, t) for p, t in sorted(context.context_files.items()))
        )
    shown = (_outlined(p, outlines[p]) if p in outlines else _fence(p, t) for p, t in sorted(context.files.items()))
    stable.append("## Mutable files (the current best)\n\n" + "\n\n".join(shown))
    sections = ["\n".join(task)]
    if excerpts:
        sections.append(
            "## Excerpts of the outlined files (their current text, exactly)\n\n"
            + "\n\n".join(_excerpt(p, a, b, context.files[p]) for p, a, b in excerpts if p in context.files)
        )
    sections.append(history_section(context.history, history_limit))
    if context.last_failure:
        failure = context.last_failure
        if len(failure) > FAILURE_CHARS:
            failure = "...\n" + failure[-FAILURE_CHARS:]
        sections.append("## The last failed trial\n\n```\n" + failure.rstrip() + "\n```")
    sections.append(f"Propose one change for trial {context.trial}.")
    system = f"{context.program.rstrip()}\n\n## How to answer\n\n{instructions.strip()}"
    return Prompt(system=system, stable="\n\n".join(stable), recent="\n\n".join(sections) + "\n")
