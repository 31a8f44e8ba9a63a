"""``optuna[:tpe|cmaes|random][:SEED]``: an Optuna study over the surface's settings.

The settings ``mutate`` would change (:mod:`.targets`, declared choices included; those of files
under ``autoresearch_review`` held while others are left) are the study's search space (:mod:`.space`); each trial is one ``study.ask()`` with every setting drawn, written
into the files as ``mutate`` writes them (``model.py:12 LR 0.01 -> 0.0312``), and its outcome is
one ``study.tell()`` once the trial's row is logged. TPE by default (five random trials, the
baseline one of them, then the model, with the constant liar so that trials in flight are not asked twice),
CMA-ES (``optuna:cmaes``: numbers only; categorical settings are drawn at random) or random
search (``optuna:random``, the benchmark's yardstick over the same space); seeded, default 0.

What a study is told, from the trial's row (:func:`.studies.scored`):

- keep, discard (not better), review (parked for a person) and a re-baseline: the score, with the
  study's direction from the primary metric (the mean of the runs under noise);
- a discard that broke a metric bound: for TPE an infeasible trial with its score
  (:func:`.studies.violation`), for the samplers that take no constraints a failed trial;
- crash, timeout, tamper, invalid: a failed trial;
- a candidate re-applied on a best that moved while it ran (:meth:`engine.loop.ResearchLoop._reapply`)
  ran with other values than asked: the asked trial fails (marked ``not_run``), and what ran,
  read from the trial's commit, is added as a trial of its own when its values lie in the space.
  A study is never told a score for values that did not run.

Versions the study knows already (the current best included) are not proposed again: a draw that
repeats one is told as a failed duplicate, and TPE or CMA-ES asks an untried neighbour of it next
(random search draws again). Trials of other agents (a model's, in a
``hybrid``) that only changed values are added to the study of their program, read from their
commits. The study lives in the run folder (``optuna.db``, Optuna's SQLite storage), so a resumed
run resumes it; a trial asked but never logged (the driver was killed) fails when it resumes.
Optuna is an optional extra, imported only when this agent is made.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.records import TrialRecord
from ..core.text import one_line
from ..names import RUN_DIR_NAME
from ..proposals.proposal import Proposal
from .base import Agent, AgentError, AgentExhausted, ProposalContext
from .commits import ReadError, commit_files
from .edits import apply_changes, describe_changes, render
from .mutate import WHAT_IT_CHANGES, settings_problem
from .space import param_name, skeleton, space_of, values_of, version_key
from .studies import FAILED, RUNNING, Studies, Tracked, not_run, quiet, ran_elsewhere, scored, violation
from .targets import Setting, Target, Value, find_targets, held_files, unreviewed

#: draws in a row that repeat known versions before the space counts as exhausted
MAX_ASKS = 50
#: TPE's random start-up, in completed trials (Optuna's default is 10); the baseline is one
TPE_STARTUP = 5
#: tries at an untried neighbour of a draw that repeats a known version
NEIGHBOUR_TRIES = 30
DB_NAME = "optuna.db"


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        from ..install_hint import pip_install

        raise AgentError(f"the optuna agent needs optuna: {pip_install('optuna')}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaAgent(Agent):
    name = "optuna"

    def __init__(self, sampler: str = "tpe", seed: int = 0, choices: Setting | None = None) -> None:
        self.sampler = sampler
        self.seed = seed
        self.declared = dict(choices or {})
        self.optuna = import_optuna()
        self.studies: Studies | None = None
        self.context: ProposalContext | None = None  # the last one: its worktree reads commits
        #: trial number -> (study, trial id, trial number in the study, parent trial, version)
        self.pending: dict[int, tuple[Tracked, int, int, int | None, tuple[tuple[str, str], ...]]] = {}
        self.ours: set[int] = set()  # trial numbers this agent asked for, in any session
        self.synced: set[int] = set()  # logged trials already looked at
        self.versions: dict[str, tuple[str, dict[str, Value]] | None] = {}  # commit -> (skeleton, values)
        self.unreadable = False

    def describe(self) -> str:
        return f"optuna {self.sampler} (seed {self.seed})"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        return settings_problem(files, self.declared, self._nothing)

    @staticmethod
    def _nothing(names: str) -> str:
        return (
            f"optuna found nothing it can tune in {names}: like mutate, {WHAT_IT_CHANGES}. Name files with such "
            "settings in autoresearch_mutable, move the knobs into module constants, or use an agent that edits code"
        )

    def start(self, context: ProposalContext) -> None:
        if reason := self.preflight(context.files):
            raise AgentError(reason)
        self._open(context)
        self._sync(context, context.history)

    def _make_sampler(self, seed: int) -> Any:
        samplers = self.optuna.samplers
        with quiet():
            if self.sampler == "cmaes":
                return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
            if self.sampler == "random":
                return samplers.RandomSampler(seed=seed)
            return samplers.TPESampler(seed=seed, n_startup_trials=TPE_STARTUP)

    def _open(self, context: ProposalContext) -> None:
        """The run's studies, once; what earlier sessions asked and never heard of fails now."""
        self.context = context
        if self.studies is not None:
            return
        path = context.rootdir / RUN_DIR_NAME / context.tag / DB_NAME
        try:
            self.studies = Studies(self.optuna, path, context.tag, context.metric.goal, self._make_sampler, self.seed)
        except Exception as exc:  # SQLAlchemy's and Optuna's errors alike: a file that is no study storage
            why = one_line(str(exc).split("\n")[0], 200)
            raise AgentError(f"optuna: cannot use {path} as its study storage ({type(exc).__name__}: {why}); move it away to start afresh") from None
        logged = {r.trial for r in context.history}
        for tracked, frozen in list(self.studies.running()):
            number = int(frozen.user_attrs["trial"])
            if number in logged:
                key = tracked.key_of(frozen) or ()
                self.pending[number] = (tracked, frozen._trial_id, frozen.number, frozen.user_attrs.get("parent_trial"), key)
                continue
            trial = self.optuna.trial.Trial(tracked.study, frozen._trial_id)
            with quiet():
                for attr, value in (("outcome", f"lost: the run stopped before trial {number} was logged"), ("not_run", True), ("lost", True)):
                    trial.set_user_attr(attr, value)
                tracked.study.tell(frozen.number, state=self.optuna.trial.TrialState.FAIL)
        self.ours = self.studies.asked()

    # -- outcomes ---------------------------------------------------------------------------

    def logged(self, record: TrialRecord) -> None:
        if self.studies is not None and self.context is not None:
            self._sync(self.context, [record])

    def _sync(self, context: ProposalContext, records: Sequence[TrialRecord]) -> None:
        """Tell the studies what the new rows say: the asked trials' outcomes, and what ran that
        no study has (a re-applied candidate's values, another agent's trials)."""
        new = [r for r in records if r.trial not in self.synced]
        ran = []
        for record in new:
            self.synced.add(record.trial)
            if record.trial in self.pending:
                if not self._tell(record):
                    ran.append(record)
            elif record.trial not in self.ours:
                ran.append(record)
        self._add_ran(context, [r for r in ran if scored(r) is not None and r.commit])

    def _tell(self, record: TrialRecord) -> bool:
        """Tell the asked trial its outcome; False when the candidate ran with other values."""
        tracked, trial_id, number, parent, key = self.pending.pop(record.trial)
        trial = self.optuna.trial.Trial(tracked.study, trial_id)
        value, fail = scored(record), self.optuna.trial.TrialState.FAIL
        as_asked = not ran_elsewhere(record, parent)
        broke = violation(record, self.context.bounds if self.context else {}) if self.sampler == "tpe" else None
        with quiet():
            if as_asked and broke is not None and hasattr(trial, "set_constraint"):
                trial.set_constraint("bounds", broke)  # TPE ranks it below every trial that kept the bounds
                trial.set_user_attr("outcome", one_line(record.reason, 200))
                tracked.study.tell(number, float(record.score or 0.0))
                tracked.known[key] = FAILED
                return True
            if as_asked and value is not None:
                tracked.study.tell(number, value)
                tracked.known[key] = value
                return True
            why = f"{record.status}: {record.reason}".rstrip(": ")
            if not as_asked:
                why = f"{why}: it ran with other values than asked (what ran is added as a trial of its own)"
            trial.set_user_attr("outcome", why)
            if not as_asked or not_run(record):
                trial.set_user_attr("not_run", True)
                tracked.known.pop(key, None)
            else:
                tracked.known[key] = FAILED
            tracked.study.tell(number, state=fail)
        return as_asked

    def _add_ran(self, context: ProposalContext, records: Sequence[TrialRecord]) -> None:
        """Add what these logged trials ran to the study of their program, read from their commits."""
        assert self.studies is not None
        for record in records:
            version = self._version(context, record.commit, records)
            if version is None:
                continue
            tracked = self.studies.find(*version)
            score = scored(record)
            if tracked is not None and score is not None:
                self.studies.add(tracked, version[1], score, record.trial, "ran")

    def _version(self, context: ProposalContext, commit: str, batch: Sequence[TrialRecord]) -> tuple[str, dict[str, Value]] | None:
        """The skeleton and values of the surface at ``commit``; the commits of ``batch`` are read with it."""
        if commit not in self.versions and not self.unreadable:
            wanted = {r.commit for r in batch if r.commit and r.commit not in self.versions} | {commit}
            try:
                found = commit_files(context, wanted, context.files)
            except ReadError as exc:
                self.unreadable = True
                context.note(f"optuna: could not read the logged trials' files ({exc}); the study learns only from its own trials")
                return None
            for sha, files in found.items():
                texts = {path: text for path, text in files.items() if text is not None}
                targets = self._targets(context, texts)
                self.versions[sha] = (skeleton(texts, targets), values_of(targets)) if targets else None
        return self.versions.get(commit)

    # -- proposals --------------------------------------------------------------------------

    def propose(self, context: ProposalContext) -> Proposal:
        self._open(context)
        self._sync(context, context.history)
        targets = self._targets(context, context.files)
        if not targets:
            return Proposal("optuna: nothing to tune", error="optuna: the surface files have no settings left to tune")
        tracked = self._study_for(context, targets)
        current = {param_name(t): render(t, t.value) for t in targets}
        trial_state = self.optuna.trial.TrialState
        rng = random.Random(f"{self.seed}:{context.trial}")
        best = version_key(values_of(targets))
        for _ in range(MAX_ASKS):
            with quiet():
                trial = tracked.study.ask(tracked.distributions)
            literals = tracked.space.literals(trial.params)
            key = version_key(literals)
            changes = [(t, literals[param_name(t)]) for t in targets if render(t, literals[param_name(t)]) != current[param_name(t)]]
            if key in tracked.known or not changes:
                with quiet():
                    trial.set_user_attr("duplicate_of", "the current best" if not changes else str(tracked.known.get(key)))
                    if tracked.known.get(key) == RUNNING or not changes:
                        trial.set_user_attr("not_run", True)
                    tracked.study.tell(trial, state=trial_state.FAIL)
                    if self.sampler != "random" and (near := self._neighbour(tracked, trial.params, best, rng)) is not None:
                        tracked.study.enqueue_trial(near, user_attrs={"neighbour_of": trial.number})  # the next ask
                continue
            with quiet():
                for attr, value in (("trial", context.trial), ("parent_trial", context.best.trial), ("literals", literals)):
                    trial.set_user_attr(attr, value)
            self.pending[context.trial] = (tracked, trial._trial_id, trial.number, context.best.trial, key)
            self.ours.add(context.trial)
            tracked.known[key] = RUNNING
            return Proposal(describe_changes(changes), apply_changes(context.files, changes))
        raise AgentExhausted(
            f"optuna: {MAX_ASKS} draws in a row were versions tried already ({len(tracked.known)} versions of the "
            f"{len(targets)} settings known in study {tracked.name}): the space looks exhausted; declare wider ranges "
            "or more choices, or use another agent to go on"
        )

    @staticmethod
    def _neighbour(tracked: Tracked, params: Mapping[str, Any], best: tuple[tuple[str, str], ...], rng: random.Random) -> dict[str, Any] | None:
        """An untried version one or two settings away from a draw that repeats a known one.

        A model-based sampler that has settled on a region draws its best versions again; asking
        it again and again wastes the run (TPE ended K-module runs after 50 repeats). Its draw
        says where it believes the best lies, so the next trial is a step from there."""
        dims = list(tracked.space.dims)
        for attempt in range(NEIGHBOUR_TRIES):
            near = dict(params)
            for dim in rng.sample(dims, min(len(dims), 1 + attempt % 2)):
                near[dim.name] = _step(dim, near[dim.name], rng)
            key = version_key(tracked.space.literals(near))
            if key not in tracked.known and key != best:
                return near
        return None

    def _targets(self, context: ProposalContext, files: Mapping[str, str]) -> list[Target]:
        """The settings this agent tunes (:func:`.targets.unreviewed`): a tuner draws every
        setting each trial, so one in a reviewed file would park every better trial."""
        return unreviewed(find_targets(files, self.declared), context.reviewed)

    def _study_for(self, context: ProposalContext, targets: list[Target]) -> Tracked:
        """The study of the current best's program whose space holds its values; a new one,
        warm-started with every logged evaluation of this program, when there is none."""
        assert self.studies is not None
        skel, values = skeleton(context.files, targets), values_of(targets)
        found = self.studies.find(skel, values)
        space = space_of(targets)
        latest = self.studies.latest(skel)
        if found is not None or (latest is not None and latest.space == space):
            return found or latest  # type: ignore[return-value]
        tracked = self.studies.create(skel, space, context.trial)
        best = context.best
        if (score := scored(best)) is not None:
            self.studies.add(tracked, values, score, best.trial, "start")
        earlier = [r for r in context.history if r.trial != best.trial and r.commit and scored(r) is not None]
        for record in earlier:
            version = self._version(context, record.commit, earlier)
            if version is not None and version[0] == skel:
                self.studies.add(tracked, version[1], float(record.score or 0.0), record.trial, "logged")
        dims = "; ".join(d.describe() for d in space.dims[:6]) + ("; ..." if len(space.dims) > 6 else "")
        held = held_files(find_targets(context.files, self.declared), targets)
        kept = f"; the settings of {', '.join(held)} stay as they are (autoresearch_review)" if held else ""
        context.note(f"optuna: study {tracked.name} ({len(tracked.added)} logged trials as its start): {dims}{kept}")
        return tracked

    def close(self) -> None:
        if self.studies is not None:
            self.studies.close()
            self.studies = None


def _step(dim: Any, x: Any, rng: random.Random) -> Any:
    """Parameter ``x`` of ``dim`` moved a step: another choice, an integer one or two away, a float
    a tenth of its range away (on its own scale), kept inside the range."""
    if dim.kind == "categorical":
        others = [c for c in dim.choices if c != x]
        return rng.choice(others) if others else x
    if dim.kind == "int":
        step = rng.choice((-2, -1, 1, 2))
        if dim.log:
            return int(min(dim.high, max(dim.low, round(x * (1.25 if step > 0 else 0.8) ** abs(step)))))
        return int(min(dim.high, max(dim.low, x + step)))
    if dim.log:
        width = math.log(dim.high / dim.low) / 10
        return min(dim.high, max(dim.low, x * math.exp(rng.uniform(-width, width))))
    width = (dim.high - dim.low) / 10
    return min(dim.high, max(dim.low, x + rng.uniform(-width, width)))
