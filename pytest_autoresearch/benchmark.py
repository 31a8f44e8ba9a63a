"""pytest-benchmark tests as fitness tests: the ``benchmark`` fixture's statistics as the score.

A test marked ``@pytest.mark.fitness(goal="min", stat="median")`` that uses pytest-benchmark's
``benchmark`` fixture records the chosen statistic of its measured rounds (seconds per call) as
its score, without calling ``fitness()``; ``stat="ops"`` (calls per second) goes with
``goal="max"``. The fixture is read by its attributes, so this module imports nothing of
pytest-benchmark and costs a run without it nothing.

Inside a trial, pytest-benchmark must neither write into the run's worktree nor leave the gates
out: :func:`quiet` points its storage at the trial's cache folder, turns off saving,
JSON and CSV output, histograms, comparisons and profile dumps, and undoes ``--benchmark-only`` and
``--benchmark-skip``, before pytest-benchmark reads its options.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest

#: stat= of a benchmark fitness test: seconds per call, except ``ops`` (calls per second).
TIME_STATS = ("min", "median", "mean", "max")
STATS = (*TIME_STATS, "ops")


class BenchmarkError(Exception):
    """A benchmark fitness test that gave no statistics to score."""


class Measured(NamedTuple):
    value: float
    iqr: float  # seconds per call
    rounds: int


def check_stat(stat: object, goal: str) -> str | None:
    """Why ``stat=`` cannot score a test of this goal; None when it can."""
    if stat not in STATS:
        return f"@pytest.mark.fitness stat= must be one of {', '.join(map(repr, STATS))}, got {stat!r}"
    wanted = "max" if stat == "ops" else "min"
    if goal != wanted:
        what = "calls per second" if stat == "ops" else "seconds per call"
        return f'@pytest.mark.fitness(stat="{stat}") scores {what}, so it needs goal="{wanted}", not goal="{goal}"'
    return None


def enable(item: pytest.Item) -> None:
    """A benchmark fitness test measures even under ``--benchmark-disable`` or xdist (where
    pytest-benchmark disables itself): its score is the measurement."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is not None and getattr(fixture, "disabled", False):
        fixture.disabled = False


def measured(item: pytest.Item, stat: str) -> Measured:
    """The statistic ``stat`` of the rounds the test's ``benchmark`` fixture measured."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is None:
        raise BenchmarkError(
            f'{item.nodeid}: @pytest.mark.fitness(stat="{stat}") takes the score from pytest-benchmark\'s '
            "benchmark fixture, which this test does not use"
        )
    meta = getattr(fixture, "stats", None)
    stats = getattr(meta, "stats", None)
    if not stats:
        raise BenchmarkError(
            f"{item.nodeid}: the benchmark fixture measured nothing: call benchmark(fn, ...) "
            "(or benchmark.pedantic) once in the test"
        )
    return Measured(float(getattr(stats, stat)), float(stats.iqr), int(stats.rounds))


#: Whether the user's options asked pytest-benchmark for a JSON report (before :func:`quiet`).
_JSON_ASKED = pytest.StashKey[bool]()


def quiet(config: pytest.Config, trial: bool) -> None:
    """Keep pytest-benchmark, where installed, from writing files and, in a trial, from creating
    its storage folder in the worktree or skipping tests. Called before pytest-benchmark's own
    (trylast) configure reads its options: in a trial, and in the driver, which runs no test."""
    option = config.option
    if not hasattr(option, "benchmark_storage"):
        return
    config.stash[_JSON_ASKED] = bool(getattr(option, "benchmark_json", None))
    # the storage folder is made when pytest-benchmark starts, saving or not: a trial's goes to
    # its cache (or, with the cache plugin off, its own temporary folder, removed with it), the
    # driver's (which runs no test) to the temporary folder, never to a path in your checkout
    cache = _cache_dir(config) if trial else None
    where = cache / "benchmarks" if cache is not None else Path(tempfile.gettempdir()) / "pytest-autoresearch-benchmarks"
    option.benchmark_storage = where.as_uri()
    for name, value in (
        ("benchmark_save", None),
        ("benchmark_autosave", False),
        ("benchmark_save_data", False),
        ("benchmark_json", None),
        ("benchmark_histogram", []),
        ("benchmark_csv", []),
        ("benchmark_compare", []),
        ("benchmark_compare_fail", None),
        ("benchmark_cprofile_dump", []),
        ("benchmark_only", False),
        ("benchmark_skip", False),
    ):
        if hasattr(option, name):
            setattr(option, name, value)


def _cache_dir(config: pytest.Config) -> Path | None:
    """The trial's cache folder (the driver passes ``-o cache_dir=``), also under ``-p no:cacheprovider``."""
    try:
        return Path(config.rootpath, config.getini("cache_dir"))
    except ValueError:  # the cacheprovider plugin, which declares the key, is disabled
        given = [o.partition("=")[2] for o in config.getoption("override_ini") or () if o.startswith("cache_dir=")]
        return Path(config.rootpath, given[-1]) if given else None


def rescore_args(config: pytest.Config, folder: Path) -> list[str]:
    """Options for the re-score's plain ``pytest`` run, which has no trial channel to call
    :func:`quiet`: pytest-benchmark's storage and JSON report go to ``folder`` (removed after),
    not to a path of the user's options that may lie in their checkout; later options win."""
    if not hasattr(config.option, "benchmark_storage"):
        return []
    args = [f"--benchmark-storage={(folder / 'benchmarks').as_uri()}"]
    if config.stash.get(_JSON_ASKED, False) or getattr(config.option, "benchmark_json", None):
        # only when asked for: a JSON report of a suite without benchmarks is a warning, an
        # error under filterwarnings = error
        args.append(f"--benchmark-json={folder / 'benchmark.json'}")
    return args
