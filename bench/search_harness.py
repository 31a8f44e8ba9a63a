"""Runs one operator on one problem for one seed: in-process through the agent seam, or the real loop.

A function problem (``search_problems``) skips the trial subprocess, not the loop's rules: each
trial the agent gets a :class:`~pytest_autoresearch.agents.base.ProposalContext` built as the
engine builds it (the current best files, the log so far, the metric, a deterministic noise
reading), its proposal is checked with the loop's own
:func:`~pytest_autoresearch.proposals.proposal.check`, the changed files are scored by the
problem's Python evaluator, and the verdict is the loop's own
(:func:`~pytest_autoresearch.core.verdict.assess` with the built-in keep rule). The surface lives
in a real git repository in a temporary folder: every trial that ran gets a commit on its parent
(what an agent reading earlier trials' files from git finds, as in a run), and a keep moves the
branch and the working copy to it, so the agent's ``workdir`` is the current best. The agent hears
of each logged row (``Agent.logged``, where the agent has it) as the loop's recorder tells it.

An example problem runs ``python -m pytest --autoresearch`` on a fresh copy of the example (as
``examples/run.py`` makes it) and reads its results.tsv.

Agents are made from their spec by the plugin's own ``pytest_autoresearch_make_agent``, so an
operator here is exactly what ``--autoresearch-agent=SPEC`` gives a user.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType, SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

from pytest_autoresearch.agents.base import Agent, AgentError, AgentExhausted, ProposalContext  # noqa: E402
from pytest_autoresearch.core import verdict  # noqa: E402
from pytest_autoresearch.core.columns import MetricColumns  # noqa: E402
from pytest_autoresearch.core.history import History  # noqa: E402
from pytest_autoresearch.core.noise import Noise, NoiseRule  # noqa: E402
from pytest_autoresearch.core.records import FitnessResult, MetricSpec, RunResult, Status, TestResult, TrialRecord  # noqa: E402
from pytest_autoresearch.proposals.proposal import check  # noqa: E402
from pytest_autoresearch.proposals.surface import Surface  # noqa: E402
from pytest_autoresearch.settings import SETTINGS_KEY, Settings  # noqa: E402
from pytest_autoresearch.store.gitguard import SAFE_ENV  # noqa: E402
from search_problems import Problem  # noqa: E402

TAG = "bench"
GIT_IDENTITY = ["-c", "user.name=pytest-autoresearch bench", "-c", "user.email=bench@localhost"]
#: the trial deadline of an example run: a hung trial costs this, never the whole benchmark
EXAMPLE_TIMEOUT = 60.0


@dataclasses.dataclass
class RunLog:
    """One run: the score of every trial and the best score kept after it (index 0: the baseline)."""

    problem: str
    operator: str
    spec: str
    seed: int
    budget: int
    scores: list[float | None] = dataclasses.field(default_factory=list)  # the baseline's, then each trial's
    best: list[float | None] = dataclasses.field(default_factory=list)  # best kept after the baseline, after each trial
    statuses: list[str] = dataclasses.field(default_factory=list)
    descriptions: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""  # why the run ended before its budget (the agent ran out), "" when it did not
    error: str = ""  # why the operator could not run at all (its preflight, its spec), "" when it ran

    def best_at(self, trials: int) -> float | None:
        """The best kept score after ``trials`` trials (a run that ended early keeps its last best)."""
        if not self.best:
            return None
        return self.best[min(trials, len(self.best) - 1)]

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RunLog:
        return cls(**data)  # type: ignore[arg-type]


def settings_for(rootdir: Path, spec: str, globs: tuple[str, ...], api_base: str | None) -> Settings:
    """The settings a plain ``pytest --autoresearch --autoresearch-agent=SPEC`` would have here."""
    return Settings(
        rootdir=rootdir, invocation_dir=rootdir, tag=TAG, tag_given=True, agent_spec=spec, trials=None, timeout=None,
        program_path=None, mutable=globs, test_args=(), test_args_dir=rootdir, forward_args=(), inifile=None,
        rootdir_given=False, config_file=None, api_base=api_base,
    )


def make_agent(spec: str, rootdir: Path, globs: tuple[str, ...], api_base: str | None = None) -> Agent:
    """The agent ``--autoresearch-agent=SPEC`` makes, from the built-in hook with these settings."""
    from pytest_autoresearch.agents.builtin import pytest_autoresearch_make_agent

    config = SimpleNamespace(stash={SETTINGS_KEY: settings_for(rootdir, spec, globs, api_base)}, invocation_params=SimpleNamespace(dir=rootdir))
    agent = pytest_autoresearch_make_agent(config=config, spec=spec)  # type: ignore[arg-type]
    if agent is None:
        raise pytest.UsageError(f"no built-in agent answers the spec {spec!r}")
    return agent


def _git(root: Path, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=root, input=stdin, capture_output=True, text=True, check=True,
        env={**os.environ, **env} if env else None,
    )
    return proc.stdout.strip()


class FunctionRun:
    """One operator on one function problem for one seed: the loop's steps, in-process."""

    def __init__(self, problem: Problem, operator: str, spec: str, seed: int, root: Path, api_base: str | None) -> None:
        assert problem.evaluator is not None
        self.problem, self.root = problem, root
        self.evaluate = problem.evaluator(seed)
        self.metric = MetricSpec(nodeid="tests/test_fitness.py::test_score", name="score", goal=problem.goal, primary=True)  # type: ignore[arg-type]
        self.surface = Surface(sorted(problem.files))
        self.rule = NoiseRule()
        self.noise = Noise()
        self.columns = MetricColumns()
        self.files = dict(problem.files)
        self.notes: list[str] = []
        self.last_failure: str | None = None
        self.log = RunLog(problem.name, operator, spec, seed, 0)
        self.api_base = api_base
        self.history = History()

    def setup(self) -> None:
        """The surface in a git repository, committed: slot 0's worktree at the start."""
        for path, text in self.files.items():
            (self.root / path).parent.mkdir(parents=True, exist_ok=True)
            (self.root / path).write_text(text, encoding="utf-8")
        (self.root / "program.md").write_text(self.problem.program, encoding="utf-8")
        _git(self.root, "init", "-q", "-b", "main")
        _git(self.root, "add", "-A")
        _git(self.root, "commit", "-q", "-m", "start")

    def commit_trial(self, trial: int, parent: str, changes: Mapping[str, str]) -> str:
        """A commit of the candidate on its parent, made without touching the working copy."""
        index = {"GIT_INDEX_FILE": str(self.root / ".git" / "bench-index")}
        entries = "".join(f"100644 {_git(self.root, 'hash-object', '-w', '--stdin', stdin=text)}\t{path}\n" for path, text in sorted(changes.items()))
        _git(self.root, "read-tree", parent, env=index)
        _git(self.root, "update-index", "--index-info", stdin=entries, env=index)
        tree = _git(self.root, "write-tree", env=index)
        return _git(self.root, "commit-tree", tree, "-p", parent, "-m", f"trial {trial}")

    def move_best(self, commit: str) -> None:
        """The branch and the working copy at the kept trial: slot 0 after a keep."""
        for path, text in self.files.items():
            (self.root / path).write_text(text, encoding="utf-8")
        _git(self.root, "reset", "-q", commit)

    def context(self, trial: int, trials: int) -> ProposalContext:
        git_dir = str(self.root / ".git")
        return ProposalContext(
            trial=trial, tag=TAG, rootdir=self.root, workdir=self.root, surface=self.surface, files=dict(self.files),
            program=self.problem.program, metric=self.metric, baseline=self.history.baseline, best=self.history.best,
            history=tuple(self.history), last_failure=self.last_failure, trials_left=trials - trial + 1,
            read=lambda path: self.files.get(path), note=self.notes.append,
            git_env={**SAFE_ENV, "GIT_DIR": git_dir, "GIT_COMMON_DIR": git_dir, "GIT_WORK_TREE": str(self.root)},
            noise_spread=0.0, keep_gain=self.rule.threshold(self.noise), confirm_runs=0, timeout=None, bounds={},
        )

    def result_of(self, files: Mapping[str, str]) -> RunResult:
        """What the trial's pytest run would report: the score, or a failed fitness test."""
        score = self.evaluate(files)
        if score is None:
            failed = TestResult(self.metric.nodeid, "failed", failure="the surface does not define what the evaluator reads")
            return RunResult(exit_code=1, seconds=0.0, finished=True, tests=[failed])
        fit = FitnessResult(self.metric.nodeid, self.metric.name, self.metric.goal, True, score=score)
        return RunResult(exit_code=0, seconds=0.0, finished=True, tests=[TestResult(self.metric.nodeid, "passed")], fitness=[fit])

    def baseline(self) -> None:
        result = self.result_of(self.files)
        score = verdict.primary_score(self.metric, result)
        if score is None:
            raise RuntimeError(f"{self.problem.name}: the start does not score")
        self.noise.add([score, score])  # two identical baseline runs: a deterministic evaluator
        head = _git(self.root, "rev-parse", "HEAD")
        self.history.append(verdict.baseline(0, head, [score, score], [result, result], self.columns))
        self._logged(self.history.baseline)

    def _logged(self, record: TrialRecord) -> None:
        self.log.scores.append(record.score)
        self.log.best.append(self.history.best_kept(self.problem.goal).score)
        self.log.statuses.append(str(record.status))
        self.log.descriptions.append(record.description)

    def trial(self, agent: Agent, number: int, trials: int) -> None:
        proposal = agent.propose(self.context(number, trials))
        best = self.history.best
        changes, why = check(proposal, self.surface, self.files.get)
        if why is not None:
            record, self.last_failure = verdict.invalid(number, proposal.description, best, why, proposal.usage)
        else:
            candidate = {**self.files, **{p: t for p, t in changes.items() if t is not None}}
            lines = sum(t.count("\n") for t in candidate.values()) - sum(t.count("\n") for t in self.files.values())
            rule, noise = self.rule, self.noise
            judging = verdict.Judging(
                trial=number, description=proposal.description, metric=self.metric, best=best, lines=lines, rule=rule,
                noise=noise, columns=self.columns, timeout=None, memory_mb=None,
                keep_rule=lambda cand, known: verdict.decide(rule, known, self.metric, cand, best),
            )
            outcome = verdict.assess(judging, [verdict.Run(self.result_of(candidate))])
            assert outcome.record is not None  # a deterministic evaluator never asks for confirmation runs
            record, self.last_failure = outcome.record, outcome.failure
            record.usage = proposal.usage
            record.commit = self.commit_trial(number, best.commit, {p: candidate[p] for p in changes})
            if record.status == Status.KEEP:
                self.files = candidate
                self.move_best(record.commit)
        self.history.append(record)
        self._logged(record)
        self.tell(agent, record)

    @staticmethod
    def tell(agent: Agent, record: TrialRecord) -> None:
        """The row is logged: an agent that learns from outcomes hears of it (an older agent class has no such hook)."""
        logged = getattr(agent, "logged", None)
        if logged is not None:
            logged(record)


