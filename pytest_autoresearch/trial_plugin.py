"""The plugin's side inside a trial subprocess: it reports outcomes and scores to the driver.

The engine starts each trial as ``python -m pytest``
(:func:`pytest_autoresearch.engine.trial_process.run`) with ``PYTEST_AUTORESEARCH_TRIAL`` set to
"SPEC_FD,RESULT_FD,ALARM_FD": inherited file descriptors, one of an unlinked file that holds the
JSON spec (a one-time nonce, the frozen-file manifest, the user's copies of the surface files,
whether only holdout tests run, the trial's worktree and run folder), one the write end of the
result pipe, one the write end of the alarm pipe (:mod:`.trial_guard`). The plugin's entry
point, :mod:`pytest_autoresearch.plugin`, takes the value out of the environment when it is
imported and calls :func:`receive`, before any conftest or test module (or the candidate code
they import) runs, so candidate code finds neither the spec nor the nonce that makes a result
valid, on disk or in the environment. The result is written to the pipe once, at the end of a
session that finished normally; a trial killed, crashed or ``os._exit``-ed writes nothing and so
has no score. Outputs are never grepped. Only the trial's own process reports: a child forked
from it (a ``multiprocessing`` worker, a test's ``os.fork()``) neither writes the result nor ends
the trial when it is ended itself (:func:`arm`).

It also orders the run for fast failure (ordinary tests first, fitness tests, which are
usually the expensive ones, last), leaves ``holdout=True`` fitness tests out (or, for a holdout
evaluation, runs only them), verifies the frozen files, checks that nobody replaced the
plugin's own score recording or changed the harness's state at run time (:mod:`.trial_state`),
and checks that the surface modules were imported from the trial's worktree rather than from
the user's checkout. What the candidate's code reaches for is watched from the start by an
audit hook (:mod:`.trial_guard`), whose alarms reach the driver as they happen.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import fitness as fitness_module
from .fitness import FitnessUsageError, fitness_spec, read_properties
from .system.manifest import Manifest
from .trial_deadline import dump_on
from .trial_deadline import install as install_deadline
from .trial_guard import Watch, encode_json, install, raw_write
from .trial_state import HarnessState, odd_properties

FAILURE_LIMIT = 4000
TIMEOUT_MARK = "from pytest-timeout"


def _tail(text: str, limit: int = FAILURE_LIMIT) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def receive(value: str) -> dict[str, Any]:
    """Read the trial's spec from the unlinked file the driver passed (and close it), take the
    result and alarm pipes, and start watching what candidate code reaches for (the audit hook
    goes in now, before any conftest or candidate code): ``value`` is "SPEC_FD,RESULT_FD[,ALARM_FD]"
    from the environment."""
    spec_fd, result_fd, *alarm = (int(part) for part in value.split(","))
    with os.fdopen(spec_fd, "rb") as f:
        spec = json.loads(f.read())
    for fd in (result_fd, *alarm):
        os.set_inheritable(fd, False)  # the trial's own subprocesses do not get them
    spec["result_fd"] = result_fd
    spec["pid"] = os.getpid()  # the one process that reports: not a child forked from it
    spec["alarm_fd"] = alarm[0] if alarm else None
    manifest = Manifest.load(Path(spec["manifest"])) if spec.get("manifest") else None
    spec["manifest_loaded"] = manifest
    if not spec.get("worktree") and manifest is not None:
        spec["worktree"] = str(manifest.root)
    spec["watch"] = install(spec, manifest.blobs if manifest is not None else ())
    if isinstance(spec.get("dump_signal"), int):
        dump_on(spec["dump_signal"])
    return spec


def arm() -> None:
    """Tie this trial's life to the driver's: if the driver dies, even by SIGKILL, the kernel
    sends this process SIGTERM, and SIGTERM takes down the trial's whole process group.

    Only this process: a child forked from it (a ``multiprocessing`` worker, which
    ``Pool.terminate()`` ends with SIGTERM) gets SIGTERM's default back, as under plain pytest,
    so ending a worker never ends the trial. The kernel clears the parent-death signal itself
    in a forked child, and an exec resets the handler."""
    leader = os.getpid()

    def die(signum: int, frame: object) -> None:
        if os.getpid() != leader:  # forked below Python's at-fork hooks (by C code): die alone
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def forget() -> None:
        if signal.getsignal(signal.SIGTERM) is die:
            with contextlib.suppress(ValueError):  # not the child's main thread: die() answers
                signal.signal(signal.SIGTERM, signal.SIG_DFL)

    if os.getpgrp() == os.getpid():  # only when the driver made us a group leader
        signal.signal(signal.SIGTERM, die)
        os.register_at_fork(after_in_child=forget)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _recorders() -> tuple[object, ...]:
    """The functions that carry a score from the fitness fixture to the driver."""
    return (
        fitness_module.Fitness.__call__,
        fitness_module.Fitness.metric,
        fitness_module.Fitness._check_score,
        fitness_module.Fitness._check_metric,
        fitness_module.Fitness._check_bound,
        fitness_module._checked,
        fitness_module._as_number,
        fitness_module.fitness,
        fitness_module.read_properties,
        fitness_module.FitnessPlugin.pytest_runtest_call,
        fitness_module.FitnessPlugin.pytest_runtest_setup,
        TrialReporter.pytest_runtest_logreport,
        TrialReporter.pytest_sessionfinish,
        TrialReporter._tampered,
        TrialReporter._shadowed,
        json.dumps,
        os.write,
    )


class TrialReporter:
    def __init__(self, config: pytest.Config, spec: dict[str, Any]) -> None:
        self.config = config
        self.result_fd: int = spec["result_fd"]
        self.pid: int = spec.get("pid", os.getpid())
        self.nonce = str(spec.get("nonce", ""))
        self.shadow = {os.path.realpath(p) for p in spec.get("shadow", ())}
        self.manifest: Manifest | None = spec.get("manifest_loaded")
        if self.manifest is None and spec.get("manifest"):
            self.manifest = Manifest.load(Path(spec["manifest"]))
        if self.manifest is not None:
            fitness_module.frozen_check = self.manifest.changed
        self.watch: Watch | None = spec.get("watch")
        self.odd: dict[str, list[str]] = {}
        self.fitness: dict[str, dict[str, Any]] = {}
        self.tests: dict[str, dict[str, Any]] = {}
        self.holdout: list[str] = []
        self.holdout_only = bool(spec.get("holdout_only"))
        self.recorders = _recorders()
        self.state: HarnessState | None = None
        install_deadline(config, spec)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # every plugin is configured now, and no test module (nor the candidate code it imports) has run
        with self.watch.paused() if self.watch is not None else contextlib.nullcontext():
            self.state = HarnessState()
            self.state.watch_plugins(self.config.pluginmanager)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        if odd := odd_properties(item.user_properties):
            self.odd.setdefault(item.nodeid, odd)
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None, None, None]:
        for order, item in enumerate(items):
            if item.get_closest_marker("fitness") is None:
                continue
            try:
                spec = fitness_spec(item)
            except FitnessUsageError:
                spec = None
            if spec is not None and spec.holdout:
                self.holdout.append(item.nodeid)
                if not self.holdout_only:
                    continue
            goal, primary = (spec.goal, spec.primary) if spec else (None, False)
            self.fitness[item.nodeid] = {"name": item.name, "goal": goal, "primary": primary, "order": order}
        yield
        # holdout tests never run in trials; a holdout evaluation runs them and nothing else
        wanted = set(self.holdout) if self.holdout_only else None
        keep = [i for i in items if (i.nodeid in wanted if wanted is not None else i.nodeid not in self.holdout)]
        if len(keep) != len(items):
            self.config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
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
            if odd := odd_properties(report.user_properties):
                self.odd.setdefault(report.nodeid, odd)
            recorded = read_properties(report.user_properties)
            if report.nodeid in self.fitness or recorded.goal is not None:
                fit = self.fitness.setdefault(
                    report.nodeid,
                    {"name": report.nodeid.rpartition("::")[2], "goal": recorded.goal, "primary": False, "order": len(self.fitness)},
                )
                fit["goal"] = fit["goal"] or recorded.goal
                fit["score"] = recorded.score
                fit["metrics"] = recorded.metrics
                fit["bounds"] = {name: list(bound) for name, bound in recorded.bounds.items()}
                fit["artifacts"] = recorded.artifacts

    def _shadowed(self) -> list[str]:
        if not self.shadow:
            return []
        found = []
        isolated = getattr(sys.modules.get(f"{__package__}.isolate"), "imported", [])  # what its children imported
        for filename in [getattr(module, "__file__", None) for module in list(sys.modules.values())] + list(isolated):
            if isinstance(filename, str) and os.path.realpath(filename) in self.shadow:
                found.append(os.path.realpath(filename))
        return sorted(set(found))

    def _tampered(self) -> list[str]:
        found = self.manifest.changed() if self.manifest is not None else []
        if _recorders() != self.recorders:
            found.append("<the plugin's score recording was replaced at run time>")
        found += [f"<{nodeid}: {why}>" for nodeid, odd in self.odd.items() for why in odd]
        candidate = self.watch.attribution.is_candidate if self.watch is not None else (lambda filename: False)
        if self.state is not None:
            found += self.state.tampered(self.config.pluginmanager, candidate)
        return found

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if os.getpid() != self.pid:
            return  # a child forked by a test that went on into the session: the trial reports, not it
        tampered = self._tampered()  # first: it puts back what the writing below uses
        result = {
            "version": 1,
            "nonce": self.nonce,
            "exitstatus": int(exitstatus),
            "fitness": self.fitness,
            "tests": self.tests,
            "shadowed": self._shadowed(),
            "tampered": tampered,
            "holdout": self.holdout,
            "alarms": list(self.watch.alarms) if self.watch is not None else [],
        }
        if self.watch is not None:
            self.watch.close()
        view = memoryview(encode_json(result).encode())
        while view:
            view = view[raw_write(self.result_fd, view) :]
        os.close(self.result_fd)
