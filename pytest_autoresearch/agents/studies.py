"""The tuner's studies: one Optuna study per program, kept in the run folder's ``optuna.db``.

A study belongs to one *skeleton* (:func:`.space.skeleton`: the surface's text without its
settings' values) and one :class:`~.space.Space` (the dimensions made when it started, kept in
its user attributes, so a resumed run asks exactly the same questions). A version of the surface
with another skeleton is another program: its scores never go into this study. A new study starts
when the current best has a skeleton no study has, or has left every such study's space (a
model's keep can move a setting far); it is named after the run's tag (``<tag>``, then
``<tag>-2``, ...), so the first one is simply the tag.

What each trial of a study is, in its user attributes: ``trial`` (the loop's trial number, for a
trial this agent asked for), ``parent_trial`` (the best it was asked on), ``literals`` (the values
written into the file), ``logged_trial`` (for a trial added from the log: a start point, or what a
re-applied candidate really ran), ``outcome`` (why it failed) and ``not_run`` (it failed without
its values being evaluated: it may be asked again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.records import Status, TrialRecord
from .space import Space, version_key
from .targets import Value

#: A version a study knows: its score, or one of these.
RUNNING, FAILED = "running", "failed"
ATTR = "autoresearch"  # the study user attribute that marks a study as this agent's
#: statuses whose score is an evaluation of the values that ran (a bound broken aside)
SCORED = (Status.KEEP, Status.DISCARD, Status.REVIEW, Status.BASELINE)


def scored(record: TrialRecord) -> float | None:
    """The score a study is told for this record, or None when it counts as a failed trial:
    keep, discard and review (it ran, it passed) and a baseline have their score; a crash, a
    timeout, a tamper, an invalid proposal and a discard that broke a metric bound fail."""
    if record.status not in SCORED or record.score is None or not math.isfinite(record.score):
        return None
    return None if record.reason.startswith("breaks a bound") else float(record.score)


def violation(record: TrialRecord, bounds: Mapping[str, tuple[float | None, float | None]]) -> float | None:
    """How far a trial that ran to a score but broke a metric bound lies outside the bounds (the
    sum over its gated metrics; 1.0 when its metrics do not say), or None when it broke none:
    a sampler that knows constraints (TPE) learns from such a trial instead of losing it."""
    if record.status not in SCORED or record.score is None or not math.isfinite(record.score):
        return None
    if not record.reason.startswith("breaks a bound"):
        return None
    total = 0.0
    for name, (low, high) in bounds.items():
        value = record.metrics.get(name)
        if value is None or not math.isfinite(value):
            continue
        total += max(0.0, (low - value) if low is not None else 0.0) + max(0.0, (value - high) if high is not None else 0.0)
    return total if total > 0 else 1.0


def ran_elsewhere(record: TrialRecord, parent_trial: int | None) -> bool:
    """Whether the candidate ran with other values than asked: it beat the best it was asked on
    after the best moved, and was merged into the new best and run again (engine/loop.py)."""
    moved = record.parent_trial is not None and parent_trial is not None and record.parent_trial != parent_trial
    return moved or "re-applied on trial" in record.reason


def not_run(record: TrialRecord) -> bool:
    """A crash that says the run stopped before the candidate was judged: its values were never
    fully evaluated."""
    return record.status == Status.CRASH and record.reason.startswith(("interrupted", "the run stopped before"))


@contextmanager
def quiet() -> Iterator[None]:
    """Optuna's experimental and deprecation warnings are not the user's to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclasses.dataclass
class Tracked:
    """One study of this agent's, loaded."""

    name: str
    skeleton: str
    space: Space
    index: int
    study: Any  # optuna.Study
    distributions: dict[str, Any]
    added: set[int] = dataclasses.field(default_factory=set)  # logged trials added to it
    known: dict[tuple[tuple[str, str], ...], float | str] = dataclasses.field(default_factory=dict)

    def contains(self, values: Mapping[str, Value]) -> bool:
        return self.space.params(values) is not None

    def key_of(self, frozen: Any) -> tuple[tuple[str, str], ...] | None:
        literals = frozen.user_attrs.get("literals")
        if isinstance(literals, dict):
            return version_key(literals)
        if set(frozen.params) >= set(self.space.names):
            return version_key(self.space.literals(frozen.params))
        return None

    def learn(self, frozen: Any) -> None:
        """What a finished or running trial tells of its version."""
        key = self.key_of(frozen)
        if key is None or frozen.user_attrs.get("not_run"):
            return
        state = frozen.state.name
        if state == "COMPLETE":
            self.known[key] = frozen.value
        elif state == "RUNNING":
            self.known.setdefault(key, RUNNING)
        elif state == "FAIL" and "duplicate_of" not in frozen.user_attrs:
            self.known.setdefault(key, FAILED)


