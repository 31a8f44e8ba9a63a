"""Several trials in flight: the schedule that keeps K workers busy, and where runs happen.

The driver stays the only writer of the branch, the log and the refs: workers only run the
suite. Each trial is proposed from the best at that moment and written into a free slot (a
worktree of its own); its runs go to a *runner* (threads waiting on local subprocesses, or
tasks on a Ray cluster); results come back in finishing order and are judged one at a time
in the driver's thread, so rows are appended in the order trials finish, each naming the
trial it started from (``parent``).

A trial that beats the best it started from after the best has moved is merged into the new
best and run again (see :meth:`ResearchLoop._reapply`); the rule is in the README.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Protocol

from .loop import Pending, ResearchLoop
from ..proposals.proposal import Proposal
from ..core.records import RunResult, TrialRecord
from ..system.procs import allow_new, kill_running


class Runner(Protocol):
    """Where a trial's runs happen."""

    def submit(self, pending: Pending, attempt: int) -> concurrent.futures.Future[RunResult]: ...

    def cancel_all(self) -> None: ...

    def close(self) -> None: ...


class LocalRunner:
    """Each run is a subprocess on this machine; a thread per worker waits on it."""

    def __init__(self, loop: ResearchLoop, workers: int) -> None:
        self.loop = loop
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="autoresearch-worker")

    def submit(self, pending: Pending, attempt: int) -> concurrent.futures.Future[RunResult]:
        return self.pool.submit(self.loop.ev.evaluate, pending.number, attempt, slot=pending.slot)

    def cancel_all(self) -> None:
        kill_running()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        allow_new()


def make_runner(loop: ResearchLoop) -> Runner:
    """The runner the settings ask for."""
    s = loop.settings
    if s.backend.partition(":")[0] == "ray":
        from .ray_backend import RayRunner

        return RayRunner(loop, address=s.backend.partition(":")[2] or None)
    return LocalRunner(loop, s.workers)


class Schedule:
    """Keeps every slot busy until the stop rules say no more trials, then lets the trials in
    flight finish. ``propose(number)`` returns a proposal or None (stop proposing);
    ``report(record)`` is told of each finished trial, in finishing order."""

    def __init__(self, loop: ResearchLoop, runner: Runner) -> None:
        self.loop = loop
        self.runner = runner
        self.free = list(reversed(loop.r.slots))
        self.inflight: dict[concurrent.futures.Future[RunResult], Pending] = {}

    def run(self, first: int, propose: Callable[[int], Proposal | None], report: Callable[[TrialRecord], bool]) -> None:
        """Trials numbered from ``first``; ``report`` returns False to stop proposing."""
        number, proposing = first, True
        try:
            while True:
                while proposing and self.free:
                    proposal = propose(number)
                    if proposal is None:
                        proposing = False
                        break
                    slot = self.free.pop()
                    started = self.loop.begin(number, proposal, slot)
                    number += 1
                    if isinstance(started, TrialRecord):
                        self.free.append(slot)
                        proposing = report(started) and proposing
                    else:
                        self.inflight[self.runner.submit(started, started.first)] = started
                if not self.inflight:
                    return
                done, _ = concurrent.futures.wait(self.inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    pending = self.inflight.pop(future)
                    outcome = self.loop.advance(pending, future.result())
                    if isinstance(outcome, TrialRecord):
                        self.free.append(pending.slot)
                        proposing = report(outcome) and proposing
                    else:
                        self.inflight[self.runner.submit(pending, outcome)] = pending
        except BaseException as exc:
            self._stop_inflight(exc)
            raise
        finally:
            self.runner.close()

    def _stop_inflight(self, exc: BaseException) -> None:
        """The run is ending early: kill what runs and log each trial in flight as a crash."""
        self.runner.cancel_all()
        concurrent.futures.wait(self.inflight, timeout=120)
        why = (
            "interrupted (Ctrl-C or SIGTERM) before it was judged"
            if isinstance(exc, KeyboardInterrupt)
            else f"the run stopped before it was judged ({type(exc).__name__})"
        )
        for pending in sorted(self.inflight.values(), key=lambda p: p.number):
            self.loop.abort(pending, why)
        self.inflight.clear()
