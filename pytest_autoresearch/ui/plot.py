"""progress.png: a run at a glance, the chart karpathy's autoresearch draws.

One point per trial by its number: the baseline and the kept trials stand out in green with
a short label, discarded ones stay faint grey (they are most of a run and the least of its
story), trials parked for review get their own marker, and trials without a score (crash,
timeout, invalid, tamper) are red crosses along an edge so no trial goes unseen. The branch's
score (the last kept trial's, which later trials start from) is a step line; where a simpler
change, as good within the noise, moved it to a worse score, the best score kept is a dashed
line of its own, and the title names both. Labels lean away from the trend (up when lower is
better, down when higher is), and the crosses sit at the other edge.

matplotlib is an optional extra (the ``plot`` extra, see :func:`install_hint`): the loop never
needs it, so it is imported only when a plot is drawn. The figure is drawn on its own Agg
canvas without pyplot, so drawing touches no global state and is safe from any thread, and
the PNG is written to a temporary file then renamed, so a reader never sees half an image.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.records import TrialRecord, is_better

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def install_hint() -> str:
    """What to run to get matplotlib, for the way this plugin was installed."""
    from ..install_hint import pip_install

    return f"the progress plot needs matplotlib: {pip_install('plot')}"


SIZE = (12.0, 6.0)  # inches; at DPI this is a 1200 x 600 PNG whatever the run holds
DPI = 100
LABEL_CHARS = 30
LABEL_ANGLE = 30  # degrees
LABEL_PT = 8
GLYPH_PT = 4.5  # the mean width of a label's glyph, for fitting labels before drawing them
LINE_PX = 13  # labels whose lines are closer than this (pixels) would overlap
LOG_RANGE = 1e3  # all scores positive and spanning more than this factor: a log axis
NO_SCORE = ("crash", "timeout", "invalid", "tamper")

GREEN, DARK_GREEN, GREY, ORANGE, RED = "#2ca02c", "#1b6e1b", "#8c8c8c", "#e08a00", "#d62728"


class PlotUnavailable(Exception):
    """matplotlib is not installed; the message says how to install it."""


def available() -> bool:
    """Whether write_progress can draw (matplotlib and its Agg canvas import)."""
    try:
        _require()
    except PlotUnavailable:
        return False
    return True


def _require() -> None:
    try:
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401
    except ImportError as e:
        raise PlotUnavailable(install_hint()) from e


def _score(record: TrialRecord) -> float | None:
    s = record.score
    return s if s is not None and math.isfinite(s) else None


def running_best(records: Sequence[TrialRecord], goal: str) -> list[tuple[int, float]]:
    """The best kept score after each trial, from the first kept trial with a score.

    Only kept trials count: a discarded trial that scored better was not believed (noise, a
    broken bound) and the branch never held it.
    """
    best: float | None = None
    out: list[tuple[int, float]] = []
    for r in sorted(records, key=lambda r: r.trial):
        s = _score(r)
        if r.kept and s is not None and (best is None or is_better(s, best, goal)):
            best = s
        if best is not None:
            out.append((r.trial, best))
    return out


def branch_scores(records: Sequence[TrialRecord]) -> list[tuple[int, float]]:
    """The branch tip's score after each trial, from the first kept trial with a score: it
    moves with every keep, to a worse score too when a simpler change was kept as good
    within the noise (unlike :func:`running_best`, which never gets worse)."""
    tip: float | None = None
    out: list[tuple[int, float]] = []
    for r in sorted(records, key=lambda r: r.trial):
        s = _score(r)
        if r.kept and s is not None:
            tip = s
        if tip is not None:
            out.append((r.trial, tip))
    return out


def _tip_and_top(records: Sequence[TrialRecord], goal: str) -> tuple[TrialRecord, TrialRecord] | None:
    """The last kept trial with a score and the kept trial with the best score."""
    kept = [r for r in sorted(records, key=lambda r: r.trial) if r.kept and _score(r) is not None]
    if not kept:
        return None
    top = kept[-1]
    for r in kept:
        if is_better(r.score, top.score, goal):  # type: ignore[arg-type]
            top = r
    return kept[-1], top


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "\u2026"


def _title(records: Sequence[TrialRecord], goal: str, metric: str, title: str | None) -> str:
    trials = [r for r in records if r.status != "baseline"]
    counts = [f"{len(trials)} trial{'s' if len(trials) != 1 else ''}", f"{sum(r.status == 'keep' for r in trials)} kept"]
    if reviews := sum(r.status == "review" for r in trials):
        counts.append(f"{reviews} for review")
    if failed := sum(_score(r) is None or r.status in NO_SCORE for r in trials):
        counts.append(f"{failed} without a score")
    head = f"{title or 'autoresearch progress'}: " + (", ".join(counts) if trials else "baseline only")
    best = running_best(records, goal)
    base = next((_score(r) for r in records if r.status == "baseline"), None)
    if not best:
        return head
    ends = _tip_and_top(records, goal)
    if ends is not None and ends[0].trial != ends[1].trial:
        tip, top = ends
        at = f"best kept {top.score:.6g} (trial {top.trial})" if top.status != "baseline" else f"best kept {top.score:.6g}, the baseline"
        tail = f", baseline {base:.6g}" if base is not None and top.status != "baseline" else ""
        return f"{head}\nbranch {metric} {tip.score:.6g} (trial {tip.trial}), {at}{tail}"
    if not trials or best[-1][1] == base:
        return f"{head}\n{metric} {best[-1][1]:.6g}" + (", the baseline" if trials else "")
    return f"{head}\nbest {metric} {best[-1][1]:.6g}" + (f" (baseline {base:.6g})" if base is not None else "")


def _draw(ax: Axes, records: Sequence[TrialRecord], goal: str, metric: str) -> None:
    scored = [(r, s) for r in records if (s := _score(r)) is not None and r.status not in NO_SCORE]
    groups: dict[str, list[tuple[int, float]]] = {"baseline": [], "keep": [], "review": [], "discard": []}
    for r, s in scored:
        groups[r.status if r.status in groups else "discard"].append((r.trial, s))
    styles: dict[str, dict[str, Any]] = {
        "discard": dict(s=22, color=GREY, alpha=0.45, linewidths=0, zorder=2, label="discarded"),
        "review": dict(s=60, marker="s", facecolors="none", edgecolors=ORANGE, linewidths=1.6, zorder=3, label="parked for review"),
        "keep": dict(s=60, color=GREEN, edgecolors=DARK_GREEN, linewidths=0.8, zorder=5, label="kept"),
        "baseline": dict(s=90, marker="D", color=DARK_GREEN, edgecolors="black", linewidths=0.8, zorder=5, label="baseline"),
    }
    for name, style in styles.items():
        if points := groups[name]:
            ax.scatter([t for t, _ in points], [s for _, s in points], **style)

    tip, best = branch_scores(records), running_best(records, goal)
    if tip:
        last = max(r.trial for r in records)
        xs, ys = [t for t, _ in tip] + [last + 0.5], [b for _, b in tip] + [tip[-1][1]]
        ax.step(xs, ys, where="post", color=GREEN, linewidth=1.6, alpha=0.8, zorder=4, label="branch (last kept)" if tip != best else "best kept")
        if tip != best:
            xs, ys = [t for t, _ in best] + [last + 0.5], [b for _, b in best] + [best[-1][1]]
            ax.step(xs, ys, where="post", color=DARK_GREEN, linewidth=1.0, linestyle="--", alpha=0.7, zorder=4, label="best kept")

    failed = [r.trial for r in records if r.status in NO_SCORE or _score(r) is None]
    up = goal == "min"
    if failed:
        # x in data, y in axes: the edge, whatever the scores' scale
        ax.scatter(failed, [0.03 if up else 0.97] * len(failed), transform=ax.get_xaxis_transform(), marker="x", s=40,
                   color=RED, linewidths=1.6, zorder=5, clip_on=False, label="crash / timeout / invalid / tamper")

    kept = [(r.trial, s, _short(r.description)) for r, s in scored if r.kept]
    _limits(ax, [s for _, s in scored], [r.trial for r in records], [(t, len(text)) for t, _, text in kept], up)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({'lower' if goal == 'min' else 'higher'} is better)", parse_math=False)
    if engine := ax.figure.get_layout_engine():
        engine.execute(ax.figure)  # the axes' final place, so _unclutter measures real pixels
    for trial, score, text in _unclutter(ax, kept, up):
        note = ax.annotate(
            text, (trial, score), xytext=(5, 5 if up else -5), textcoords="offset points",
            rotation=LABEL_ANGLE if up else -LABEL_ANGLE, fontsize=LABEL_PT, color=DARK_GREEN, ha="left",
            va="bottom" if up else "top", rotation_mode="anchor", parse_math=False, zorder=6,
        )
        note.set_in_layout(False)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)


def _unclutter(ax: Axes, kept: list[tuple[int, float, str]], up: bool) -> list[tuple[int, float, str]]:
    """The kept trials to label: from the newest back, each whose label would not run over one
    already placed (a long run keeps more trials than there is room to name)."""
    angle = math.radians(LABEL_ANGLE if up else -LABEL_ANGLE)
    along, normal = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
    placed: list[tuple[float, float, float]] = []  # a label's anchor in pixels and its length
    chosen = []
    for trial, score, text in reversed(kept):
        x, y = ax.transData.transform((trial, score))
        length = len(text) * GLYPH_PT * DPI / 72
        if not any(
            abs((x - px) * normal[0] + (y - py) * normal[1]) < LINE_PX
            and -length < (x - px) * along[0] + (y - py) * along[1] < plength
            for px, py, plength in placed
        ):
            placed.append((x, y, length))
            chosen.append((trial, score, text))
    return chosen[::-1]


def _limits(ax: Axes, scores: list[float], trials: list[int], labelled: list[tuple[int, int]], up: bool) -> None:
    """Room for the crosses on one side of the points, for the labels on the other and to the right."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left, right = min(trials, default=0) - 1, max(trials, default=0) + 1
    for trial, chars in labelled:
        # a label's width as a share of the axes (8 pt glyphs about 4.5 pt wide, at 30 degrees,
        # on axes about 1100 px wide): widen the x range until the label ends inside them
        share = min(0.25, chars * GLYPH_PT * (DPI / 72) * math.cos(math.radians(LABEL_ANGLE)) / 1100 + 0.01)
        right = max(right, (trial - share * left) / (1 - share))
    ax.set_xlim(left, right)
    if not scores:
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no trial has a score yet", transform=ax.transAxes, ha="center", va="center", color=GREY)
        return
    log = min(scores) > 0 and max(scores) / min(scores) > LOG_RANGE
    values = [math.log10(s) for s in scores] if log else scores
    lo, hi = min(values), max(values)
    span = hi - lo or abs(hi) * 0.1 or 1.0
    lo, hi = (lo - 0.12 * span, hi + 0.3 * span) if up else (lo - 0.3 * span, hi + 0.12 * span)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # scores near the float limits: no room to add
        lo, hi = min(values), max(values)
    if log:
        ax.set_yscale("log")
        lo, hi = 10**lo, 10**hi
    ax.set_ylim(lo, hi)


def _figure(records: Sequence[TrialRecord], goal: str, metric: str, title: str | None) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = sorted(records, key=lambda r: r.trial)
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, explicitly: no pyplot, no backend switch
    ax = fig.add_subplot()
    ax.set_title(_title(rows, goal, metric, title), fontsize=12, parse_math=False)
    _draw(ax, rows, goal, metric)
    return fig


def write_progress(
    records: Sequence[TrialRecord], *, goal: str, metric: str, path: Path, title: str | None = None
) -> Path:
    """Draw the run's progress chart to ``path`` (a PNG, 1200 x 600) and return ``path``.

    Raises PlotUnavailable when matplotlib is not installed.
    """
    _require()
    fig = _figure(records, goal, metric, title)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
