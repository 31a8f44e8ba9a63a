"""``--autoresearch-finalize``: turn a run's kept trials into a branch a person can review.

The run's own branch ``autoresearch/<tag>`` carries the loop's bookkeeping: commit messages
are trailers for the machine, and a resumed run may have hand-made commits on it. A reviewer
wants something else: one commit per kept change, each saying what it did and what it gained,
on top of the commit the run started from, and a pull-request description with the numbers.
:func:`finalize` builds that as ``autoresearch-review/<tag>`` (a name that cannot clash with
the run's branch or its ``autoresearch/<tag>/...`` refs) and writes ``SUMMARY.md`` into the
run folder.

Like the loop, it never touches the user's checkout, index or HEAD: commits are made with
``git commit-tree`` (no hooks, no signing) and the branch is moved with ``update-ref``. The
commits reuse the dates of the loop's kept commits, so finalizing the same run twice gives the
same commits, and finalizing after more trials only adds commits on top: a pushed review branch
never needs a force push. A branch of that name is only ever moved when its tip is a commit a
previous finalize of this run made; anything else there is the user's, and is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import git

from ..store.gitstate import ZERO, GitStateError, Repository, trailers
from ..names import RUN_DIR_NAME
from ..core.records import TrialRecord, improvement
from .terminal import fmt_delta, fmt_score
from ..store.results_log import read_records
from ..store.runfolder import RunFolder, RunLocked

#: The trailer that marks a commit as made by finalize for a run (its value is the tag).
FINALIZE_TRAILER = "Autoresearch-Finalize"
SUMMARY_NAME = "SUMMARY.md"


class FinalizeError(Exception):
    """The run cannot be finalized; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class Finalized:
    """What :func:`finalize` made: the review branch, its commits (oldest first) and the summary."""

    branch: str
    summary_path: Path
    commits: list[str]
    text: str  # the contents of SUMMARY.md
    start: str = ""  # the commit the run started from: the review branch's base
    previous: str | None = None  # where the branch was before (None: it was created)


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
    meta: dict[str, Any]
    records: list[TrialRecord]
    start: str  # run.json head
    tip: str  # autoresearch/<tag>

    @property
    def metric(self) -> str:
        return str(self.meta["metric"]["name"])

    @property
    def nodeid(self) -> str:
        return str(self.meta["metric"]["nodeid"])

    @property
    def goal(self) -> str:
        return str(self.meta["metric"]["goal"])

    @property
    def base_ref(self) -> str:
        return str(self.meta.get("base_ref") or self.start)


def review_branch(tag: str) -> str:
    """The review branch of run ``tag``: outside ``autoresearch/``, where the run's refs live."""
    return f"autoresearch-review/{tag}"


def finalize(rootdir: Path, tag: str) -> Finalized:
    """Build (or move) ``autoresearch-review/<tag>`` from the run's kept trials and write
    ``SUMMARY.md`` in its run folder. Raises :class:`FinalizeError` with what to do instead.

    The run's lock is held throughout, so a loop cannot move the branch or append rows while
    the two are read and checked against each other.
    """
    repo = _repository(rootdir)
    folder = _run_folder(repo, rootdir, tag)
    try:
        folder.lock()
    except RunLocked as holder:
        raise FinalizeError(f"run {tag!r} is in use by a loop ({holder}); finalize it once the loop has stopped") from None
    try:
        run = _read_run(repo, folder, tag)
        steps = _steps(repo, run)
        previous = _previous_tip(repo, tag)
        commits = _build(repo, run, steps)
        _move_branch(repo, tag, commits[-1], previous)
        text = render_summary(run, steps, commits, _diffstat(repo, run.start, commits[-1]))
        path = folder.path / SUMMARY_NAME
        _write(path, text)
        return Finalized(review_branch(tag), path, commits, text, run.start, previous)
    except git.GitCommandError as exc:  # a repository git cannot read (a commit gone, a corrupt object)
        raise FinalizeError(f"git {' '.join(map(str, exc.command[1:3]))} failed: {str(exc.stderr).strip()}") from None
    finally:
        folder.unlock()


# -- finding and reading the run ---------------------------------------------------------------


def _repository(rootdir: Path) -> Repository:
    try:
        return Repository(rootdir)
    except GitStateError as exc:
        raise FinalizeError(str(exc)) from None


