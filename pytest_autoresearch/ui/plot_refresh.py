"""progress.png during a run: redrawn in the background now and then, and once at the end.

Drawing must neither slow the loop nor end a night's run: it happens in a thread, at most
every :data:`PLOT_EVERY` seconds, and any problem only turns the plot off with a note. A run of
baselines alone (``--autoresearch-trials=0``) is not drawn: one point is no chart, and matplotlib
would cost it a second.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..core.records import MetricSpec, Status, TrialRecord

#: Seconds between refreshes of progress.png.
PLOT_EVERY = 30.0


@contextlib.contextmanager
def _matplotlib_home(folder: Path) -> Iterator[None]:
    """matplotlib settles where its font cache lives when it is first imported (MPLCONFIGDIR,
    else ~/.cache): the run folder's, unless you chose one, so that drawing writes nowhere else.
    The variable is set only around the drawing, so trials keep your environment."""
    if "MPLCONFIGDIR" in os.environ:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MPLCONFIGDIR"] = str(folder)
    try:
        yield
    finally:
        os.environ.pop("MPLCONFIGDIR", None)


class PlotRefresher:
    def __init__(self, folder: Path, tag: str, metric: Callable[[], MetricSpec | None]) -> None:
        from . import plot

        self.plot: Any = plot  # None once drawing failed or matplotlib is missing
        self.folder = folder
        self.tag = tag
        self.metric = metric
        self.written = time.monotonic()  # the first refresh comes after PLOT_EVERY seconds
        self.thread: threading.Thread | None = None
        self.problem: str | None = None

    @property
    def path(self) -> Path:
        return self.folder / "progress.png"

    def after_trial(self, records: Sequence[TrialRecord]) -> None:
        if self.plot is None or time.monotonic() - self.written < PLOT_EVERY:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        self.written = time.monotonic()
        self.thread = threading.Thread(target=self.write, args=(list(records),), daemon=True, name="autoresearch plot")
        self.thread.start()

    def final(self, records: Sequence[TrialRecord]) -> None:
        if self.thread is not None:
            self.thread.join()
        self.write(list(records))

    def write(self, records: list[TrialRecord]) -> None:
        plot, metric = self.plot, self.metric()
        if plot is None or metric is None or all(r.status is Status.BASELINE for r in records):
            return
        try:
            with _matplotlib_home(self.folder / "cache" / "matplotlib"):
                plot.write_progress(records, goal=metric.goal, metric=metric.name, path=self.path, title=f"autoresearch run {self.tag}")
        except plot.PlotUnavailable as exc:
            self.problem = str(exc)
            self.plot = None
        except Exception as exc:  # a plot must never end a night's run
            self.problem = f"progress.png could not be written: {type(exc).__name__}: {exc}"
            self.plot = None
