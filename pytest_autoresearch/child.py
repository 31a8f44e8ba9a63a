"""The plugin's side inside a trial subprocess: it reports outcomes and scores to the driver.

The driver starts each trial as ``python -m pytest`` with ``PYTEST_AUTORESEARCH_TRIAL`` set
to a JSON spec naming the result file. This reporter writes that file once, at the end of a
session that finished normally; a trial killed, crashed or ``os._exit``-ed writes nothing
and so has no score. Outputs are never grepped.

It also orders the run for fast failure (ordinary tests first, fitness tests, which are
usually the expensive ones, last) and checks that the surface modules were imported from
the trial's worktree rather than from the user's checkout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from .fitness import FitnessUsageError, fitness_spec, read_properties

FAILURE_LIMIT = 4000
TIMEOUT_MARK = "from pytest-timeout"


def _tail(text: str, limit: int = FAILURE_LIMIT) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


class TrialReporter:
    def __init__(self, config: pytest.Config, channel: str) -> None:
        spec = json.loads(channel)
        self.config = config
        self.result_path = Path(spec["result"])
        self.shadow = {os.path.realpath(p) for p in spec.get("shadow", ())}
        self.fitness: dict[str, dict[str, Any]] = {}
        self.tests: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None, None, None]:
        for order, item in enumerate(items):
            if item.get_closest_marker("fitness") is None:
                continue
            try:
                spec = fitness_spec(item)
                goal, primary = (spec.goal, spec.primary) if spec else (None, False)
            except FitnessUsageError:
                goal, primary = None, False
            self.fitness[item.nodeid] = {"name": item.name, "goal": goal, "primary": primary, "order": order}
        yield
        items.sort(key=lambda item: item.nodeid in self.fitness)  # stable: gates first, fitness last

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.tests[report.nodeid or "<collection>"] = {
                "outcome": "error",
                "duration": 0.0,
                "timed_out": False,
                "failure": _tail(report.longreprtext),
            }

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(
            report.nodeid, {"outcome": "passed", "duration": 0.0, "timed_out": False, "failure": ""}
        )
        entry["duration"] += report.duration
        if report.failed:
            if entry["outcome"] not in ("failed", "error"):
                entry["outcome"] = "failed" if report.when == "call" else "error"
                entry["failure"] = _tail(report.longreprtext)
            if TIMEOUT_MARK in report.longreprtext:
                entry["timed_out"] = True
        elif report.skipped and report.when in ("setup", "call") and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"
        if report.when == "teardown":
            score, goal, metrics = read_properties(report.user_properties)
            if report.nodeid in self.fitness or goal is not None:
                fit = self.fitness.setdefault(
                    report.nodeid,
                    {"name": report.nodeid.rpartition("::")[2], "goal": goal, "primary": False, "order": len(self.fitness)},
                )
                fit["goal"] = fit["goal"] or goal
                fit["score"] = score
                fit["metrics"] = metrics

    def _shadowed(self) -> list[str]:
        if not self.shadow:
            return []
        found = []
        for module in list(sys.modules.values()):
            filename = getattr(module, "__file__", None)
            if filename and os.path.realpath(filename) in self.shadow:
                found.append(os.path.realpath(filename))
        return sorted(set(found))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        result = {
            "version": 1,
            "exitstatus": int(exitstatus),
            "fitness": self.fitness,
            "tests": self.tests,
            "shadowed": self._shadowed(),
        }
        tmp = self.result_path.with_name(self.result_path.name + ".tmp")
        tmp.write_text(json.dumps(result), encoding="utf-8")
        os.replace(tmp, self.result_path)
