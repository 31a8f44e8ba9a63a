"""What a user reads about the best: the branch tip and the best score kept, each called what it
is; a worse score never called better; a better score that was discarded says why.

Pure formatting over hand-made records (the trial line, the final table, the summary, the
prompt, SUMMARY.md's change and title, the plot's lines); no git, no subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_autoresearch.agents.base import ProposalContext
from pytest_autoresearch.agents.prompt import render_prompt
from pytest_autoresearch.core.history import History, change_words
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.proposals.surface import Surface
from pytest_autoresearch.store.runfolder import RunMeta
from pytest_autoresearch.ui import plot, summary_md
from pytest_autoresearch.ui.summary_md import RunView, Step, change, title
from pytest_autoresearch.ui.terminal import live_line, progress, summary, table

MIN = MetricSpec("tests/test_fit.py::test_score", "score", "min", True)
SIMPLER = "score 6.06 is as good as the best 5.2 within the noise (0.9), with 3 fewer lines"


def rec(trial: int, status: str, score: float | None, *, parent: float | None = None, reason: str = "", lines: int | None = None) -> TrialRecord:
    delta = None if score is None or parent is None else score - parent
    return TrialRecord(trial, status, f"change {trial}", commit=f"{trial:040d}", score=score, delta=delta, reason=reason, lines=lines)  # type: ignore[arg-type]


def drifted() -> list[TrialRecord]:
    """Baseline 5.2 (min); trial 1 kept 5.1; trial 2 kept 6.06 as simpler within a wide noise
    window of the incumbent; trial 3 scored better but was not beyond the noise."""
    return [
        rec(0, "baseline", 5.2),
        rec(1, "keep", 5.1, parent=5.2),
        rec(2, "keep", 6.06, parent=5.1, reason=SIMPLER, lines=-3),
        rec(3, "discard", 5.9, parent=6.06, reason="score 5.9 is better than the best 6.06 but not beyond the noise (needs < 5.16: ...)"),
        rec(4, "discard", 6.5, parent=6.06, reason="score 6.5 is worse than the best 6.06"),
    ]


def lines_of(records: list[TrialRecord]) -> list[str]:
    return summary(records, goal="min", metric="score", branch="autoresearch/t", log_path="/r/.autoresearch/t/results.tsv", tag="t",
                   base_ref="abcdef1234", stop_reason=None)


def test_the_summary_tells_the_branch_tip_from_the_best_kept_and_never_calls_worse_better() -> None:
    first = lines_of(drifted())[0]
    assert first == "score (min): baseline 5.2 -> 6.06 on the branch (trial 2, 16.5% worse); best kept 5.1 (trial 1, 1.9% better)"
    only_worse = lines_of([rec(0, "baseline", 5.2), rec(1, "keep", 5.5, parent=5.2, reason=SIMPLER, lines=-1)])[0]
    assert only_worse == "score (min): baseline 5.2 -> 5.5 on the branch (trial 1, 5.8% worse); best kept 5.2 (the baseline)"
    honest = lines_of([rec(0, "baseline", 0.217416), rec(9, "keep", 0.0261724, parent=0.217416)])[0]
    assert honest == "score (min): baseline 0.217416 -> best 0.0261724 (trial 9, 88.0% better)"
    assert "better" not in lines_of([rec(0, "baseline", 5.2), rec(1, "discard", 5.3, parent=5.2)])[0]
    readme = [rec(0, "baseline", 5.2), rec(4, "keep", 5.1, parent=5.2), rec(9, "keep", 5.31, parent=5.1, reason=SIMPLER, lines=-2)]
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"`{lines_of(readme)[0].replace('score (min)', 'test_error (min)')}`" in text  # the README's line is the real one


def test_change_words() -> None:
    assert change_words(6.06, 5.2, "min") == "16.5% worse"
    assert change_words(4.0, 5.0, "min") == "20.0% better"
    assert change_words(4.0, 5.0, "max") == "20.0% worse"
    assert change_words(5.0, 5.0, "max") == "no change"
    assert change_words(1.0, 0.0, "max") == "better" and change_words(-1.0, 0.0, "max") == "worse"


def test_the_trial_line_shows_why_a_better_score_was_discarded() -> None:
    records = drifted()
    better = live_line(records[3], goal="min")
    assert better.startswith("trial   3  discard")
    assert better.endswith("change 3  [score 5.9 is better than the best 6.06 but not beyond the noise (needs < 5.16: ...)]")
    assert "[" not in live_line(records[4], goal="min")  # a worse score says nothing the delta does not
    assert live_line(records[2], goal="min").endswith(f"change 2  [{SIMPLER}]")  # a keep that looks worse says why
    bound = rec(5, "discard", 4.0, parent=6.06, reason="breaks a bound: slope 2.5 is above its max 2.4")
    assert live_line(bound, 100, goal="min").endswith("[breaks a bound: slope 2.5 is above its max 2.4]")  # cut, the reason stays
    bound.description = "a very long description " * 10
    assert live_line(bound, 120, goal="min").endswith("...  [breaks a bound: slope 2.5 is above its max 2.4]")


def test_the_final_table_shows_the_same_reasons() -> None:
    rows = table(drifted(), goal="min").splitlines()
    row = {int(line.split()[0]): line for line in rows[2:]}
    assert row[3].rstrip().endswith("change 3  [score 5.9 is better than the best 6.06 but not beyond the noise (needs < 5.16: ...)]")
    assert row[2].rstrip().endswith(f"[{SIMPLER}]")
    assert row[4].rstrip().endswith("change 4")


def test_progress_names_the_branch_tip_and_the_best_kept_when_they_differ() -> None:
    history = History(drifted())
    text = progress(done=4, total=10, elapsed=40.0, time_limit=None, best=history.best, best_kept=history.best_kept("min"))
    assert text == "4/10, branch 6.06 (trial 2), best kept 5.1 (trial 1), eta 1:00"
    same = History(drifted()[:2])
    assert progress(done=1, total=2, elapsed=1.0, time_limit=None, best=same.best, best_kept=same.best_kept("min")) == "1/2, best 5.1 (trial 1), eta 0:01"


def _context(records: list[TrialRecord]) -> ProposalContext:
    history = History(records)
    return ProposalContext(
        trial=5, tag="t", rootdir=Path("."), workdir=Path("."), surface=Surface(["model.py"]), files={"model.py": "X = 1\n"},
        program="Be good.", metric=MIN, baseline=records[0], best=history.best, history=records, last_failure=None,
        trials_left=None, read=lambda p: None,
    )


def test_the_prompt_calls_the_branch_what_it_is() -> None:
    text = render_prompt(_context(drifted()), "Answer.").user
    assert "Baseline: 5.2. The branch is at 6.06 from trial 2 (16.5% worse than the baseline); your change starts from it." in text
    assert "The best score kept: 5.1 from trial 1 (1.9% better than the baseline)" in text
    assert "better than the baseline)" not in text.split("The best score kept")[0]
    plain = render_prompt(_context(drifted()[:2]), "Answer.").user
    assert "Baseline: 5.2. Current best: 5.1 from trial 1 (1.9% better than the baseline)." in plain
    assert "or, with fewer lines, stays as good within that noise." in plain  # the simplicity rule, as the loop applies it


def test_summary_md_never_calls_a_worse_score_better() -> None:
    records = drifted()
    meta = RunMeta("t", "0" * 40, "main", MIN, [], [], False, None)
    run = RunView(tag="t", meta=meta, records=records, start="0" * 40, tip=records[2].commit)
    steps = [Step(records[1], records[0]), Step(records[2], records[1])]
    assert title(run, steps) == "autoresearch run t: score 5.2 -> 6.06 (16.5% worse)"
    assert change(steps[1], "min") == f"+0.96, 18.8% worse, kept: {SIMPLER}"
    assert change(steps[0], "min") == "-0.1, 1.9% better"
    result = summary_md._metric_section(run, records[0], records[2]).splitlines()
    assert result[3] == "- baseline 5.2 -> 6.06 at the branch tip (trial 2): +0.86, 16.5% worse"
    assert result[4] == "- best score kept 5.1 (trial 1: -0.1, 1.9% better); later changes with fewer lines, as good within the noise, replaced it"


def test_the_plot_follows_the_branch_and_names_both() -> None:
    records = drifted()
    assert plot.branch_scores(records) == [(0, 5.2), (1, 5.1), (2, 6.06), (3, 6.06), (4, 6.06)]
    assert plot.running_best(records, "min")[-1] == (4, 5.1)
    head = plot._title(records, "min", "score", None)
    assert head.splitlines()[1] == "branch score 6.06 (trial 2), best kept 5.1 (trial 1), baseline 5.2"


@pytest.mark.skipif(not plot.available(), reason="matplotlib is an optional extra (pytest-autoresearch[plot])")
def test_a_drifted_run_draws(tmp_path: Path) -> None:
    path = plot.write_progress(drifted(), goal="min", metric="score", path=tmp_path / "progress.png")
    assert path.read_bytes().startswith(b"\x89PNG")