def _run_folder(repo: Repository, rootdir: Path, tag: str) -> RunFolder:
    """The run folder of ``tag``; a tag without both its folder and its branch is refused,
    naming the runs that do exist, since a typo in the tag is the likely cause."""
    folder = RunFolder(rootdir / RUN_DIR_NAME / tag)
    has_folder = folder.meta.is_file() and folder.results.is_file()
    has_branch = repo.rev(f"refs/heads/autoresearch/{tag}") is not None
    if has_folder and has_branch:
        return folder
    where = f"{RUN_DIR_NAME}/{tag}"
    if has_branch:
        why = (
            f"it has branch autoresearch/{tag} but no {where}/run.json and results.tsv under {rootdir} "
            "(is this the rootdir the run used?)"
        )
    elif has_folder:
        why = f"it has {where} but no branch autoresearch/{tag} (was the branch deleted?)"
    else:
        why = f"there is no {where} under {rootdir} and no branch autoresearch/{tag}"
    raise FinalizeError(f"no run {tag!r} to finalize: {why}. {_known_runs(repo, rootdir)}")


def _known_runs(repo: Repository, rootdir: Path) -> str:
    runs = rootdir / RUN_DIR_NAME
    folders = {p.name for p in runs.iterdir() if (p / "run.json").is_file()} if runs.is_dir() else set()
    out = repo.git.for_each_ref("--format=%(refname)", "refs/heads/autoresearch/")
    branches = {ref.removeprefix("refs/heads/autoresearch/") for ref in out.splitlines() if ref}
    both = sorted(folders & branches)
    if not both:
        return "There are no runs here."
    return "Runs here: " + ", ".join(both) + "."


