"""Running one trial: ``python -m pytest`` in its own process group, under a hard deadline.

pytest-timeout bounds each test inside the trial (and reports where it hung); the driver
holds the wall-clock deadline and kills the whole process group, children and grandchildren
included, when it passes, and again when the trial ends, so nothing a candidate started
outlives its trial. Output goes to a per-trial log file, never into the driver's memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .plugin import TRIAL_ENV
from .records import FitnessResult, RunResult, TestResult

TAIL_BYTES = 8192


@dataclasses.dataclass(frozen=True)
class TrialCommand:
    """How to start a trial: the arguments after ``python -m pytest``, where, and with what."""

    args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    shadow: tuple[str, ...] = ()  # the user's copies of surface files, which must not be imported


def wait_unreaped(proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Wait until the process exits, without reaping it; False when the timeout passed.

    Not reaping keeps the process-group id from being reused until the group is killed.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError), path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - TAIL_BYTES))
        return f.read().decode("utf-8", "replace")
    return ""


def read_channel(path: Path) -> dict | None:
    """The trial's own report, or None when its session did not finish normally."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == 1 else None


def parse_channel(data: dict) -> tuple[list[TestResult], list[FitnessResult], list[str]]:
    tests = [
        TestResult(
            nodeid=nodeid,
            outcome=str(entry.get("outcome", "error")),
            duration=float(entry.get("duration", 0.0)),
            timed_out=bool(entry.get("timed_out", False)),
            failure=str(entry.get("failure", "")),
        )
        for nodeid, entry in data.get("tests", {}).items()
    ]
    fitness = []
    ordered = sorted(data.get("fitness", {}).items(), key=lambda kv: kv[1].get("order", 0))
    for nodeid, entry in ordered:
        score = entry.get("score")
        fitness.append(
            FitnessResult(
                nodeid=nodeid,
                name=str(entry.get("name") or nodeid),
                goal=entry.get("goal") or "min",
                primary=bool(entry.get("primary", False)),
                score=float(score) if score is not None else None,
                metrics={str(k): float(v) for k, v in (entry.get("metrics") or {}).items()},
            )
        )
    return tests, fitness, [str(p) for p in data.get("shadowed", [])]


def run(command: TrialCommand, timeout: float | None, log_path: Path, result_path: Path) -> RunResult:
    """Run one trial to completion or to its deadline; always leaves nothing running."""
    result_path.unlink(missing_ok=True)
    env = dict(command.env)
    env[TRIAL_ENV] = json.dumps({"result": str(result_path), "shadow": list(command.shadow)})
    start = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", *command.args],
            cwd=command.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            exited = wait_unreaped(proc, timeout)
        finally:
            kill_group(proc)
    seconds = time.monotonic() - start
    data = read_channel(result_path) if exited else None
    result = RunResult(
        exit_code=proc.returncode if exited else None,
        seconds=seconds,
        finished=data is not None,
        killed=not exited,
        output_tail=_tail(log_path),
        log_path=log_path,
    )
    if data is not None:
        result.tests, result.fitness, result.shadowed = parse_channel(data)
    return result
