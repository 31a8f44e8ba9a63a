"""The research loop itself: set up a run, score the baseline, then one trial at a time.

A trial is: ask the agent for a proposal, check it against the surface, write it into the
run's worktree, run the suite there in a subprocess, judge the outcome, record a commit
for it, move the branch if it was kept, reset the worktree to the best, log one row.

This module knows git, subprocesses and the log but nothing of pytest's terminal; the
:mod:`~pytest_autoresearch.driver` presents it as pytest items.
"""

from __future__ import annotations

import os
import re
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from .agents import Agent, AgentError, AgentExhausted, ProposalContext
from .gitstate import ZERO, GitStateError, Repository, Worktree, trailers
from .plugin import RUN_DIR_NAME
from .proposal import Proposal, check, one_line
from .records import MetricSpec, RunResult, TrialRecord
from .results_log import ResultsLog
from .settings import Settings
from .surface import Surface, normalize
from .trial import TrialCommand, run

DEFAULT_PROGRAM = Path(__file__).with_name("default_program.md")


class SetupError(Exception):
    """The loop cannot start; nothing it created is left behind."""


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


class ResearchLoop:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.surface = Surface(settings.mutable)
        self.records: list[TrialRecord] = []
        self.notes: list[str] = []  # things the user should know, shown in the header
        self.last_failure: str | None = None
        self.spent = 0.0  # US dollars the agent's model calls cost so far
        self._unpriced_noted = False
        self.note: Callable[[str], None] = print  # status lines for the user; the driver routes them
        self.fatal: str | None = None  # set when a trial found the loop cannot go on
        self.timeout: float | None = settings.timeout
        self.agent: Agent | None = None
        self.metric: MetricSpec | None = None
        self._columns: dict[tuple[str, str], str] = {}  # (nodeid, metric or "") -> column
        self._undo: list[Callable[[], None]] = []
        self._worktree: Worktree | None = None

    # -- setup -------------------------------------------------------------------------

    def prepare(self) -> None:
        """Check everything that can be checked before running anything, then create the
        run's folder and worktree. Raises SetupError, leaving nothing behind."""
        s = self.settings
        if not self.surface:
            raise SetupError(
                "autoresearch_mutable is not set: list the files the agent may change, e.g. in "
                'pyproject.toml under [tool.pytest.ini_options]: autoresearch_mutable = ["model.py"]'
            )
        try:
            self.repo = Repository(s.rootdir)
            self.head = self.repo.head()
        except GitStateError as exc:
            raise SetupError(str(exc)) from None
        self.base_ref = self.repo.current_branch() or self.head
        rel_root = Path(os.path.relpath(s.rootdir.resolve(), self.repo.root))
        self.prefix = "" if str(rel_root) == "." else rel_root.as_posix() + "/"
        tracked = [p[len(self.prefix):] for p in self.repo.tracked_files(self.head) if p.startswith(self.prefix)]
        self.surface_files = self.surface.select(tracked)
        if not self.surface_files:
            raise SetupError(
                f"autoresearch_mutable {list(self.surface.globs)} matches no committed file under {s.rootdir}; "
                "the globs are relative to the rootdir and the files must be committed"
            )
        for glob in self.surface.unmatched_globs(tracked):
            self.notes.append(f"autoresearch_mutable glob {glob!r} matches no committed file")
        shown = Surface(s.context)
        self.context_paths = [p for p in shown.select(tracked) if p not in self.surface_files]
        for glob in shown.unmatched_globs(tracked):
            self.notes.append(f"autoresearch_context glob {glob!r} matches no committed file")
        dirty = sorted(p[len(self.prefix):] for p in self.repo.dirty_files() if p.startswith(self.prefix))
        dirty_surface = [p for p in dirty if self.surface.matches(p)]
        if dirty_surface:
            raise SetupError(
                f"uncommitted changes to mutable files: {', '.join(dirty_surface)}. The run starts from "
                "HEAD; commit or stash them first so the loop optimises what you see"
            )
        if dirty:
            self.notes.append(
                f"uncommitted changes to {', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''} "
                "are not part of the run (it starts from HEAD)"
            )
        self.tag = self._choose_tag()
        self.branch = f"autoresearch/{self.tag}"
        self.run_dir = s.rootdir / RUN_DIR_NAME / self.tag
        self.agent = self._make_agent()
        self.program = (s.program_path or DEFAULT_PROGRAM).read_text(encoding="utf-8")

        top = next((p for p in (self.run_dir.parent, self.run_dir) if not p.exists()), None)
        (self.run_dir / "trials").mkdir(parents=True, exist_ok=True)
        if top is not None:
            self._undo.append(lambda: shutil.rmtree(top, ignore_errors=True))
        pattern = f"/{self.prefix}{RUN_DIR_NAME}/"
        if self.repo.exclude(pattern):
            self._undo.append(lambda: self.repo.unexclude(pattern))
        worktree_path = self.run_dir / "worktree"
        self._worktree = self.repo.add_worktree(worktree_path, self.head)
        self._undo.append(lambda: self.repo.remove_worktree(worktree_path))

    def _tag_taken(self, tag: str) -> bool:
        return self.repo.ref_exists(f"refs/heads/autoresearch/{tag}") or (self.settings.rootdir / RUN_DIR_NAME / tag).exists()

    def _choose_tag(self) -> str:
        tag = self.settings.tag
        if not self._tag_taken(tag):
            return tag
        if self.settings.tag_given:
            raise SetupError(
                f"run {tag!r} exists already (branch autoresearch/{tag} or folder {RUN_DIR_NAME}/{tag}); "
                "choose another --autoresearch-tag"
            )
        n = 2
        while self._tag_taken(f"{tag}-{n}"):
            n += 1
        return f"{tag}-{n}"

    def _make_agent(self) -> Agent:
        spec = self.settings.agent_spec
        try:
            agent = self.config.hook.pytest_autoresearch_make_agent(config=self.config, spec=spec)
        except AgentError as exc:
            raise SetupError(f"agent {spec}: {exc}") from None
        if agent is None:
            raise SetupError(
                f"unknown agent {spec!r}: use 'mutate[:SEED]', 'litellm:MODEL', 'cmd:COMMAND' or 'replay:PATH'"
            )
        return agent

    def abandon(self) -> None:
        """Undo the set-up (a setup error): the repository is as it was."""
        while self._undo:
            self._undo.pop()()
        self._worktree = None

    # -- evaluation --------------------------------------------------------------------

    @property
    def worktree(self) -> Worktree:
        assert self._worktree is not None
        return self._worktree

    def _in_worktree(self, path: Path) -> Path:
        rel = os.path.relpath(path.resolve(), self.repo.root)
        return self.worktree.path if rel == "." else self.worktree.path / rel

    def _command(self) -> TrialCommand:
        s = self.settings
        args = ["-x", "-o", f"cache_dir={self.run_dir / 'cache'}"]
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
            candidate = Path(path)
            if candidate.is_absolute() and self._inside_repo(candidate):
                arg = str(self._in_worktree(candidate)) + sep + rest
            args.append(arg)
        cwd_source = s.test_args_dir if self._inside_repo(s.test_args_dir) else s.rootdir
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-second, same-size edit must not reuse stale bytecode
        if env.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.pathsep.join(
                str(self._in_worktree(Path(p))) if Path(p).is_absolute() and self._inside_repo(Path(p)) else p
                for p in env["PYTHONPATH"].split(os.pathsep)
            )
        shadow = tuple(str(self.repo.root / (self.prefix + p)) for p in self.surface_files)
        return TrialCommand(tuple(args), self._in_worktree(cwd_source), env, shadow)

    def _pytest_timeout_is_ours(self) -> bool:
        """Give each test a timeout below the trial's unless the user configured pytest-timeout."""
        if not self.config.pluginmanager.hasplugin("timeout"):
            return False
        if os.environ.get("PYTEST_TIMEOUT") or getattr(self.config.option, "timeout", None) is not None:
            return False
        try:
            return not self.config.getini("timeout")
        except ValueError:
            return True

    def _inside_repo(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.repo.root)
        except ValueError:
            return False
        return not path.resolve().is_relative_to(self.run_dir.resolve())

    def evaluate(self, number: int) -> RunResult:
        trials = self.run_dir / "trials"
        return run(
            self._command(),
            self.timeout,
            trials / f"{number:03d}.log",
            trials / f"{number:03d}.result.json",
        )

    # -- the baseline ------------------------------------------------------------------

    def baseline(self) -> TrialRecord:
        """Score the unchanged code; any problem is a SetupError (and the set-up is undone)."""
        try:
            return self._baseline()
        except BaseException:
            self.abandon()
            raise

    def _baseline(self) -> TrialRecord:
        result = self.evaluate(0)
        log = result.log_path
        if result.shadowed:
            raise SetupError(self._shadow_message(result.shadowed))
        if result.timed_out:
            raise SetupError(
                f"the baseline timed out after {result.seconds:.0f}s; raise --autoresearch-timeout.\n"
                + result.failure_text(2000)
            )
        if not result.finished:
            raise SetupError(
                f"the baseline's pytest session did not finish (exit code {result.exit_code}); "
                f"output (full log in {log}):\n" + result.failure_text(2000)
            )
        if result.failed_tests:
            raise SetupError(
                "the baseline fails, so nothing could be judged against it; fix the tests first.\n"
                + result.failure_text(2000)
            )
        if not result.fitness:
            raise SetupError(
                "no fitness test ran: mark a test with @pytest.mark.fitness(goal=\"min\") (or \"max\") "
                "and record its score with the fitness fixture, fitness(value)"
            )
        explicit = [f for f in result.fitness if f.primary]
        if len(explicit) > 1:
            raise SetupError(
                "more than one fitness test says primary=True: " + ", ".join(f.nodeid for f in explicit)
            )
        primary = explicit[0] if explicit else result.fitness[0]
        if primary.score is None:
            raise SetupError(f"the primary fitness test {primary.nodeid} recorded no score")
        self.metric = MetricSpec(primary.nodeid, primary.name, primary.goal, True)
        for fit in result.fitness:
            if fit.nodeid != primary.nodeid:
                self._add_column(fit.nodeid, "", fit.name)
            for name in fit.metrics:
                self._add_column(fit.nodeid, name, name if fit.nodeid == primary.nodeid else f"{fit.name}.{name}")
        assert self.agent is not None
        self.log = ResultsLog(self.run_dir / "results.tsv", list(self._columns.values()), usage=self.agent.reports_usage)
        self.log.create()
        self.repo.update_refs(
            (f"refs/heads/{self.branch}", self.head, ZERO),
            (self._trial_ref(0), self.head, None),
        )
        self._undo.clear()
        if self.timeout is None:
            self.timeout = max(60.0, round(3 * result.seconds))
            self.notes.append(f"trial timeout {self.timeout:g}s (3x the baseline; set --autoresearch-timeout)")
        record = TrialRecord(
            trial=0,
            status="baseline",
            description="baseline",
            commit=self.head,
            score=primary.score,
            seconds=result.seconds,
            metrics=self._metrics(result),
        )
        self._log(record)
        return record

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
            "rootdir instead (e.g. pythonpath = [\"src\"] under [tool.pytest.ini_options]) and run again"
        )

    # -- trials ------------------------------------------------------------------------

    @property
    def best(self) -> TrialRecord:
        return next(r for r in reversed(self.records) if r.kept)

    def _trial_ref(self, number: int) -> str:
        return f"refs/autoresearch/{self.tag}/trials/{number:03d}"

    def read(self, path: str) -> str | None:
        """A file of the current best, by rootdir-relative path (what agents may read)."""
        clean = normalize(path)
        if clean is None or ".git" in clean.lower().split("/"):
            return None
        return self.worktree.read(self.prefix + clean)

    def context(self, number: int) -> ProposalContext:
        assert self.metric is not None
        files = {p: text for p in self.surface_files if (text := self.read(p)) is not None}
        trials_left = None if self.settings.trials is None else self.settings.trials - number + 1
        return ProposalContext(
            trial=number,
            tag=self.tag,
            rootdir=self.settings.rootdir,
            workdir=self._in_worktree(self.settings.rootdir),
            surface=self.surface,
            files=files,
            program=self.program,
            metric=self.metric,
            baseline=self.records[0],
            best=self.best,
            history=tuple(self.records),
            last_failure=self.last_failure,
            trials_left=trials_left,
            read=self.read,
            context_files={p: text for p in self.context_paths if (text := self.read(p)) is not None},
            note=self.note,
        )

    def start_agent(self) -> None:
        assert self.agent is not None
        try:
            self.agent.start(self.context(1))
        except AgentError as exc:
            raise FatalError(f"agent {self.settings.agent_spec}: {exc}") from None

    def propose(self, number: int) -> Proposal:
        """Ask the agent; AgentExhausted ends the loop, AgentError (or a bug) becomes FatalError."""
        assert self.agent is not None
        context = self.context(number)
        try:
            proposal = self.agent.propose(context)
        except AgentError as exc:
            raise FatalError(f"agent {self.settings.agent_spec}: {exc}") from None
        except AgentExhausted:
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise FatalError(
                f"agent {self.settings.agent_spec} failed: {type(exc).__name__}: {exc} "
                f"({where.filename}:{where.lineno})"
            ) from None
        if self.agent.edits_workdir:
            self.worktree.reset(self.best.commit)  # its edits are in the proposal now
        if not isinstance(proposal, Proposal):
            raise FatalError(f"agent {self.settings.agent_spec} returned {type(proposal).__name__}, not a Proposal")
        return proposal

    def step(self, number: int, proposal: Proposal) -> TrialRecord:
        """Evaluate one proposal and record its verdict."""
        best = self.best
        description = one_line(proposal.description or "(no description)")
        self._keep_exchange(number, proposal)
        if proposal.usage is not None:
            if proposal.usage.cost is not None:
                self.spent += proposal.usage.cost
            elif self.settings.max_cost is not None and not self._unpriced_noted:
                self._unpriced_noted = True
                self.note("this model has no price in litellm's list: --autoresearch-max-cost cannot count its cost (tokens are logged)")
        changes, reason = check(proposal, self.surface, self.read)
        if reason is not None:
            self.last_failure = f"trial {number} was rejected before running: {reason}"
            record = TrialRecord(
                number, "invalid", description, parent=best.commit, reason=one_line(reason), usage=proposal.usage
            )
            self._log(record)
            return record
        reset_to = best.commit
        try:
            self.worktree.write(changes, self.prefix)
            tree = self.worktree.stage([self.prefix + p for p in changes])
            result = self.evaluate(number)
            if result.shadowed:
                raise FatalError(self._shadow_message(result.shadowed))
            record = self._judge(number, description, best, result)
            record.usage = proposal.usage
            message = f"{description}\n\n" + trailers(
                {"Trial": number, "Status": record.status, "Score": record.score if record.score is not None else "none"}
            )
            record.commit = self.worktree.commit_tree(tree, best.commit, message)
            updates = [(self._trial_ref(number), record.commit, None)]
            if record.status == "keep":
                updates.append((f"refs/heads/{self.branch}", record.commit, best.commit))
                self.surface_files = sorted(set(self.surface_files) | set(changes))
            self.repo.update_refs(*updates)
            reset_to = record.commit if record.status == "keep" else best.commit
        finally:
            self.worktree.reset(reset_to)
        self._log(record)
        return record

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
                (self.run_dir / "trials" / f"{number:03d}.{kind}.md").write_text(text, encoding="utf-8")

    def _judge(self, number: int, description: str, best: TrialRecord, result: RunResult) -> TrialRecord:
        assert self.metric is not None
        record = TrialRecord(number, "crash", description, parent=best.commit, seconds=result.seconds)
        primary = next((f for f in result.fitness if f.nodeid == self.metric.nodeid), None)
        if result.timed_out:
            record.status = "timeout"
            hung = next((t.nodeid for t in result.tests if t.timed_out), None)
            record.reason = (
                f"{hung} exceeded its time limit" if hung else f"killed at the {self.timeout:g}s trial deadline"
            )
        elif not result.finished:
            record.reason = f"the pytest session did not finish (exit code {result.exit_code})"
        elif result.failed_tests:
            failed = result.failed_tests[0]
            record.reason = one_line(f"{failed.nodeid} {failed.outcome}: {_crash_line(failed.failure)}", 200)
        elif primary is None or primary.score is None:
            record.reason = f"the primary fitness test {self.metric.nodeid} recorded no score"
        if record.status in ("timeout", "crash") and record.reason:
            self.last_failure = f"trial {number} ({record.status}): {record.reason}\n{result.failure_text()}"
        if primary is not None and primary.score is not None and record.status != "timeout":
            record.score = primary.score
            record.delta = primary.score - best.score if best.score is not None else None
        record.metrics = self._metrics(result)
        if record.reason:
            return record
        decision = self.config.hook.pytest_autoresearch_decide(
            config=self.config, metric=self.metric, candidate=record, best=best
        )
        record.status = "keep" if decision.keep else "discard"
        record.reason = one_line(decision.reason)
        return record

    def _log(self, record: TrialRecord) -> None:
        self.log.append(record)
        self.records.append(record)
        self.config.hook.pytest_autoresearch_trial_logged(config=self.config, record=record)

    def finish(self) -> None:
        """End of the run however it ended: release the agent, drop the worktree."""
        if self.agent is not None:
            self.agent.close()
        if self._worktree is not None:
            self.repo.remove_worktree(self._worktree.path)
            self._worktree = None
