"""progress.png: a real PNG of a fixed size, every kind of trial drawn, the running best, no half files."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_autoresearch.install_hint import pip_install
from pytest_autoresearch.ui import plot
from pytest_autoresearch.ui.plot import PlotUnavailable, available, running_best, write_progress
from pytest_autoresearch.core.records import TrialRecord

needs_matplotlib = pytest.mark.skipif(not available(), reason="matplotlib is not installed (the plot extra)")

WIDTH, HEIGHT = 1200, 600


def rec(trial: int, status: str, score: float | None = None, description: str = "") -> TrialRecord:
    return TrialRecord(trial=trial, status=status, description=description or f"idea {trial}", score=score)


def mixed_run() -> list[TrialRecord]:
    """Lower is better: a baseline, keeps, discards (one better than the best but not believed),
    a review, a crash and a timeout without a score, a tamper."""
    return [
        rec(0, "baseline", 1.0, "baseline"),
        rec(1, "discard", 1.05),
        rec(2, "keep", 0.9, "raise the learning rate to 0.04 and warm up longer"),
        rec(3, "crash"),
        rec(4, "discard", 0.85),  # better than the best, discarded (noise): not a new best
        rec(5, "review", 0.8, "change the loss (reviewed file)"),
        rec(6, "timeout"),
        rec(7, "keep", 0.88, "tie the embeddings"),
        rec(8, "tamper"),
        rec(9, "discard", 0.95),
    ]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND"  # the whole file, not a prefix of one
    return width, height


def pixels_like(path: Path, color: str, tolerance: float = 0.06) -> int:
    """How many pixels of the decoded image are within ``tolerance`` of ``color`` (per channel)."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape == (HEIGHT, WIDTH, 4)
    rgb = to_rgb(color)
    return int((abs(image[:, :, :3] - rgb) <= tolerance).all(axis=2).sum())


@needs_matplotlib
def test_mixed_run_is_a_whole_png_of_the_fixed_size_with_every_kind_drawn(tmp_path: Path) -> None:
    path = write_progress(mixed_run(), goal="min", metric="val_bpb", path=tmp_path / "progress.png")
    assert path == tmp_path / "progress.png"
    assert png_size(path) == (WIDTH, HEIGHT)
    assert pixels_like(path, plot.GREEN) > 50  # kept trials
    assert pixels_like(path, plot.DARK_GREEN) > 20  # the baseline, the labels
    assert pixels_like(path, plot.ORANGE) > 10  # the review
    assert pixels_like(path, plot.RED) > 10  # crash, timeout, tamper


@pytest.mark.parametrize("goal", ["min", "max"])
def test_the_running_best_follows_kept_trials_only(goal: str) -> None:
    sign = 1 if goal == "min" else -1  # the same run mirrored: for max, higher is better
    records = [
        rec(0, "baseline", sign * 1.0),
        rec(1, "discard", sign * 0.5),  # better, but not believed
        rec(2, "crash"),
        rec(3, "keep", sign * 0.9),
        rec(4, "review", sign * 0.1),  # would be kept, parked: the branch never held it
        rec(5, "keep", sign * 0.95),  # kept for fewer lines, not a better score
        rec(6, "keep", sign * 0.7),
        rec(7, "discard", sign * 2.0),
    ]
    assert running_best(records, goal) == [
        (0, sign * 1.0), (1, sign * 1.0), (2, sign * 1.0), (3, sign * 0.9),
        (4, sign * 0.9), (5, sign * 0.9), (6, sign * 0.7), (7, sign * 0.7),
    ]
    assert running_best(list(reversed(records)), goal) == running_best(records, goal)


def test_the_running_best_starts_at_the_first_kept_score() -> None:
    records = [rec(0, "baseline"), rec(1, "crash"), rec(2, "keep", 3.0), rec(3, "discard", 1.0)]
    assert running_best(records, "max") == [(2, 3.0), (3, 3.0)]
    assert running_best([rec(0, "crash"), rec(1, "timeout")], "min") == []


@needs_matplotlib
def test_a_max_run_draws_too(tmp_path: Path) -> None:
    records = [rec(r.trial, r.status, None if r.score is None else 2 - r.score, r.description) for r in mixed_run()]
    path = write_progress(records, goal="max", metric="accuracy", path=tmp_path / "p.png", title="clinical")
    assert png_size(path) == (WIDTH, HEIGHT)
    assert pixels_like(path, plot.GREEN) > 50
    assert pixels_like(path, plot.RED) > 10


@needs_matplotlib
def test_only_a_baseline(tmp_path: Path) -> None:
    path = write_progress([rec(0, "baseline", 0.5, "baseline")], goal="min", metric="loss", path=tmp_path / "p.png")
    assert png_size(path) == (WIDTH, HEIGHT)
    assert pixels_like(path, plot.DARK_GREEN) > 20
    assert pixels_like(path, plot.RED) == 0
    assert plot._title([rec(0, "baseline", 0.5)], "min", "loss", None) == "autoresearch progress: baseline only\nloss 0.5"


