"""``pytest --autoresearch``: the loop as a pytest session.

Like pytest-xdist's DSession, the driver owns ``pytest_collection`` (it never collects or
imports the code under test; trials do, in their own processes) and
``pytest_runtestloop``. Each trial, the baseline included, is reported as a test item with
its own status word, so ``-v``, ``--junitxml`` and the final counts work as usual, and a
discarded or crashed trial is not a failure of the pytest run.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..agents import AgentExhausted
from ..errors import FatalError, SetupError
from ..engine.loop import ResearchLoop
from ..proposals.proposal import Proposal
from ..core.records import TrialRecord
from .terminal import STATUS_MARKUP, details, live_line, progress, summary, table
from ..settings import SETTINGS_KEY, load_settings

#: Seconds between refreshes of progress.png (a keep refreshes it at once).
PLOT_EVERY = 30.0


def _width() -> int | None:
    """The terminal's width, or None when output goes to a file or CI log (nothing is cut)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


class TrialItem(pytest.Item):
    """One trial as a test item; ``runtest`` evaluates the proposal it was made with."""

    def __init__(
        self, *, loop: ResearchLoop, number: int, proposal: Proposal | None, record: TrialRecord | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.loop = loop
        self.number = number
        self.proposal = proposal
        self.record = record

    def runtest(self) -> None:
        if self.record is None:
            assert self.proposal is not None
            try:
                self.record = self.loop.step(self.number, self.proposal)
            except FatalError as exc:
                self.loop.fatal = str(exc)
                return
        r = self.record
        self.user_properties += [
            ("trial", r.trial),
            ("status", r.status),
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
            self.user_properties += [("tokens_in", r.usage.prompt_tokens), ("tokens_out", r.usage.completion_tokens)]
            if r.usage.cost is not None:
                self.user_properties.append(("cost_usd", repr(r.usage.cost)))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.loop.run_dir, None, f"trial {self.number}"


@contextlib.contextmanager
def _matplotlib_home(folder: Path) -> Iterator[None]:
    """matplotlib settles where its font cache lives when it is first imported (MPLCONFIGDIR,
    else ~/.cache): the run folder's, unless you chose one, so that drawing writes nowhere else.
    The variable is set only around the drawing, so trials keep your environment."""
    if "MPLCONFIGDIR" in os.environ:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MPLCONFIGDIR"] = str(folder)
    try:
        yield
    finally:
        os.environ.pop("MPLCONFIGDIR", None)


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


class Driver:
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
        self.plot: Any = None  # the plot module, while progress.png can be written
        self.plot_written = 0.0
        self.plot_thread: threading.Thread | None = None
        self.plot_problem: str | None = None
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
            self.nodeid_prefix = loop.run_dir.relative_to(self.config.rootpath).as_posix() + "::"
            self._say(
                f"autoresearch: run {loop.tag} from {loop.base_ref[:12]} ({loop.r.start_commit[:10]}), "
                f"branch {loop.branch}, folder {loop.run_dir}"
            )
            self._say(f"autoresearch: surface {', '.join(loop.surface_files)}; agent {loop.agent.describe()}; {self._stop_rules()}")
            if s.workers > 1 or s.backend != "local":
                devices = f", devices {','.join(s.devices)}" if s.devices else ""
                where = "" if s.backend == "local" else f" on {s.backend}"
                self._say(f"autoresearch: {s.workers} workers{where}{devices}: up to {s.workers} trials in flight, each from the best when it starts")
            if loop.r.resumed:
                self._say(f"autoresearch: {loop.notes.pop(0)}")
                self.ran_baseline = True
            baseline = loop.baseline() if loop.needs_baseline else None
        except SetupError as exc:
            raise pytest.UsageError(f"autoresearch: {exc}") from None
        self.ran_baseline = True
        loop.note = lambda line: self._say(f"autoresearch: {line}")
        if scrubbed := loop.scrubbed_note():
            loop.notes.append(scrubbed)
        for note in loop.notes:
            self._say(f"autoresearch: {note}")
        session.testscollected = max(1, (baseline is not None) + (s.trials or 0))
        if baseline is not None:
            self._report(session, baseline.trial, record=baseline)
        try:
            loop.start_agent()
        except FatalError as exc:
            raise pytest.UsageError(f"autoresearch: {exc}") from None
        from . import plot

        self.plot = plot
        self.first_trial, self.trials_started = loop.next_trial, time.monotonic()
        self.plot_written = time.monotonic()  # the first refresh comes after PLOT_EVERY seconds
        try:
            self._trials(session)
        except KeyboardInterrupt:
            self.stop_reason = f"interrupted; run again with --autoresearch-tag={loop.tag} to continue this run"
            raise
        loop.final_holdout()

    def _stop_rules(self) -> str:
        s = self.settings
        rules = [f"{s.trials} trials" if s.trials is not None else ""]
        rules.append(f"{s.time_limit:g}s" if s.time_limit is not None else "")
        rules.append(f"target {s.target:g}" if s.target is not None else "")
        rules.append(f"patience {s.patience}" if s.patience is not None else "")
        rules.append(f"${s.max_cost:g}" if s.max_cost is not None else "")
        chosen = ", ".join(r for r in rules if r)
        if chosen:
            return f"stops at {chosen}"
        stop = f"{self.loop.run_dir}/STOP"
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
            proposal = loop.propose(number)
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
        loop = self.loop
        first, started = loop.next_trial, time.monotonic()
        try:
            if self.settings.workers > 1 or self.settings.backend != "local":
                self._trials_in_parallel(session, first, started)
                return
            for number in itertools.count(first):
                proposal = self._next_proposal(session, number, first, started)
                if proposal is None:
                    break
                self._report(session, number, proposal=proposal)
                if loop.fatal:
                    raise pytest.UsageError(f"autoresearch: {loop.fatal}")
                if not self._go_on(session):
                    break
        except FatalError as exc:
            raise pytest.UsageError(f"autoresearch: {exc}") from None

    def _trials_in_parallel(self, session: pytest.Session, first: int, started: float) -> None:
        """K trials in flight (:mod:`~pytest_autoresearch.workers`); each is reported as it ends."""
        from ..engine.schedule import Schedule, make_runner

        def report(record: TrialRecord) -> bool:
            self._report(session, record.trial, record=record)
            return self._go_on(session)

        Schedule(self.loop, make_runner(self.loop)).run(first, lambda n: self._next_proposal(session, n, first, started), report)

    def _report(
        self, session: pytest.Session, number: int, *, proposal: Proposal | None = None, record: TrialRecord | None = None
    ) -> None:
        """Run trial ``number`` (or report the finished baseline) as a test item."""
        name = f"trial-{number:03d}"
        item = TrialItem.from_parent(
            session, name=name, nodeid=self.nodeid_prefix + name, loop=self.loop, number=number, proposal=proposal, record=record
        )
        session.items.append(item)
        item.ihook.pytest_runtest_protocol(item=item, nextitem=None)

    def _record(self, report: pytest.TestReport) -> TrialRecord | None:
        """The trial record behind a trial item's call report."""
        if report.when != "call" or not report.nodeid.startswith(self.nodeid_prefix):
            return None
        number = dict(report.user_properties).get("trial")
        return next((r for r in reversed(self.loop.records) if r.trial == number), None)

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
            word = f"{word}  {details(record, _width())}"
        return record.status, "", (word, STATUS_MARKUP.get(record.status, {}))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self._record(report)
        if record is None:
            return
        self._after_trial(record)
        if self.config.get_verbosity() == 0:
            self._say(live_line(record, _width(), self._progress(record)), **STATUS_MARKUP.get(record.status, {}))

    def _progress(self, record: TrialRecord) -> str:
        """Trial k of N (or the time used), the best so far, the ETA; nothing for the baseline."""
        loop, s = self.loop, self.settings
        if record.status == "baseline" or self.trials_started is None:
            return ""
        done = sum(1 for r in loop.records if r.trial >= self.first_trial and r.status != "baseline")
        return progress(
            done=done,
            total=s.trials,
            elapsed=time.monotonic() - self.trials_started,
            time_limit=s.time_limit,
            best=loop.best,
        )

    def _after_trial(self, record: TrialRecord) -> None:
        """Refresh progress.png now and then, in the background: drawing must not slow the loop."""
        if self.plot is None or time.monotonic() - self.plot_written < PLOT_EVERY:
            return
        if self.plot_thread is not None and self.plot_thread.is_alive():
            return
        self.plot_written = time.monotonic()
        self.plot_thread = threading.Thread(target=self._write_plot, args=(list(self.loop.records),), daemon=True, name="autoresearch plot")
        self.plot_thread.start()

    def _write_plot(self, records: list[TrialRecord]) -> None:
        loop, plot = self.loop, self.plot
        if plot is None or loop.metric is None or not records:
            return
        try:
            with _matplotlib_home(loop.run_dir / "cache" / "matplotlib"):
                plot.write_progress(records, goal=loop.metric.goal, metric=loop.metric.name, path=loop.run_dir / "progress.png", title=f"autoresearch run {loop.tag}")
        except plot.PlotUnavailable as exc:
            self.plot_problem = str(exc)
            self.plot = None
        except Exception as exc:  # a plot must never end a night's run
            self.plot_problem = f"progress.png could not be written: {type(exc).__name__}: {exc}"
            self.plot = None

    def _final_plot(self) -> None:
        if self.plot_thread is not None:
            self.plot_thread.join()
        self._write_plot(list(self.loop.records))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        loop = self.loop
        if not self.ran_baseline or not loop.records or loop.metric is None or loop.log is None:
            return
        self._final_plot()
        terminalreporter.write_sep("=", "autoresearch")
        if self.config.get_verbosity() >= 0:
            for line in table(loop.records, _width()).splitlines():
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        for line in summary(
            loop.records,
            goal=loop.metric.goal,
            metric=loop.metric.name,
            branch=loop.branch,
            log_path=str(loop.log.path),
            tag=loop.tag,
            base_ref=loop.base_ref,
            stop_reason=self.stop_reason,
            holdout=loop.holdout,
            holdout_best_trial=loop.holdout_best_trial,
            holdout_goals=loop.holdout_goals,
        ):
            terminalreporter.write_line(line)
        if self.plot_problem:
            terminalreporter.write_line(f"no progress plot: {self.plot_problem}")
        elif (loop.run_dir / "progress.png").exists():
            terminalreporter.write_line(f"progress plot: {loop.run_dir / 'progress.png'}")

    def pytest_sessionfinish(self) -> None:
        self.loop.finish()
