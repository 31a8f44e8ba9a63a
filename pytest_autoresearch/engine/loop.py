"""The research loop: a run's parts wired together, and one trial from candidate to verdict.

A trial: the agent's proposal is checked against the surface (:mod:`..proposals.proposal`),
written into a worker's slot on top of the current best (:mod:`.slots`), run
(:mod:`.schedule` decides where and when), checked for tampering after each run
(:mod:`.integrity`), judged (:mod:`..core.verdict`, the only place a status is chosen), then
recorded (:mod:`.recorder`: row, refs, audit) and its slot reset to the best. A candidate that
beat its parent after the best moved is merged into the new best and run again.

How a run starts (or resumes) is :mod:`.setup`; the baseline, :mod:`.baseline`; the holdout,
:mod:`.holdout`. Nothing here knows pytest's terminal: :mod:`..ui.driver` presents the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ..core import verdict
from ..core.columns import MetricColumns
from ..core.defaults import MAX_REAPPLY
from ..core.history import History
from ..core.noise import Noise
from ..core.records import Alarm, MetricSpec, Rescore, RunResult, Status, TrialRecord
from ..core.stopping import stop_reason
from ..core.text import one_line
from ..errors import FatalError
from ..fitness_json import FILENAME as FITNESS_JSON
from ..proposals.proposal import Proposal, check
from ..proposals.reach import reached
from ..proposals.surface import Surface
from ..settings import Settings
from ..store.audit import AuditTrail, read_audit
from ..store.runfolder import RunMeta
from . import baseline
from .candidate import Candidate
from .evaluation import Evaluator
from .holdout import Holdout
from .hooks import rule_of
from .integrity import Integrity
from .proposer import Proposer, limits_of, preflight
from .recorder import Recorder, message, signals_held
from .rescore import Judge, rescore
from .setup import Run, start_run
from .slots import Slot, Slots

__all__ = ["Candidate", "ResearchLoop"]


def baseline_alarms(entries: list[dict]) -> set[tuple[str, str, str]]:
    """What the user's own code reached for at the baselines of a resumed run (audit.jsonl)."""
    alarms = (Alarm.from_dict(a) for e in entries if e.get("status") == Status.BASELINE for a in e.get("alarms") or ())
    return {alarm.key for alarm in alarms if alarm is not None}


def _lines(text: str | None) -> int:
    """Surface size for the simplicity rule: non-blank lines."""
    return 0 if text is None else sum(1 for line in text.splitlines() if line.strip())


