"""What checking the run's own refs and files costs the driver, per trial: paired A/B runs.

    .venv/bin/python bench/integrity.py [--pairs 3] [--trials 8] [--json out.json]

Each pair runs the loop on a fresh copy of ``examples/quickstart`` (offline ``mutate`` agent, the
same seed, so both runs propose the same trials) twice, in alternating order: A with every check,
B with containment round two's driver-side checks switched off: the run's refs, ``audit.jsonl`` and
trial files (``Integrity.check_run_state``, ``Recorder.seal_files``), the checks before every
driver git call (your git config and hooks, the worktrees' links and metadata:
``RepoGuard.check``, ``WorktreeLinks.check``) and the look at a would-be keep's added lines
(``reached``), set by this script's own plugin in B's driver process; nothing in the package reads
a switch. (The trial side's audit hook and snapshot cost the trial's process, not the driver:
``bench/audit_hook.py``.) The plugin, loaded with ``-p`` into
the driver only, records the driver's CPU time (``getrusage(RUSAGE_SELF)``, user + system, all its
threads) each time a trial is logged; a trial's CPU time is the difference from the trial before.

Reported: each run's median CPU time per trial, the per-pair difference A - B, and its median over
the pairs (target: at most 20 ms per trial); and, measured directly in the A runs, the CPU time
(``time.thread_time``) spent in the new checks and in hashing a trial's files, per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "quickstart"
TARGET_MS = 20.0
GIT = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]

PLUGIN = '''
import json, os, resource, time

MARKS = []
DIRECT = [0.0]


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(function):
    def wrapper(*args, **kwargs):
        start = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            DIRECT[0] += time.thread_time() - start
    return wrapper


def pytest_configure(config):
    if "AUTORESEARCH_BENCH_CHECKS" not in os.environ:  # the re-score of the final best: nothing to measure
        return
    from pytest_autoresearch.engine.integrity import Integrity
    from pytest_autoresearch.engine.recorder import Recorder
    from pytest_autoresearch.store.runfolder import TrialFiles

    from pytest_autoresearch.engine import loop
    from pytest_autoresearch.store.gitguard import RepoGuard, WorktreeLinks

    if os.environ["AUTORESEARCH_BENCH_CHECKS"] == "off":
        Integrity.check_run_state = False
        Recorder.seal_files = False
        RepoGuard.check = lambda self: None
        WorktreeLinks.check = lambda self: None
        loop.reached = lambda changes, parent: []
    else:
        RepoGuard.check = _timed(RepoGuard.check)
        WorktreeLinks.check = _timed(WorktreeLinks.check)
        loop.reached = _timed(loop.reached)
        Integrity.run_state = staticmethod(_timed(Integrity.run_state))
        TrialFiles.seal = _timed(TrialFiles.seal)


def pytest_autoresearch_trial_logged(config, record):
    MARKS.append([record.trial, str(record.status), _cpu(), DIRECT[0]])


def pytest_unconfigure(config):
    if "AUTORESEARCH_BENCH_OUT" not in os.environ:
        return
    with open(os.environ["AUTORESEARCH_BENCH_OUT"], "w") as f:
        json.dump(MARKS, f)
'''


def copy_example(dest: Path) -> Path:
    target = dest / "quickstart"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", ".autoresearch", ".pytest_cache"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*GIT, "commit", "-q", "-m", "quickstart"]):
        subprocess.run(["git", *args], cwd=target, check=True)
    return target


def one_run(plugin_dir: Path, checks: bool, trials: int, seed: int) -> dict[str, object]:
    """One loop run on a fresh copy; per-trial driver CPU times (s) and direct check times (s)."""
    with tempfile.TemporaryDirectory(prefix="autoresearch-bench-integrity-") as folder:
        copy = copy_example(Path(folder))
        out = Path(folder) / "marks.json"
        paths = [str(plugin_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(paths),
            "AUTORESEARCH_BENCH_CHECKS": "on" if checks else "off",
            "AUTORESEARCH_BENCH_OUT": str(out),
        }
        env.pop("PYTEST_ADDOPTS", None)
        args = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "autoresearch_bench_plugin",
            "--autoresearch", f"--autoresearch-agent=mutate:{seed}", f"--autoresearch-trials={trials}", "--autoresearch-tag=bench",
        ]
        proc = subprocess.run(args, cwd=copy, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"the loop failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        marks = json.loads(out.read_text())
    cpu = [b[2] - a[2] for a, b in zip(marks, marks[1:])]
    direct = [b[3] - a[3] for a, b in zip(marks, marks[1:])]
    return {"checks": checks, "statuses": [m[1] for m in marks], "cpu": cpu, "direct": direct}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {opts.pairs} pairs of {opts.trials}-trial runs on examples/quickstart", flush=True)
    runs = []
    diffs = []
    with tempfile.TemporaryDirectory(prefix="autoresearch-bench-plugin-") as plugin_dir:
        (Path(plugin_dir) / "autoresearch_bench_plugin.py").write_text(PLUGIN)
        for pair in range(opts.pairs):
            order = (True, False) if pair % 2 == 0 else (False, True)
            got = {}
            for checks in order:
                start = time.monotonic()
                got[checks] = run = one_run(Path(plugin_dir), checks, opts.trials, opts.seed)
                runs.append(run)
                print(
                    f"pair {pair + 1} {'A (checks on) ' if checks else 'B (checks off)'}: median {1000 * statistics.median(run['cpu']):.1f} ms "
                    f"driver CPU per trial ({time.monotonic() - start:.0f} s wall)",
                    flush=True,
                )
            if got[True]["statuses"] != got[False]["statuses"]:
                print(f"  note: the runs differ: {got[True]['statuses']} vs {got[False]['statuses']}")
            diffs.append(statistics.median(got[True]["cpu"]) - statistics.median(got[False]["cpu"]))
    mean_diffs = [statistics.fmean(a["cpu"]) - statistics.fmean(b["cpu"]) for a, b in zip(runs[0::2], runs[1::2])]
    mean_diffs = [d if runs[2 * i]["checks"] else -d for i, d in enumerate(mean_diffs)]
    direct = [d for run in runs if run["checks"] for d in run["direct"]]
    median = statistics.median(diffs)
    print(f"per-pair difference A - B of the median per trial: {', '.join(f'{1000 * d:+.1f}' for d in diffs)} ms")
    print(f"median difference: {1000 * median:+.1f} ms per trial (of the means: {1000 * statistics.median(mean_diffs):+.1f} ms)")
    print(f"direct, in the A runs: {1000 * statistics.median(direct):.2f} ms per trial in the new checks and file hashing (median; max {1000 * max(direct):.2f})")
    print(f"target <= {TARGET_MS:g} ms: {'PASS' if 1000 * median <= TARGET_MS else 'FAIL'}")
    print(f"load average {os.getloadavg()[0]:.2f}")
    if opts.json:
        opts.json.write_text(json.dumps({"runs": runs, "pair_differences": diffs, "median_difference": median}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
