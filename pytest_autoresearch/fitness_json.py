"""The CI guard: ``fitness.json`` holds each fitness test's accepted score, so CI can fail a
change that makes one worse.

``pytest --autoresearch-save`` writes it at the rootdir from the run's scores;
``pytest --autoresearch-check`` fails a fitness test whose score is worse than the saved one
by more than ``autoresearch_tolerance`` (absolute, or relative with a ``%``), naming the test
and both scores. The research loop updates the file in the commits it keeps, when the
repository tracks one, so the branch carries its own new bar.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .core.defaults import TOLERANCE
from .fitness import read_properties

FILENAME = "fitness.json"


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The saved scores by node id ({} when there is no file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise pytest.UsageError(f"autoresearch: {path} is not valid JSON ({exc})") from None
    tests = data.get("tests") if isinstance(data, dict) else None
    if not isinstance(tests, dict):
        raise pytest.UsageError(f'autoresearch: {path} has no "tests" mapping')
    return tests


def render(tests: Mapping[str, Mapping[str, Any]]) -> str:
    """fitness.json's text: sorted, one test per entry, stable across runs."""
    body = {"version": 1, "tests": {k: dict(tests[k]) for k in sorted(tests)}}
    return json.dumps(body, indent=2) + "\n"


def save(path: Path, tests: Mapping[str, Mapping[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(tests), encoding="utf-8")
    os.replace(tmp, path)


def parse_tolerance(raw: str) -> tuple[float, bool]:
    """(amount, relative) from ``0.01`` or ``2%``."""
    text = raw.strip()
    relative = text.endswith("%")
    try:
        value = float(text.rstrip("%") or 0)
    except ValueError:
        raise pytest.UsageError(f"autoresearch: invalid autoresearch_tolerance {raw!r}: use e.g. 0.01 or 2%") from None
    if not math.isfinite(value) or value < 0:
        raise pytest.UsageError(f"autoresearch: autoresearch_tolerance must be >= 0, got {raw!r}")
    return (value / 100 if relative else value), relative


def worse_beyond(score: float, saved: float, goal: str, tolerance: tuple[float, bool]) -> bool:
    amount, relative = tolerance
    allowed = amount * abs(saved) if relative else amount
    loss = score - saved if goal == "min" else saved - score
    return loss > allowed


class CiGuard:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.path = Path(config.rootpath) / FILENAME
        self.saving = bool(config.getoption("autoresearch_save"))
        self.checking = bool(config.getoption("autoresearch_check"))
        self.tolerance = parse_tolerance(config.getini("autoresearch_tolerance") or str(TOLERANCE))
        self.saved = load(self.path) if self.checking else {}
        if self.checking and not self.saved:
            raise pytest.UsageError(f"autoresearch: --autoresearch-check needs {self.path}; write it with --autoresearch-save")
        self.scores: dict[str, dict[str, Any]] = {}
        self.unchecked: list[str] = []
        self.not_passed: set[str] = set()
        self.unsaved: list[str] = []  # fitness tests that did not pass: nothing of theirs is saved

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        result = yield
        if self.checking:
            recorded = read_properties(item.user_properties)
            entry = self.saved.get(item.nodeid)
            if recorded.score is not None and entry is None:
                self.unchecked.append(item.nodeid)
            elif recorded.score is not None and entry is not None:
                saved, goal = float(entry["score"]), str(entry.get("goal", recorded.goal))
                if worse_beyond(recorded.score, saved, goal, self.tolerance):
                    amount, relative = self.tolerance
                    allowed = f"{amount * 100:g}%" if relative else f"{amount:g}"
                    pytest.fail(
                        f"{item.nodeid}: score {recorded.score:.6g} is worse than the saved {saved:.6g} "
                        f"({FILENAME}, goal {goal}) beyond the tolerance {allowed}",
                        pytrace=False,
                    )
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.saving:
            return
        if report.failed or (report.skipped and report.when != "teardown"):
            self.not_passed.add(report.nodeid)  # what it recorded is no score to guard
        if report.when == "teardown":
            recorded = read_properties(report.user_properties)
            if recorded.goal is not None and report.nodeid in self.not_passed:
                self.unsaved.append(report.nodeid)
            elif recorded.score is not None and recorded.goal is not None:
                self.scores[report.nodeid] = {"score": recorded.score, "goal": recorded.goal}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.saving and self.scores and not hasattr(self.config, "workerinput"):
            merged = {**load(self.path), **self.scores}
            save(self.path, merged)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.saving and self.scores:
            terminalreporter.write_line(f"autoresearch: saved {len(self.scores)} fitness scores to {self.path}")
        for nodeid in self.unsaved:
            terminalreporter.write_line(f"autoresearch: {nodeid} did not pass; its score was not saved")
        if self.checking:
            terminalreporter.write_line(f"autoresearch: checked fitness scores against {self.path}")
            for nodeid in self.unchecked:
                terminalreporter.write_line(f"autoresearch: {nodeid} has no saved score yet (--autoresearch-save adds it)")
