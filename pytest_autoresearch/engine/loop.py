"""The research loop itself: score the baseline, then one trial at a time.

A trial is: ask the agent for a proposal, check it against the surface, write it into the
run's worktree, run the suite there, judge the outcome (frozen files intact? tests passed?
metric bounds held? better, beyond the noise, once confirmed?), record a commit for it, log
its row, then move the branch if it was kept (or park it for review) and reset the worktree
to the best. The row is written before the refs move, and Ctrl-C is held off while both
happen, so the log and git never disagree about a trial.

How a run starts (or resumes) is :mod:`~pytest_autoresearch.runsetup`; how a candidate is
run, :mod:`~pytest_autoresearch.evaluation`; the keep rule, :mod:`~pytest_autoresearch.decision`.
This module knows nothing of pytest's terminal; the :mod:`~pytest_autoresearch.driver`
presents it as pytest items.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import pytest

from .. import fitness_json as ciguard
from ..store.audit import AuditTrail
from ..agents import Agent, AgentError, AgentExhausted, ProposalContext
from .hooks import rule_of
from .evaluation import Evaluator
from ..core.bounds import broken_bound
from ..store.gitstate import ZERO, Worktree, merge_texts, trailers
from ..core.noise import DEFAULT_NOISY_BASELINE_RUNS, Noise, mean, stdev
from ..proposals.proposal import Limits, Proposal, check
from ..core.text import one_line
from ..core.records import MetricSpec, RunResult, TrialRecord, improvement, is_better
from ..store.results_log import ResultsLog
from .setup import Run, Slot, start_run
from ..errors import FatalError, SetupError
from ..settings import Settings
from ..proposals.surface import Surface, normalize

__all__ = ["FatalError", "Pending", "ResearchLoop", "SetupError"]

#: How many times a candidate that beat its parent is re-applied on a best that moved meanwhile
#: (each time means another trial was kept, so this only guards against a pathological run).
MAX_REAPPLY = 50



_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt|Failed|Warning)\b.*:")


def _crash_line(failure: str) -> str:
    """The line of a failure text that says what went wrong: the exception line pytest marks
    with ``E`` (the last one: chained and collection errors end with the cause), else the
    first ``E`` line, else the last line."""
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    exceptions = [line for line in marked if _EXCEPTION_LINE.match(line)]
    if exceptions:
        return exceptions[-1]
    if marked:
        return marked[0]
    return lines[-1] if lines else ""


def _lines(text: str | None) -> int:
    """Surface size for the simplicity rule: non-blank lines."""
    return 0 if text is None else sum(1 for line in text.splitlines() if line.strip())


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM off while a trial's row and refs are written, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise KeyboardInterrupt


@dataclasses.dataclass
class Pending:
    """A trial in flight: its candidate written into a worker's slot, its runs under way."""

    number: int
    proposal: Proposal
    description: str
    slot: Slot
    parent: TrialRecord  # the best it started from (or was re-applied on)
    changes: dict[str, str | None]
    lines: int
    tree: str = ""
    runs: Generator[int, RunResult, tuple[TrialRecord, list[RunResult], list[str]]] | None = None
    first: int = 1  # the attempt its driver runs first
    started: float = dataclasses.field(default_factory=time.monotonic)
    wall_started: float = dataclasses.field(default_factory=time.time)
    reapplied: list[int] = dataclasses.field(default_factory=list)  # bests it was re-applied on


