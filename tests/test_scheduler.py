"""The scheduler on its own: fakes for the loop and the runner, no subprocess, no git.

Most tests use :class:`ScriptedRunner`, which completes the runs' futures in a given order,
one at a time, the next only once the one before it is judged: the scheduler's
``concurrent.futures.wait`` then always returns exactly one finished run, with no thread
involved. One test uses a real thread pool, made deterministic with events.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_autoresearch.core.records import RunResult, Status, TrialRecord
from pytest_autoresearch.engine.schedule import Scheduler

INTERRUPTED = "interrupted (Ctrl-C or SIGTERM) before it was judged"
Key = tuple[int, int]  # (trial number, attempt)


@dataclasses.dataclass(eq=False)
class FakeSlot:
    index: int


@dataclasses.dataclass(eq=False)
class FakeCandidate:
    number: int
    slot: FakeSlot
    attempt: int = 1
    started: float = dataclasses.field(default_factory=time.monotonic)


class FakeLoop:
    """``begin``/``advance``/``abort`` as the scheduler calls them, each logged in ``events``.

    ``outcomes[number]`` scripts what ``advance`` answers for a trial, one item per run: an
    attempt number (run it again), an exception to raise, or nothing left (a keep record).
    """

    def __init__(self, workers: int, outcomes: dict[int, list[Any]] | None = None) -> None:
        self.slots = SimpleNamespace(workers=[FakeSlot(i) for i in range(workers)])
        self.outcomes = {n: list(items) for n, items in (outcomes or {}).items()}
        self.events: list[tuple] = []
        self.candidates: dict[int, FakeCandidate] = {}
        self.records: dict[int, TrialRecord] = {}
        self.aborted: list[tuple[int, str]] = []
        self.after_advance: Callable[[FakeCandidate], None] = lambda c: None

    def begin(self, number: int, proposal: str, slot: FakeSlot) -> TrialRecord | FakeCandidate:
        self.events.append(("begin", number, slot.index))
        if proposal == "invalid":
            return TrialRecord(number, Status.INVALID, proposal, reason="rejected")
        self.candidates[number] = candidate = FakeCandidate(number, slot)
        return candidate

    def advance(self, candidate: FakeCandidate, result: RunResult) -> int | TrialRecord:
        self.events.append(("advance", candidate.number, result.exit_code))
        time.sleep(0.001)  # so that a trial's wall time is measurably positive
        self.after_advance(candidate)
        script = self.outcomes.get(candidate.number) or []
        outcome = script.pop(0) if script else None
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, int):
            return outcome
        record = self.records[candidate.number] = TrialRecord(candidate.number, Status.KEEP, "judged")
        return record

    def abort(self, candidate: FakeCandidate, reason: str) -> None:
        self.events.append(("abort", candidate.number))
        self.aborted.append((candidate.number, reason))


def result(number: int, attempt: int) -> RunResult:
    return RunResult(exit_code=100 * number + attempt, seconds=0.0, finished=True)


class ScriptedRunner:
    """Completes runs in ``order`` (keys (number, attempt)), each once it was submitted and the
    one before it judged; runs not in ``order`` never finish (until ``cancel_all``). With no
    order, every run finishes as it is submitted."""

    def __init__(self, loop: FakeLoop, order: Iterable[Key] | None = None) -> None:
        self.loop = loop
        self.order = None if order is None else list(order)
        self.futures: dict[Key, concurrent.futures.Future[RunResult]] = {}
        self.submitted: list[tuple[Key, FakeCandidate]] = []
        self.cancelled = self.closed = False
        self.judging_done = True  # nothing released is waiting to be judged
        previous = loop.after_advance

        def after_advance(candidate: FakeCandidate) -> None:
            previous(candidate)
            self.judging_done = True
            self._release()

        loop.after_advance = after_advance

    def submit(self, candidate: FakeCandidate, attempt: int) -> concurrent.futures.Future[RunResult]:
        key = (candidate.number, attempt)
        future: concurrent.futures.Future[RunResult] = concurrent.futures.Future()
        self.futures[key] = future
        self.submitted.append((key, candidate))
        self.loop.events.append(("submit", *key))
        if self.order is None:
            future.set_result(result(*key))
        else:
            self._release()
        return future

    def _release(self) -> None:
        if self.order and self.judging_done and self.order[0] in self.futures:
            key = self.order.pop(0)
            self.judging_done = False
            self.futures[key].set_result(result(*key))

    def cancel_all(self) -> None:
        self.cancelled = True
        self.loop.events.append(("cancel_all",))
        for future in self.futures.values():  # killing the processes ends the runs still going
            if not future.done():
                future.set_result(RunResult(exit_code=-9, seconds=0.0, finished=False, killed=True))

    def close(self) -> None:
        self.closed = True
        self.loop.events.append(("close",))


class Calls:
    """``propose`` and ``report`` for :meth:`Scheduler.run`, recording their calls."""

    def __init__(self, proposals: list[str | None], report_answers: dict[int, bool] | None = None) -> None:
        self.proposals = list(proposals)
        self.proposed: list[int] = []
        self.reported: list[tuple[TrialRecord, float]] = []
        self.report_answers = report_answers or {}
        self.events: list[tuple] | None = None

    def propose(self, number: int) -> str | None:
        self.proposed.append(number)
        if self.events is not None:
            self.events.append(("propose", number))
        return self.proposals.pop(0) if self.proposals else None

    def report(self, record: TrialRecord, seconds: float) -> bool:
        self.reported.append((record, seconds))
        if self.events is not None:
            self.events.append(("report", record.trial))
        return self.report_answers.get(record.trial, True)


def schedule(loop: FakeLoop, runner: ScriptedRunner, calls: Calls, first: int = 0) -> None:
    calls.events = loop.events
    Scheduler(loop, runner).run(first, calls.propose, calls.report)  # type: ignore[arg-type]


# -- one slot, two slots -----------------------------------------------------------------------


def test_one_slot_runs_trials_strictly_one_after_another() -> None:
    loop = FakeLoop(1)
    runner = ScriptedRunner(loop)
    calls = Calls(["a", "b", "c"])
    schedule(loop, runner, calls, first=7)
    assert loop.events == [
        ("propose", 7), ("begin", 7, 0), ("submit", 7, 1), ("advance", 7, 701), ("report", 7),
        ("propose", 8), ("begin", 8, 0), ("submit", 8, 1), ("advance", 8, 801), ("report", 8),
        ("propose", 9), ("begin", 9, 0), ("submit", 9, 1), ("advance", 9, 901), ("report", 9),
        ("propose", 10),
        ("close",),
    ]  # fmt: skip
    assert [record for record, _ in calls.reported] == [loop.records[7], loop.records[8], loop.records[9]]
    assert all(seconds > 0 for _, seconds in calls.reported)
    assert not runner.cancelled and runner.closed


def test_two_slots_two_in_flight_judged_in_finishing_order() -> None:
    loop = FakeLoop(2)
    runner = ScriptedRunner(loop, order=[(1, 1), (0, 1), (2, 1)])  # the second trial finishes first
    calls = Calls(["a", "b", "c"])
    schedule(loop, runner, calls)
    assert loop.events == [
        ("propose", 0), ("begin", 0, 0), ("submit", 0, 1),
        ("propose", 1), ("begin", 1, 1), ("submit", 1, 1),  # two in flight, one slot each
        ("advance", 1, 101), ("report", 1),
        ("propose", 2), ("begin", 2, 1), ("submit", 2, 1),  # into the slot trial 1 freed
        ("advance", 0, 1), ("report", 0),
        ("propose", 3),
        ("advance", 2, 201), ("report", 2),
        ("close",),
    ]  # fmt: skip
    assert [record.trial for record, _ in calls.reported] == [1, 0, 2]


def test_two_slots_on_a_thread_pool_judge_the_first_to_finish_first() -> None:
    """Real threads: trial 0's run waits until trial 1 was judged, so trial 1 finishes first."""
    loop = FakeLoop(2)
    one_judged = threading.Event()
    loop.after_advance = lambda c: one_judged.set() if c.number == 1 else None
    pool = concurrent.futures.ThreadPoolExecutor(2)

    def evaluate(number: int, attempt: int) -> RunResult:
        if number == 0:
            assert one_judged.wait(5), "trial 1 was never judged"
        return result(number, attempt)

    class PoolRunner:
        closed = cancelled = False

        def submit(self, candidate: FakeCandidate, attempt: int) -> concurrent.futures.Future[RunResult]:
            return pool.submit(evaluate, candidate.number, attempt)

        def cancel_all(self) -> None:
            self.cancelled = True

        def close(self) -> None:
            self.closed = True
            pool.shutdown(wait=True)

    runner = PoolRunner()
    calls = Calls(["a", "b"])
    started = time.monotonic()
    Scheduler(loop, runner).run(0, calls.propose, calls.report)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    assert [e for e in loop.events if e[0] == "advance"] == [("advance", 1, 101), ("advance", 0, 1)]
    assert [record.trial for record, _ in calls.reported] == [1, 0]
    assert runner.closed and not runner.cancelled