def _read_run(repo: Repository, folder: RunFolder, tag: str) -> RunView:
    try:
        meta = json.loads(folder.meta.read_text(encoding="utf-8"))
        columns, start = meta["columns"], meta["head"]
        meta["metric"]["name"], meta["metric"]["goal"], meta["metric"]["nodeid"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FinalizeError(f"{folder.meta} is not a run's metadata ({exc!r})") from None
    data = folder.results.read_bytes()
    if data and not data.endswith(b"\n"):
        raise FinalizeError(
            f"{folder.results} ends in a half-written row (a loop killed outright); let the loop repair it first: "
            f"pytest --autoresearch --autoresearch-tag={tag} --autoresearch-trials=0"
        )
    records = read_records(folder.results, columns)
    tip = repo.rev(f"refs/heads/autoresearch/{tag}")
    assert tip is not None  # _run_folder checked it
    return RunView(tag, meta, records, start, tip)


def _steps(repo: Repository, run: RunView) -> list[Step]:
    """The kept rows of the log, in order, checked against the branch: each must be on the
    first-parent line from the start to the branch's tip, in the log's order, and the tip must
    be the last of them. Anything else means the log and the branch disagree, and a review
    branch built from either would not be what the run kept."""
    branch = f"autoresearch/{run.tag}"
    if not run.records or run.records[0].status != "baseline" or run.records[0].commit != run.start:
        raise FinalizeError(f"results.tsv of run {run.tag!r} does not start with the baseline of {run.start[:10]} (run.json head)")
    if not any(r.status == "keep" for r in run.records):
        tally = f"{len(run.records) - 1} trial{'s' if len(run.records) != 2 else ''}"
        raise FinalizeError(f"run {run.tag!r} kept no trial ({tally}, none better than the baseline): there is nothing to review")
    if not repo.is_ancestor(run.start, run.tip):
        raise FinalizeError(f"branch {branch} no longer grows from {run.start[:10]}, the commit the run started from")
    line = repo.git.rev_list("--first-parent", "--reverse", f"{run.start}..{run.tip}").split()
    position = {sha: i for i, sha in enumerate(line)}
    position[run.start] = -1
    steps: list[Step] = []
    best, at = run.records[0], -1
    for record in run.records[1:]:
        if not record.kept:
            continue
        where = position.get(record.commit)
        if where is None or where < at:
            raise FinalizeError(
                f"results.tsv and branch {branch} disagree: {record.status} trial {record.trial} "
                f"(commit {record.commit[:10]}) is not on the branch{'' if where is None else ' in the order of the log'}. "
                f"If the loop was killed outright, let it repair the run first: "
                f"pytest --autoresearch --autoresearch-tag={run.tag} --autoresearch-trials=0"
            )
        if where > at:
            steps.append(Step(record, best))
        best, at = record, where
    if at != len(line) - 1:
        raise FinalizeError(
            f"branch {branch} is at {run.tip[:10]}, which results.tsv does not know (its last kept trial is "
            f"{best.trial}, commit {best.commit[:10]}): someone committed on the branch. Run the loop again with this tag "
            f"to score those commits as a new baseline (pytest --autoresearch --autoresearch-tag={run.tag} "
            f"--autoresearch-trials=0), or move the branch back to {best.commit[:10]}"
        )
    return steps


# -- the review branch -------------------------------------------------------------------------


def _previous_tip(repo: Repository, tag: str) -> str | None:
    """Where the review branch is now, if it exists and may be moved; refuses otherwise.

    Moving a branch that is checked out would change that checkout under the user's feet,
    and a tip without our trailer holds someone's work that moving would drop.
    """
    branch = review_branch(tag)
    ref = f"refs/heads/{branch}"
    checkouts = _checkouts_of(repo, ref)
    if checkouts:
        raise FinalizeError(f"branch {branch} is checked out in {checkouts[0]}; switch that checkout to another branch first")
    tip = repo.rev(ref)
    if tip is None:
        return None
    if tag not in _finalize_trailers(repo, tip):
        raise FinalizeError(
            f"branch {branch} exists and its tip {tip[:10]} was not made by finalizing run {tag!r} "
            f"(no {FINALIZE_TRAILER}: {tag} trailer): it holds commits that are not ours. "
            f"Rename it (git branch -m {branch} NEWNAME) or delete it, then finalize again"
        )
    return tip


def _checkouts_of(repo: Repository, ref: str) -> list[str]:
    """The worktrees (the main one included) whose HEAD is the branch ``ref``."""
    paths, current = [], ""
    for line in repo.git.worktree("list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = line.removeprefix("worktree ")
        elif line == f"branch {ref}":
            paths.append(current)
    return paths


def _finalize_trailers(repo: Repository, commit: str) -> list[str]:
    out = repo.git.log("-1", f"--format=%(trailers:key={FINALIZE_TRAILER},valueonly)", commit)
    return [value.strip() for value in out.splitlines() if value.strip()]


def _build(repo: Repository, run: RunView, steps: Sequence[Step]) -> list[str]:
    """One commit per step, each with the tree of the loop's commit, on top of the start."""
    commits: list[str] = []
    parent = run.start
    for step in steps:
        parent = _commit(repo, step.record.commit, parent, message(run, step))
        commits.append(parent)
    return commits


def _commit(repo: Repository, source: str, parent: str, text: str) -> str:
    """A commit of ``source``'s tree on ``parent``, dated as ``source`` (so that the same run
    always gives the same commits). ``commit-tree`` runs no hook; signing is off explicitly."""
    author, committer = repo.git.log("-1", "--date=raw", "--format=%ad%n%cd", source).splitlines()
    env = {"GIT_AUTHOR_DATE": author, "GIT_COMMITTER_DATE": committer}
    return repo.git.commit_tree("--no-gpg-sign", f"{source}^{{tree}}", "-p", parent, "-m", text, env=env)


def message(run: RunView, step: Step) -> str:
    """The review commit's message: the trial's description as the subject, what it gained
    in words, and trailers linking it back to the run and the loop's own commit."""
    r = step.record
    score = r.score if r.score is not None else "none"
    tags = {"Trial": r.trial, "Status": r.status, "Score": score, "Commit": r.commit}
    if step.outside:
        subject = f"Changes made on autoresearch/{run.tag} outside the loop"
        body = (
            f"Run {run.tag} found them on its branch when it resumed and scored them as a new baseline "
            f"(trial {r.trial}): {run.metric} {fmt_score(step.before.score)} before, {fmt_score(r.score)} after."
        )
    else:
        subject = r.description or f"Trial {r.trial}"
        body = (
            f"Trial {r.trial} of run {run.tag}: {run.metric} from {fmt_score(step.before.score)} "
            f"to {fmt_score(r.score)} ({change(step, run.goal)})."
        )
    return f"{subject}\n\n{body}\n\n{trailers(tags)}\n{FINALIZE_TRAILER}: {run.tag}"


def change(step: Step, goal: str) -> str:
    """The gain of a step as "delta, N% better" (or why an equal score was kept)."""
    before, after = step.before.score, step.record.score
    if before is None or after is None:
        return "no score"
    delta = fmt_delta(after - before)
    gain = improvement(after, before, goal)
    if gain > 0:
        return f"{delta}, {percent(after, before, goal)} better" if before else f"{delta}, better"
    if gain < 0:
        return f"{delta}, worse"
    return f"{delta}, {step.record.reason}" if step.record.reason else f"{delta}, as good"


def percent(after: float, before: float, goal: str) -> str:
    return f"{100 * improvement(after, before, goal) / abs(before):.1f}%" if before else "n/a"


def _move_branch(repo: Repository, tag: str, tip: str, previous: str | None) -> None:
    """Create or move the review branch, atomically and only from where it was seen.

    ``update-ref`` would run a ``reference-transaction`` hook, which can veto the update or
    do anything else; hooks are the user's for their own commits, so none runs here.
    """
    branch = review_branch(tag)
    try:
        repo.git.execute(
            ["git", "-c", f"core.hooksPath={os.devnull}", "update-ref", "-m", f"autoresearch finalize {tag}",
             f"refs/heads/{branch}", tip, previous or ZERO]
        )
    except git.GitCommandError as exc:
        raise FinalizeError(f"could not set branch {branch}: {str(exc.stderr).strip()}") from None


def _diffstat(repo: Repository, start: str, tip: str) -> str:
    return repo.git.diff("--stat", "--no-color", "--no-ext-diff", f"{start}..{tip}")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


# -- SUMMARY.md ------------------------------------------------------------------------------


def title(run: RunView, steps: Sequence[Step]) -> str:
    """One line for the pull request's title: the run, the metric, baseline -> best."""
    baseline, best = run.records[0], steps[-1].record
    gain = f"{fmt_score(baseline.score)} -> {fmt_score(best.score)}"
    if baseline.score is not None and best.score is not None and baseline.score:
        gain += f" ({percent(best.score, baseline.score, run.goal)} better)"
    return f"autoresearch run {run.tag}: {run.metric} {gain}"


def render_summary(run: RunView, steps: Sequence[Step], commits: Sequence[str], diffstat: str) -> str:
    """The pull-request description of the review branch, in Markdown."""
    baseline, best = run.records[0], steps[-1].record
    parts = [
        f"# {title(run, steps)}",
        _introduction(run, steps),
        _metric_section(run, baseline, best),
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
        f"Branch `{review_branch(run.tag)}` holds the {kept} change{'s' if kept != 1 else ''} that the autoresearch loop "
        f"kept in run `{run.tag}`, one commit per kept trial, on top of {where}, where the run started. "
        "Each commit has exactly the tree the loop evaluated and kept: every test passed on it."
    )
    if outside:
        text += (
            f" {outside} more commit{'s' if outside != 1 else ''} hold{'s' if outside == 1 else ''} changes made on "
            f"`autoresearch/{run.tag}` outside the loop, which the loop scored as a new baseline when the run resumed."
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
    return "\n".join(lines)


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
        f"`git show refs/autoresearch/{run.tag}/trials/NNN`; the full log: `{RUN_DIR_NAME}/{run.tag}/results.tsv`."
    )
    return "## Kept trials\n\n" + "\n".join(rows) + "\n\n" + note


def _holdout_section(run: RunView, baseline: TrialRecord, best: TrialRecord) -> list[str]:
    """The holdout scores at the baseline and at the best, with a warning when the trial
    metric improved and a holdout did not: the kept changes may fit the trials' data only."""
    holdout = run.meta.get("holdout") or {}
    if not holdout.get("baseline"):
        return []
    after = holdout.get("best") or {}
    at = run.meta.get("holdout_best_trial")
    goals = run.meta.get("holdout_goals") or {}
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
        ref = f"refs/autoresearch/{run.tag}/review/{r.trial:03d}"
        lines.append(
            f"- trial {r.trial}: {fmt_score(r.score)} ({fmt_delta(r.delta)}), {_cell(r.description)}. "
            f"Inspect: `git show {ref}`; take it: `git cherry-pick {ref}`"
        )
    return ["\n".join(lines)]


def _take_section(run: RunView, heading: str) -> str:
    branch = review_branch(run.tag)
    into = f"`{run.base_ref}`" if run.base_ref != run.start else "your branch"
    summary = f"{RUN_DIR_NAME}/{run.tag}/{SUMMARY_NAME}"
    quoted = heading.replace('"', "'").replace("`", "'").replace("$", "")
    return (
        "## How to take it\n\n"
        f"Read the commits, then merge the branch into {into}:\n\n"
        f"```sh\ngit log --reverse -p {run.start[:10]}..{branch}\ngit merge {branch}\n```\n\n"
        "or push it and open a pull request from it, with this file as its description:\n\n"
        f'```sh\ngit push origin {branch}\ngh pr create --head {branch} --title "{quoted}" --body-file {summary}\n```'
    )
