"""A pytest plugin for the driver process that sends it Ctrl-C at one named point of set-up
and the baseline, the way a user's Ctrl-C (or ``timeout -s INT``) lands there.

Loaded with ``-p interrupter`` (this folder on PYTHONPATH). ``INTERRUPT_AT`` names the point:
``N`` for the N-th event (1-based), or an event's label such as ``after Repository.update_refs#2``;
``0`` only lists the events. An event is the start or the end of a call of the driver's
set-up and recording parts (the run's git, run folder, log, audit, recorder, evaluator and the
set-up and baseline steps), and ``during Evaluator.evaluate`` a moment inside the baseline's
trial. Every event seen is listed in ``INTERRUPT_LOG``. The variables are removed at import, so
the trials, which load this plugin too (the driver forwards ``-p``), do nothing.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable

AT = os.environ.pop("INTERRUPT_AT", None)
LOG = os.environ.pop("INTERRUPT_LOG", None)

_seen: Counter[str] = Counter()
_events: list[str] = []
_done = False


def _event(what: str) -> None:
    global _done
    if _done:
        return
    _seen[what] += 1
    label = f"{what}#{_seen[what]}"
    _events.append(label)
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(label + "\n")
    if AT not in (None, "0") and AT in (str(len(_events)), label):
        _done = True
        os.kill(os.getpid(), signal.SIGINT)


def _wrap(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _event(f"before {label}")
        timer = None
        if label == "Evaluator.evaluate":
            timer = threading.Timer(0.05, _event, args=(f"during {label}",))  # inside the trial's run: a Python start alone takes longer
            timer.start()
        try:
            result = original(*args, **kwargs)
        finally:
            if timer is not None:
                timer.cancel()
        _event(f"after {label}")
        return result

    setattr(owner, name, wrapper)


def pytest_configure(config: Any) -> None:
    if AT is None or not config.getoption("autoresearch", False):
        return
    from pytest_autoresearch.engine import baseline, evaluation, recorder, setup
    from pytest_autoresearch.store import audit, gitstate, results_log, runfolder
    from pytest_autoresearch.system import manifest

    classes = [
        gitstate.Repository, runfolder.RunFolder, results_log.ResultsLog, audit.AuditTrail,
        manifest.Manifest, recorder.Recorder,
    ]
    for cls in classes:
        for name, value in list(vars(cls).items()):
            if callable(value) and not name.startswith("__") and not isinstance(value, (staticmethod, classmethod, type)):
                _wrap(cls, name, f"{cls.__name__}.{name}")
    _wrap(evaluation.Evaluator, "evaluate", "Evaluator.evaluate")
    for module, names in ((setup, ("_create", "_lock", "_open_worktree", "_add_slot")), (baseline, ("_start_log", "score"))):
        for name in names:
            _wrap(module, name, name)


def pytest_unconfigure(config: Any) -> None:
    global _done
    _done = True
    if LOG and AT == "0":
        Path(LOG).with_suffix(".done").write_text("\n".join(_events) + "\n", encoding="utf-8")
