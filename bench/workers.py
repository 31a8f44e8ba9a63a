"""Throughput of ``--autoresearch-workers``: the K-worker speedup and the loop's overhead per
trial, as ratios measured in one run.

What is measured
----------------
The script generates a project in a fresh temporary git repository: ``knobs.py`` holds N
independent settings, and one fitness test spends a fixed amount of CPU (a pure-Python loop
of ``--work`` iterations, so every trial is CPU-bound) before scoring how far the settings
are from their optimum. A replay file holds N fixed proposals, one per setting, some better
and some worse, written as patches that apply whatever else was kept. Then, with the
interpreter running this script, it times whole processes:

* **bare**: ``python -m pytest -q`` in the project (the suite a trial runs), B times;
* **loop(0)**: ``pytest --autoresearch --autoresearch-trials=0``: start-up, the baseline, clean-up;
* **loop(N, K)**: the N replayed trials with ``--autoresearch-workers=K``, for K = 1 and the
  ``--workers`` asked for, R times each, alternating so machine noise hits them alike.

How to read it
--------------
* ``trials phase(K) = median loop(N, K) - median loop(0)``: the time the N trials take.
* ``speedup = trials phase(1) / trials phase(K)``; the target for K = 2 on a 2-core machine is
  at least 1.7. The whole-run ratio (start-up and baseline included) is printed too.
* ``overhead per trial = trials phase(1) / N - median bare``: what the loop adds to running
  the suite yourself, per trial (target: at most 0.2 s).
* A keep that lands while another trial runs makes that trial run again on the new best when it
  beat its own start (the re-application rule), so the speedup falls as the share of keeps grows:
  ``--keep-share`` sets it (default 0.25, about what long runs keep; 1.0 is the worst case).
* ``same kept results``: the kept trials' descriptions and the final branch's tree are the
  same for every run of every K (a deterministic evaluator).

Usage: ``python bench/workers.py [--trials N] [--workers K] [--repeats R] [--work ITER] [--json PATH]``
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET_S = 0.2
GIT = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
NAMES = [f"K{i:02d}" for i in range(64)]

FITNESS = """\
    import pytest

    import knobs


    @pytest.mark.fitness(goal="min")
    def test_distance(fitness):
        total = 0
        for i in range({work}):  # a fixed amount of CPU work: every trial is CPU-bound
            total += i % 7
        fitness(float(sum((getattr(knobs, name) - 3) ** 2 for name in knobs.NAMES)) + 0 * total)
    """


def knobs_text(names: list[str], values: dict[str, int] | None = None) -> str:
    values = values or {}
    parts = ['"""Independent settings; each sits between lines of its own."""\n', f"NAMES = {names!r}\n"]
    for name in names:
        parts.append(f"# --- {name} ---\n# (best at 3)\n# -\n{name} = {values.get(name, 5)}\n# end of {name}\n# -\n# -\n")
    return "".join(parts)


def proposals(names: list[str], keep_share: float) -> list[dict[str, str]]:
    """One proposal per setting; ``keep_share`` of them, spread evenly, improve it."""
    out = []
    base = knobs_text(names).splitlines(keepends=True)
    for i, name in enumerate(names):
        better = int((i + 1) * keep_share) > int(i * keep_share)
        value = 3 if better else 8
        new = knobs_text(names, {name: value}).splitlines(keepends=True)
        diff = "".join(difflib.unified_diff(base, new, "a/knobs.py", "b/knobs.py"))
        out.append({"description": f"{name} 5 -> {value}", "patch": diff})
    return out


def make_project(root: Path, trials: int, work: int, keep_share: float) -> tuple[Path, Path]:
    project = root / "project"
    (project / "tests").mkdir(parents=True)
    names = NAMES[:trials]
    (project / "knobs.py").write_text(knobs_text(names))
    (project / "tests" / "test_distance.py").write_text(textwrap.dedent(FITNESS.format(work=work)))
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["."]\n'
        'autoresearch_mutable = ["knobs.py"]\nautoresearch_baseline_runs = 1\n'
    )
    replay = root / "proposals.jsonl"
    replay.write_text("".join(json.dumps(p) + "\n" for p in proposals(names, keep_share)))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*GIT, "commit", "-q", "-m", "bench project"]):
        subprocess.run(["git", *args], cwd=project, check=True)
    return project, replay


def timed(cmd: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_AUTORESEARCH_TRIAL"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def kept_result(project: Path, tag: str) -> tuple[tuple[str, ...], str]:
    with (project / ".autoresearch" / tag / "results.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    kept = tuple(sorted(r["description"] for r in rows if r["status"] == "keep"))
    tree = subprocess.run(["git", "rev-parse", f"autoresearch/{tag}^{{tree}}"], cwd=project, capture_output=True, text=True).stdout.strip()
    return kept, tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare-runs", type=int, default=7)
    parser.add_argument("--work", type=int, default=40_000_000, help="loop iterations per trial (about 1.5 s of CPU per 40M here)")
    parser.add_argument(
        "--keep-share", type=float, default=0.25,
        help="share of the proposals that improve (default 0.25, about what long runs keep); every keep that "
        "lands while another trial runs makes that trial run again on the new best",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    py = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    with tempfile.TemporaryDirectory(prefix="autoresearch-bench-workers-") as tmp:
        project, replay = make_project(Path(tmp), args.trials, args.work, args.keep_share)
        loop = [*py, "--autoresearch", f"--autoresearch-agent=replay:{replay}"]
        load_before = os.getloadavg()[0]
        timed([*py, "-q"], project)  # warm-up
        bare, zero = [], []
        runs: dict[int, list[float]] = {1: [], args.workers: []}
        results: dict[int, set[tuple[tuple[str, ...], str]]] = {1: set(), args.workers: set()}
        counter = 0
        for repeat in range(args.repeats):
            counter += 1
            zero.append(timed([*loop, "--autoresearch-trials=0", f"--autoresearch-tag=z{counter}"], project))
            for k in (1, args.workers) if repeat % 2 == 0 else (args.workers, 1):
                bare.append(timed([*py, "-q"], project))
                counter += 1
                tag = f"k{k}-{counter}"
                runs[k].append(timed([*loop, f"--autoresearch-trials={args.trials}", f"--autoresearch-workers={k}", f"--autoresearch-tag={tag}"], project))
                results[k].add(kept_result(project, tag))
        while len(bare) < args.bare_runs:
            bare.append(timed([*py, "-q"], project))
        load_after = os.getloadavg()[0]

    m = statistics.median
    phase = {k: m(v) - m(zero) for k, v in runs.items()}
    speedup = phase[1] / phase[args.workers]
    whole = m(runs[1]) / m(runs[args.workers])
    overhead = phase[1] / args.trials - m(bare)
    same = len(results[1] | results[args.workers]) == 1
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "trials": args.trials,
        "keep_share": args.keep_share,
        "workers": args.workers,
        "bare_median_s": m(bare),
        "loop0_median_s": m(zero),
        "loop_median_s": {str(k): m(v) for k, v in runs.items()},
        "trials_phase_s": {str(k): v for k, v in phase.items()},
        "speedup": speedup,
        "whole_run_ratio": whole,
        "overhead_per_trial_s": overhead,
        "same_kept_results": same,
        "kept": sorted(results[1])[0][0] if results[1] else [],
        "all_runs": {"bare": bare, "loop0": zero, **{f"k{k}": v for k, v in runs.items()}},
    }
    print(f"machine: {report['machine']}; load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"bare pytest run of the suite: median {m(bare):.3f} s ({len(bare)} runs)")
    print(f"loop with 0 trials (start-up, baseline, clean-up): median {m(zero):.3f} s")
    for k in runs:
        print(f"loop, {args.trials} trials, {k} worker{'s' if k > 1 else ''}: median {m(runs[k]):.2f} s; trials phase {phase[k]:.2f} s")
    verdict = lambda ok: "PASS" if ok else "FAIL"
    print(f"speedup with {args.workers} workers: {speedup:.2f}x over the trials (target >= {SPEEDUP_TARGET}: {verdict(speedup >= SPEEDUP_TARGET)}); whole runs {whole:.2f}x")
    print(f"overhead per trial (1 worker): {overhead * 1000:.0f} ms over a bare run (target <= {OVERHEAD_TARGET_S * 1000:.0f} ms: {verdict(overhead <= OVERHEAD_TARGET_S)})")
    print(f"same kept results for every run and worker count: {same} ({len(report['kept'])} kept of {args.trials})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
