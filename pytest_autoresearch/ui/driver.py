"""``pytest --autoresearch``: the loop as a pytest session.

Like pytest-xdist's DSession, the driver owns ``pytest_collection`` (it never collects or
imports the code under test; trials do, in their own processes) and
``pytest_runtestloop``. Each trial, the baseline included, is reported as a test item with
its own status word, so ``-v``, ``--junitxml`` and the final counts work as usual, and a
discarded or crashed trial is not a failure of the pytest run.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from ..agents import AgentExhausted
from ..core.records import Status, TrialRecord
from ..core.text import counted
from ..engine.loop import ResearchLoop
from ..engine.setup import Run
from ..engine.trial_process import memory_accounting
from ..errors import FatalError, SetupError
from ..proposals.proposal import Proposal
from ..settings import SETTINGS_KEY, load_settings
from .plot_refresh import PlotRefresher
from .terminal import STATUS_MARKUP, details, live_line, progress, summary, table


def _width() -> int | None:
    """The terminal's width, or None when output goes to a file or CI log (nothing is cut)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def header(run: Run) -> str:
    """Where the run starts, said plainly: ``run t from main at c46f849935, branch autoresearch/t``.

    A resumed run started from the commit in run.json and goes on from its branch's tip; the
    tip is named only when the branch has moved past that start."""
    start = run.meta.head if run.meta is not None else run.head
    where = f"commit {start[:10]} (a detached HEAD)" if run.base_ref == start else f"{run.base_ref} at {start[:10]}"
    tip = f" at {run.start_commit[:10]}" if run.start_commit != start else ""
    return f"{'continuing run' if run.resumed else 'run'} {run.tag} from {where}, branch {run.branch}{tip}"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the loop the way Ctrl-C does: the running trial is killed, the log kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TrialItem(pytest.Item):
    """One finished trial (the baseline included) as a test item, for ``-v``, JUnit and the counts.

    The scheduler has run and judged the trial before its item exists; ``runtest`` only reports
    it, and the item's duration is the trial's own wall time (see :meth:`Driver.pytest_runtest_makereport`).
    """

    def __init__(self, *, record: TrialRecord, seconds: float, folder: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record
        self.seconds = seconds  # how long the trial took, from its proposal's check to its verdict
        self.folder = folder

    def runtest(self) -> None:
        r = self.record
        self.user_properties += [
            ("trial", r.trial),
            ("status", str(r.status)),
            ("score", "" if r.score is None else repr(r.score)),
            ("delta", "" if r.delta is None else repr(r.delta)),
            ("commit", r.commit),
            ("parent", "" if r.parent_trial is None else r.parent_trial),
            ("seconds", f"{r.seconds:.3f}"),
            ("runs", r.runs),
            ("description", r.description),
        ]
        if r.reason:
            self.user_properties.append(("reason", r.reason))
        if r.usage is not None:
            usage = r.usage
            self.user_properties += [
                ("tokens_in", usage.prompt_tokens), ("tokens_cached", usage.cached_tokens), ("tokens_out", usage.completion_tokens)
            ]
            if r.usage.cost is not None:
                self.user_properties.append(("cost_usd", repr(r.usage.cost)))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.folder, None, f"trial {self.record.trial}"


class Driver:
    """The ``--autoresearch`` session: sets the run up, hands its trials to the scheduler and
    reports each as it ends; the engine does the work (:class:`~pytest_autoresearch.engine.loop.ResearchLoop`)."""

    def __init__(self, config: pytest.Config) -> None:
        if getattr(config.option, "numprocesses", None):
            raise pytest.UsageError("--autoresearch runs each trial in its own process; drop -n/--numprocesses")
        self.config = config
        self.settings = load_settings(config)
        config.stash[SETTINGS_KEY] = self.settings
        self.loop = ResearchLoop(config, self.settings)
        self.nodeid_prefix = "\0"  # set once the run folder is known
        self.stop_reason: str | None = None
        self.ran_baseline = False
        self.first_trial = 0
        self.trials_started: float | None = None
        self.plot: PlotRefresher | None = None  # once trials start
        from ..agents import builtin
        from ..engine import hooks
        from ..system.procs import become_subreaper

        become_subreaper()  # orphans of trials come back to the driver, which kills them
        config.pluginmanager.register(builtin, "autoresearch-agents")
        config.pluginmanager.register(hooks, "autoresearch-decision")

    @property
    def tr(self) -> pytest.TerminalReporter | None:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _say(self, line: str, **markup: bool) -> None:
        tr = self.tr
        if tr is not None and self.config.get_verbosity() >= 0:
            tr.write_line(line, **markup)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        # --collect-only shows the user's tests as usual; otherwise trials collect, not the driver
        return None if self.config.option.collectonly else True

    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if self.config.option.collectonly:
            return True
        tr = self.tr
        if tr is not None:
            tr.showfspath = False  # trials print their own lines
            if self.config.get_verbosity() <= 0 or self.settings.trials is None:
                # pytest's "[ 40%]" column only makes sense beside -v lines of a bounded run
                tr._show_progress_info = False  # type: ignore[attr-defined]
        with _sigterm_as_interrupt():
            self._run(session)
        return True

    def _run(self, session: pytest.Session) -> None:
        loop, s = self.loop, self.settings
        try:
            loop.prepare()
            run = loop.run
            self.nodeid_prefix = run.folder.path.relative_to(self.config.rootpath).as_posix() + "::"
            self._say(f"autoresearch: {header(run)}, folder {run.folder.path}")
            self._say(f"autoresearch: surface {', '.join(run.surface_files)}; agent {run.agent.describe()}; {self._stop_rules()}")
            if s.workers > 1 or s.backend != "local":
                devices = f", devices {','.join(s.devices)}" if s.devices else ""
                where = "" if s.backend == "local" else f" on {s.backend}"
                self._say(
                    f"autoresearch: {counted(s.workers, 'worker')}{where}{devices}: up to {counted(s.workers, 'trial')} in flight, "
                    "each from the best when it starts"
                )
            if s.memory_mb is not None:
                self._say(f"autoresearch: {memory_accounting(s.memory_mb)}")
            if run.resumed:
                self._say(f"autoresearch: {run.notes.pop(0)}")
                self.ran_baseline = True
            baseline = loop.baseline() if run.rebaseline else None
        except SetupError as exc:
            raise pytest.UsageError(f"autoresearch: {exc}") from None
        self.ran_baseline = True
        loop.note = loop.proposer.note = lambda line: self._say(f"autoresearch: {line}")
        if scrubbed := loop.scrubbed_note():
            run.notes.append(scrubbed)
        for note in run.notes:
            self._say(f"autoresearch: {note}")
        session.testscollected = max(1, (baseline is not None) + (s.trials or 0))
        if baseline is not None:
            self._report(session, baseline, baseline.seconds)
        try:
            loop.proposer.start()
        except FatalError as exc:
            raise pytest.UsageError(f"autoresearch: {exc}") from None
        self.plot = PlotRefresher(run.folder.path, run.tag, lambda: loop.metric)
        self.first_trial, self.trials_started = loop.history.next_trial, time.monotonic()
        try:
            self._trials(session)
        except KeyboardInterrupt:
            self.stop_reason = f"interrupted; run again with --autoresearch-tag={run.tag} to continue this run"
            raise
        loop.final_holdout()
        if loop.rescore_due():
            if left := loop.settle():
                self._say(f"autoresearch: before the re-score, repaired what earlier trials left: {', '.join(left)}")
            self._say(f"autoresearch: re-scoring the final best (trial {loop.history.best.trial}) in a fresh clone outside the run folder")
            loop.final_rescore()

    def _stop_rules(self) -> str:
        s = self.settings
        rules = [counted(s.trials, "trial") if s.trials is not None else ""]
        rules.append(f"{s.time_limit:g}s" if s.time_limit is not None else "")
        rules.append(f"target {s.target:g}" if s.target is not None else "")
        rules.append(f"patience {s.patience}" if s.patience is not None else "")
        rules.append(f"${s.max_cost:g}" if s.max_cost is not None else "")
        chosen = ", ".join(r for r in rules if r)
        ends = self.loop.run.agent.runs_out()  # a replay file ends the run by itself
        if chosen:
            return f"stops at {chosen}" + (f" or {ends}" if ends else "")
        stop = f"{self.loop.run.folder.path}/STOP"
        if ends:
            return f"stops {ends} (or on Ctrl-C or `touch {stop}`), keeping every finished trial"
        return f"no stop rule: runs until Ctrl-C or `touch {stop}`, keeping every finished trial"

    def _next_proposal(self, session: pytest.Session, number: int, first: int, started: float) -> Proposal | None:
        """The agent's proposal for trial ``number``, or None when a stop rule or the agent ends
        the run (the reason is kept for the summary). FatalError passes through."""
        loop, s = self.loop, self.settings
        if s.trials is not None and number - first >= s.trials:
            return None
        if reason := loop.stop_reason(started):
            self.stop_reason = reason
            return None
        try:
            proposal = loop.proposer.propose(number)
        except AgentExhausted as exc:
            self.stop_reason = str(exc)
            return None
        if s.trials is None:
            session.testscollected += 1
        return proposal

    def _go_on(self, session: pytest.Session) -> bool:
        if session.testsfailed:
            self.stop_reason = "an internal error ended the loop (see the failure above)"
        return not (session.testsfailed or session.shouldstop or session.shouldfail)

    def _trials(self, session: pytest.Session) -> None:
        """Every trial, with one worker or K, through the scheduler; each is reported as it ends."""
        from ..engine.schedule import Scheduler, make_runner

        first, started = self.loop.history.next_trial, time.monotonic()

        def report(record: TrialRecord, seconds: float) -> bool:
            self._report(session, record, seconds)
            return self._go_on(session)

        try:
            Scheduler(self.loop, make_runner(self.loop)).run(first, lambda n: self._next_proposal(session, n, first, started), report)
        except FatalError as exc:
            raise pytest.UsageError(f"autoresearch: {exc}") from None

    def _report(self, session: pytest.Session, record: TrialRecord, seconds: float) -> None:
        """Report a finished trial (or the baseline) as a test item."""
        name = f"trial-{record.trial:03d}"
        item = TrialItem.from_parent(
            session, name=name, nodeid=self.nodeid_prefix + name, record=record, seconds=seconds, folder=self.loop.run.folder.path
        )
        session.items.append(item)
        item.ihook.pytest_runtest_protocol(item=item, nextitem=None)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if isinstance(item, TrialItem) and report.when == "call":
            report.duration = item.seconds  # JUnit's time and --durations: the trial's, not the report's
        return report

    def _record(self, report: pytest.TestReport) -> TrialRecord | None:
        """The trial record behind a trial item's call report."""
        if report.when != "call" or not report.nodeid.startswith(self.nodeid_prefix):
            return None
        return self.loop.history.find(dict(report.user_properties).get("trial"))  # type: ignore[arg-type]

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
        if not isinstance(report, pytest.TestReport) or not report.nodeid.startswith(self.nodeid_prefix):
            return None
        if report.failed:
            return None  # an internal error: pytest shows it as usual
        record = self._record(report)
        if record is None:
            return "", "", ""  # setup and teardown of a trial item
        word = f"{record.status.upper():<8}"
        if config.get_verbosity() > 0:
            word = f"{word}  {details(record, _width(), goal=self._goal)}"
        return str(record.status), "", (word, STATUS_MARKUP.get(record.status, {}))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self._record(report)
        if record is None:
            return
        if self.plot is not None:
            self.plot.after_trial(self.loop.history.records)
        if self.config.get_verbosity() == 0:
            self._say(live_line(record, _width(), self._progress(record), goal=self._goal), **STATUS_MARKUP.get(record.status, {}))

    def _progress(self, record: TrialRecord) -> str:
        """Trial k of N (or the time used), the best so far, the ETA; nothing for the baseline."""
        history, s = self.loop.history, self.settings
        if record.status == Status.BASELINE or self.trials_started is None:
            return ""
        done = sum(1 for r in history if r.trial >= self.first_trial and r.status != Status.BASELINE)
        return progress(
            done=done, total=s.trials, elapsed=time.monotonic() - self.trials_started, time_limit=s.time_limit, best=history.best,
            best_kept=history.best_kept(self._goal) if self._goal else None,
        )

    @property
    def _goal(self) -> str | None:
        """The primary metric's goal, once the baseline fixed it: which scores are better."""
        return self.loop.metric.goal if self.loop.metric is not None else None

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        try:
            self._summary(terminalreporter)
        except KeyboardInterrupt:  # the run is logged whole: only its reprint is cut short
            terminalreporter.write_line(f"autoresearch: summary interrupted; reprint it with --autoresearch-report --autoresearch-tag={self.settings.tag}")

    def _summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        loop = self.loop
        if not self.ran_baseline or not loop.history or loop.metric is None or loop.recorder.log is None:
            return
        run, records, holdout = loop.run, loop.history.records, loop.holdout
        if self.plot is not None:
            self.plot.final(records)
        terminalreporter.write_sep("=", "autoresearch")
        if self.config.get_verbosity() >= 0:
            for line in table(records, _width(), goal=loop.metric.goal).splitlines():
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        for line in summary(
            records,
            goal=loop.metric.goal,
            metric=loop.metric.name,
            branch=run.branch,
            log_path=str(loop.recorder.log.path),
            tag=run.tag,
            base_ref=run.base_ref,
            stop_reason=self.stop_reason,
            holdout=holdout.scores,
            holdout_best_trial=holdout.best_trial,
            holdout_goals=holdout.goals,
            rescore=loop.rescored,
        ):
            terminalreporter.write_line(line, **({"red": True, "bold": True} if line.startswith("WARNING") else {}))
        if self.plot is not None and self.plot.problem:
            terminalreporter.write_line(f"no progress plot: {self.plot.problem}")
        elif (run.folder.path / "progress.png").exists():
            terminalreporter.write_line(f"progress plot: {run.folder.path / 'progress.png'}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The run ends; one whose final best did not reproduce outside it exits with 1 (tests
        failed), so that a script does not merge the branch unread."""
        self.loop.finish()
        rescored = self.loop.rescored
        if rescored is not None and rescored.agreed is False and self.loop.history and rescored.commit == self.loop.history.best.commit:
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
