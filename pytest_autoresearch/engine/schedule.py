"""The scheduler: one path for every trial, with one worker or K, local or on Ray.

Each trial is proposed from the best at that moment and written into a free slot (a worktree
of its own with K workers; the run's own with one); its runs go to a *runner* (threads
waiting on local subprocesses, or tasks on a Ray cluster); results come back in finishing
order and are judged one at a time in the driver's thread, so rows are appended in the order
trials finish, each naming the trial it started from (``parent``). The driver stays the only
writer of the branch, the log and the refs: workers only run the suite.

A trial that beats the best it started from after the best has moved is merged into the new
best and run again (see :meth:`ResearchLoop._reapply`); the rule is in the README.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Protocol

from ..core.records import RunResult, TrialRecord
from ..proposals.proposal import Proposal
from ..system.procs import allow_new, kill_running
from .candidate import Candidate
from .loop import ResearchLoop


class Runner(Protocol):
    """Where a trial's runs happen."""

    def submit(self, candidate: Candidate, attempt: int) -> concurrent.futures.Future[RunResult]: ...

    def cancel_all(self) -> None: ...

    def close(self) -> None: ...


class LocalRunner:
    """Each run is a subprocess on this machine; a thread per worker waits on it."""

    def __init__(self, loop: ResearchLoop, workers: int) -> None:
        self.loop = loop
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="autoresearch-worker")

    def submit(self, candidate: Candidate, attempt: int) -> concurrent.futures.Future[RunResult]:
        return self.pool.submit(self.loop.evaluator.evaluate, candidate.number, attempt, slot=candidate.slot)

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


#: ``propose(number)``: the agent's proposal for trial ``number``, or None to stop proposing.
Propose = Callable[[int], "Proposal | None"]
#: ``report(record, seconds)``: a finished trial and the wall time it took; False stops proposing.
Report = Callable[[TrialRecord, float], bool]


class Scheduler:
    """Keeps every slot busy until the stop rules say no more trials, then lets the trials in
    flight finish; on Ctrl-C (or an error) kills them and logs each as an interrupted crash."""

    def __init__(self, loop: ResearchLoop, runner: Runner) -> None:
        self.loop = loop
        self.runner = runner
        self.free = list(reversed(loop.slots.workers))
        self.inflight: dict[concurrent.futures.Future[RunResult], Candidate] = {}

    def run(self, first: int, propose: Propose, report: Report) -> None:
        """Trials numbered from ``first``, until ``propose`` or ``report`` says stop."""
        number, proposing = first, True
        try:
            while True:
                while proposing and self.free:
                    proposal = propose(number)
                    if proposal is None:
                        proposing = False
                        break
                    proposing = self._start(number, proposal, report) and proposing
                    number += 1
                if not self.inflight:
                    return
                done, _ = concurrent.futures.wait(self.inflight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    proposing = self._judge(future, report) and proposing
        except BaseException as exc:
            self._stop_inflight(exc)
            raise
        finally:
            self.runner.close()

    def _start(self, number: int, proposal: Proposal, report: Report) -> bool:
        started = time.monotonic()
        slot = self.free.pop()
        begun = self.loop.begin(number, proposal, slot)
        if isinstance(begun, TrialRecord):  # invalid: nothing to run
            self.free.append(slot)
            return report(begun, time.monotonic() - started)
        self.inflight[self.runner.submit(begun, begun.attempt)] = begun
        return True

    def _judge(self, future: concurrent.futures.Future[RunResult], report: Report) -> bool:
        candidate = self.inflight[future]  # still in flight while judged: an interruption logs it
        try:
            outcome = self.loop.advance(candidate, future.result())
        except KeyboardInterrupt:
            raise
        except BaseException:
            del self.inflight[future]  # the run cannot go on: that is the error, not this trial's
            raise
        del self.inflight[future]
        if isinstance(outcome, TrialRecord):
            self.free.append(candidate.slot)
            return report(outcome, time.monotonic() - candidate.started)
        self.inflight[self.runner.submit(candidate, outcome)] = candidate
        return True

    def _stop_inflight(self, exc: BaseException) -> None:
        """The run is ending early: kill what runs and log each trial in flight as a crash."""
        self.runner.cancel_all()
        concurrent.futures.wait(self.inflight, timeout=120)
        why = (
            "interrupted (Ctrl-C or SIGTERM) before it was judged"
            if isinstance(exc, KeyboardInterrupt)
            else f"the run stopped before it was judged ({type(exc).__name__})"
        )
        for candidate in sorted({id(c): c for c in self.inflight.values()}.values(), key=lambda c: c.number):
            self.loop.abort(candidate, why)
        self.inflight.clear()
