"""The ``fitness`` marker and fixture: how a test records the score the loop optimises.

A fitness test is an ordinary test. Its score travels in ``item.user_properties`` (like
``record_property``), so it reaches junitxml, xdist controllers and the trial channel with
no extra machinery. Without ``--autoresearch`` the plugin only prints a small table of the
scores at the end of the run (and, with ``--autoresearch-save`` or ``--autoresearch-check``,
writes or checks fitness.json: :mod:`pytest_autoresearch.fitness_json`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from . import benchmark
from .core.bounds import broken_bound
from .timing import REPEATS, WARMUP, Timing, measure

if TYPE_CHECKING:
    from .core.records import Goal

#: user_properties names; also the junitxml property names.
SCORE_PROP = "fitness"
GOAL_PROP = "fitness.goal"
METRIC_PREFIX = "fitness.metric."
MIN_PREFIX = "fitness.min."
MAX_PREFIX = "fitness.max."
ARTIFACT_PREFIX = "fitness.artifact."

MARKER_HELP = (
    'fitness(goal="min"|"max", primary=False, holdout=False, stat=None): the test records a score with the '
    "fitness fixture (or, with stat=\"median\" etc., pytest-benchmark's benchmark fixture records that "
    "statistic); --autoresearch optimises the primary one (the first, unless one says "
    "primary=True); holdout tests never run in trials, only on the baseline and the final best."
)

_MARKER_KWARGS = {"goal", "primary", "holdout", "stat"}
#: Metrics that fitness.time() and benchmark fitness tests record beside the score.
TIME_IQR = "time_iqr"
TIME_ROUNDS = "time_rounds"


class FitnessUsageError(Exception):
    """A fitness marker or fixture used in a way the plugin cannot score."""


class FitnessSpec(NamedTuple):  # not a dataclass: this module loads in every pytest run
    goal: Goal
    primary: bool
    holdout: bool = False
    stat: str | None = None  # a pytest-benchmark statistic: the benchmark fixture records the score


class Recorded(NamedTuple):
    """What a fitness test recorded, as read back from its report's user_properties."""

    score: float | None
    goal: str | None
    metrics: dict[str, float]
    bounds: dict[str, tuple[float | None, float | None]]
    artifacts: dict[str, str]  # name -> SHA-256


def fitness_spec(item: pytest.Item) -> FitnessSpec | None:
    """Read and validate an item's ``fitness`` marker; None when the item has none."""
    mark = item.get_closest_marker("fitness")
    if mark is None:
        return None
    unknown = set(mark.kwargs) - _MARKER_KWARGS
    if unknown:
        raise FitnessUsageError(
            f"@pytest.mark.fitness got unknown argument(s) {sorted(unknown)}; "
            f"it takes {sorted(_MARKER_KWARGS)}"
        )
    if len(mark.args) > 1 or (mark.args and "goal" in mark.kwargs):
        raise FitnessUsageError('@pytest.mark.fitness takes one goal: fitness(goal="min")')
    goal = mark.args[0] if mark.args else mark.kwargs.get("goal")
    if goal not in ("min", "max"):
        raise FitnessUsageError(
            f'@pytest.mark.fitness needs goal="min" or goal="max", got {goal!r}'
        )
    flags = {}
    for flag in ("primary", "holdout"):
        flags[flag] = mark.kwargs.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise FitnessUsageError(f"@pytest.mark.fitness {flag}= must be True or False, got {flags[flag]!r}")
    if flags["primary"] and flags["holdout"]:
        raise FitnessUsageError("@pytest.mark.fitness cannot be both primary=True and holdout=True")
    stat = mark.kwargs.get("stat")
    if stat is not None and (why := benchmark.check_stat(stat, goal)):
        raise FitnessUsageError(why)
    return FitnessSpec(goal=goal, primary=flags["primary"], holdout=flags["holdout"], stat=stat)