class ResearchLoop:
    """A started run's parts; :meth:`begin`, :meth:`advance` and :meth:`abort` are a trial's steps."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.history = History()
        self.noise = Noise()
        self.rule = rule_of(config)
        self.metric: MetricSpec | None = None  # the primary fitness test, once the baseline stands
        self.known_alarms: set[tuple[str, str, str]] = set()  # what the baseline's own code reached for
        self.columns = MetricColumns()
        self.limits = limits_of(settings)
        self.review = Surface(settings.review)
        self.note: Callable[[str], None] = print  # status lines for the user; the driver routes them
        self._run: Run | None = None
        self.rescored: Rescore | None = None  # the final best scored again outside the run (run.json's)
        self.evaluator: Evaluator
        self.proposer: Proposer
        self.holdout: Holdout
        self.recorder: Recorder
        self.integrity: Integrity

    @property
    def run(self) -> Run:
        assert self._run is not None, "the run is not prepared"
        return self._run

    @property
    def slots(self) -> Slots:
        assert self.run.slots is not None
        return self.run.slots

    def prepare(self) -> None:
        """Start the run, or take up an earlier one with the same tag. Raises SetupError."""
        self._run = run = start_run(self.config, self.settings)
        preflight(run, self.settings.agent_spec)  # before a baseline that can take minutes
        self.evaluator = Evaluator(self.config, self.settings, run)
        self.proposer = Proposer(run, self.settings, self.history, self.evaluator.in_worktree(self.settings.rootdir))
        self.proposer.noise, self.proposer.rule, self.proposer.timeout = lambda: self.noise, self.rule, lambda: self.evaluator.timeout
        self.holdout = Holdout(run, self.evaluator)
        audit = AuditTrail(run.folder.path, run.repo.git, run.agent.describe(), getattr(run.agent, "model", None))
        self.recorder = Recorder(self.config, run.repo, run.tag, self.history, audit)
        self.recorder.observers.append(run.agent.logged)
        self.integrity = Integrity(
            lambda: self.recorder.log, run.folder, run.guard, lambda: self.history.records, self.recorder,
            worktrees=lambda: [slot.worktree for slot in self.slots.all] if run.slots is not None else [],
        )
        if run.meta is None:
            return
        meta = run.meta
        self.metric = self.proposer.metric = meta.metric
        self.columns = MetricColumns(meta.column_keys)
        for record in run.records:
            self.history.append(record)
            self.noise.add_summary(record.runs, record.spread)
        self.proposer.spent = self.history.spent
        self.recorder.open_log(run.folder.results, meta.columns, usage=meta.usage, resume=True)
        if self.recorder.audit.broken is not None:
            run.notes.append(f"audit.jsonl's hash chain breaks at line {self.recorder.audit.broken} (changed outside the loop, or written before records were chained)")
        self.holdout.resume(meta)
        self.rescored = meta.rescore
        self.known_alarms = baseline_alarms(read_audit(self.recorder.audit.path))
        self.proposer.holdout_files = self.holdout.files
        if self.evaluator.timeout is None:
            self.evaluator.timeout = meta.timeout

    def baseline(self) -> TrialRecord:
        """Score the start commit; any problem is a SetupError (a new run's set-up is undone)."""
        try:
            record = baseline.score(self)
        except BaseException:
            if not self.run.resumed:
                self.run.abandon()
            raise
        self.recorder.watch_files(record.trial, ["holdout.log", "holdout.result.json"])  # written after its row
        return record

    def save_meta(self) -> None:
        run, metric, log, holdout = self.run, self.metric, self.recorder.log, self.holdout
        assert metric is not None and log is not None
        meta = RunMeta(
            tag=run.tag,
            head=run.meta.head if run.meta else run.head,
            base_ref=run.base_ref,
            metric=metric,
            columns=self.columns.names,
            column_keys=self.columns.keys,
            usage="tokens_in" in log.columns,
            timeout=self.evaluator.timeout,
            holdout=holdout.scores,
            holdout_best_trial=holdout.best_trial,
            holdout_goals=holdout.goals,
            holdout_files=sorted(holdout.files),
            rescore=self.rescored,
            mutable=list(run.surface.globs),
        )
        run.folder.write_meta(meta)

    def final_holdout(self) -> None:
        """Score the holdout tests on the final best (slot 0 holds it between trials)."""
        if "baseline" not in self.holdout.scores or self._run is None or self.run.slots is None:
            return
        best = self.history.best.trial
        self.holdout.scores["best"] = self.holdout.score(best, self.note)
        self.holdout.best_trial = best
        self.save_meta()

    def rescore_due(self) -> bool:
        """Whether the final best needs a re-score: a kept trial not re-scored yet."""
        if self._run is None or self.run.slots is None or self.metric is None or not self.history:
            return False
        best = self.history.best
        return best.status == Status.KEEP and (self.rescored is None or self.rescored.commit != best.commit)

    def settle(self) -> list[str]:
        """Once every trial is judged: what earlier trials left in worktrees no later check
        looked at (a link rewritten in another slot), repaired before anything runs again."""
        nothing = RunResult(exit_code=0, seconds=0.0, finished=True)
        return sorted({found for slot in self.run.slots.all for found in self.integrity.check(nothing, slot)}) if self.run.slots else []

    def final_rescore(self) -> Rescore | None:
        """Score the final best again in a fresh clone outside the run (:mod:`.rescore`), once
        per best: only when a trial was kept, and not again for a best already re-scored."""
        if not self.rescore_due():
            return None
        assert self.metric is not None
        best = self.history.best
        judge = Judge(self.metric, self.rule, self.noise, self.evaluator.timeout, self.settings.memory_mb)
        integrity = lambda: self.integrity.check(RunResult(exit_code=0, seconds=0.0, finished=True), self.run.home)
        self.rescored = rescore(self.run, self.evaluator, best, judge, sorted(self.holdout.files), integrity)
        self.recorder.watch_files(best.trial, [f"rescore{n if n > 1 else ''}.log" for n in range(1, 2 + max(self.rule.confirm_runs, 2))])
        self.save_meta()
        return self.rescored

    # -- one trial: begin (write the candidate), advance (after each run), abort ------------

    def begin(self, number: int, proposal: Proposal, slot: Slot) -> TrialRecord | Candidate:
        """Check a proposal and write it into ``slot`` on top of the current best: the trial in
        flight, or its record when it was invalid (then nothing runs)."""
        run, best = self.run, self.history.best
        description = one_line(proposal.description or "(no description)")
        self.proposer.received(number, proposal)
        read = self.proposer.read
        changes, reason = check(proposal, run.surface, read, self.limits)
        if reason is None:
            reason = next((why for p in changes if (why := slot.worktree.unsafe(run.prefix + p))), None)
        if reason is not None:
            record, self.proposer.last_failure = verdict.invalid(number, description, best, reason, proposal.usage)
            self.recorder.record(record, branch_from=None, started=time.time(), prompt=proposal.prompt, answer=proposal.answer)
            return record
        lines = sum(_lines(text) - _lines(read(p)) for p, text in changes.items())
        candidate = Candidate(number, proposal, description, slot, best, changes, lines)
        try:
            self.slots.write(candidate)
        except BaseException:
            self.slots.reset(slot, best.commit)
            raise
        return candidate

    def advance(self, c: Candidate, result: RunResult) -> int | TrialRecord:
        """Take the result of one run of a trial in flight: the next run it needs (its attempt
        number), or, once it is judged, its record (logged, refs moved, slot reset)."""
        try:
            if result.shadowed:
                raise FatalError(baseline.shadow_message(result.shadowed, self.settings))
            c.runs.append(verdict.Run(result, self.integrity.check(result, c.slot)))
            outcome = verdict.assess(self._judging(c), c.runs)
        except BaseException:
            self.slots.reset(c.slot, self.history.best.commit)
            raise
        if outcome.failure is not None:
            self.proposer.last_failure = outcome.failure
        if outcome.record is None:
            assert outcome.attempt is not None
            c.attempt = outcome.attempt
            return c.attempt
        if outcome.noise is not None:
            self.noise = outcome.noise
        return self._finish(c, outcome.record)

    def _judging(self, c: Candidate) -> verdict.Judging:
        metric = self.metric
        assert metric is not None

        def keep_rule(candidate: TrialRecord, noise: Noise) -> verdict.Decision:
            return self.config.hook.pytest_autoresearch_decide(config=self.config, metric=metric, candidate=candidate, best=c.parent, noise=noise)

        return verdict.Judging(
            trial=c.number, description=c.description, metric=metric, best=c.parent, lines=c.lines, rule=self.rule,
            noise=self.noise, columns=self.columns, timeout=self.evaluator.timeout, memory_mb=self.settings.memory_mb, keep_rule=keep_rule,
        )

    def _finish(self, c: Candidate, record: TrialRecord) -> int | TrialRecord:
        run, slot = self.run, c.slot
        record.usage = c.proposal.usage
        verdict.reapplied(record, c.reapplied)
        reaches = reached(c.changes, lambda path: self.run.repo.show(c.parent.commit, self.run.prefix + path)) if record.status == Status.KEEP else []
        alarms = verdict.new_alarms([r.result for r in c.runs], self.known_alarms) if record.status == Status.KEEP else []
        verdict.parked(record, [path for path in c.changes if self.review.matches(path)], reaches, alarms)
        if record.status == Status.KEEP and c.parent.commit != self.history.best.commit:
            again = self._reapply(c, record)
            if again is not None:
                return again
        tampered = [p for run_ in c.runs for p in run_.tampered]
        try:
            kept = record.status == Status.KEEP
            tracked = run.home.manifest.blobs.get(run.prefix + FITNESS_JSON) is not None
            tree = self.slots.update_fitness_json([r.result for r in c.runs], c, tracked) if kept else c.tree
            record.commit = slot.worktree.commit_tree(tree, c.parent.commit, message(record))
            if kept:
                run.surface_files = sorted(set(run.surface_files) | set(c.changes))
            self.recorder.record(
                record, branch_from=c.parent.commit if kept else None, results=[r.result for r in c.runs], started=c.wall_started,
                prompt=c.proposal.prompt, answer=c.proposal.answer, tree=tree, worker=slot.index, device=slot.device,
            )
        finally:
            best = self.history.best.commit
            self.slots.reset(slot, best, tampered)
            if run.home is not slot and run.home.at != best:
                self.slots.reset(run.home, best)
        return record

    def _reapply(self, c: Candidate, record: TrialRecord) -> int | None:
        """A candidate beat the best it started from, but another trial was kept meanwhile:
        merge its change into the new best and run it again (the attempt to run), or make it a
        discard saying why it cannot be (a conflict, nothing left to change, the best kept moving)."""
        best, run, read = self.history.best, self.run, self.proposer.read
        self.slots.reset(c.slot, best.commit)
        merged: dict[str, str | None] = {}
        if len(c.reapplied) >= MAX_REAPPLY:
            why: str | None = f"better than trial {c.parent.trial}, but the best moved {MAX_REAPPLY + 1} times while it ran"
        else:
            merged, why = self.slots.merge(c, best.trial, lambda path: run.repo.show(c.parent.commit, run.prefix + path), read)
        if why is None:
            _, why = check(Proposal(c.description, merged), run.surface, read, self.limits)
        if why is not None:
            verdict.refused(record, why)
            return None
        c.reapplied.append(best.trial)
        c.lines = sum(_lines(text) - _lines(read(path)) for path, text in merged.items())
        c.parent, c.changes, c.runs, c.attempt = best, merged, [], 1
        self.slots.write(c)
        return c.attempt

    def abort(self, c: Candidate, reason: str = "interrupted (Ctrl-C or SIGTERM) before it was judged") -> TrialRecord | None:
        """Log a trial in flight as a crash (the run is stopping) and reset its slot; nothing
        when its row is written already (the stop came while its verdict was recorded)."""
        if self.history.find(c.number) is not None:
            return None
        seconds = time.monotonic() - c.started
        record = verdict.interrupted(c.number, c.description, c.parent, seconds, reason, c.proposal.usage, c.lines)
        try:
            if c.tree:
                record.commit = c.slot.worktree.commit_tree(c.tree, c.parent.commit, message(record))
            self.recorder.record(
                record, branch_from=None, started=c.wall_started, prompt=c.proposal.prompt, answer=c.proposal.answer,
                tree=c.tree or None, worker=c.slot.index, device=c.slot.device,
            )
        finally:
            self.slots.reset(c.slot, self.history.best.commit)
        return record

    # -- stopping and the end ----------------------------------------------------------

    def stop_reason(self, session_started: float) -> str | None:
        """Why the run must stop now, if it must: a STOP file, a stop rule or the budget."""
        s = self.settings
        stop_file = self.run.folder.path / "STOP"
        if stop_file.exists():
            stop_file.unlink(missing_ok=True)
            return f"found {stop_file} (removed it; run again with the same tag to continue)"
        assert self.metric is not None
        return stop_reason(
            self.history, goal=self.metric.goal, elapsed=time.monotonic() - session_started, session_start=self.proposer.session_start,
            spent=self.proposer.spent, time_limit=s.time_limit, target=s.target, patience=s.patience, max_cost=s.max_cost,
        )

    def scrubbed_note(self) -> str | None:
        if not self.evaluator.scrubbed:
            return None
        return f"trials run without {', '.join(self.evaluator.scrubbed)} (secret-looking; autoresearch_pass_env passes them on)"

    def finish(self) -> None:
        """End of the run however it ended: release the agent, drop the worktrees, unlock."""
        if self._run is None:
            return
        run = self._run
        with signals_held(deliver=False):  # a Ctrl-C now would leave worktrees behind, and the run ends anyway
            run.agent.close()
            if run.slots is not None:
                for slot in run.slots.all:
                    run.repo.remove_worktree(slot.worktree.path)
            run.slots = None
            run.folder.unlock()