# -- invalid proposals, confirmation runs ------------------------------------------------------


def test_an_invalid_proposal_is_reported_without_running_and_frees_its_slot() -> None:
    loop = FakeLoop(1)
    runner = ScriptedRunner(loop)
    calls = Calls(["invalid", "a"])
    schedule(loop, runner, calls)
    assert loop.events[:4] == [("propose", 0), ("begin", 0, 0), ("report", 0), ("propose", 1)]
    assert ("begin", 1, 0) in loop.events  # the same (only) slot again
    assert [key for key, _ in runner.submitted] == [(1, 1)]
    invalid, seconds = calls.reported[0]
    assert invalid.status == Status.INVALID and invalid.trial == 0 and seconds > 0
    assert [record.trial for record, _ in calls.reported] == [0, 1]


def test_a_confirmation_attempt_is_resubmitted_with_the_same_candidate() -> None:
    loop = FakeLoop(1, outcomes={0: [2, 3]})  # run 1 asks for run 2, run 2 for run 3, run 3 is judged
    runner = ScriptedRunner(loop)
    calls = Calls(["a"])
    schedule(loop, runner, calls)
    assert [key for key, _ in runner.submitted] == [(0, 1), (0, 2), (0, 3)]
    assert all(candidate is loop.candidates[0] for _, candidate in runner.submitted)
    assert [e for e in loop.events if e[0] == "advance"] == [("advance", 0, 1), ("advance", 0, 2), ("advance", 0, 3)]
    assert [record.trial for record, _ in calls.reported] == [0]
    assert loop.events.count(("begin", 0, 0)) == 1


