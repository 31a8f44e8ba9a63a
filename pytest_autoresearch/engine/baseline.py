"""The baseline: the start commit scored before any trial, once or (under noise) several times.

Every problem is a :class:`~pytest_autoresearch.errors.SetupError` with what to do about it:
the baseline must pass every test and record a primary score, or nothing could be judged
against it. A new run's log and run.json are created once the baseline passed, its branch with
the baseline's row. A baseline that failed on its own keeps its log outside the run folder (the
message names it and shows the first error in it), since the set-up is undone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import config_file
from ..core import verdict
from ..core.columns import MetricColumns
from ..core.defaults import MIN_TIMEOUT, NOISY_BASELINE_RUNS, TIMEOUT_FACTOR
from ..core.pytest_log import first_error
from ..core.records import MetricSpec, RunResult, TrialRecord
from ..core.text import counted, neutralise
from ..errors import SetupError
from ..settings import Settings
from ..store.gitstate import ZERO
from . import carry, evaluator_imports
from .recorder import signals_held

if TYPE_CHECKING:
    from .loop import ResearchLoop

#: How much of a failed baseline's log is searched for its first error.
LOG_READ_BYTES = 4 * 2**20
#: Exit codes of a session that finished but broke (pytest.ExitCode), and what they mean.
BROKEN = {3: "an internal error", 4: "a usage error"}


def shadow_message(paths: list[str], settings: Settings | None = None) -> str:
    config = config_file.of(settings.config_file if settings else None)
    return (
        f"the trial imported {', '.join(paths)} from your checkout instead of the trial's worktree, "
        "so it would score unchanged code. An editable install (pip install -e) or a sys.path/PYTHONPATH "
        "entry points at your checkout; make the tests import the mutable modules relative to the "
        f"rootdir instead (e.g. {config.setting('pythonpath', [_source_root(paths, settings)])}) and run again"
    )


def _source_root(paths: list[str], settings: Settings | None) -> str:
    """The folder the shadowed modules' package sits in, rootdir-relative ("src", or ".")."""
    if settings is not None:
        for path in paths:
            try:
                first = Path(path).resolve().relative_to(settings.rootdir.resolve()).parts[0]
            except (ValueError, IndexError):
                continue
            if first in ("src", "lib", "python"):
                return first
    return "src" if settings is None else "."


def _log_note(result: RunResult) -> str:
    """Where the failed run's log is kept: a new run that fails to start removes its folder, so
    the log is copied out of it first, to a file of its own in the temporary folder."""
    if result.log_path is None or not result.log_path.is_file():
        return ""
    fd, name = tempfile.mkstemp(prefix=f"autoresearch-{result.log_path.stem}-", suffix=".log")
    os.close(fd)
    with contextlib.suppress(OSError):
        shutil.copyfile(result.log_path, name)
        return f" (full log: {name})"
    return f" (full log: {result.log_path})"


def _first_error(result: RunResult, limit: int = 2000) -> str:
    """The first error of the run's log with its traceback (:mod:`..core.pytest_log`), else the
    output's tail: a session that did not finish ends with whatever it was doing, not the cause."""
    text = ""
    if result.log_path is not None:
        with contextlib.suppress(OSError), result.log_path.open("rb") as f:
            text = f.read(LOG_READ_BYTES).decode("utf-8", errors="replace")
    found = first_error(text, limit)
    return neutralise(found) if found is not None else result.failure_text(limit)


def _cause(result: RunResult) -> str:
    """The first error of a run that exited with an error (an INTERNALERROR, a usage error),
    for the messages whose own words would otherwise hide it."""
    if result.exit_code in (None, 0, 1):
        return ""
    return f"\nthe session ended with exit code {result.exit_code}; its first error:\n" + _first_error(result)


def _one_run(loop: ResearchLoop, number: int, attempt: int) -> RunResult:
    result = loop.evaluator.evaluate(number, attempt)
    what = "the baseline" if attempt == 1 else f"run {attempt} of the baseline"
    if result.shadowed:
        raise SetupError(shadow_message(result.shadowed, loop.settings))
    if result.timed_out:
        raise SetupError(
            f"{what} timed out after {result.seconds:.0f}s; raise --autoresearch-timeout{_log_note(result)}.\n" + result.failure_text(2000)
        )
    if result.memory_exceeded:
        raise SetupError(f"{what} used more than autoresearch_memory_mb = {loop.settings.memory_mb:g} MiB{_log_note(result)}")
    if not result.finished:
        raise SetupError(
            f"{what}'s pytest session did not finish (exit code {result.exit_code}){_log_note(result)}; its first error:\n"
            + _first_error(result)
            + _missing_hint(loop, result)
        )
    if result.failed_tests:
        raise SetupError(
            f"{what} fails, so nothing could be judged against it; fix the tests first{_log_note(result)}.\n"
            + result.failure_text(2000)
            + _missing_hint(loop, result)
        )
    if result.exit_code in BROKEN:
        raise SetupError(
            f"{what}'s pytest session ended with {BROKEN[result.exit_code]} (exit code {result.exit_code}){_log_note(result)}; "
            "its first error:\n" + _first_error(result) + _missing_hint(loop, result)
        )
    if not result.fitness:
        raise SetupError(
            'no fitness test ran: mark a test with @pytest.mark.fitness(goal="min") (or "max") '
            f"and record its score with the fitness fixture, fitness(value){_log_note(result)}" + _cause(result)
        )
    return result


