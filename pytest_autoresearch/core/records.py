"""What one trial is: the records the driver, the log, the agents and the reports share.

Kept free of pytest, git and I/O so every other module can import it cheaply.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any, Literal

Goal = Literal["min", "max"]


class Status(str, enum.Enum):
    """A trial's verdict, as results.tsv, the terminal and JUnit spell it.

    A ``str`` enum, so ``record.status == "keep"`` and string formatting keep working for
    plugins written against the plain words; only :mod:`~pytest_autoresearch.core.verdict`
    chooses one.
    """

    BASELINE = "baseline"  # the start commit, scored (again, when the branch moved outside the loop)
    KEEP = "keep"  # better (beyond the noise), every test passed: the branch moved to it
    DISCARD = "discard"  # ran cleanly, not kept: not better, a bound broken, or not re-applicable
    CRASH = "crash"  # a test failed, the session did not finish, or the run was interrupted
    TIMEOUT = "timeout"  # a test or the whole trial passed its time limit
    INVALID = "invalid"  # the proposal was refused before anything ran
    TAMPER = "tamper"  # the trial changed what it must not (frozen files, the run's files, .git)
    REVIEW = "review"  # would be kept, but touches files a person reviews (autoresearch_review)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: Status words of results.tsv, in the order a reader meets them.
STATUSES = tuple(status.value for status in Status)


def is_better(score: float, than: float, goal: str) -> bool:
    """Return True when ``score`` is strictly better than ``than`` for ``goal``."""
    return score < than if goal == "min" else score > than


def improvement(score: float, than: float, goal: str) -> float:
    """How much better ``score`` is than ``than``: positive means better, whatever the goal."""
    return than - score if goal == "min" else score - than


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A fitness test as the loop knows it after the baseline."""

    nodeid: str
    name: str
    goal: Goal
    primary: bool


@dataclasses.dataclass
class FitnessResult:
    """The score (and named metrics) one fitness test recorded in one run."""

    nodeid: str
    name: str
    goal: Goal
    primary: bool
    score: float | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    bounds: dict[str, tuple[float | None, float | None]] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> SHA-256 (fitness.artifact)


@dataclasses.dataclass
class TestResult:
    """The outcome of one test inside a trial run."""

    __test__ = False  # not a test class, whatever pytest's name patterns say

    nodeid: str
    outcome: str  # passed, failed, error, skipped
    duration: float = 0.0
    timed_out: bool = False
    failure: str = ""


@dataclasses.dataclass(frozen=True)
class Alarm:
    """What a trial's candidate code reached for, seen at run time by the trial's audit hook
    (:mod:`pytest_autoresearch.trial_guard`): the audit event, what it meant, and where."""

    event: str  # "gc.get_objects", "open", ...
    what: str  # "called gc.get_objects", "opened /proc/self/mem"
    file: str  # relative to the trial's worktree when inside it
    line: int
    text: str = ""  # the line of code, as the trial read it

    @property
    def key(self) -> tuple[str, str, str]:
        """What the baseline's run must also have raised for this not to be the candidate's doing:
        the same event from the same line of code (line numbers move with any edit above)."""
        return (self.event, self.file, self.text)

    def describe(self) -> str:
        return f"trial code {self.what} at {self.file}:{self.line}"

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Alarm | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["event"]), str(data["what"]), str(data["file"]), int(data["line"]), str(data.get("text", "")))
        except (KeyError, TypeError, ValueError):
            return None


@dataclasses.dataclass
class RunResult:
    """What one ``python -m pytest`` trial subprocess produced.

    ``finished`` is True only when the trial's pytest session ended normally and wrote its
    result through the plugin's channel; a run that did not finish has no scores.
    """

    exit_code: int | None
    seconds: float
    finished: bool
    killed: bool = False  # the driver's hard deadline killed the process group
    memory_exceeded: bool = False  # the group's memory passed the cap and it was killed
    tests: list[TestResult] = dataclasses.field(default_factory=list)
    fitness: list[FitnessResult] = dataclasses.field(default_factory=list)
    shadowed: list[str] = dataclasses.field(default_factory=list)
    tampered: list[str] = dataclasses.field(default_factory=list)  # frozen files the trial changed
    holdout: list[str] = dataclasses.field(default_factory=list)  # holdout tests the trial left out
    alarms: list[Alarm] = dataclasses.field(default_factory=list)  # what its candidate code reached for
    output_tail: str = ""
    log_path: Path | None = None

    @property
    def timed_out(self) -> bool:
        return self.killed or any(t.timed_out for t in self.tests)

    @property
    def failed_tests(self) -> list[TestResult]:
        return [t for t in self.tests if t.outcome in ("failed", "error")]

    def failure_text(self, limit: int = 4000) -> str:
        """A bounded account of why the run failed: the first failure, else the output tail."""
        for test in self.failed_tests:
            text = f"{test.nodeid} {test.outcome}:\n{test.failure}".rstrip()
            return text if len(text) <= limit else "...\n" + text[-limit:]
        tail = self.output_tail.rstrip()
        return tail if len(tail) <= limit else "...\n" + tail[-limit:]


