"""Per-trial overhead of ``pytest --autoresearch`` against a bare pytest run of the same tests.

What is measured
----------------
The script generates a tiny project in a fresh temporary directory (a mutable ``model.py``
of numeric constants, one cheap fitness test, one ordinary gate test that always passes,
a ``pyproject.toml``), commits it to a new git repository, and then times, with the
interpreter running this script (``sys.executable``):

* **bare**: ``python -m pytest -q`` in the project, K times (after two warm-ups);
* **loop(0)**: ``python -m pytest --autoresearch --autoresearch-agent=mutate
  --autoresearch-trials=0`` (set-up, the baseline trial, clean-up), R times;
* **loop(N)**: the same with ``--autoresearch-trials=N``, R times.

The bare runs are spread between the loop runs, and the two loop sizes alternate, so
machine noise hits all three alike. Every figure is a median of wall-clock times of whole
processes, measured in this one run.

How to read it
--------------
* ``per-trial loop cost = (median loop(N) - median loop(0)) / N``: what one more trial
  costs, from the agent's proposal to the logged row.
* ``overhead per trial = per-trial loop cost - median bare``: what the loop adds to
  running the suite yourself. The target is at most 0.2 s (a 2-core machine), and the
  report says PASS or FAIL against it; the script exits 0 either way.
* The overhead splits in two, using the ``seconds`` column of the loop(N) runs'
  ``results.tsv`` (the wall time of each trial's pytest subprocess, as the driver saw it):
  ``trial subprocess extra = mean trial seconds - median bare`` is what the trial's own
  pytest costs beyond a bare run (extra arguments and environment, the plugin's trial
  reporter, no bytecode caching of the project), and ``driver share = per-trial loop cost
  - mean trial seconds`` is the driver's own work between subprocesses (the agent, git
  write/stage/commit-tree/update-ref/reset/clean, the log, pytest reporting).
* ``fixed cost per run = median loop(0) - baseline seconds`` is paid once per run (driver
  start-up with GitPython, ``git worktree add``/``remove``), not per trial.
* Cross-checks, not used for the verdict: the overhead computed round by round against
  only the bare runs next to each round (its range shows how noisy the machine was), and
  the same overhead in CPU time of the whole process trees (``RUSAGE_CHILDREN``), which
  other load on the machine disturbs much less than wall time. The 1-minute load average
  before and after is printed too: on a busy machine trust the CPU figure and rerun.

Usage: ``python bench/overhead.py [--trials N] [--repeats R] [--bare-runs K] [--json PATH]``
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TARGET_S = 0.2
BARE_WARMUPS = 2
TRIAL_ENV = "PYTEST_AUTORESEARCH_TRIAL"  # never inherit a trial's channel

FILES: dict[str, str] = {
    "model.py": """\
        \"\"\"The mutable surface: module-level constants the mutate agent perturbs.\"\"\"

        WIDTH = 3
        DEPTH = 2
        SCALE = 1.5
        RATE = 0.2
        """,
    "tests/test_fitness.py": """\
        import math

        import pytest

        import model


        @pytest.mark.fitness(goal="min")
        def test_score(fitness):
            score = (
                (model.WIDTH - 7) ** 2
                + 0.5 * (model.DEPTH - 4) ** 2
                + (math.log(abs(model.SCALE)) - 1.0) ** 2
                + (model.RATE - 0.05) ** 2 * 10
            )
            fitness(score)
        """,
    "tests/test_gate.py": """\
        import model


        def test_constants_are_numbers():
            for name in ("WIDTH", "DEPTH", "SCALE", "RATE"):
                assert isinstance(getattr(model, name), (int, float))
        """,
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        pythonpath = ["."]
        autoresearch_mutable = ["model.py"]
        """,
}


