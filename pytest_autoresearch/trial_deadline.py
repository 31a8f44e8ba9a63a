"""The trial's deadline, seen from inside the trial: a hang is reported with where it hung.

The driver kills a trial's whole process group at its deadline, and a killed trial tells
nothing. So before that, inside the trial:

- every test's pytest-timeout limit is lowered to what is left of the trial's budget
  (:class:`Limits`): a test that starts late, after most of the budget went to the tests
  before it, times out in time for the session to report it, with the traceback of the line it
  hung on and its name on the trial's line;
- a signal from the driver, shortly before the kill, makes the trial write the traceback of
  every thread to its log (:func:`dump_on`), from a C handler that needs neither the GIL nor
  SIGALRM: the backstop for hangs no test limit covers (collection, a fixture outside the limit,
  a test that blocks SIGALRM, the session's end).

The driver (:mod:`.engine.trial_process`) sends both through the trial's spec: ``deadline``,
the ``time.monotonic()`` by which every test must have ended (the clock is the machine's, the
same in both processes), and ``dump_signal``.
"""

from __future__ import annotations

import faulthandler
import os
import time
from typing import Any

import pytest

SHORTEST = 0.01  # a limit of 0 would switch pytest-timeout's timer off


class Limits:
    """Lowers a test's pytest-timeout limit to what is left before ``deadline``.

    It implements pytest-timeout's own hook for setting a test's timer: where the limit the test
    has (its marker's, the ini file's, the trial's ``--timeout``) runs past the deadline, the hook
    is called again with the lowered limit, which pytest-timeout (or whichever plugin sets timers)
    then sets. A test whose limit ends before the deadline is left as it is."""

    def __init__(self, deadline: float, budget: float | None) -> None:
        self.deadline = deadline
        self.budget = budget
        self.lowering = False

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> object:
        if self.lowering:
            return None  # the call below: the next implementation sets the lowered timer
        left = max(SHORTEST, round(self.deadline - time.monotonic(), 2))
        limit = getattr(settings, "timeout", None)
        if not isinstance(limit, (int, float)) or limit <= left or not hasattr(settings, "_replace"):
            return None  # the next implementation sets the timer as configured
        of = f" of the trial's {self.budget:g}s" if self.budget else ""
        item.add_report_section(
            "setup", "autoresearch", f"this test's time limit was lowered from {limit:g}s to {left:g}s: what was left{of}\n"
        )
        self.lowering = True
        try:
            return item.config.hook.pytest_timeout_set_timer(item=item, settings=settings._replace(timeout=left))
        finally:
            self.lowering = False


def dump_on(signum: int) -> None:
    """On ``signum``, write every thread's traceback to the trial's output (a copy of stderr
    taken now, before pytest's capturing points stderr at a temporary file), and go on."""
    faulthandler.register(signum, file=os.dup(2), all_threads=True, chain=False)


def install(config: pytest.Config, spec: dict[str, Any]) -> None:
    """Lower the tests' limits to the trial's deadline, where the driver set one."""
    deadline = spec.get("deadline")
    if isinstance(deadline, (int, float)) and config.pluginmanager.hasplugin("timeout"):
        budget = spec.get("budget")
        config.pluginmanager.register(Limits(float(deadline), budget if isinstance(budget, (int, float)) else None), "autoresearch-deadline")