def _as_number(value: object, what: str) -> float:
    if isinstance(value, (bool, str, bytes)):
        raise FitnessUsageError(f"{what} must be a finite number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise FitnessUsageError(f"{what} must be a finite number, got {value!r} ({exc})") from None
    if not math.isfinite(number):
        raise FitnessUsageError(f"{what} must be a finite number, got {number!r}")
    return number


class Fitness:
    """The object the ``fitness`` fixture returns.

    ``fitness(value)`` records the test's score, once. ``fitness.metric(name, value)``
    records further named numbers, logged beside the score; ``fitness.artifact(path)`` records
    a file the test produced, by its hash.
    """

    def __init__(self, item: pytest.Item, spec: FitnessSpec) -> None:
        self._item = item
        self.goal: Goal = spec.goal
        self.primary = spec.primary
        self.score: float | None = None
        self.metrics: dict[str, float] = {}

    def _check_score(self, value: object) -> float:
        if self.score is not None:
            raise FitnessUsageError(f"fitness(value) was already called with {self.score!r}; a test records one score")
        return _as_number(value, "fitness(value)")

    def _check_bound(self, name: str, which: str, value: object) -> float | None:
        return None if value is None else _as_number(value, f"fitness.metric({name!r}, ..., {which}=)")

    def _check_metric(self, name: object, value: object) -> float:
        if not isinstance(name, str) or not name or any(c in name for c in "\t\n\r"):
            raise FitnessUsageError(f"fitness.metric name must be a non-empty one-line string, got {name!r}")
        if name in self.metrics:
            raise FitnessUsageError(f"fitness.metric({name!r}) was already recorded")
        return _as_number(value, f"fitness.metric({name!r}, value)")

    def __call__(self, value: object) -> None:
        __tracebackhide__ = True
        score = _checked(self._check_score, value)
        self.score = score
        self._item.user_properties.append((SCORE_PROP, score))

    def metric(self, name: str, value: object, *, min: object = None, max: object = None) -> None:
        """Record a named number; ``min``/``max`` make it a gate: under ``--autoresearch`` a
        candidate that leaves the bounds is not kept, whatever its primary score."""
        __tracebackhide__ = True
        number = _checked(self._check_metric, name, value)
        low = _checked(self._check_bound, name, "min", min) if min is not None else None
        high = _checked(self._check_bound, name, "max", max) if max is not None else None
        self.metrics[name] = number
        self._item.user_properties.append((METRIC_PREFIX + name, number))
        if low is not None:
            self._item.user_properties.append((MIN_PREFIX + name, low))
        if high is not None:
            self._item.user_properties.append((MAX_PREFIX + name, high))

    def artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Record a file the evaluation produced (model weights, a report) by its SHA-256, so the
        audit trail can tie every kept trial to exactly what it made. Returns the hash."""
        __tracebackhide__ = True
        target = Path(path)
        if not target.is_file():
            pytest.fail(f"fitness.artifact({str(path)!r}): no such file")
        digest = hashlib.sha256()
        with target.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        self._item.user_properties.append((ARTIFACT_PREFIX + (name or target.name), digest.hexdigest()))
        return digest.hexdigest()

    def time(
        self,
        fn: Callable[[], object],
        *,
        repeats: int = REPEATS,
        warmup: int = WARMUP,
        clock: str | Callable[[], float] = "cpu",
        stat: str = "median",
        number: int | None = None,
    ) -> Timing:
        """Record ``fn()``'s seconds per call as the score, measured by
        :func:`pytest_autoresearch.timing.measure` (the median of ``repeats`` rounds after
        ``warmup`` calls, CPU time by default), with the rounds' spread (``time_iqr``, seconds)
        and count (``time_rounds``) as metrics. Returns the :class:`~.timing.Timing`."""
        __tracebackhide__ = True
        if self.goal != "min":
            pytest.fail(f'fitness.time() records seconds per call, so the test needs goal="min", not goal="{self.goal}"')
        try:
            timing = measure(fn, repeats=repeats, warmup=warmup, clock=clock, stat=stat, number=number)
        except ValueError as exc:
            message = f"fitness.time(): {exc}"
        else:
            self(timing.value)
            self.metric(TIME_IQR, timing.iqr)
            self.metric(TIME_ROUNDS, len(timing.times))
            return timing
        pytest.fail(message)

    def __repr__(self) -> str:
        return f"<Fitness goal={self.goal} score={self.score!r} metrics={self.metrics!r}>"


def _checked(check: Callable[..., float], *args: object) -> float:
    """Run a check; a usage error fails the test with its message alone, not a chained traceback."""
    __tracebackhide__ = True
    try:
        return check(*args)
    except FitnessUsageError as exc:
        message = str(exc)
    pytest.fail(message)


_FITNESS_KEY = pytest.StashKey[Fitness]()

#: Set inside a trial: returns the frozen files that changed since the run pinned them.
frozen_check: Callable[[], list[str]] | None = None


@pytest.fixture
def fitness(request: pytest.FixtureRequest) -> Fitness:
    """Record this fitness test's score: ``fitness(value)``; more numbers: ``fitness.metric(name, value)``.

    The test must carry ``@pytest.mark.fitness(goal="min")`` or ``goal="max"``.
    """
    __tracebackhide__ = True
    item = request.node
    try:
        spec = fitness_spec(item)
    except FitnessUsageError as exc:
        pytest.fail(str(exc), pytrace=False)
    if spec is None:
        pytest.fail(
            f'{item.nodeid} uses the fitness fixture but has no @pytest.mark.fitness(goal="min"|"max")',
            pytrace=False,
        )
    if frozen_check is not None and (changed := frozen_check()):
        pytest.fail(
            "frozen files changed during this trial, so its score cannot be trusted: " + ", ".join(changed),
            pytrace=False,
        )
    recorder = Fitness(item, spec)
    item.user_properties.append((GOAL_PROP, spec.goal))
    item.stash[_FITNESS_KEY] = recorder
    return recorder


def read_properties(properties: Sequence[tuple[str, object]]) -> Recorded:
    """What a fitness test recorded, from a report's user_properties."""
    score: float | None = None
    goal: str | None = None
    metrics: dict[str, float] = {}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    for name, value in properties:
        if name == SCORE_PROP:
            score = float(value)  # type: ignore[arg-type]
        elif name == GOAL_PROP:
            goal = str(value)
        elif name.startswith(METRIC_PREFIX):
            metrics[name[len(METRIC_PREFIX):]] = float(value)  # type: ignore[arg-type]
        elif name.startswith(MIN_PREFIX):
            low[name[len(MIN_PREFIX):]] = float(value)  # type: ignore[arg-type]
        elif name.startswith(MAX_PREFIX):
            high[name[len(MAX_PREFIX):]] = float(value)  # type: ignore[arg-type]
        elif name.startswith(ARTIFACT_PREFIX):
            artifacts[name[len(ARTIFACT_PREFIX):]] = str(value)
    bounds = {n: (low.get(n), high.get(n)) for n in set(low) | set(high)}
    return Recorded(score, goal, metrics, bounds, artifacts)




def format_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _outcome(report: pytest.TestReport) -> str | None:
    """The word the fitness table shows instead of a score for a report that makes its test's
    score untrustworthy: failed, error, skipped or xfailed; None when it passed."""
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped and report.when in ("setup", "call"):
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    return None


class FitnessPlugin:
    """Checks fitness tests, records a benchmark fitness test's score, and prints the scores at
    the end of any run (a test that did not pass shows its outcome, not its score)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, Recorded] = {}
        self.outcomes: dict[str, str] = {}  # nodeid -> the first such word of _outcome
        self.goals: dict[str, str] = {}  # nodeid -> its marker's goal, for a test that recorded none

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if item.get_closest_marker("fitness") is None:
            return
        try:
            spec = fitness_spec(item)
        except FitnessUsageError as exc:
            pytest.fail(str(exc), pytrace=False)
        if spec is not None:
            self.goals[item.nodeid] = spec.goal
        fixtures = getattr(item, "fixturenames", ())
        if spec is not None and spec.stat is not None and "benchmark" not in fixtures:
            pytest.fail(
                f'{item.nodeid}: @pytest.mark.fitness(stat="{spec.stat}") takes the score from pytest-benchmark\'s '
                "benchmark fixture, which this test does not use",
                pytrace=False,
            )
        if "fitness" not in fixtures and (spec is None or spec.stat is None):
            pytest.fail(
                f"{item.nodeid} is marked @pytest.mark.fitness but does not use the fitness fixture "
                '(or, with stat="median", pytest-benchmark\'s benchmark fixture) to record its score',
                pytrace=False,
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        spec = fitness_spec(item) if item.get_closest_marker("fitness") is not None else None
        if spec is not None and spec.stat is not None:
            benchmark.enable(item)
        result = yield
        recorder = item.stash.get(_FITNESS_KEY, None)
        if spec is not None and spec.stat is not None:
            _record_benchmark(item, spec, recorder)
        elif recorder is not None and recorder.score is None:
            pytest.fail(f"{item.nodeid} finished without recording a score: call fitness(value)", pytrace=False)
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if (outcome := _outcome(report)) is not None:
            self.outcomes.setdefault(report.nodeid, outcome)
        if report.when != "teardown":
            return
        recorded = read_properties(report.user_properties)
        if recorded.goal is not None or "fitness" in report.keywords:
            self.rows[report.nodeid] = recorded

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows or self.config.get_verbosity() < -1:
            return
        table = [("test", "score", "goal", "metrics")]
        for nodeid, (score, goal, metrics, bounds, _artifacts) in self.rows.items():
            goal = goal or self.goals.get(nodeid)
            if nodeid in self.outcomes:  # what a test that did not pass recorded is no score
                table.append((nodeid, self.outcomes[nodeid], goal or "", ""))
                continue
            shown = []
            for name, value in metrics.items():
                broken = broken_bound(value, bounds[name]) if name in bounds else None
                shown.append(f"{name}={format_number(value)}" + (f" ({broken})" if broken else ""))
            table.append((nodeid, format_number(score), goal or "", ", ".join(shown)))
        if not any(row[3] for row in table[1:]):
            table = [row[:3] for row in table]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        terminalreporter.write_sep("-", "fitness")
        for n, row in enumerate(table):
            terminalreporter.write_line("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if n == 0:
                terminalreporter.write_line("  ".join("-" * w for w in widths))


def _record_benchmark(item: pytest.Item, spec: FitnessSpec, recorder: Fitness | None) -> None:
    """Record the statistic a benchmark fitness test's marker names as its score."""
    __tracebackhide__ = True
    if recorder is not None and recorder.score is not None:
        pytest.fail(
            f'{item.nodeid}: the score of a @pytest.mark.fitness(stat="{spec.stat}") test is the benchmark\'s '
            "statistic; the test must not call fitness(value) too (fitness.metric is fine)",
            pytrace=False,
        )
    try:
        found = benchmark.measured(item, str(spec.stat))
    except benchmark.BenchmarkError as exc:
        message = str(exc)
    else:
        if recorder is None:
            recorder = Fitness(item, spec)
            item.user_properties.append((GOAL_PROP, spec.goal))
        recorder(found.value)
        recorder.metric(TIME_IQR, found.iqr)
        recorder.metric(TIME_ROUNDS, found.rounds)
        return
    pytest.fail(message, pytrace=False)
