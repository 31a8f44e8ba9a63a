"""``--autoresearch-finalize``: turn a run's kept trials into a branch a person can review.

The run's own branch ``autoresearch/<tag>`` carries the loop's bookkeeping: commit messages
are trailers for the machine, and a resumed run may have hand-made commits on it. A reviewer
wants something else: one commit per kept change, each saying what it did and what it gained,
on top of the commit the run started from, and a pull-request description with the numbers.
:func:`finalize` builds that as ``autoresearch-review/<tag>`` (a name that cannot clash with
the run's branch or its ``autoresearch/<tag>/...`` refs) and writes ``SUMMARY.md`` into the
run folder; what that file says is :mod:`.summary_md`'s, this module is the git side.

Like the loop, it never touches the user's checkout, index or HEAD: commits are made with
``git commit-tree`` (no hooks, no signing) and the branch is moved with ``update-ref``. The
commits reuse the dates of the loop's kept commits, so finalizing the same run twice gives the
same commits, and finalizing after more trials only adds commits on top: a pushed review branch
never needs a force push. A branch of that name is only ever moved when its tip is a commit a
previous finalize of this run made; anything else there is the user's, and is refused.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import git

from ..names import FINALIZE_TRAILER, RUN_DIR_NAME, branch, branch_ref, finalized_branch, finalized_ref
from ..store.gitstate import ZERO, GitStateError, Repository, trailers
from ..store.results_log import read_records
from ..store.runfolder import RunFolder, RunLocked, read_meta
from .summary_md import SUMMARY_NAME, RunView, Step, change, render_summary
from .terminal import fmt_score

__all__ = ["FINALIZE_TRAILER", "FinalizeError", "Finalized", "RunView", "Step", "finalize", "message", "render_summary"]


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
        return Finalized(finalized_branch(tag), path, commits, text, run.start, previous)
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
    has_branch = repo.rev(branch_ref(tag)) is not None
    if has_folder and has_branch:
        return folder
    where = f"{RUN_DIR_NAME}/{tag}"
    if has_branch:
        why = (
            f"it has branch {branch(tag)} but no {where}/run.json and results.tsv under {rootdir} "
            "(is this the rootdir the run used?)"
        )
    elif has_folder:
        why = f"it has {where} but no branch {branch(tag)} (was the branch deleted?)"
    else:
        why = f"there is no {where} under {rootdir} and no branch {branch(tag)}"
    raise FinalizeError(f"no run {tag!r} to finalize: {why}. {_known_runs(repo, rootdir)}")


def _known_runs(repo: Repository, rootdir: Path) -> str:
    runs = rootdir / RUN_DIR_NAME
    folders = {p.name for p in runs.iterdir() if (p / "run.json").is_file()} if runs.is_dir() else set()
    prefix = branch_ref("")  # where every run's branch lives
    out = repo.git.for_each_ref("--format=%(refname)", prefix)
    branches = {ref.removeprefix(prefix) for ref in out.splitlines() if ref}
    both = sorted(folders & branches)
    if not both:
        return "There are no runs here."
    return "Runs here: " + ", ".join(both) + "."


def _read_run(repo: Repository, folder: RunFolder, tag: str) -> RunView:
    try:
        meta = read_meta(folder.meta)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # unreadable, not JSON, or not a run's
        raise FinalizeError(f"{folder.meta} is not a run's metadata ({exc!r})") from None
    data = folder.results.read_bytes()
    if data and not data.endswith(b"\n"):
        raise FinalizeError(
            f"{folder.results} ends in a half-written row (a loop killed outright); let the loop repair it first: "
            f"pytest --autoresearch --autoresearch-tag={tag} --autoresearch-trials=0"
        )
    records = read_records(folder.results, meta.columns)
    tip = repo.rev(branch_ref(tag))
    assert tip is not None  # _run_folder checked it
    return RunView(tag, meta, records, meta.head, tip)


def _steps(repo: Repository, run: RunView) -> list[Step]:
    """The kept rows of the log, in order, checked against the branch: each must be on the
    first-parent line from the start to the branch's tip, in the log's order, and the tip must
    be the last of them. Anything else means the log and the branch disagree, and a review
    branch built from either would not be what the run kept."""
    run_branch = branch(run.tag)
    if not run.records or run.records[0].status != "baseline" or run.records[0].commit != run.start:
        raise FinalizeError(f"results.tsv of run {run.tag!r} does not start with the baseline of {run.start[:10]} (run.json head)")
    if not any(r.status == "keep" for r in run.records):
        tally = f"{len(run.records) - 1} trial{'s' if len(run.records) != 2 else ''}"
        raise FinalizeError(f"run {run.tag!r} kept no trial ({tally}, none better than the baseline): there is nothing to review")
    if not repo.is_ancestor(run.start, run.tip):
        raise FinalizeError(f"branch {run_branch} no longer grows from {run.start[:10]}, the commit the run started from")
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
                f"results.tsv and branch {run_branch} disagree: {record.status} trial {record.trial} "
                f"(commit {record.commit[:10]}) is not on the branch{'' if where is None else ' in the order of the log'}. "
                f"If the loop was killed outright, let it repair the run first: "
                f"pytest --autoresearch --autoresearch-tag={run.tag} --autoresearch-trials=0"
            )
        if where > at:
            steps.append(Step(record, best))
        best, at = record, where
    if at != len(line) - 1:
        raise FinalizeError(
            f"branch {run_branch} is at {run.tip[:10]}, which results.tsv does not know (its last kept trial is "
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
    review, ref = finalized_branch(tag), finalized_ref(tag)
    checkouts = _checkouts_of(repo, ref)
    if checkouts:
        raise FinalizeError(f"branch {review} is checked out in {checkouts[0]}; switch that checkout to another branch first")
    tip = repo.rev(ref)
    if tip is None:
        return None
    if tag not in _finalize_trailers(repo, tip):
        raise FinalizeError(
            f"branch {review} exists and its tip {tip[:10]} was not made by finalizing run {tag!r} "
            f"(no {FINALIZE_TRAILER}: {tag} trailer): it holds commits that are not ours. "
            f"Rename it (git branch -m {review} NEWNAME) or delete it, then finalize again"
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
        subject = f"Changes made on {branch(run.tag)} outside the loop"
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


def _move_branch(repo: Repository, tag: str, tip: str, previous: str | None) -> None:
    """Create or move the review branch, atomically and only from where it was seen.

    ``update-ref`` would run a ``reference-transaction`` hook, which can veto the update or
    do anything else; hooks are the user's for their own commits, so none runs here.
    """
    try:
        repo.git.execute(
            ["git", "-c", f"core.hooksPath={os.devnull}", "update-ref", "-m", f"autoresearch finalize {tag}",
             finalized_ref(tag), tip, previous or ZERO]
        )
    except git.GitCommandError as exc:
        raise FinalizeError(f"could not set branch {finalized_branch(tag)}: {str(exc.stderr).strip()}") from None


def _diffstat(repo: Repository, start: str, tip: str) -> str:
    return repo.git.diff("--stat", "--no-color", "--no-ext-diff", f"{start}..{tip}")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)
