"""The pytest entry point: options, the fitness marker and fixture, and opt-in registration.

This module loads in every pytest run of every project that installs the plugin, so it
stays light: the driver (and GitPython, tabulate) is imported only under ``--autoresearch``,
the trial-side reporter only inside a trial subprocess.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .fitness import MARKER_HELP, FitnessPlugin
from .fitness import fitness as fitness  # the fixture: pytest finds it on this module
from .names import RUN_DIR_NAME, TRIAL_ENV
from .options import OPTIONS

_UNIONS = tuple(int(p) for p in pytest.__version__.split(".")[:2] if p.isdigit()) >= (9, 2)

# Taken when this entry point is imported, before any conftest or test module runs, so that
# candidate code in a trial never sees where the result goes or the nonce that makes it valid.
_trial_channel: dict | None = None
if TRIAL_ENV in os.environ:
    from .trial_plugin import arm, receive

    _trial_channel = receive(os.environ.pop(TRIAL_ENV))
    arm()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register every flag and ini key of the table in :mod:`.options`.

    The flags default to None (a switch to False), not to the setting's default, so that
    ``load_settings`` can tell an unset flag from a given one and let the ini file answer.
    """
    group = parser.getgroup("autoresearch", "autonomous research loop over fitness tests")
    for option in OPTIONS:
        if option.cli == "":
            group.addoption(option.flag, action="store_true", default=False, help=option.help)
        elif option.cli is not None:
            group.addoption(option.flag, metavar=option.cli, default=None, help=option.help)
    for option in OPTIONS:
        if option.ini is not None:
            _addini(parser, option.name, option.help, option.ini, option.ini_default)


def _addini(parser: pytest.Parser, name: str, help: str, kind: str, default: object) -> None:
    """A "string" setting also takes a TOML number under pytest 9's native ``[tool.pytest]``
    (``autoresearch_timeout = 120``), where pytest checks types: unions came with pytest 9.2
    (before it, write ``"120"`` there). ``str`` first, so INI files' values stay strings."""
    if kind == "string" and _UNIONS:
        parser.addini(name, help, type=str | int | float, default=default)
    else:
        parser.addini(name, help, type=None if kind == "string" else kind, default=default)  # type: ignore[arg-type]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before pytest imports a conftest: the loop's processes write no bytecode into your checkout."""
    known = early_config.known_args_namespace
    if any(getattr(known, name, False) for name in ("autoresearch", "autoresearch_report", "autoresearch_finalize")):
        from .system.bytecode import keep_out_of_checkout

        keep_out_of_checkout()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--autoresearch-report`` and ``--autoresearch-finalize`` read a run and exit, like ``--fixtures``."""
    if config.getoption("autoresearch_report") or config.getoption("autoresearch_finalize"):
        from .ui import report_command as report

        return report.finalize_command(config) if config.getoption("autoresearch_finalize") else report.report(config)
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.pluginmanager.register(FitnessPlugin(config), "autoresearch-fitness")
    if config.getoption("autoresearch_save") or config.getoption("autoresearch_check"):
        from .fitness_json import CiGuard

        config.pluginmanager.register(CiGuard(config), "autoresearch-ciguard")
    global _trial_channel
    channel, _trial_channel = _trial_channel, None  # once: pytest runs inside the trial do not report
    if channel is not None:
        from .benchmark import quiet
        from .trial_plugin import TrialReporter

        quiet(config, trial=True)  # before pytest-benchmark's own (trylast) configure reads its options

        config.pluginmanager.register(TrialReporter(config, channel), "autoresearch-trial")
    elif config.getoption("autoresearch") and not hasattr(config, "workerinput"):
        from .benchmark import quiet
        from .ui.driver import Driver

        quiet(config, trial=False)

        config.pluginmanager.register(Driver(config), "autoresearch-driver")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Run folders hold worktrees full of copies of the user's tests.
    if collection_path.name == RUN_DIR_NAME and collection_path.parent == config.rootpath:
        return True
    return None
