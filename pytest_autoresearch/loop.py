"""The research loop itself: score the baseline, then one trial at a time.

A trial is: ask the agent for a proposal, check it against the surface, write it into the
run's worktree, run the suite there in a subprocess, judge the outcome (frozen files
intact? tests passed? better?), record a commit for it, log its row, move the branch if it
was kept, and reset the worktree to the best. The row is written before the refs move, and
Ctrl-C is held off while both happen, so the log and git never disagree about a trial.

This module knows git, subprocesses and the log but nothing of pytest's terminal; the
:mod:`~pytest_autoresearch.driver` presents it as pytest items. How a run starts (or
resumes) is :mod:`~pytest_autoresearch.runsetup`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .agents import Agent, AgentError, AgentExhausted, ProposalContext
from .gitstate import ZERO, Worktree, trailers
from .proposal import Limits, Proposal, check, one_line
from .records import MetricSpec, RunResult, TrialRecord
from .results_log import ResultsLog
from .runsetup import Run, SetupError, start_run
from .sandbox import bwrap_args, environment, scrub
from .settings import Settings
from .surface import normalize
from .trial import TrialCommand, pytest_argv, run

__all__ = ["FatalError", "ResearchLoop", "SetupError"]


class FatalError(Exception):
    """The loop cannot go on; the log keeps every finished trial."""


_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt|Failed|Warning)\b.*:")


def _crash_line(failure: str) -> str:
    """The line of a failure text that says what went wrong: the exception line pytest marks
    with ``E`` (the last one: chained and collection errors end with the cause), else the
    first ``E`` line, else the last line."""
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    exceptions = [line for line in marked if _EXCEPTION_LINE.match(line)]
    if exceptions:
        return exceptions[-1]
    if marked:
        return marked[0]
    return lines[-1] if lines else ""


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM off while a trial's row and refs are written, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise KeyboardInterrupt


class ResearchLoop:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.run: Run | None = None
        self.records: list[TrialRecord] = []
        self.metric: MetricSpec | None = None
        self.log: ResultsLog | None = None
        self.timeout: float | None = settings.timeout
        self.last_failure: str | None = None
        self.spent = 0.0  # US dollars the agent's model calls cost so far
        self.note: Callable[[str], None] = print  # status lines for the user; the driver routes them
        self.fatal: str | None = None  # set when a trial found the loop cannot go on
        self.limits = Limits(allow_delete=settings.allow_delete, max_file_bytes=int(settings.max_file_kb * 1024))
        self._columns: dict[tuple[str, str], str] = {}  # (nodeid, metric or "") -> column
        self._unpriced_noted = False
        self._scrubbed: list[str] = []
        self._session_start = 1  # this session's first trial (a resumed run continues the numbering)

    # -- the run and what the driver shows of it -----------------------------------------

    @property
    def r(self) -> Run:
        assert self.run is not None
        return self.run

    @property
    def worktree(self) -> Worktree:
        assert self.r.worktree is not None
        return self.r.worktree

    tag = property(lambda self: self.r.tag)
    branch = property(lambda self: self.r.branch)
    run_dir = property(lambda self: self.r.folder.path)
    head = property(lambda self: self.r.head)
    base_ref = property(lambda self: self.r.base_ref)
    notes = property(lambda self: self.r.notes)
    surface_files = property(lambda self: self.r.surface_files)

    @property
    def agent(self) -> Agent:
        return self.r.agent

    @property
    def needs_baseline(self) -> bool:
        return self.r.rebaseline

    @property
    def next_trial(self) -> int:
        return self.records[-1].trial + 1 if self.records else 0

    @property
    def best(self) -> TrialRecord:
        return next(r for r in reversed(self.records) if r.kept)

    def prepare(self) -> None:
        """Start the run, or take up an earlier one with the same tag. Raises SetupError."""
        self.run = run_ = start_run(self.config, self.settings)
        if run_.meta is None:
            return
        meta = run_.meta
        self.metric = run_.metric
        self._columns = {(nodeid, metric): column for nodeid, metric, column in meta["column_keys"]}
        self.records = list(run_.records)
        self.spent = sum(r.usage.cost for r in self.records if r.usage is not None and r.usage.cost is not None)
        self.log = ResultsLog(run_.folder.results, meta["columns"], usage=meta["usage"])
        self.log.adopt()
        if self.timeout is None:
            self.timeout = meta["timeout"]

    # -- evaluation --------------------------------------------------------------------

    def _in_worktree(self, path: Path) -> Path:
        rel = os.path.relpath(path.resolve(), self.r.repo.root)
        return self.worktree.path if rel == "." else self.worktree.path / rel

    def _inside_repo(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved.is_relative_to(self.r.repo.root) and not resolved.is_relative_to(self.run_dir.resolve())

    def _command(self) -> TrialCommand:
        s, run_ = self.settings, self.r
        args = ["-x", "-o", f"cache_dir={run_.folder.cache}"]
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            args += ["-p", "pytest_autoresearch.plugin"] + (["-p", "pytest_timeout"] if self._has_timeout_plugin() else [])
        if self.timeout is not None and self._pytest_timeout_is_ours():
            # below the hard deadline, so a hung test is reported with its traceback
            margin = min(2.0, max(1.0, 0.2 * self.timeout))
            args.append(f"--timeout={max(self.timeout / 2, self.timeout - margin):g}")
        args += s.forward_args
        if s.inifile is not None:
            args += ["-c", str(self._in_worktree(s.inifile) if self._inside_repo(s.inifile) else s.inifile)]
        if s.rootdir_given:
            args.append(f"--rootdir={self._in_worktree(s.rootdir)}")
        for arg in s.test_args:
            path, sep, rest = arg.partition("::")
            if Path(path).is_absolute() and self._inside_repo(Path(path)):
                arg = str(self._in_worktree(Path(path))) + sep + rest
            args.append(arg)
        cwd = self._in_worktree(s.test_args_dir if self._inside_repo(s.test_args_dir) else s.rootdir)
        env, self._scrubbed = scrub(os.environ, s.pass_env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-second, same-size edit must not reuse stale bytecode
        if env.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.pathsep.join(
                str(self._in_worktree(Path(p))) if Path(p).is_absolute() and self._inside_repo(Path(p)) else p
                for p in env["PYTHONPATH"].split(os.pathsep)
            )
        sandbox = None
        if s.sandbox:
            assert run_.manifest is not None
            env = environment(env)
            sandbox = tuple(
                bwrap_args(
                    repo_root=run_.repo.root,
                    worktree=self.worktree.path,
                    frozen=[self.worktree.path / p for p in run_.manifest.blobs],
                    writable=[run_.folder.cache],
                    readable=[run_.folder.manifest, *(Path(os.path.realpath(self.worktree.path / c)) for c in run_.carry)],
                    cwd=cwd,
                )
            )
        return TrialCommand(
            argv=pytest_argv(args),
            cwd=cwd,
            env=env,
            shadow=tuple(str(run_.repo.root / (run_.prefix + p)) for p in run_.surface_files),
            manifest=run_.folder.manifest,
            memory_mb=s.memory_mb,
            sandbox=sandbox,
        )

    def _has_timeout_plugin(self) -> bool:
        return self.config.pluginmanager.hasplugin("timeout")

    def _pytest_timeout_is_ours(self) -> bool:
        """Give each test a timeout below the trial's unless the user configured pytest-timeout."""
        if not self._has_timeout_plugin():
            return False
        if os.environ.get("PYTEST_TIMEOUT") or getattr(self.config.option, "timeout", None) is not None:
            return False
        try:
            return not self.config.getini("timeout")
        except ValueError:
            return True

    def evaluate(self, number: int) -> RunResult:
        folder = self.r.folder
        try:
            return run(self._command(), self.timeout, folder.trials / f"{number:03d}.log", started=folder.trial_started)
        finally:
            folder.trial_ended()

    # -- the baseline ------------------------------------------------------------------

    def baseline(self) -> TrialRecord:
        """Score the start commit; any problem is a SetupError (a new run's set-up is undone)."""
        try:
            return self._baseline()
        except BaseException:
            if not self.r.resumed:
                self.r.abandon()
            raise

    def _baseline(self) -> TrialRecord:
        run_ = self.r
        number = self.next_trial
        result = self.evaluate(number)
        if result.shadowed:
            raise SetupError(self._shadow_message(result.shadowed))
        if result.timed_out:
            raise SetupError(
                f"the baseline timed out after {result.seconds:.0f}s; raise --autoresearch-timeout.\n" + result.failure_text(2000)
            )
        if result.memory_exceeded:
            raise SetupError(f"the baseline used more than autoresearch_memory_mb = {self.settings.memory_mb:g} MiB")
        if not result.finished:
            raise SetupError(
                f"the baseline's pytest session did not finish (exit code {result.exit_code}); "
                f"output (full log in {result.log_path}):\n" + result.failure_text(2000)
            )
        if result.failed_tests:
            raise SetupError("the baseline fails, so nothing could be judged against it; fix the tests first.\n" + result.failure_text(2000))
        if not result.fitness:
            raise SetupError(
                'no fitness test ran: mark a test with @pytest.mark.fitness(goal="min") (or "max") '
                "and record its score with the fitness fixture, fitness(value)"
            )
        for fit in result.fitness:
            path = fit.nodeid.split("::")[0]
            if run_.surface.matches(path):
                raise SetupError(f"autoresearch_mutable includes {path}, which defines the fitness test {fit.nodeid}: the evaluator must stay frozen")
        if self.metric is None:
            explicit = [f for f in result.fitness if f.primary]
            if len(explicit) > 1:
                raise SetupError("more than one fitness test says primary=True: " + ", ".join(f.nodeid for f in explicit))
            first = explicit[0] if explicit else result.fitness[0]
            self.metric = MetricSpec(first.nodeid, first.name, first.goal, True)
        primary = next((f for f in result.fitness if f.nodeid == self.metric.nodeid), None)
        if primary is None or primary.score is None:
            raise SetupError(f"the primary fitness test {self.metric.nodeid} recorded no score")
        if self.timeout is None:
            self.timeout = max(60.0, round(3 * result.seconds))
            run_.notes.append(f"trial timeout {self.timeout:g}s (3x the baseline; set --autoresearch-timeout)")
        if self.log is None:
            self._start_log(result)
        record = TrialRecord(
            trial=number,
            status="baseline",
            description="baseline" if number == 0 else "baseline again: the branch changed outside the loop",
            commit=run_.start_commit,
            score=primary.score,
            seconds=result.seconds,
            metrics=self._metrics(result),
        )
        self._commit_record(record, branch_from=None)
        run_.undo.clear()
        run_.rebaseline = False
        return record

    def _start_log(self, result: RunResult) -> None:
        """A new run's log, metadata and branch, once its baseline stands."""
        run_ = self.r
        assert self.metric is not None
        for fit in result.fitness:
            if fit.nodeid != self.metric.nodeid:
                self._add_column(fit.nodeid, "", fit.name)
            for name in fit.metrics:
                self._add_column(fit.nodeid, name, name if fit.nodeid == self.metric.nodeid else f"{fit.name}.{name}")
        columns = list(self._columns.values())
        self.log = ResultsLog(run_.folder.results, columns, usage=run_.agent.reports_usage)
        self.log.create()
        run_.folder.write_meta(
            {
                "version": 1,
                "tag": run_.tag,
                "head": run_.head,
                "base_ref": run_.base_ref,
                "metric": {"nodeid": self.metric.nodeid, "name": self.metric.name, "goal": self.metric.goal},
                "columns": columns,
                "column_keys": [[n, m, c] for (n, m), c in self._columns.items()],
                "usage": run_.agent.reports_usage,
                "timeout": self.timeout,
            }
        )
        run_.repo.update_refs((f"refs/heads/{run_.branch}", run_.start_commit, ZERO))

    def _add_column(self, nodeid: str, metric: str, name: str) -> None:
        taken = set(self._columns.values()) | {"trial", "commit", "status", "score", "delta", "seconds", "reason", "description"}
        column = name if name not in taken else f"{nodeid}:{metric}" if metric else nodeid
        self._columns[(nodeid, metric)] = column

    def _metrics(self, result: RunResult) -> dict[str, float]:
        values: dict[str, float] = {}
        for fit in result.fitness:
            if (fit.nodeid, "") in self._columns and fit.score is not None:
                values[self._columns[(fit.nodeid, "")]] = fit.score
            for name, value in fit.metrics.items():
                if (fit.nodeid, name) in self._columns:
                    values[self._columns[(fit.nodeid, name)]] = value
        return values

    def _shadow_message(self, paths: list[str]) -> str:
        return (
            f"the trial imported {', '.join(paths)} from your checkout instead of the trial's worktree, "
            "so it would score unchanged code. An editable install (pip install -e) or a sys.path/PYTHONPATH "
            "entry points at your checkout; make the tests import the mutable modules relative to the "
            'rootdir instead (e.g. pythonpath = ["src"] under [tool.pytest.ini_options]) and run again'
        )

    # -- trials ------------------------------------------------------------------------

    def _trial_ref(self, number: int) -> str:
        return f"refs/autoresearch/{self.tag}/trials/{number:03d}"

    def read(self, path: str) -> str | None:
        """A file of the current best, by rootdir-relative path (what agents may read)."""
        clean = normalize(path)
        if clean is None or ".git" in clean.lower().split("/"):
            return None
        return self.worktree.read(self.r.prefix + clean)

    def context(self, number: int) -> ProposalContext:
        assert self.metric is not None
        trials_left = None if self.settings.trials is None else self.settings.trials - (number - self._session_start)
        return ProposalContext(
            trial=number,
            tag=self.tag,
            rootdir=self.settings.rootdir,
            workdir=self._in_worktree(self.settings.rootdir),
            surface=self.r.surface,
            files={p: text for p in self.surface_files if (text := self.read(p)) is not None},
            program=self.r.program,
            metric=self.metric,
            baseline=self.records[0],
            best=self.best,
            history=tuple(self.records),
            last_failure=self.last_failure,
            trials_left=trials_left,
            read=self.read,
            context_files={p: text for p in self.r.context_paths if (text := self.read(p)) is not None},
            note=self.note,
        )

    def start_agent(self) -> None:
        self._session_start = self.next_trial
        try:
            self.agent.start(self.context(self.next_trial))
        except AgentError as exc:
            raise FatalError(f"agent {self.settings.agent_spec}: {exc}") from None

    def propose(self, number: int) -> Proposal:
        """Ask the agent; AgentExhausted ends the loop, AgentError (or a bug) becomes FatalError."""
        try:
            proposal = self.agent.propose(self.context(number))
        except AgentError as exc:
            raise FatalError(f"agent {self.settings.agent_spec}: {exc}") from None
        except (AgentExhausted, KeyboardInterrupt):
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise FatalError(
                f"agent {self.settings.agent_spec} failed: {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
            ) from None
        finally:
            if self.agent.edits_workdir:
                self.worktree.reset(self.best.commit, keep=self.r.carry)  # its edits are in the proposal now
        if not isinstance(proposal, Proposal):
            raise FatalError(f"agent {self.settings.agent_spec} returned {type(proposal).__name__}, not a Proposal")
        return proposal

    def step(self, number: int, proposal: Proposal) -> TrialRecord:
        """Evaluate one proposal and record its verdict."""
        run_, best = self.r, self.best
        description = one_line(proposal.description or "(no description)")
        self._keep_exchange(number, proposal)
        self._account(proposal)
        changes, reason = check(proposal, run_.surface, self.read, self.limits)
        if reason is None:
            reason = next((why for p in changes if (why := self.worktree.unsafe(run_.prefix + p))), None)
        if reason is not None:
            self.last_failure = f"trial {number} was rejected before running: {reason}"
            record = TrialRecord(number, "invalid", description, parent=best.commit, reason=one_line(reason), usage=proposal.usage)
            with _signals_held():
                self._commit_record(record, branch_from=None)
            return record
        reset_to, tampered = best.commit, []
        try:
            self.worktree.write(changes, run_.prefix)
            tree = self.worktree.stage([run_.prefix + p for p in changes])
            started = time.monotonic()
            try:
                result = self.evaluate(number)
                if result.shadowed:
                    raise FatalError(self._shadow_message(result.shadowed))
                tampered = self._tampered(result)
                record = self._judge(number, description, best, result, tampered)
            except KeyboardInterrupt:
                record = TrialRecord(
                    number, "crash", description, parent=best.commit, seconds=time.monotonic() - started,
                    reason="interrupted (Ctrl-C or SIGTERM) before it was judged", usage=proposal.usage,
                )
                with _signals_held():
                    record.commit = self.worktree.commit_tree(tree, best.commit, self._message(record))
                    self._commit_record(record, branch_from=None)
                raise
            record.usage = proposal.usage
            with _signals_held():
                record.commit = self.worktree.commit_tree(tree, best.commit, self._message(record))
                if record.status == "keep":
                    run_.surface_files = sorted(set(run_.surface_files) | set(changes))
                self._commit_record(record, branch_from=best.commit if record.status == "keep" else None)
            reset_to = record.commit if record.status == "keep" else best.commit
        finally:
            self.worktree.reset(reset_to, keep=run_.carry)
            if tampered and run_.manifest is not None:
                self._restore_frozen(reset_to, [p for p in tampered if p in run_.manifest.blobs])
        return record

    def _restore_frozen(self, commit: str, paths: list[str]) -> None:
        """After a tamper: make sure the reset really restored the frozen files, then re-pin them."""
        manifest = self.r.manifest
        assert manifest is not None
        stubborn = manifest.refresh(paths)
        if stubborn:
            self.worktree.restore(commit, stubborn)
            stubborn = manifest.refresh(stubborn)
        if stubborn:
            raise FatalError(f"frozen files could not be restored in the worktree: {', '.join(stubborn)}")
        manifest.save(self.r.folder.manifest)

    def _message(self, record: TrialRecord) -> str:
        score = record.score if record.score is not None else "none"
        return f"{record.description}\n\n" + trailers({"Trial": record.trial, "Status": record.status, "Score": score})

    def _account(self, proposal: Proposal) -> None:
        if proposal.usage is None:
            return
        if proposal.usage.cost is not None:
            self.spent += proposal.usage.cost
        elif self.settings.max_cost is not None and not self._unpriced_noted:
            self._unpriced_noted = True
            self.note("this model has no price in litellm's list: --autoresearch-max-cost cannot count its cost (tokens are logged)")

    def _tampered(self, result: RunResult) -> list[str]:
        """What the trial changed that it must not: frozen files (by git's account, by the
        manifest's, by the trial's own), the run's files, your repository's refs and hooks."""
        run_ = self.r
        assert run_.manifest is not None and self.log is not None
        frozen = set(run_.manifest.blobs)
        found = {p for p in self.worktree.changed_tracked() if p in frozen}
        found |= set(run_.manifest.changed())
        found |= {p for p in result.tampered if p in frozen or p.startswith("<")}
        if not self.log.intact():
            self.log.rewrite(self.records)
            found.add("<results.tsv>")
        if run_.manifest.changed_file(run_.folder.manifest):
            run_.manifest.save(run_.folder.manifest)
            found.add("<manifest.json>")
        if not run_.folder.meta_intact():
            run_.folder.restore_meta()
            found.add("<run.json>")
        if run_.guard is not None:
            found |= {f"<your repository's {what}>" for what in run_.guard.restore_changes()}
        return sorted(found)

    def _judge(self, number: int, description: str, best: TrialRecord, result: RunResult, tampered: list[str]) -> TrialRecord:
        assert self.metric is not None
        record = TrialRecord(number, "crash", description, parent=best.commit, seconds=result.seconds)
        primary = next((f for f in result.fitness if f.nodeid == self.metric.nodeid), None)
        if tampered:
            record.status = "tamper"
            record.reason = one_line("changed what a trial must not: " + ", ".join(tampered), 300)
            self.last_failure = f"trial {number} (tamper): it changed files that must stay frozen: {', '.join(tampered)}"
            return record
        if result.timed_out:
            record.status = "timeout"
            hung = next((t.nodeid for t in result.tests if t.timed_out), None)
            record.reason = f"{hung} exceeded its time limit" if hung else f"killed at the {self.timeout:g}s trial deadline"
        elif result.memory_exceeded:
            record.reason = f"killed: its processes used more than {self.settings.memory_mb:g} MiB (autoresearch_memory_mb)"
        elif not result.finished:
            record.reason = f"the pytest session did not finish (exit code {result.exit_code})"
        elif result.failed_tests:
            failed = result.failed_tests[0]
            record.reason = one_line(f"{failed.nodeid} {failed.outcome}: {_crash_line(failed.failure)}", 200)
        elif primary is None or primary.score is None:
            record.reason = f"the primary fitness test {self.metric.nodeid} recorded no score"
        if record.reason:
            self.last_failure = f"trial {number} ({record.status}): {record.reason}\n{result.failure_text()}"
        if primary is not None and primary.score is not None and record.status != "timeout":
            record.score = primary.score
            record.delta = primary.score - best.score if best.score is not None else None
        record.metrics = self._metrics(result)
        if record.reason:
            return record
        decision = self.config.hook.pytest_autoresearch_decide(config=self.config, metric=self.metric, candidate=record, best=best)
        record.status = "keep" if decision.keep else "discard"
        record.reason = one_line(decision.reason)
        return record

    def _commit_record(self, record: TrialRecord, branch_from: str | None) -> None:
        """Log the row first, then move the refs: a driver killed in between is repaired on resume."""
        assert self.log is not None
        self.log.append(record)
        self.records.append(record)
        updates = [(self._trial_ref(record.trial), record.commit, None)] if record.commit else []
        if branch_from is not None:
            updates.append((f"refs/heads/{self.branch}", record.commit, branch_from))
        if updates:
            self.r.repo.update_refs(*updates)
        self.config.hook.pytest_autoresearch_trial_logged(config=self.config, record=record)

    def over_budget(self) -> str | None:
        """Why the run must stop now for its spending, if it must."""
        limit = self.settings.max_cost
        if limit is not None and self.spent >= limit:
            return f"the agent's model calls cost ${self.spent:.4f}, reaching --autoresearch-max-cost ${limit:g}"
        return None

    def _keep_exchange(self, number: int, proposal: Proposal) -> None:
        """The prompt and the answer behind a proposal, beside the trial's log, for the audit."""
        for kind, text in (("prompt", proposal.prompt), ("answer", proposal.answer)):
            if text is not None:
                (self.r.folder.trials / f"{number:03d}.{kind}.md").write_text(text, encoding="utf-8")

    def scrubbed_note(self) -> str | None:
        if not self._scrubbed:
            return None
        return f"trials run without {', '.join(self._scrubbed)} (secret-looking; autoresearch_pass_env passes them on)"

    def finish(self) -> None:
        """End of the run however it ended: release the agent, drop the worktree, unlock."""
        if self.run is None:
            return
        self.agent.close()
        if self.run.worktree is not None:
            self.run.repo.remove_worktree(self.run.worktree.path)
            self.run.worktree = None
        self.run.folder.unlock()
