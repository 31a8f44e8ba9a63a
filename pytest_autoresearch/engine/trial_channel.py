"""The trial's two channels to the driver, read: its one report (the result pipe) and the alarms
its audit hook sent as they happened (the alarm pipe, :mod:`pytest_autoresearch.trial_guard`).

Both are pipes the trial inherited: read concurrently (a large report never blocks the trial)
and up to a limit; a report counts only with the trial's nonce, and an alarm channel that the
trial's own session end did not close (with the nonce) was cut.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading

from ..core.records import Alarm, FitnessResult, TestResult


class ChannelReader(threading.Thread):
    """Reads what the trial reports through its result pipe (concurrently, so a large report
    never blocks the trial), up to a limit."""

    def __init__(self, fd: int, limit: int = 64 * 1024 * 1024) -> None:
        super().__init__(daemon=True, name="autoresearch result channel")
        self.fd = fd
        self.limit = limit
        self.data = bytearray()

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 65536):
                if len(self.data) < self.limit:
                    self.data += chunk


def decode_channel(raw: bytes, nonce: str) -> dict | None:
    """The trial's own report, or None when its session did not finish normally or anything
    but exactly one report, with this trial's nonce, came through the channel."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != 1 or data.get("nonce") != nonce:
        return None
    return data


def decode_alarms(raw: bytes, nonce: str, reported: list[object]) -> tuple[list[Alarm], bool]:
    """The alarms the trial's audit hook sent (each as it happened) and those its report repeats,
    once each; and whether the channel was closed by the trial's own session end (its nonce)."""
    alarms: dict[tuple[str, str, int], Alarm] = {}
    closed = False
    lines: list[object] = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            lines.append(None)
    for entry in [*lines, *reported]:
        if isinstance(entry, dict) and "end" in entry:
            closed = closed or entry.get("end") == nonce
            continue
        alarm = Alarm.from_dict(entry)
        if alarm is None:
            alarm = Alarm("channel", "wrote something other than an alarm to the alarm channel", "?", 0)
        alarms.setdefault((alarm.event, alarm.file, alarm.line), alarm)
    return list(alarms.values()), closed


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
                bounds={
                    str(k): (None if v[0] is None else float(v[0]), None if v[1] is None else float(v[1]))
                    for k, v in (entry.get("bounds") or {}).items()
                },
                artifacts={str(k): str(v) for k, v in (entry.get("artifacts") or {}).items()},
            )
        )
    return tests, fitness, [str(p) for p in data.get("shadowed", [])]
