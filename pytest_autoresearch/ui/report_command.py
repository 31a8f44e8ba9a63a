"""``pytest --autoresearch-report``: a run's trial table and summary, reprinted from its log.

Nothing runs: the report reads ``.autoresearch/<tag>/results.tsv`` and ``run.json`` under the
rootdir. With ``--autoresearch-tag`` it shows that run (``--autoresearch-kept``: the baseline
and the kept trials only); without, it lists every run, and shows the trials too when there is
just one. ``--autoresearch-finalize`` (:mod:`~pytest_autoresearch.finalize`) enters here as well.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ..core.history import History
from ..core.records import TrialRecord
from ..names import RUN_DIR_NAME, branch
from ..store.results_log import read_records
from ..store.runfolder import RunMeta, read_meta
from .terminal import fmt_score, summary, table


def runs_under(rootdir: Path) -> list[str]:
    """Tags of the runs with a log under ``rootdir``, oldest first."""
    base = rootdir / RUN_DIR_NAME
    found = [p.parent for p in base.glob("*/results.tsv") if (p.parent / "run.json").exists()] if base.is_dir() else []
    return [p.name for p in sorted(found, key=lambda p: ((p / "results.tsv").stat().st_mtime, p.name))]


def load_run(rootdir: Path, tag: str) -> tuple[RunMeta, list[TrialRecord]]:
    folder = rootdir / RUN_DIR_NAME / tag
    meta = read_meta(folder / "run.json")
    return meta, read_records(folder / "results.tsv", meta.columns)


def _width() -> int | None:
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def overview_line(tag: str, meta: RunMeta, records: list[TrialRecord]) -> str:
    kept = [r for r in records if r.status == "keep"]
    baseline = records[0] if records else None
    best = History(records).best if records else None
    metric = meta.metric
    scores = ""
    if baseline is not None and best is not None:
        scores = f"{metric.name} ({metric.goal}) {fmt_score(baseline.score)} -> {fmt_score(best.score)}"
    trials = len(records) - 1 if records else 0
    return f"{tag:<16} {trials:>4} trials {len(kept):>4} kept   {scores}"


def show_run(rootdir: Path, tag: str, kept_only: bool) -> list[str]:
    meta, records = load_run(rootdir, tag)
    shown = [r for r in records if r.kept] if kept_only else records
    metric = meta.metric
    lines = [f"run {tag}: {RUN_DIR_NAME}/{tag}/results.tsv" + (" (the baseline and the kept trials)" if kept_only else ""), ""]
    lines += table(shown, _width(), goal=metric.goal).splitlines()
    lines.append("")
    lines += summary(
        records,
        goal=metric.goal,
        metric=metric.name,
        branch=branch(tag),
        log_path=str(rootdir / RUN_DIR_NAME / tag / "results.tsv"),
        tag=tag,
        base_ref=meta.base_ref or meta.head,
        stop_reason=None,
        holdout=meta.holdout,
        holdout_best_trial=meta.holdout_best_trial,
        holdout_goals=meta.holdout_goals,
        rescore=meta.rescore,
    )
    plot = rootdir / RUN_DIR_NAME / tag / "progress.png"
    if plot.exists():
        lines.append(f"progress plot: {plot}")
    return lines


def report(config: pytest.Config) -> int:
    rootdir = Path(config.rootpath)
    tag = config.getoption("autoresearch_tag")
    tags = runs_under(rootdir)
    if tag:
        if tag not in tags:
            known = ", ".join(tags) or "none"
            print(f"autoresearch: no run {tag!r} under {rootdir / RUN_DIR_NAME} (runs: {known})", file=sys.stderr)
            return int(pytest.ExitCode.USAGE_ERROR)
        print("\n".join(show_run(rootdir, tag, config.getoption("autoresearch_kept"))))
        return 0
    if not tags:
        print(f"autoresearch: no runs under {rootdir / RUN_DIR_NAME} yet; start one with pytest --autoresearch")
        return 0
    print(f"runs under {rootdir / RUN_DIR_NAME}:")
    for name in tags:
        meta, records = load_run(rootdir, name)
        print("  " + overview_line(name, meta, records))
    if len(tags) == 1:
        print()
        print("\n".join(show_run(rootdir, tags[0], config.getoption("autoresearch_kept"))))
    else:
        print("one run's trials: pytest --autoresearch-report --autoresearch-tag=TAG [--autoresearch-kept]")
    return 0


def finalize_command(config: pytest.Config) -> int:
    from .finalize import FinalizeError, finalize

    rootdir = Path(config.rootpath)
    tag = config.getoption("autoresearch_tag")
    if not tag:
        tags = runs_under(rootdir)
        if len(tags) != 1:
            print(
                "autoresearch: --autoresearch-finalize needs --autoresearch-tag=TAG"
                + (f" (runs: {', '.join(tags)})" if tags else f" (no runs under {rootdir / RUN_DIR_NAME})"),
                file=sys.stderr,
            )
            return int(pytest.ExitCode.USAGE_ERROR)
        tag = tags[0]
    try:
        done = finalize(rootdir, tag)
    except FinalizeError as exc:
        print(f"autoresearch: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    print(done.text)
    print(f"\nreview branch {done.branch} ({len(done.commits)} commit{'s' if len(done.commits) != 1 else ''}); summary: {done.summary_path}")
    return 0