@dataclasses.dataclass(frozen=True)
class Usage:
    """What asking a model for one proposal consumed; ``cost`` is None when the model is unpriced.
    ``cached_tokens`` are the part of ``prompt_tokens`` the provider read from its prompt cache."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    cached_tokens: int = 0


@dataclasses.dataclass
class TrialRecord:
    """One row of results.tsv: a trial (number 0 is the baseline) and its verdict."""

    trial: int
    status: Status
    description: str
    commit: str = ""
    parent: str = ""  # the commit of the best it started from
    score: float | None = None
    delta: float | None = None
    seconds: float = 0.0
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    reason: str = ""
    usage: Usage | None = None
    runs: int = 1  # how many times it was evaluated; ``score`` is the mean of those runs
    spread: float | None = None  # the standard deviation of its runs' scores
    lines: int | None = None  # surface lines added (negative: removed) against the best before it
    parent_trial: int | None = None  # the trial whose commit ``parent`` is

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a plain word from a plugin or an older log

    @property
    def kept(self) -> bool:
        """Whether the branch moved to this trial's commit (the baseline is where it starts)."""
        return self.status in (Status.BASELINE, Status.KEEP)


class Reproduction(str, enum.Enum):
    """How the final best fared when scored again in a fresh clone outside the run."""

    REPRODUCED = "reproduced"  # the same score, within the noise rule, and every test passed
    DIFFERS = "differs"  # a score beyond the noise rule from the recorded one
    FAILED = "failed"  # a test failed, it timed out or crashed, or it recorded no score
    NOT_RUN = "not run"  # the clone could not be made: nothing was learnt about the candidate

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass
class Rescore:
    """The final best scored again where nothing says a loop is evaluating it (run.json's
    ``rescore``): a candidate that behaves differently when it can tell shows up here."""

    trial: int
    commit: str
    outcome: Reproduction
    recorded: float | None  # the best's score in the log
    scores: list[float] = dataclasses.field(default_factory=list)  # the re-score's runs
    threshold: float | None = None  # the largest difference the noise rule allows
    reason: str = ""
    seconds: float = 0.0
    folder: str = ""  # where the clone was (removed afterwards)
    log: str = ""  # its log, relative to the run folder
    sandbox: bool = False

    def __post_init__(self) -> None:
        self.outcome = Reproduction(self.outcome)

    @property
    def score(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None

    @property
    def agreed(self) -> bool | None:
        """True when it reproduced, False when it did not, None when it could not run."""
        return None if self.outcome == Reproduction.NOT_RUN else self.outcome == Reproduction.REPRODUCED

    def to_json(self) -> dict[str, object]:
        return {
            "trial": self.trial, "commit": self.commit, "outcome": str(self.outcome), "agreed": self.agreed,
            "score": self.score, "recorded": self.recorded, "scores": list(self.scores), "threshold": self.threshold,
            "reason": self.reason, "seconds": round(self.seconds, 3), "folder": self.folder, "log": self.log, "sandbox": self.sandbox,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rescore:
        return cls(
            trial=int(data["trial"]), commit=str(data["commit"]), outcome=Reproduction(data["outcome"]),
            recorded=data.get("recorded"), scores=[float(s) for s in data.get("scores") or []], threshold=data.get("threshold"),
            reason=str(data.get("reason", "")), seconds=float(data.get("seconds", 0.0)), folder=str(data.get("folder", "")),
            log=str(data.get("log", "")), sandbox=bool(data.get("sandbox", False)),
        )