@needs_matplotlib
def test_all_crashes(tmp_path: Path) -> None:
    records = [rec(0, "baseline"), rec(1, "crash"), rec(2, "timeout"), rec(3, "invalid")]
    path = write_progress(records, goal="min", metric="loss", path=tmp_path / "p.png")
    assert png_size(path) == (WIDTH, HEIGHT)
    assert pixels_like(path, plot.RED) > 10
    assert pixels_like(path, plot.GREEN) == 0
    assert plot._title(records, "min", "loss", None) == "autoresearch progress: 3 trials, 0 kept, 3 without a score"


def test_the_title_counts_trials_keeps_reviews_and_failures() -> None:
    assert plot._title(mixed_run(), "min", "val_bpb", "nov26") == (
        "nov26: 9 trials, 2 kept, 1 for review, 3 without a score\nbest val_bpb 0.88 (baseline 1)"
    )


@needs_matplotlib
def test_huge_positive_ranges_get_a_log_axis_others_a_linear_one() -> None:
    huge = [rec(0, "baseline", 1e6), rec(1, "keep", 10.0), rec(2, "discard", 1e-3)]
    assert plot._figure(huge, "min", "ns", None).axes[0].get_yscale() == "log"
    signed = [rec(0, "baseline", 1e6), rec(1, "keep", -1e6)]
    assert plot._figure(signed, "min", "x", None).axes[0].get_yscale() == "linear"
    narrow = [rec(0, "baseline", 1.0), rec(1, "keep", 0.999)]
    ax = plot._figure(narrow, "min", "x", None).axes[0]
    assert ax.get_yscale() == "linear"
    low, high = ax.get_ylim()
    assert low < 0.999 and high > 1.0


@needs_matplotlib
def test_labels_are_short_and_plain_text(tmp_path: Path) -> None:
    assert plot._short("a  b\tc") == "a b c"
    long = plot._short("x" * 100)
    assert len(long) == plot.LABEL_CHARS and long.endswith("\u2026")
    # mathtext would refuse this (an unknown command): descriptions are drawn as they are
    records = [rec(0, "baseline", 1.0, r"cost $\notacommand{5}$"), rec(1, "keep", 0.5, r"$\frac{")]
    assert png_size(write_progress(records, goal="min", metric="$loss", path=tmp_path / "p.png")) == (WIDTH, HEIGHT)


def test_missing_matplotlib_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not available()
    with pytest.raises(PlotUnavailable) as info:
        write_progress(mixed_run(), goal="min", metric="loss", path=tmp_path / "p.png")
    assert str(info.value) == f"the progress plot needs matplotlib: {pip_install('plot')}"
    assert list(tmp_path.iterdir()) == []


@needs_matplotlib
def test_available_with_matplotlib() -> None:
    assert available()


@needs_matplotlib
def test_a_write_leaves_only_the_png_and_replaces_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "progress.png"
    target.write_bytes(b"old")
    write_progress(mixed_run(), goal="min", metric="loss", path=target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.png"]
    assert png_size(target) == (WIDTH, HEIGHT)


@needs_matplotlib
def test_a_failed_write_keeps_the_old_png_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    target = tmp_path / "progress.png"
    write_progress([rec(0, "baseline", 1.0)], goal="min", metric="loss", path=target)
    before = target.read_bytes()

    def half_then_fail(self: Figure, f: object, **kwargs: object) -> None:
        f.write(b"\x89PNG\r\n\x1a\nhalf")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_progress(mixed_run(), goal="min", metric="loss", path=target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.png"]


@needs_matplotlib
def test_threads_draw_side_by_side(tmp_path: Path) -> None:
    errors: list[Exception] = []

    def draw(i: int) -> None:
        try:
            write_progress(mixed_run(), goal="min" if i % 2 else "max", metric="m", path=tmp_path / f"{i}.png")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(png_size(tmp_path / f"{i}.png") == (WIDTH, HEIGHT) for i in range(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.png", "1.png", "2.png"]


@needs_matplotlib
def test_drawing_never_touches_pyplot(tmp_path: Path) -> None:
    """pyplot holds global state (a current figure, a backend): a plugin must not start it."""
    code = (
        "import sys; from pathlib import Path\n"
        "from pytest_autoresearch.plot import write_progress\n"
        "from pytest_autoresearch.records import TrialRecord\n"
        f"write_progress([TrialRecord(0, 'baseline', 'b', score=1.0)], goal='min', metric='m', path=Path({str(tmp_path / 'p.png')!r}))\n"
        "print('matplotlib.pyplot' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    env = {**os.environ, "MPLBACKEND": "TkAgg"}  # a user's interactive backend stays untouched
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
    assert png_size(tmp_path / "p.png") == (WIDTH, HEIGHT)


@needs_matplotlib
def test_kept_trials_are_labelled_until_labels_would_overlap() -> None:
    ax = plot._figure(mixed_run(), "min", "val_bpb", None).axes[0]
    assert [t.get_text() for t in ax.texts] == ["baseline", "raise the learning rate to 0.\u2026", "tie the embeddings"]
    dense = [rec(0, "baseline", 1000.0, "baseline")] + [rec(i, "keep", 1000.0 - i, f"step {i}") for i in range(1, 400)]
    labels = [t.get_text() for t in plot._figure(dense, "min", "loss", None).axes[0].texts]
    assert 10 < len(labels) < 200
    assert labels[-1] == "step 399"  # the newest best is always named