def run_function(problem: Problem, operator: str, spec: str, seed: int, trials: int, api_base: str | None = None) -> RunLog:
    """``trials`` trials of the agent ``spec`` on a function problem."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"search-{problem.name}-") as tmp:
        run = FunctionRun(problem, operator, spec, seed, Path(tmp) / problem.name, api_base)
        run.log.budget = trials
        run.root.mkdir()
        run.setup()
        run.baseline()
        try:
            agent = make_agent(spec, run.root, tuple(sorted(problem.files)), api_base)
        except (pytest.UsageError, AgentError) as exc:
            run.log.error = str(exc)
            return run.log
        try:
            if reason := agent.preflight(dict(run.files)):
                run.log.error = reason
                return run.log
            run.tell(agent, run.history.baseline)  # the baseline's row is logged before the agent starts
            agent.start(run.context(1, trials))
            for number in range(1, trials + 1):
                try:
                    run.trial(agent, number, trials)
                except AgentExhausted as exc:
                    run.log.stopped = f"after trial {number - 1}: {exc}"
                    break
        except AgentError as exc:
            run.log.error = str(exc)
        finally:
            agent.close()
            run.log.seconds = time.monotonic() - start
    return run.log


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_example(problem: Problem, operator: str, spec: str, seed: int, trials: int, api_base: str | None = None) -> RunLog:
    """``trials`` trials of the real loop with the agent ``spec`` on a fresh copy of the example."""
    from pytest_autoresearch.store.results_log import read_records
    from pytest_autoresearch.store.runfolder import read_meta

    examples = sys.modules.get("autoresearch_examples_run") or _load("autoresearch_examples_run", REPO / "examples" / "run.py")
    log = RunLog(problem.name, operator, spec, seed, trials)
    start = time.monotonic()
    copy = examples.prepare(problem.example)
    try:
        args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", f"--autoresearch-tag={TAG}"]
        args += [f"--autoresearch-trials={trials}", f"--autoresearch-agent={spec}", f"--autoresearch-timeout={EXAMPLE_TIMEOUT:g}"]
        args += [f"--autoresearch-api-base={api_base}"] if api_base else []
        args += list(problem.loop_args)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        env.setdefault("OPENAI_API_KEY", "none")
        proc = subprocess.run(args, cwd=copy, capture_output=True, text=True, env=env, timeout=trials * EXAMPLE_TIMEOUT * 4 + 600)
        folder = copy / ".autoresearch" / TAG
        if not (folder / "results.tsv").is_file():
            log.error = f"the loop wrote no results.tsv (exit code {proc.returncode}): {(proc.stdout + proc.stderr)[-600:]}"
            return log
        goal = read_meta(folder / "run.json").metric.goal
        history = History()
        for record in read_records(folder / "results.tsv", []):
            history.append(record)
            log.scores.append(record.score)
            log.best.append(history.best_kept(goal).score)
            log.statuses.append(str(record.status))
            log.descriptions.append(record.description)
        if len(log.best) - 1 < trials:
            log.stopped = f"after trial {len(log.best) - 1} (exit code {proc.returncode}): {(proc.stdout + proc.stderr).strip().splitlines()[-1:]}"
    finally:
        log.seconds = time.monotonic() - start
        shutil.rmtree(copy.parent, ignore_errors=True)
    return log


def run(problem: Problem, operator: str, spec: str, seed: int, trials: int, api_base: str | None = None) -> RunLog:
    runner = run_example if problem.kind == "example" else run_function
    return runner(problem, operator, spec, seed, trials, api_base)