class BenchError(Exception):
    """A command the benchmark depends on failed."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(TRIAL_ENV, None)
    return env


def _git(project: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=_env(),
    )
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def inside_git_repo(path: Path) -> bool:
    proc = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=path, capture_output=True, text=True, env=_env()
    )
    return proc.returncode == 0 and proc.stdout.strip() == "true"


def make_project(root: Path) -> Path:
    """Write the project under ``root/project`` and commit it to a new repository."""
    project = root / "project"
    for rel, text in FILES.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    _git(project, "init", "-q")
    _git(project, "checkout", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "benchmark project")
    return project


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: Sequence[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run ``cmd``: its wall time, the CPU time of its whole process tree, its outcome."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return time.perf_counter() - start, _children_cpu() - cpu, proc


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise BenchError(f"{what} exited with {proc.returncode}:\n{tail}")


def bare_run(project: Path) -> tuple[float, float]:
    """One bare run: wall and CPU seconds."""
    seconds, cpu, proc = timed([sys.executable, "-m", "pytest", "-q"], project)
    _check(proc, "bare pytest")
    return seconds, cpu


def loop_run(project: Path, trials: int, tag: str) -> tuple[float, float, list[dict[str, str]]]:
    """One whole ``pytest --autoresearch`` run: wall and CPU seconds, its results.tsv rows."""
    cmd = [
        sys.executable, "-m", "pytest", "--autoresearch", "--autoresearch-agent=mutate",
        f"--autoresearch-trials={trials}", f"--autoresearch-tag={tag}",
    ]  # fmt: skip
    seconds, cpu, proc = timed(cmd, project)
    _check(proc, f"pytest --autoresearch (tag {tag})")
    log = project / ".autoresearch" / tag / "results.tsv"
    with log.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(rows) != trials + 1:
        raise BenchError(f"run {tag}: expected {trials + 1} rows in {log}, found {len(rows)}")
    return seconds, cpu, rows


def schedule(repeats: int, bare_runs: int) -> list[str]:
    """Loop runs alternating 0/N (order flipped every round) with the bare runs spread
    evenly in between: e.g. ``B B L0 B LN B ...``."""
    loops: list[str] = []
    for r in range(repeats):
        loops += ["L0", "LN"] if r % 2 == 0 else ["LN", "L0"]
    gaps = len(loops) + 1
    out: list[str] = []
    for i in range(gaps):
        out += ["B"] * (bare_runs * (i + 1) // gaps - bare_runs * i // gaps)
        if i < len(loops):
            out.append(loops[i])
    return out


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "machine": platform.machine(),  # what `uname -m` prints
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "pytest": _version("pytest"),
        "pytest_autoresearch": _version("pytest-autoresearch"),
        "pytest_timeout": _version("pytest-timeout"),
        "git": git,
    }


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _paired(events: list[tuple[str, float, float]], trials: int, index: int) -> list[float]:
    """Per round (an L0 and an LN run side by side), the overhead per trial measured against
    the bare runs next to that round only; ``index`` 1 = wall time, 2 = CPU time."""
    loops = [i for i, e in enumerate(events) if e[0] != "B"]
    out = []
    for k in range(0, len(loops) - 1, 2):
        first, second = loops[k], loops[k + 1]
        lo = loops[k - 1] + 1 if k > 0 else 0
        hi = loops[k + 2] if k + 2 < len(loops) else len(events)
        bare = [e[index] for e in events[lo:hi] if e[0] == "B"]
        runs = {events[first][0]: events[first][index], events[second][0]: events[second][index]}
        if bare and set(runs) == {"L0", "LN"}:
            out.append((runs["LN"] - runs["L0"]) / trials - statistics.median(bare))
    return out


def measure(trials: int, repeats: int, bare_runs: int, progress: bool = True) -> dict[str, Any]:
    if trials < 1 or repeats < 1 or bare_runs < 1:
        raise BenchError("--trials, --repeats and --bare-runs must be at least 1")
    load_before = _load()
    root = Path(tempfile.mkdtemp(prefix="autoresearch-bench-"))
    try:
        outside = not inside_git_repo(root)
        project = make_project(root)

        def say(char: str) -> None:
            if progress:
                print(char, end="", file=sys.stderr, flush=True)

        for _ in range(BARE_WARMUPS):
            bare_run(project)
            say("w")
        loop_run(project, 0, "warmup")  # page cache for git and GitPython; not counted
        say("w")

        events: list[tuple[str, float, float]] = []  # (B | L0 | LN, wall s, cpu s) in run order
        trial_seconds: list[float] = []
        baseline_seconds: list[float] = []
        statuses: dict[str, int] = {}
        for number, event in enumerate(schedule(repeats, bare_runs)):
            if event == "B":
                wall, cpu = bare_run(project)
                say(".")
            else:
                n = 0 if event == "L0" else trials
                wall, cpu, rows = loop_run(project, n, f"n{n}-{number}")
                for row in rows:
                    if row["status"] == "baseline":
                        baseline_seconds.append(float(row["seconds"]))
                        continue
                    statuses[row["status"]] = statuses.get(row["status"], 0) + 1
                    if row["seconds"]:
                        trial_seconds.append(float(row["seconds"]))
                say("0" if n == 0 else "N")
            events.append((event, wall, cpu))
        if progress:
            print(file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def pick(kind: str, index: int) -> list[float]:
        return [e[index] for e in events if e[0] == kind]

    bare, loop0, loopn = pick("B", 1), pick("L0", 1), pick("LN", 1)
    med_bare = statistics.median(bare)
    med0 = statistics.median(loop0)
    medn = statistics.median(loopn)
    per_trial = (medn - med0) / trials
    overhead = per_trial - med_bare
    mean_trial = statistics.fmean(trial_seconds) if trial_seconds else float("nan")
    cpu_bare = statistics.median(pick("B", 2))
    cpu_per_trial = (statistics.median(pick("LN", 2)) - statistics.median(pick("L0", 2))) / trials
    paired = _paired(events, trials, 1)
    return {
        "machine": machine(),
        "settings": {
            "trials": trials,
            "repeats": repeats,
            "bare_runs": bare_runs,
            "bare_warmups": BARE_WARMUPS,
            "project_outside_git_repo": outside,
        },
        "load_average_1min": {"before": load_before, "after": _load()},
        "bare_median_s": med_bare,
        "loop0_median_s": med0,
        "loopN_median_s": medn,
        "per_trial_loop_cost_s": per_trial,
        "overhead_per_trial_s": overhead,
        "overhead_ratio_to_bare": overhead / med_bare,
        "mean_trial_seconds_s": mean_trial,
        "median_trial_seconds_s": statistics.median(trial_seconds) if trial_seconds else float("nan"),
        "mean_baseline_seconds_s": statistics.fmean(baseline_seconds),
        "trial_subprocess_extra_s": mean_trial - med_bare,
        "driver_share_s": per_trial - mean_trial,
        "fixed_run_cost_s": med0 - statistics.fmean(baseline_seconds),
        "paired_overhead_per_round_s": paired,
        "cpu": {
            "bare_median_s": cpu_bare,
            "per_trial_loop_cost_s": cpu_per_trial,
            "overhead_per_trial_s": cpu_per_trial - cpu_bare,
        },
        "trial_statuses": statuses,
        "target_s": TARGET_S,
        "verdict": "PASS" if overhead <= TARGET_S else "FAIL",
        "runs_in_order": [{"run": kind, "wall_s": wall, "cpu_s": cpu} for kind, wall, cpu in events],
    }


def report(r: dict[str, Any]) -> str:
    m, s = r["machine"], r["settings"]
    n = s["trials"]
    ms = lambda x: f"{x * 1000:8.1f} ms"
    statuses = ", ".join(f"{v} {k}" for k, v in sorted(r["trial_statuses"].items()))
    load = r["load_average_1min"]
    paired = r["paired_overhead_per_round_s"]
    cpu = r["cpu"]
    lines = [
        "pytest-autoresearch loop overhead per trial",
        f"machine: {m['machine']}, {m['cpu_count']} CPUs ({m['usable_cpus']} usable), {m['system']}, "
        f"load average {load['before']:.2f} before, {load['after']:.2f} after",
        f"python {m['python']}, pytest {m['pytest']}, pytest-autoresearch {m['pytest_autoresearch']}, "
        f"pytest-timeout {m['pytest_timeout']}, {m['git']}",
        f"runs: {s['bare_runs']} bare (after {s['bare_warmups']} warm-ups), {s['repeats']} x loop(0), "
        f"{s['repeats']} x loop({n}), interleaved; trial rows: {statuses}",
        "",
        f"  bare pytest -q, median                    {ms(r['bare_median_s'])}",
        f"  loop(0) (set-up + baseline), median       {ms(r['loop0_median_s'])}",
        f"  loop({n}), median{' ' * (26 - len(str(n)))}{ms(r['loopN_median_s'])}",
        f"  per-trial loop cost (loop(N)-loop(0))/N   {ms(r['per_trial_loop_cost_s'])}",
        f"  mean trial `seconds` (trial subprocess)   {ms(r['mean_trial_seconds_s'])}",
        "",
        f"  overhead per trial (cost - bare)          {ms(r['overhead_per_trial_s'])}"
        f"   = {r['overhead_ratio_to_bare']:.2f} x bare",
        f"    driver share (cost - trial seconds)     {ms(r['driver_share_s'])}",
        f"    trial subprocess extra (seconds - bare) {ms(r['trial_subprocess_extra_s'])}",
        f"  fixed cost per run (loop(0) - baseline)   {ms(r['fixed_run_cost_s'])}",
        "",
        "  cross-checks (noise; not used for the verdict):",
        f"    overhead per round, vs its own bare runs: median {statistics.median(paired) * 1000:.1f} ms, "
        f"range {min(paired) * 1000:.1f} .. {max(paired) * 1000:.1f} ms",
        f"    CPU time of the process trees: bare {cpu['bare_median_s'] * 1000:.1f} ms, per trial "
        f"{cpu['per_trial_loop_cost_s'] * 1000:.1f} ms, overhead {cpu['overhead_per_trial_s'] * 1000:.1f} ms",
        "",
        f"{r['verdict']}: overhead {r['overhead_per_trial_s']:.3f} s per trial "
        f"{'<=' if r['verdict'] == 'PASS' else '>'} target {r['target_s']} s",
    ]
    if not s["project_outside_git_repo"]:
        lines.append("note: the temporary directory lies inside a git repository (set TMPDIR elsewhere)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, metavar="N", help="trials of the long loop run (default 20)")
    parser.add_argument("--repeats", type=int, default=5, metavar="R", help="runs of each loop size (default 5)")
    parser.add_argument("--bare-runs", type=int, default=15, metavar="K", help="timed bare pytest runs (default 15)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        result = measure(args.trials, args.repeats, args.bare_runs)
    except BenchError as exc:
        print(f"overhead.py: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