class Studies:
    """This agent's studies in one SQLite file."""

    def __init__(self, optuna: Any, path: Path, tag: str, goal: str, sampler: Callable[[int], Any], seed: int) -> None:
        self.optuna = optuna
        self.path = path
        self.tag = tag
        self.direction = "minimize" if goal == "min" else "maximize"
        self.make_sampler = sampler
        self.seed = seed
        path.parent.mkdir(parents=True, exist_ok=True)
        with quiet():
            self.storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
            frozen = [s for s in self.storage.get_all_studies() if isinstance(s.user_attrs.get(ATTR), dict)]
        self.tracked = sorted((self._load(s.study_name, s.user_attrs[ATTR]) for s in frozen), key=lambda t: t.index)

    def _sampler_seed(self, name: str, trials: int) -> int:
        """The seed and the study's length so far: a resumed run does not replay its first draws."""
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{name}:{trials}".encode()).digest()[:4], "big")

    def _load(self, name: str, info: Mapping[str, Any]) -> Tracked:
        space = Space.from_json(info["space"])
        with quiet():
            trials = len(self.storage.get_all_trials(self.storage.get_study_id_from_name(name), deepcopy=False))
            study = self.optuna.load_study(study_name=name, storage=self.storage, sampler=self.make_sampler(self._sampler_seed(name, trials)))
        tracked = Tracked(name, str(info["skeleton"]), space, int(info["index"]), study, self._distributions(space))
        for frozen in study.get_trials(deepcopy=False):
            tracked.learn(frozen)
            if "logged_trial" in frozen.user_attrs:
                tracked.added.add(int(frozen.user_attrs["logged_trial"]))
        return tracked

    def _distributions(self, space: Space) -> dict[str, Any]:
        d = self.optuna.distributions
        out: dict[str, Any] = {}
        for dim in space.dims:
            if dim.kind == "categorical":
                out[dim.name] = d.CategoricalDistribution(list(dim.choices))
            elif dim.kind == "int":
                out[dim.name] = d.IntDistribution(int(dim.low), int(dim.high), log=dim.log)
            else:
                out[dim.name] = d.FloatDistribution(float(dim.low), float(dim.high), log=dim.log)
        return out

    def find(self, skeleton: str, values: Mapping[str, Value]) -> Tracked | None:
        """The latest study of this program whose space holds these values."""
        return next((t for t in reversed(self.tracked) if t.skeleton == skeleton and t.contains(values)), None)

    def latest(self, skeleton: str) -> Tracked | None:
        return next((t for t in reversed(self.tracked) if t.skeleton == skeleton), None)

    def create(self, skeleton: str, space: Space, trial: int) -> Tracked:
        index = max((t.index for t in self.tracked), default=0) + 1
        name = self.tag if index == 1 else f"{self.tag}-{index}"
        info = {"skeleton": skeleton, "space": space.to_json(), "index": index, "from_trial": trial}
        with quiet():
            study = self.optuna.create_study(
                storage=self.storage, study_name=name, direction=self.direction, sampler=self.make_sampler(self._sampler_seed(name, 0))
            )
            study.set_user_attr(ATTR, info)
        tracked = Tracked(name, skeleton, space, index, study, self._distributions(space))
        self.tracked.append(tracked)
        return tracked

    def add(self, tracked: Tracked, values: Mapping[str, Value], score: float, logged_trial: int, source: str) -> bool:
        """A version that ran and its score, as a completed trial (False: outside the space)."""
        params = tracked.space.params(values)
        if params is None or logged_trial in tracked.added:
            return False
        literals = {name: values[name] for name in tracked.space.names}
        attrs = {"logged_trial": logged_trial, "source": source, "literals": literals}
        with quiet():
            frozen = self.optuna.trial.create_trial(params=params, distributions=tracked.distributions, value=score, user_attrs=attrs)
            tracked.study.add_trial(frozen)
        tracked.added.add(logged_trial)
        tracked.known[version_key(literals)] = score
        return True

    def running(self) -> Iterator[tuple[Tracked, Any]]:
        """Every asked trial still waiting for its outcome, with its study."""
        for tracked in self.tracked:
            for frozen in tracked.study.get_trials(deepcopy=False, states=(self.optuna.trial.TrialState.RUNNING,)):
                if "trial" in frozen.user_attrs:
                    yield tracked, frozen

    def asked(self) -> set[int]:
        """The loop's trial numbers this agent asked for (and whose outcome came or may come)."""
        return {
            int(f.user_attrs["trial"]) for t in self.tracked for f in t.study.get_trials(deepcopy=False)
            if "trial" in f.user_attrs and not f.user_attrs.get("lost")
        }

    def close(self) -> None:
        with quiet():
            self.storage.remove_session()
            self.storage.engine.dispose()