class ResearchLoop:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.run: Run | None = None
        self.evaluator: Evaluator | None = None
        self.records: list[TrialRecord] = []
        self.metric: MetricSpec | None = None
        self.log: ResultsLog | None = None
        self.noise = Noise()
        self.rule = rule_of(config)
        self.last_failure: str | None = None
        self.spent = 0.0  # US dollars the agent's model calls cost so far
        self.note: Callable[[str], None] = print  # status lines for the user; the driver routes them
        self.fatal: str | None = None  # set when a trial found the loop cannot go on
        self.limits = Limits(allow_delete=settings.allow_delete, max_file_bytes=int(settings.max_file_kb * 1024))
        self.review = Surface(settings.review)
        self.holdout: dict[str, dict[str, float]] = {}  # "baseline"/"best" -> holdout test -> score
        self.holdout_best_trial: int | None = None  # the trial "best" holdout scores belong to
        self.holdout_goals: dict[str, str] = {}
        self.holdout_files: set[str] = set()  # rootdir-relative files defining holdout tests
        self._columns: dict[tuple[str, str], str] = {}  # (nodeid, metric or "") -> column
        self._unpriced_noted = False
        self._session_start = 1  # this session's first trial (a resumed run continues the numbering)
        self.audit: AuditTrail | None = None
        self._pins: dict[str, str] = {}  # frozen files the loop itself rewrote in a kept commit -> blob

    # -- the run and what the driver shows of it -----------------------------------------

    @property
    def r(self) -> Run:
        assert self.run is not None
        return self.run

    @property
    def ev(self) -> Evaluator:
        assert self.evaluator is not None
        return self.evaluator

    @property
    def worktree(self) -> Worktree:
        assert self.r.worktree is not None
        return self.r.worktree

    tag = property(lambda self: self.r.tag)
    branch = property(lambda self: self.r.branch)
    run_dir = property(lambda self: self.r.folder.path)
    head = property(lambda self: self.r.head)
    base_ref = property(lambda self: self.r.base_ref)
    notes = property(lambda self: self.r.notes)
    surface_files = property(lambda self: self.r.surface_files)
    timeout = property(lambda self: self.ev.timeout)

    @property
    def agent(self) -> Agent:
        return self.r.agent

    @property
    def needs_baseline(self) -> bool:
        return self.r.rebaseline

    @property
    def next_trial(self) -> int:
        return max(r.trial for r in self.records) + 1 if self.records else 0

    @property
    def best(self) -> TrialRecord:
        return next(r for r in reversed(self.records) if r.kept)

    def prepare(self) -> None:
        """Start the run, or take up an earlier one with the same tag. Raises SetupError."""
        self.run = run_ = start_run(self.config, self.settings)
        self.evaluator = Evaluator(self.config, self.settings, run_)
        self.audit = AuditTrail(run_.folder.path, run_.repo.git, run_.agent.describe(), getattr(run_.agent, "model", None))
        if run_.meta is None:
            return
        meta = run_.meta
        self.metric = run_.metric
        self._columns = {(nodeid, metric): column for nodeid, metric, column in meta["column_keys"]}
        self.records = list(run_.records)
        for r in self.records:
            self.noise.add_summary(r.runs, r.spread)
        self.spent = sum(r.usage.cost for r in self.records if r.usage is not None and r.usage.cost is not None)
        self.log = ResultsLog(run_.folder.results, meta["columns"], usage=meta["usage"])
        self.log.adopt()
        self.holdout = {k: dict(v) for k, v in meta.get("holdout", {}).items()}
        self.holdout_best_trial = meta.get("holdout_best_trial")
        self.holdout_goals = dict(meta.get("holdout_goals", {}))
        self._hide_holdout(meta.get("holdout_files", []))
        if self.ev.timeout is None:
            self.ev.timeout = meta["timeout"]

    # -- the baseline ------------------------------------------------------------------

    def baseline(self) -> TrialRecord:
        """Score the start commit; any problem is a SetupError (a new run's set-up is undone)."""
        try:
            return self._baseline()
        except BaseException:
            if not self.r.resumed:
                self.r.abandon()
            raise

    def _baseline_run(self, number: int, attempt: int) -> RunResult:
        result = self.ev.evaluate(number, attempt)
        what = "the baseline" if attempt == 1 else f"run {attempt} of the baseline"
        if result.shadowed:
            raise SetupError(self._shadow_message(result.shadowed))
        if result.timed_out:
            raise SetupError(f"{what} timed out after {result.seconds:.0f}s; raise --autoresearch-timeout.\n" + result.failure_text(2000))
        if result.memory_exceeded:
            raise SetupError(f"{what} used more than autoresearch_memory_mb = {self.settings.memory_mb:g} MiB")
        if not result.finished:
            raise SetupError(
                f"{what}'s pytest session did not finish (exit code {result.exit_code}); "
                f"output (full log in {result.log_path}):\n" + result.failure_text(2000)
            )
        if result.failed_tests:
            raise SetupError(f"{what} fails, so nothing could be judged against it; fix the tests first.\n" + result.failure_text(2000))
        if not result.fitness:
            raise SetupError(
                'no fitness test ran: mark a test with @pytest.mark.fitness(goal="min") (or "max") '
                "and record its score with the fitness fixture, fitness(value)"
            )
        return result

    def _baseline(self) -> TrialRecord:
        run_, number = self.r, self.next_trial
        started = time.time()
        results = [self._baseline_run(number, 1)]
        first = results[0]
        for fit in first.fitness:
            path = fit.nodeid.split("::")[0]
            if run_.surface.matches(path):
                raise SetupError(f"autoresearch_mutable includes {path}, which defines the fitness test {fit.nodeid}: the evaluator must stay frozen")
        if self.metric is None:
            explicit = [f for f in first.fitness if f.primary]
            if len(explicit) > 1:
                raise SetupError("more than one fitness test says primary=True: " + ", ".join(f.nodeid for f in explicit))
            chosen = explicit[0] if explicit else first.fitness[0]
            self.metric = MetricSpec(chosen.nodeid, chosen.name, chosen.goal, True)
        if self._primary(first) is None:
            raise SetupError(f"the primary fitness test {self.metric.nodeid} recorded no score")
        if self.ev.timeout is None:
            self.ev.timeout = max(60.0, round(3 * first.seconds))
            run_.notes.append(f"trial timeout {self.ev.timeout:g}s (3x the baseline; set --autoresearch-timeout)")
        wanted = self.settings.baseline_runs
        while len(results) < wanted:
            results.append(self._baseline_run(number, len(results) + 1))
            scores = [self._primary(r) for r in results]
            if len(results) == wanted and len(set(scores)) > 1:
                wanted = max(wanted, DEFAULT_NOISY_BASELINE_RUNS)  # noise: estimate its spread better
        scores = [s for r in results if (s := self._primary(r)) is not None]
        if len(scores) != len(results):
            raise SetupError(f"the primary fitness test {self.metric.nodeid} recorded no score on some baseline runs")
        self.noise.add(scores)
        self._noise_note(scores)
        self._hide_holdout(sorted({n.split("::")[0] for n in first.holdout}))
        if self.log is None:
            self._start_log(first)
        record = TrialRecord(
            trial=number,
            status="baseline",
            description="baseline" if number == 0 else "baseline again: the branch changed outside the loop",
            commit=run_.start_commit,
            score=mean(scores),
            seconds=sum(r.seconds for r in results),
            metrics=self._metrics(results),
            runs=len(scores),
            spread=stdev(scores) if len(scores) > 1 else None,
        )
        for reason in self._broken_bounds(results):
            run_.notes.append(f"the baseline breaks a bound ({reason}): candidates must satisfy it to be kept")
        self._commit_record(record, branch_from=None, results=results, started=started, tree=run_.repo.git.rev_parse(f"{run_.start_commit}^{{tree}}"), worker=0, device=self._device(run_.home))
        run_.undo.clear()
        run_.rebaseline = False
        if first.holdout:
            self.holdout["baseline"] = self._holdout_scores(number)
            self._save_meta()
        return record

    def _noise_note(self, scores: Sequence[float]) -> None:
        if len(scores) < 2:
            return
        if len(set(scores)) == 1:
            self.r.notes.append(f"the evaluator is deterministic ({len(scores)} identical baseline runs): one run per trial decides")
            return
        self.r.notes.append(
            f"the evaluator is noisy: {len(scores)} baseline runs scored {', '.join(f'{s:.6g}' for s in scores)} "
            f"(spread {self.noise.spread:.3g}); a promising candidate runs {1 + self.rule.confirm_runs} times and is kept "
            f"only when its mean gains more than {self.rule.threshold(self.noise):.3g} (max of autoresearch_min_delta "
            f"and {self.rule.k:g} x the spread)"
        )

    def _primary(self, result: RunResult) -> float | None:
        assert self.metric is not None
        return next((f.score for f in result.fitness if f.nodeid == self.metric.nodeid), None)

    def _start_log(self, result: RunResult) -> None:
        """A new run's log, metadata and branch, once its baseline stands."""
        run_ = self.r
        assert self.metric is not None
        for fit in result.fitness:
            if fit.nodeid != self.metric.nodeid:
                self._add_column(fit.nodeid, "", fit.name)
            for name in fit.metrics:
                self._add_column(fit.nodeid, name, name if fit.nodeid == self.metric.nodeid else f"{fit.name}.{name}")
        self.log = ResultsLog(run_.folder.results, list(self._columns.values()), usage=run_.agent.reports_usage)
        self.log.create()
        self._save_meta()
        run_.repo.update_refs((f"refs/heads/{run_.branch}", run_.start_commit, ZERO))

    def _save_meta(self) -> None:
        run_, metric = self.r, self.metric
        assert metric is not None and self.log is not None
        run_.folder.write_meta(
            {
                "version": 1,
                "tag": run_.tag,
                "head": run_.meta["head"] if run_.meta else run_.head,
                "base_ref": run_.base_ref,
                "metric": {"nodeid": metric.nodeid, "name": metric.name, "goal": metric.goal},
                "columns": list(self._columns.values()),
                "column_keys": [[n, m, c] for (n, m), c in self._columns.items()],
                "usage": "tokens_in" in self.log.columns,
                "timeout": self.ev.timeout,
                "holdout": self.holdout,
                "holdout_best_trial": self.holdout_best_trial,
                "holdout_goals": self.holdout_goals,
                "holdout_files": sorted(self.holdout_files),
            }
        )

    def _add_column(self, nodeid: str, metric: str, name: str) -> None:
        taken = set(self._columns.values()) | {"trial", "commit", "status", "score", "delta", "runs", "spread", "lines", "seconds", "reason", "description"}
        column = name if name not in taken else f"{nodeid}:{metric}" if metric else nodeid
        self._columns[(nodeid, metric)] = column

    def _metrics(self, results: Sequence[RunResult]) -> dict[str, float]:
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

    def _broken_bounds(self, results: Sequence[RunResult]) -> list[str]:
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

    def _shadow_message(self, paths: list[str]) -> str:
        return (
            f"the trial imported {', '.join(paths)} from your checkout instead of the trial's worktree, "
            "so it would score unchanged code. An editable install (pip install -e) or a sys.path/PYTHONPATH "
            "entry points at your checkout; make the tests import the mutable modules relative to the "
            'rootdir instead (e.g. pythonpath = ["src"] under [tool.pytest.ini_options]) and run again'
        )

    # -- the holdout -------------------------------------------------------------------

    def _hide_holdout(self, files: Sequence[str]) -> None:
        """Holdout test files are never shown to an agent, not even as read-only context."""
        self.holdout_files = set(files)
        listed = [p for p in self.r.context_paths if p in self.holdout_files]
        if listed:
            self.r.context_paths = [p for p in self.r.context_paths if p not in self.holdout_files]
            self.r.notes.append(f"left {', '.join(listed)} out of the agent's context: it holds holdout tests")

    def _holdout_scores(self, number: int) -> dict[str, float]:
        result = self.ev.evaluate(number, holdout_only=True)
        if not result.finished or result.failed_tests:
            self.note(f"the holdout tests failed on trial {number}: {result.failure_text(300)}")
        self.holdout_goals.update({f.nodeid: f.goal for f in result.fitness})
        return {f.nodeid: f.score for f in result.fitness if f.score is not None}

    def final_holdout(self) -> None:
        """Score the holdout tests on the final best (the worktree is there between trials)."""
        if "baseline" not in self.holdout or self.run is None or self.run.worktree is None:
            return
        self.holdout["best"] = self._holdout_scores(self.best.trial)
        self.holdout_best_trial = self.best.trial
        self._save_meta()

    # -- trials ------------------------------------------------------------------------

    def _trial_ref(self, number: int, kind: str = "trials") -> str:
        return f"refs/autoresearch/{self.tag}/{kind}/{number:03d}"

    def read(self, path: str) -> str | None:
        """A file of the current best, by rootdir-relative path (what agents may read)."""
        clean = normalize(path)
        if clean is None or ".git" in clean.lower().split("/") or clean in self.holdout_files:
            return None
        return self.worktree.read(self.r.prefix + clean)

    def context(self, number: int) -> ProposalContext:
        assert self.metric is not None
        trials_left = None if self.settings.trials is None else self.settings.trials - (number - self._session_start)
        return ProposalContext(
            trial=number,
            tag=self.tag,
            rootdir=self.settings.rootdir,
            workdir=self.ev.in_worktree(self.settings.rootdir),
            surface=self.r.surface,
            files={p: text for p in self.surface_files if (text := self.read(p)) is not None},
            program=self.r.program,
            metric=self.metric,
            baseline=self.records[0],
            best=self.best,
            history=tuple(self.records),
            last_failure=self.last_failure,
            trials_left=trials_left,
            read=self.read,
            context_files={p: text for p in self.r.context_paths if (text := self.read(p)) is not None},
            note=self.note,
        )

    def start_agent(self) -> None:
        self._session_start = self.next_trial
        try:
            self.agent.start(self.context(self.next_trial))
        except AgentError as exc:
            raise FatalError(f"agent {self.settings.agent_spec}: {exc}") from None

    def propose(self, number: int) -> Proposal:
        """Ask the agent; AgentExhausted ends the loop, AgentError (or a bug) becomes FatalError."""
        if self.agent.edits_workdir and self.holdout_files:
            self.worktree.hide([self.r.prefix + p for p in sorted(self.holdout_files)])
        try:
            proposal = self.agent.propose(self.context(number))
        except AgentError as exc:
            raise FatalError(f"agent {self.settings.agent_spec}: {exc}") from None
        except (AgentExhausted, KeyboardInterrupt):
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise FatalError(
                f"agent {self.settings.agent_spec} failed: {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
            ) from None
        finally:
            if self.agent.edits_workdir:
                self.worktree.reset(self.best.commit, keep=self.r.carry)  # its edits are in the proposal now
        if not isinstance(proposal, Proposal):
            raise FatalError(f"agent {self.settings.agent_spec} returned {type(proposal).__name__}, not a Proposal")
        return proposal

    # -- one trial: begin (write the candidate), runs (one or more), finish (judge, record) --

    def step(self, number: int, proposal: Proposal) -> TrialRecord:
        """Evaluate one proposal and record its verdict, start to end (one worker)."""
        slot = self.r.slots[0]
        started = self.begin(number, proposal, slot)
        if isinstance(started, TrialRecord):
            return started
        attempt: int | TrialRecord = started.first
        try:
            while not isinstance(attempt, TrialRecord):
                attempt = self.advance(started, self.ev.evaluate(number, attempt, slot=slot))
        except KeyboardInterrupt:
            self.abort(started)
            raise
        return attempt

    def begin(self, number: int, proposal: Proposal, slot: Slot) -> TrialRecord | Pending:
        """Check a proposal and write it into ``slot`` on top of the current best: the trial in
        flight, or its record when it was invalid (then nothing runs)."""
        run_, best = self.r, self.best
        description = one_line(proposal.description or "(no description)")
        self._keep_exchange(number, proposal)
        self._account(proposal)
        changes, reason = check(proposal, run_.surface, self.read, self.limits)
        if reason is None:
            reason = next((why for p in changes if (why := slot.worktree.unsafe(run_.prefix + p))), None)
        if reason is not None:
            self.last_failure = f"trial {number} was rejected before running: {reason}"
            record = TrialRecord(
                number, "invalid", description, parent=best.commit, parent_trial=best.trial, reason=one_line(reason), usage=proposal.usage
            )
            with _signals_held():
                self._commit_record(record, branch_from=None, started=time.time(), prompt=proposal.prompt, answer=proposal.answer)
            return record
        lines = sum(_lines(text) - _lines(self.read(p)) for p, text in changes.items())
        pending = Pending(number, proposal, description, slot, best, changes, lines)
        try:
            self._write(pending)
        except BaseException:
            self._reset_slot(slot, best.commit)
            raise
        return pending

    def _write(self, p: Pending) -> None:
        """The candidate into its slot, on top of its parent; its runs start."""
        if p.slot.at != p.parent.commit:
            self._reset_slot(p.slot, p.parent.commit)
        p.slot.worktree.write(p.changes, self.r.prefix)
        p.tree = p.slot.worktree.stage([self.r.prefix + path for path in p.changes])
        p.runs = self._runs(p)
        p.first = next(p.runs)

    def advance(self, p: Pending, result: RunResult) -> int | TrialRecord:
        """Take the result of one run of a trial in flight: the next run it needs (its attempt
        number), or, once it is judged, its record (logged, refs moved, slot reset)."""
        assert p.runs is not None
        try:
            return p.runs.send(result)
        except StopIteration as stop:
            record, results, tampered = stop.value
        except BaseException:
            self._reset_slot(p.slot, self.best.commit)
            raise
        return self._finish(p, record, results, tampered)

    def _finish(self, p: Pending, record: TrialRecord, results: list[RunResult], tampered: list[str]) -> int | TrialRecord:
        run_, slot = self.r, p.slot
        record.usage = p.proposal.usage
        if p.reapplied:
            record.reason = one_line(f"{record.reason}; re-applied on trial {', '.join(map(str, p.reapplied))}, kept while it ran", 300)
        if record.status == "keep" and any(self.review.matches(path) for path in p.changes):
            record.status = "review"
            record.reason = "touches " + ", ".join(path for path in sorted(p.changes) if self.review.matches(path)) + " (autoresearch_review)"
        if record.status == "keep" and p.parent.commit != self.best.commit:
            again = self._reapply(p, record)
            if again is not None:
                return again
        try:
            with _signals_held():
                tree = self._update_fitness_json(results, p.tree, slot) if record.status == "keep" else p.tree
                record.commit = slot.worktree.commit_tree(tree, p.parent.commit, self._message(record))
                if record.status == "keep":
                    run_.surface_files = sorted(set(run_.surface_files) | set(p.changes))
                self._commit_record(
                    record,
                    branch_from=p.parent.commit if record.status == "keep" else None,
                    results=results, started=p.wall_started, prompt=p.proposal.prompt, answer=p.proposal.answer, tree=tree, worker=slot.index, device=self._device(slot),
                )
        finally:
            self._reset_slot(slot, self.best.commit, tampered)
            if run_.home is not None and run_.home is not slot and run_.home.at != self.best.commit:
                self._reset_slot(run_.home, self.best.commit)
        return record

    def _reapply(self, p: Pending, record: TrialRecord) -> int | None:
        """A candidate beat the best it started from, but another trial was kept meanwhile:
        merge its change into the new best and run it again (the attempt to run), or make it a
        discard saying why it cannot be (a conflict, nothing left to change, the best kept moving)."""
        best = self.best
        self._reset_slot(p.slot, best.commit)
        why: str | None = None
        merged: dict[str, str | None] = {}
        if len(p.reapplied) >= MAX_REAPPLY:
            why = f"better than trial {p.parent.trial}, but the best moved {MAX_REAPPLY + 1} times while it ran"
        else:
            merged, why = self._merge(p, best)
        if why is None:
            _, why = check(Proposal(p.description, merged), self.r.surface, self.read, self.limits)
        if why is not None:
            record.status, record.reason = "discard", one_line(why, 300)
            return None
        p.reapplied.append(best.trial)
        p.lines = sum(_lines(text) - _lines(self.read(path)) for path, text in merged.items())
        p.parent, p.changes = best, merged
        self._write(p)
        return p.first

    def _merge(self, p: Pending, best: TrialRecord) -> tuple[dict[str, str | None], str | None]:
        """The candidate's change, three-way merged into ``best``'s files; or why it cannot be."""
        merged: dict[str, str | None] = {}
        for path, theirs in p.changes.items():
            base = self.r.repo.show(p.parent.commit, self.r.prefix + path)
            ours = self.read(path)
            if ours == base or theirs == ours:
                merged[path] = theirs
            elif theirs == base:
                merged[path] = ours
            elif ours is None or base is None or theirs is None or (text := merge_texts(ours, base, theirs)) is None:
                return {}, f"better than trial {p.parent.trial}, but its change to {path} conflicts with trial {best.trial}, kept while it ran"
            else:
                merged[path] = text
        if all(text == self.read(path) for path, text in merged.items()):
            return {}, f"better than trial {p.parent.trial}, but trial {best.trial}, kept while it ran, already holds its change"
        return merged, None

    def abort(self, p: Pending, reason: str = "interrupted (Ctrl-C or SIGTERM) before it was judged") -> TrialRecord:
        """Log a trial in flight as a crash (the run is stopping) and reset its slot."""
        record = TrialRecord(
            p.number, "crash", p.description, parent=p.parent.commit, parent_trial=p.parent.trial,
            seconds=time.monotonic() - p.started, reason=reason, usage=p.proposal.usage, lines=p.lines,
        )
        try:
            with _signals_held():
                if p.tree:
                    record.commit = p.slot.worktree.commit_tree(p.tree, p.parent.commit, self._message(record))
                self._commit_record(
                    record, branch_from=None, started=p.wall_started, prompt=p.proposal.prompt, answer=p.proposal.answer, tree=p.tree or None, worker=p.slot.index, device=self._device(p.slot)
                )
        finally:
            self._reset_slot(p.slot, self.best.commit)
        return record

    def _runs(self, p: Pending) -> Generator[int, RunResult, tuple[TrialRecord, list[RunResult], list[str]]]:
        """Run the candidate (again, if the noise calls for it) and judge it. Yields the attempt
        to run and receives its result, so that whoever drives it decides where runs happen."""
        assert self.metric is not None
        number, description, best, lines = p.number, p.description, p.parent, p.lines
        result = yield 1
        if result.shadowed:
            raise FatalError(self._shadow_message(result.shadowed))
        tampered = self._tampered(result, p.slot)
        record = self._judge(number, description, best, result, tampered)
        record.lines = lines
        results = [result]
        if record.reason:  # tamper, timeout, crash: judged already
            return record, results, tampered
        assert record.score is not None and best.score is not None
        gain = improvement(record.score, best.score, self.metric.goal)
        if self.rule.worth_confirming(gain, self.noise, fewer_lines=lines < 0):
            for attempt in range(2, 2 + self.rule.confirm_runs):
                again = yield attempt
                tampered = self._tampered(again, p.slot)
                check = self._judge(number, description, best, again, tampered)
                results.append(again)
                record.seconds += again.seconds
                if check.reason:
                    check.reason = one_line(f"run {attempt} of {1 + self.rule.confirm_runs}: {check.reason}", 300)
                    check.seconds, check.lines = record.seconds, lines
                    return check, results, tampered
            scores = [s for r in results if (s := self._primary(r)) is not None]
            self.noise.add(scores)
            record.score, record.runs, record.spread = mean(scores), len(scores), stdev(scores)
            record.delta = record.score - best.score
            record.metrics = self._metrics(results)
        broken = self._broken_bounds(results)
        if broken:
            record.status, record.reason = "discard", one_line("breaks a bound: " + "; ".join(broken), 300)
            self.last_failure = f"trial {number} improved nothing it may: {record.reason}"
            return record, results, tampered
        decision = self.config.hook.pytest_autoresearch_decide(
            config=self.config, metric=self.metric, candidate=record, best=best, noise=self.noise
        )
        record.status = "keep" if decision.keep else "discard"
        record.reason = one_line(decision.reason)
        return record, results, tampered

    def _update_fitness_json(self, results: Sequence[RunResult], tree: str, slot: Slot) -> str:
        """In a kept commit, fitness.json (when the repository tracks one) gets the new scores."""
        run_ = self.r
        path = run_.prefix + ciguard.FILENAME
        if run_.manifest is None or path not in run_.manifest.blobs:
            return tree
        target = slot.worktree.path / path
        saved = ciguard.load(target)
        scores: dict[str, list[float]] = {}
        goals: dict[str, str] = {}
        for result in results:
            for fit in result.fitness:
                if fit.score is not None:
                    scores.setdefault(fit.nodeid, []).append(fit.score)
                    goals[fit.nodeid] = fit.goal
        for nodeid, values in scores.items():
            saved[nodeid] = {"score": mean(values), "goal": goals[nodeid]}
        ciguard.save(target, saved)
        new_tree = slot.worktree.stage([path])
        self._pins[path] = slot.worktree.git.hash_object(str(target))  # slots re-pin it as they reset to the new best
        return new_tree

    @staticmethod
    def _device(slot: Slot | None) -> str | None:
        return None if slot is None else slot.env.get("CUDA_VISIBLE_DEVICES")

    def _reset_slot(self, slot: Slot, commit: str, tampered: Sequence[str] = ()) -> None:
        """Make a slot's worktree ``commit`` again, and its manifest what ``commit`` holds."""
        slot.worktree.reset(commit, keep=self.r.carry)
        slot.at = commit
        moved = [p for p in tampered if p in slot.manifest.blobs]
        for path, blob in self._pins.items():
            if slot.manifest.blobs.get(path) != blob:
                slot.manifest.blobs[path] = blob
                moved.append(path)
        if moved:
            self._restore_frozen(slot, commit, moved)

    def _restore_frozen(self, slot: Slot, commit: str, paths: list[str]) -> None:
        """After a reset: make sure it really restored these frozen files, then re-pin them."""
        manifest = slot.manifest
        stubborn = manifest.refresh(paths)
        if stubborn:
            slot.worktree.restore(commit, stubborn)
            stubborn = manifest.refresh(stubborn)
        if stubborn:
            raise FatalError(f"frozen files could not be restored in the worktree: {', '.join(stubborn)}")
        manifest.save(slot.manifest_file)

    def _message(self, record: TrialRecord) -> str:
        score = record.score if record.score is not None else "none"
        return f"{record.description}\n\n" + trailers({"Trial": record.trial, "Status": record.status, "Score": score})

    def _account(self, proposal: Proposal) -> None:
        if proposal.usage is None:
            return
        if proposal.usage.cost is not None:
            self.spent += proposal.usage.cost
        elif self.settings.max_cost is not None and not self._unpriced_noted:
            self._unpriced_noted = True
            self.note("this model has no price in litellm's list: --autoresearch-max-cost cannot count its cost (tokens are logged)")

    def _tampered(self, result: RunResult, slot: Slot) -> list[str]:
        """What the trial changed that it must not: frozen files (by git's account, by the
        manifest's, by the trial's own), the run's files, your repository's hooks and config.

        With several workers, a change to a file trials share (the log, your .git) is laid at
        the door of the trial judged when it is found; every trial's own files are its own.
        """
        run_ = self.r
        assert self.log is not None
        frozen = set(slot.manifest.blobs)
        found = {p for p in slot.worktree.changed_tracked() if p in frozen}
        found |= set(slot.manifest.changed())
        found |= {p for p in result.tampered if p in frozen or p.startswith("<")}
        if not self.log.intact():
            self.log.rewrite(self.records)
            found.add("<results.tsv>")
        if slot.manifest.changed_file(slot.manifest_file):
            slot.manifest.save(slot.manifest_file)
            found.add(f"<{slot.manifest_file.name}>")
        if not run_.folder.meta_intact():
            run_.folder.restore_meta()
            found.add("<run.json>")
        if run_.guard is not None:
            found |= {f"<your repository's {what}>" for what in run_.guard.restore_changes()}
        return sorted(found)

    def _judge(self, number: int, description: str, best: TrialRecord, result: RunResult, tampered: list[str]) -> TrialRecord:
        """The verdict on one run, short of the keep decision (the record's reason stays empty
        when the run passed everything)."""
        assert self.metric is not None
        record = TrialRecord(number, "crash", description, parent=best.commit, parent_trial=best.trial, seconds=result.seconds)
        primary = next((f for f in result.fitness if f.nodeid == self.metric.nodeid), None)
        if tampered:
            record.status = "tamper"
            record.reason = one_line("changed what a trial must not: " + ", ".join(tampered), 300)
            self.last_failure = f"trial {number} (tamper): it changed files that must stay frozen: {', '.join(tampered)}"
            return record
        if result.timed_out:
            record.status = "timeout"
            hung = next((t.nodeid for t in result.tests if t.timed_out), None)
            record.reason = f"{hung} exceeded its time limit" if hung else f"killed at the {self.ev.timeout:g}s trial deadline"
        elif result.memory_exceeded:
            record.reason = f"killed: its processes used more than {self.settings.memory_mb:g} MiB (autoresearch_memory_mb)"
        elif not result.finished:
            record.reason = f"the pytest session did not finish (exit code {result.exit_code})"
        elif result.failed_tests:
            failed = result.failed_tests[0]
            record.reason = one_line(f"{failed.nodeid} {failed.outcome}: {_crash_line(failed.failure)}", 200)
        elif primary is None or primary.score is None:
            record.reason = f"the primary fitness test {self.metric.nodeid} recorded no score"
        if record.reason:
            self.last_failure = f"trial {number} ({record.status}): {record.reason}\n{result.failure_text()}"
        if primary is not None and primary.score is not None and record.status != "timeout":
            record.score = primary.score
            record.delta = primary.score - best.score if best.score is not None else None
        record.metrics = self._metrics([result])
        return record

    def _commit_record(self, record: TrialRecord, branch_from: str | None, **audit: Any) -> None:
        """Log the row first, then move the refs: a driver killed in between is repaired on resume.
        The audit record follows (``audit`` holds what results.tsv does not: runs, timings, the
        prompt and answer, the tree)."""
        assert self.log is not None
        self.log.append(record)
        self.records.append(record)
        updates = [(self._trial_ref(record.trial), record.commit, None)] if record.commit else []
        if record.status == "review":
            updates.append((self._trial_ref(record.trial, "review"), record.commit, None))
        if branch_from is not None:
            updates.append((f"refs/heads/{self.branch}", record.commit, branch_from))
        if updates:
            self.r.repo.update_refs(*updates)
        if self.audit is not None:
            audit.setdefault("ended", time.time())
            self.audit.record(record, **audit)
        self.config.hook.pytest_autoresearch_trial_logged(config=self.config, record=record)

    # -- stopping ----------------------------------------------------------------------

    def stop_reason(self, session_started: float) -> str | None:
        """Why the run must stop now, if it must: a stop rule, the budget, or a STOP file."""
        s = self.settings
        stop_file = self.r.folder.path / "STOP"
        if stop_file.exists():
            stop_file.unlink(missing_ok=True)
            return f"found {stop_file} (removed it; run again with the same tag to continue)"
        if s.time_limit is not None and time.monotonic() - session_started >= s.time_limit:
            return f"the time limit of {s.time_limit:g}s (--autoresearch-time) is used up"
        best = self.best
        if s.target is not None and best.score is not None and self.metric is not None:
            if best.score == s.target or is_better(best.score, s.target, self.metric.goal):
                return f"the target {s.target:g} is reached: {best.score:.6g} (trial {best.trial})"
        if s.patience is not None:
            since = [r for r in self.records if r.trial > best.trial and r.trial >= self._session_start]
            if len(since) >= s.patience:
                return f"{len(since)} trials in a row without a keep (autoresearch_patience {s.patience})"
        if s.max_cost is not None and self.spent >= s.max_cost:
            return f"the agent's model calls cost ${self.spent:.4f}, reaching --autoresearch-max-cost ${s.max_cost:g}"
        return None

    def _keep_exchange(self, number: int, proposal: Proposal) -> None:
        """The prompt and the answer behind a proposal, beside the trial's log, for the audit."""
        for kind, text in (("prompt", proposal.prompt), ("answer", proposal.answer)):
            if text is not None:
                (self.r.folder.trials / f"{number:03d}.{kind}.md").write_text(text, encoding="utf-8")

    def scrubbed_note(self) -> str | None:
        if not self.ev.scrubbed:
            return None
        return f"trials run without {', '.join(self.ev.scrubbed)} (secret-looking; autoresearch_pass_env passes them on)"

    def finish(self) -> None:
        """End of the run however it ended: release the agent, drop the worktree, unlock."""
        if self.run is None:
            return
        self.agent.close()
        for slot in {id(s): s for s in [*self.run.slots, *([self.run.home] if self.run.home else [])]}.values():
            self.run.repo.remove_worktree(slot.worktree.path)
        self.run.worktree, self.run.home, self.run.slots = None, None, []
        self.run.folder.unlock()