# -- stopping ----------------------------------------------------------------------------------


def test_propose_none_stops_proposing_but_in_flight_trials_finish() -> None:
    loop = FakeLoop(2)
    runner = ScriptedRunner(loop, order=[(0, 1), (1, 1)])
    calls = Calls(["a", "b"])  # then None
    schedule(loop, runner, calls)
    assert calls.proposed == [0, 1, 2]  # asked once more after trial 0 freed its slot; never again
    assert [record.trial for record, _ in calls.reported] == [0, 1]  # trial 1 finished after the None
    assert loop.events.index(("propose", 2)) < loop.events.index(("advance", 1, 101))
    assert not runner.cancelled and runner.closed


def test_report_false_stops_proposing() -> None:
    loop = FakeLoop(2)
    runner = ScriptedRunner(loop, order=[(0, 1), (1, 1)])
    calls = Calls(["a", "b", "c", "d"], report_answers={0: False})
    schedule(loop, runner, calls)
    assert calls.proposed == [0, 1]  # not asked again once a report said stop
    assert [record.trial for record, _ in calls.reported] == [0, 1]  # the one in flight still finishes
    assert not runner.cancelled and runner.closed


def test_report_false_for_an_invalid_proposal_stops_proposing() -> None:
    loop = FakeLoop(1)
    runner = ScriptedRunner(loop)
    calls = Calls(["invalid", "a"], report_answers={0: False})
    schedule(loop, runner, calls)
    assert calls.proposed == [0] and runner.submitted == []


# -- interruptions and errors ------------------------------------------------------------------


def test_ctrl_c_while_judging_aborts_every_trial_in_flight() -> None:
    loop = FakeLoop(3, outcomes={1: [KeyboardInterrupt()]})
    runner = ScriptedRunner(loop, order=[(1, 1)])  # trials 0 and 2 never finish
    calls = Calls(["a", "b", "c"])
    with pytest.raises(KeyboardInterrupt):
        schedule(loop, runner, calls)
    # the one being judged (1) included, in trial order
    assert loop.aborted == [(0, INTERRUPTED), (1, INTERRUPTED), (2, INTERRUPTED)]
    assert calls.reported == []
    assert runner.cancelled and runner.closed
    assert loop.events[-5:] == [("cancel_all",), ("abort", 0), ("abort", 1), ("abort", 2), ("close",)]


def test_ctrl_c_while_waiting_aborts_every_trial_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    real_wait = concurrent.futures.wait

    def wait(fs: Any, timeout: float | None = None, return_when: str = concurrent.futures.ALL_COMPLETED) -> Any:
        if return_when == concurrent.futures.FIRST_COMPLETED:
            raise KeyboardInterrupt
        return real_wait(fs, timeout=timeout, return_when=return_when)

    monkeypatch.setattr(concurrent.futures, "wait", wait)
    loop = FakeLoop(2)
    runner = ScriptedRunner(loop, order=[])  # nothing finishes
    calls = Calls(["a", "b"])
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        schedule(loop, runner, calls)
    assert time.monotonic() - started < 5  # the killed runs end at once
    assert loop.aborted == [(0, INTERRUPTED), (1, INTERRUPTED)]
    assert runner.cancelled and runner.closed


def test_an_error_while_judging_propagates_and_aborts_the_others() -> None:
    loop = FakeLoop(3, outcomes={1: [RuntimeError("the disk is full")]})
    runner = ScriptedRunner(loop, order=[(1, 1)])
    calls = Calls(["a", "b", "c"])
    with pytest.raises(RuntimeError, match="the disk is full"):
        schedule(loop, runner, calls)
    why = "the run stopped before it was judged (RuntimeError)"
    assert loop.aborted == [(0, why), (2, why)]  # not trial 1: its error is the run's, not a crash of it
    assert runner.cancelled and runner.closed


def test_an_error_from_propose_aborts_the_trials_in_flight() -> None:
    loop = FakeLoop(2)
    runner = ScriptedRunner(loop, order=[])

    def propose(number: int) -> str:
        if number == 1:
            raise OSError("the agent went away")
        return "a"

    with pytest.raises(OSError):
        Scheduler(loop, runner).run(0, propose, lambda record, seconds: True)  # type: ignore[arg-type]
    assert loop.aborted == [(0, "the run stopped before it was judged (OSError)")]
    assert runner.cancelled and runner.closed
