"""The final best, scored again where nothing says a loop is evaluating it.

Every trial runs somewhere a candidate can recognise: a worktree under ``.autoresearch/<tag>/``,
the trial's launcher on its command line, the plugin's reporter loaded, a temporary folder named
for trials. A candidate that behaves one way there and another in your checkout (one patched its
objective only when its path held ``/.autoresearch/``) fools every trial. So at the end of a run
that kept something, the final best is checked out in a fresh clone in the system's temporary
folder (a shallow clone of that one commit, without the run's refs, remotes or paths, named as
your checkout), with the run's carried paths linked in, and its tests run as you would run them:
``python -m pytest`` with your options, the secrets scrubbed, the same per-test timeout, deadline,
memory cap and sandbox as a trial, and none of a trial's markers: no ``PYTEST_AUTORESEARCH_*`` or
other ``autoresearch`` variable, option or path, no trial channel. The scores come back through
an ordinary JUnit XML report. Where cgroups are used, a shell holds the process until it is in
its cgroup, then ``exec``s pytest, so its command line is pytest's own.

The score is judged by the run's noise rule (:func:`..core.verdict.rescored`); a difference
beyond it, a failing test, a crash or a timeout is reported loudly in the summary, in run.json
(``rescore``) and in the exit status. The re-score runs candidate code as a trial does, so the
check made after every trial (frozen files, the run's files and refs, your repository's hooks
and config) follows each of its runs and repairs what it finds, which fails the re-score. What
is left of the clone is removed.

What a re-score cannot hide: without the sandbox its parent process is the driver (``pytest
--autoresearch``), and every process of the machine is visible in ``/proc``; a candidate that
looks there can still tell. Under the sandbox it runs in a process namespace of its own and the
run folder is masked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..benchmark import rescore_args
from ..core import verdict
from ..core.noise import Noise, NoiseRule
from ..core.records import FitnessResult, MetricSpec, Reproduction, Rescore, RunResult, TestResult, TrialRecord
from ..errors import SetupError
from ..fitness import read_properties
from ..options import OPTIONS
from ..system import cgroups
from ..system.manifest import Manifest
from ..system.procs import Stopping, descendants, kill_group, reap_orphans, remove_tree, start_group
from ..system.sandbox import bwrap_args, environment, scrub
from ..trial_plugin import TIMEOUT_MARK
from . import carry, worktree_setup
from .evaluation import Evaluator
from .setup import Run
from .trial_process import SHARED, OutputPump, _cgroup, _wait_bounded

#: What no path, variable or option of the re-score may contain.
MARKER = "autoresearch"
#: A shell that says it has started, waits until the driver moved it into its cgroup, then
#: becomes pytest (so no candidate code runs outside the cgroup, and no launcher shows).
GATE = 'printf r; read -r _ || exit 70; exec "$@" </dev/null'
REPORT_LIMIT = 64 * 2**20
_GIT_LOCATORS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE")


class CloneError(Exception):
    """The fresh clone could not be made: the re-score did not run."""


@dataclasses.dataclass(frozen=True)
class Judge:
    """What judging the re-score needs of the run: the metric, the noise rule and the bounds."""

    metric: MetricSpec
    rule: NoiseRule
    noise: Noise
    timeout: float | None
    memory_mb: float | None


def rescore(
    run: Run, evaluator: Evaluator, best: TrialRecord, judge: Judge, holdout_files: Sequence[str], integrity: Callable[[], list[str]] = list
) -> Rescore:
    """Score ``best`` again in a fresh clone outside the run folder; always removes the clone.
    ``integrity`` is the check after every trial (the run's files and refs, your repository),
    which repairs what it finds: the re-score runs candidate code as a trial does."""
    started = time.monotonic()
    draft = Rescore(best.trial, best.commit, Reproduction.NOT_RUN, best.score, sandbox=run.settings.sandbox)
    base = Path(tempfile.mkdtemp(dir=_neutral_temp(run.repo.root)))
    name = run.repo.root.name if MARKER not in run.repo.root.name.lower() else "project"
    clone = base / name
    draft.folder = str(clone)
    try:
        try:
            frozen = _clone(run, best.commit, clone)
        except (OSError, subprocess.SubprocessError) as exc:
            raise CloneError(str(exc)) from None
        done = _score(run, evaluator, draft, judge, base, clone, frozen, holdout_files, integrity)
    except CloneError as exc:
        done = dataclasses.replace(draft, reason=f"the fresh clone could not be made: {exc}")
    except Stopping:
        done = dataclasses.replace(draft, reason="the run was stopping")
    except OSError as exc:  # the machine's, not the candidate's: say so rather than lose the summary
        done = dataclasses.replace(draft, reason=f"it could not run: {exc}")
    finally:
        removed = remove_tree(str(base))
    if not removed:
        done.reason = f"{done.reason}; {base} could not be removed".lstrip("; ")
    done.seconds = time.monotonic() - started
    return done


def _neutral_temp(repo_root: Path) -> str:
    """The system's temporary folder, unless its path would give the loop away or lies in your checkout."""
    folder = tempfile.gettempdir()
    if MARKER in folder.lower() or Path(folder).resolve().is_relative_to(repo_root):
        folder = "/tmp"
    return folder


def _git(args: Sequence[str], cwd: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATORS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    argv = ["git", "-c", f"core.hooksPath={os.devnull}", "-c", "core.fsmonitor=false", "-c", "advice.detachedHead=false", *args]
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise CloneError(f"git {args[0]} failed: {proc.stderr.strip()[-500:]}")


def _git_out(args: Sequence[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATORS}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise CloneError(f"git {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _clone(run: Run, commit: str, clone: Path) -> dict[str, str]:
    """A shallow clone of ``commit`` alone at ``clone`` (no refs of the run, no remote, no
    FETCH_HEAD naming your checkout), on your branch's name; the carried paths linked in and
    autoresearch_setup run as in a trial's worktree. Returns the frozen files' blob ids there (repository-relative)."""
    base_ref = run.base_ref if MARKER not in run.base_ref.lower() and run.base_ref != run.head else "main"
    _git(["init", "-q", "--template=", "-b", base_ref, str(clone)])
    _git(["fetch", "-q", "--depth=1", "--no-tags", "--no-write-fetch-head", str(run.repo.root), commit], cwd=clone)
    _git(["checkout", "-q", "-B", base_ref, commit], cwd=clone)
    try:
        carry.link(clone, run.repo.root, run.carry)
        if run.settings.setup:
            git = lambda args: _git_out(args, clone)
            env = {**scrub(os.environ, run.settings.pass_env)[0], **run.home.env, "PYTHONDONTWRITEBYTECODE": "1"}
            worktree_setup.run(run.settings.setup, clone, git, clone / run.prefix, run.folder.path / "setup" / "rescore.log", env)
    except SetupError as exc:
        raise CloneError(str(exc)) from None
    home = run.home.manifest.blobs
    return {p: sha for p, sha in run.repo.blobs(commit).items() if p in home}


def _score(
    run: Run, evaluator: Evaluator, draft: Rescore, judge: Judge, base: Path, clone: Path, frozen: dict[str, str],
    holdout_files: Sequence[str], integrity: Callable[[], list[str]],
) -> Rescore:
    here = lambda path: evaluator.in_copy(path, clone)
    report = base / "report.xml"
    args = ["-x", *_neutral_args(evaluator.pytest_args(here))]
    args += [f"--ignore={clone / (run.prefix + f)}" for f in sorted(holdout_files)]  # as in trials, which run without them
    args.append(f"--junitxml={report}")
    args += rescore_args(evaluator.config, base)  # pytest-benchmark's files, where it is installed
    cwd = evaluator.cwd(here)
    env = neutral_environment(evaluator.environment(here, run.home.env), cwd)
    sandbox = None
    if run.settings.sandbox:
        env = environment(env)
        sandbox = tuple(
            bwrap_args(
                repo_root=run.repo.root, worktree=base, frozen=[clone / p for p in frozen], writable=[],
                readable=evaluator.carried(), cwd=cwd, masked=[run.folder.path.parent],
            )
        )
    else:
        (base / "tmp").mkdir()
        env.update(TMPDIR=str(base / "tmp"), TMP=str(base / "tmp"), TEMP=str(base / "tmp"))
    manifest = Manifest.pin(clone, frozen)
    results: list[RunResult] = []
    while True:
        number = len(results) + 1
        log = run.folder.trials / f"{draft.trial:03d}.rescore{'' if number == 1 else number}.log"
        report.unlink(missing_ok=True)
        try:
            result = run_plain((sys.executable, "-m", "pytest", *args), cwd, env, sandbox, judge, log, lambda pgid: run.folder.trial_started(pgid))
        finally:
            run.folder.trial_ended()
        result.tests, result.fitness, result.finished = _read_report(report, judge.metric.nodeid, result.exit_code)
        results.append(evaluator.clean(result))
        draft.log = str(run.folder.trials.relative_to(run.folder.path) / log.name)
        tampered = [*(manifest.changed() if sandbox is None else []), *integrity()]
        done = verdict.rescored(draft, judge.metric, judge.rule, judge.noise, results, timeout=judge.timeout, memory_mb=judge.memory_mb, tampered=tampered)
        if done is not None:
            return done


def _neutral_args(args: Sequence[str]) -> list[str]:
    """The user's options less the plugin's own ini overrides (``-o autoresearch_...``)."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "-o" and i + 1 < len(args) and args[i + 1].lower().startswith(MARKER):
            skip = True
            continue
        out.append(arg)
    return out


def neutral_environment(env: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """``env`` without anything that names the loop: no variable whose name says autoresearch,
    no ``--autoresearch*`` option in PYTEST_ADDOPTS, no PYTEST_CURRENT_TEST; PWD where it runs."""
    out = {k: v for k, v in env.items() if MARKER not in k.lower() and k not in ("PYTEST_CURRENT_TEST", "OLDPWD")}
    if "PYTEST_ADDOPTS" in out:
        out["PYTEST_ADDOPTS"] = _neutral_addopts(out["PYTEST_ADDOPTS"])
    out["PWD"] = str(cwd)
    return out


def _neutral_addopts(value: str) -> str:
    try:
        words = shlex.split(value)
    except ValueError:
        return value
    takes_value = {o.flag for o in OPTIONS if o.flag and o.cli}
    out: list[str] = []
    drop_next = False
    for i, word in enumerate(words):
        if drop_next:
            drop_next = False
            continue
        if word.startswith("--" + MARKER):
            drop_next = "=" not in word and word in takes_value
            continue
        if word == "-o" and i + 1 < len(words) and words[i + 1].lower().startswith(MARKER):
            drop_next = True
            continue
        out.append(word)
    return shlex.join(out)


# -- one plain pytest run, under the trial's bounds ---------------------------------------------


def run_plain(
    argv: tuple[str, ...], cwd: Path, env: Mapping[str, str], sandbox: tuple[str, ...] | None, judge: Judge, log_path: Path,
    started: Callable[[int], None] | None = None,
) -> RunResult:
    """Run ``argv`` in its own process group (and cgroup, where the machine has them), bounded
    by the deadline and the memory cap; always leaves nothing running. ``started`` is told the
    process group's id (the run folder keeps it, for a driver killed outright)."""
    notes: list[str] = []
    shared = SHARED if sandbox is None else None
    cgroup = _cgroup(judge.memory_mb, notes)
    if shared is not None:
        shared.enter()
    left_shmem = None
    try:
        return _run(argv, cwd, env, sandbox, judge, log_path, cgroup, notes, started)
    finally:
        if cgroup is not None:
            cgroup.kill()
            left_shmem = cgroup.shmem_bytes()
            if not cgroup.remove():
                notes.append(f"its cgroup could not be removed: {', '.join(map(str, cgroup.dirs))}")
        if shared is not None:
            notes += shared.leave(left_tmpfs=None if left_shmem is None else left_shmem > 0)
        if notes:
            with contextlib.suppress(OSError), log_path.open("a", encoding="utf-8") as log:
                log.write("".join(f"\n[pytest-autoresearch: {note}]" for note in notes) + "\n")


def _run(
    argv: tuple[str, ...], cwd: Path, env: Mapping[str, str], sandbox: tuple[str, ...] | None, judge: Judge, log_path: Path,
    cgroup: cgroups.Cgroup | None, notes: list[str], started: Callable[[int], None] | None,
) -> RunResult:
    timeout = judge.timeout
    with contextlib.ExitStack() as stack:
        fds: list[int] = []
        if cgroup is not None:
            argv = ("sh", "-c", GATE, "sh", *argv)
        if sandbox is not None:
            args_file = stack.enter_context(tempfile.TemporaryFile())
            args_file.write(b"\0".join(a.encode() for a in sandbox) + b"\0")
            args_file.seek(0)
            fds.append(args_file.fileno())
            argv = ("bwrap", "--args", str(args_file.fileno()), *argv)
        start = time.monotonic()
        proc = start_group(
            argv, cwd=cwd, env=dict(env), stdin=subprocess.PIPE if cgroup is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=fds,
        )
    assert proc.stdout is not None
    if started is not None:
        started(proc.pid)
    pump: OutputPump | None = None
    held = False
    try:
        if cgroup is not None:
            held = _admit(proc, cgroup, timeout, notes)
        pump = OutputPump(proc.stdout, log_path)
        pump.start()
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        ended = _wait_bounded(proc, left, judge.memory_mb, cgroup if held else None)
    finally:
        if cgroup is not None:
            cgroup.kill()
        kill_group(proc)
        reap_orphans()
        if pump is not None:
            pump.join(timeout=5)
        proc.stdout.close()
    return RunResult(
        exit_code=proc.returncode if ended == "exited" else None,
        seconds=time.monotonic() - start,
        finished=False,
        killed=ended == "timeout",
        memory_exceeded=ended == "memory",
        output_tail=pump.text() if pump is not None else "",
        log_path=log_path,
    )


def _admit(proc: subprocess.Popen[bytes], cgroup: cgroups.Cgroup, timeout: float | None, notes: list[str]) -> bool:
    """Move the gated process (and bwrap's, under the sandbox) into its cgroup once the shell
    says it has started, then let it become pytest. False when the cgroup does not hold it."""
    assert proc.stdout is not None and proc.stdin is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60.0 if timeout is None else min(timeout, 60.0))
        if not ready or os.read(proc.stdout.fileno(), 1) != b"r":
            notes.append("its shell did not start; it ran without a cgroup")
            return False
        for pid in descendants(proc.pid):
            cgroup.add(pid)
        return True
    except OSError as exc:
        notes.append(f"it could not be moved into its cgroup ({exc}); its memory was polled instead")
        return False
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.write(b"g\n")
            proc.stdin.close()


# -- the JUnit report ---------------------------------------------------------------------------


def junit_address(nodeid: str) -> tuple[str, str]:
    """(classname, name) of a test in pytest's JUnit XML (without a ``junit_prefix``)."""
    try:
        from _pytest.junitxml import mangle_test_address

        names = mangle_test_address(nodeid)
    except (ImportError, ValueError, TypeError):
        names = nodeid.split("::")
        names[0] = names[0].replace("/", ".").removesuffix(".py")
    return ".".join(names[:-1]), names[-1]


def _read_report(path: Path, primary: str, exit_code: int | None) -> tuple[list[TestResult], list[FitnessResult], bool]:
    """The tests and fitness scores of the report, and whether the session finished (a report,
    and pytest's exit code for "all passed" or "some failed")."""
    try:
        if path.stat().st_size > REPORT_LIMIT:
            return [], [], False
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return [], [], False
    want_class, want_name = junit_address(primary)
    tests, fitness = [], []
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        is_primary = name == want_name and (classname == want_class or classname.endswith("." + want_class))
        nodeid = primary if is_primary else f"{classname}::{name}"
        outcome, failure = "passed", ""
        for child in case:
            if child.tag in ("failure", "error") and outcome not in ("failed", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                failure = f"{child.get('message') or ''}\n{child.text or ''}".strip()
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        tests.append(TestResult(nodeid, outcome, float(case.get("time") or 0.0), TIMEOUT_MARK in failure, failure[-4000:]))
        try:
            recorded = read_properties([(p.get("name", ""), p.get("value", "")) for p in case.iter("property")])
        except ValueError:
            continue
        if recorded.goal in ("min", "max"):
            fitness.append(FitnessResult(nodeid, name, recorded.goal, is_primary, recorded.score, recorded.metrics, recorded.bounds))  # type: ignore[arg-type]
    return tests, fitness, exit_code in (0, 1)