def _missing_hint(loop: ResearchLoop, result: RunResult) -> str:
    """How to carry (or build) a git-ignored file of your checkout that the failure names."""
    run = loop.run
    text = result.failure_text(20000)
    if result.log_path is not None:
        with contextlib.suppress(OSError):
            text += "\n" + result.log_path.read_text(encoding="utf-8", errors="replace")[-500_000:]
    hint = carry.missing_file_hint(
        run.repo, run.prefix, run.carry, loop.settings.carry, run.surface, config_file.of(loop.settings.config_file), text
    )
    return "\n" + hint if hint else ""


def _primary_metric(loop: ResearchLoop, first: RunResult) -> MetricSpec:
    for fit in first.fitness:
        path = fit.nodeid.split("::")[0]
        if loop.run.surface.matches(path):
            raise SetupError(f"autoresearch_mutable includes {path}, which defines the fitness test {fit.nodeid}: the evaluator must stay frozen")
    if loop.metric is not None:
        return loop.metric
    explicit = [f for f in first.fitness if f.primary]
    if len(explicit) > 1:
        raise SetupError("more than one fitness test says primary=True: " + ", ".join(f.nodeid for f in explicit))
    chosen = explicit[0] if explicit else first.fitness[0]
    return MetricSpec(chosen.nodeid, chosen.name, chosen.goal, True)


def score(loop: ResearchLoop) -> TrialRecord:
    """Score the start commit and log it as the run's baseline row."""
    run, number = loop.run, loop.history.next_trial
    started = time.time()
    results = [_one_run(loop, number, 1)]
    first = results[0]
    loop.metric = loop.proposer.metric = metric = _primary_metric(loop, first)
    loop.proposer.saw_baseline(first)
    if not run.resumed:
        roots = [Path(p) for p in loop.config.getini("pythonpath")]
        fitness_files = [f.nodeid.split("::")[0] for f in first.fitness]
        run.notes += evaluator_imports.notes(loop.settings.rootdir, fitness_files, roots, run.surface, run.surface_files)
    if verdict.primary_score(metric, first) is None:
        raise SetupError(f"the primary fitness test {metric.nodeid} recorded no score{_log_note(first)}" + _cause(first))
    if loop.evaluator.timeout is None:
        loop.evaluator.timeout = max(MIN_TIMEOUT, round(TIMEOUT_FACTOR * first.seconds))
        run.notes.append(f"trial timeout {loop.evaluator.timeout:g}s ({TIMEOUT_FACTOR}x the baseline; set --autoresearch-timeout)")
    wanted = loop.settings.baseline_runs
    while len(results) < wanted:
        results.append(_one_run(loop, number, len(results) + 1))
        scores = [verdict.primary_score(metric, r) for r in results]
        if len(results) == wanted and len(set(scores)) > 1:
            wanted = max(wanted, NOISY_BASELINE_RUNS)  # noise: estimate its spread better
    scores = [s for r in results if (s := verdict.primary_score(metric, r)) is not None]
    if len(scores) != len(results):
        raise SetupError(f"the primary fitness test {metric.nodeid} recorded no score on some baseline runs")
    loop.noise.add(scores)
    loop.known_alarms = {alarm.key for r in results for alarm in r.alarms}
    _noise_note(loop, scores)
    holdout_files = sorted({n.split("::")[0] for n in first.holdout})
    loop.holdout.hide(holdout_files)
    loop.proposer.holdout_files = loop.holdout.files
    for file in holdout_files:
        if any(t.nodeid.split("::")[0] == file for t in first.tests):
            run.notes.append(
                f"{file} defines holdout tests and other tests: trials run without the file, so its other tests "
                "gate nothing; move them to a file of their own"
            )
    new_run = loop.recorder.log is None
    if new_run:
        _start_log(loop, first)
    record = verdict.baseline(number, run.start_commit, scores, results, loop.columns)
    for reason in verdict.broken_bounds(results):
        run.notes.append(f"the baseline breaks a bound ({reason}): candidates must satisfy it to be kept")
    tree = run.repo.git.rev_parse(f"{run.start_commit}^{{tree}}")
    # the row, the trial ref and a new run's branch at once, and the set-up no longer undone:
    # a Ctrl-C anywhere before leaves nothing of the run, anywhere after leaves it whole
    with signals_held():
        loop.recorder.record(
            record, branch_from=ZERO if new_run else None, results=results, started=started, tree=tree, worker=0, device=run.home.device
        )
        run.stands()
    run.rebaseline = False
    if first.holdout:
        loop.holdout.scores["baseline"] = loop.holdout.score(number, loop.note)
        loop.save_meta()
    return record


def _noise_note(loop: ResearchLoop, scores: list[float]) -> None:
    if len(scores) < 2:
        return
    if len(set(scores)) == 1:
        loop.run.notes.append(f"the evaluator is deterministic ({len(scores)} identical baseline runs): one run per trial decides")
        return
    loop.run.notes.append(
        f"the evaluator is noisy: {len(scores)} baseline runs scored {', '.join(f'{s:.6g}' for s in scores)} "
        f"(spread {loop.noise.spread:.3g}); a promising candidate runs {counted(1 + loop.rule.confirm_runs, 'time')} and is kept "
        f"only when its mean gains more than {loop.rule.threshold(loop.noise):.3g} (max of autoresearch_min_delta "
        f"and {loop.rule.k:g} x the spread)"
    )


def _start_log(loop: ResearchLoop, result: RunResult) -> None:
    """A new run's log and metadata, once its baseline passed; the branch comes with its row."""
    run, metric = loop.run, loop.metric
    assert metric is not None
    loop.columns = MetricColumns.of_baseline(metric, result.fitness)
    loop.recorder.open_log(run.folder.results, loop.columns.names, usage=run.agent.reports_usage, resume=False)
    loop.save_meta()
