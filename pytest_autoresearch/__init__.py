"""pytest-autoresearch: fitness tests and an autonomous keep-if-better research loop for pytest.

This package is imported by every pytest run that has the plugin installed, so it imports
nothing beyond the standard library at load time. The driver and its dependencies
(GitPython, tabulate, later litellm) load only when ``--autoresearch`` is given.

The layers, lowest first (``docs/architecture.md`` says what each may import):
``names``/``errors``; ``core`` (pure); ``system`` and ``store``; ``proposals``; the evaluator's
side (``fitness``, ``settings``, ``hookspecs``, ``trial_plugin``, ``fitness_json``, ``torch``);
``agents``; ``engine``; ``ui``; and ``plugin``, the entry point.

Modules moved in the redesign keep their old import paths (``pytest_autoresearch.records``,
``.decision``, ``.noise``, ``.proposal``, ...): :class:`_MovedModules` answers an import of an old
name with the module that now holds it, and only when that old name is imported.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

__version__ = "0.1.0"

__all__ = ["__version__"]

#: Old module (before the layered layout) -> the module that holds its names now.
MOVED = {
    "records": "core.records",
    "noise": "core.noise",
    "decision": "core.verdict",
    "surface": "proposals.surface",
    "diffs": "proposals.diffs",
    "answers": "proposals.answers",
    "proposal": "proposals.proposal",
    "manifest": "system.manifest",
    "sandbox": "system.sandbox",
    "trial": "engine.trial_process",
    "gitstate": "store.gitstate",
    "runfolder": "store.runfolder",
    "results_log": "store.results_log",
    "audit": "store.audit",
    "runsetup": "engine.setup",
    "evaluation": "engine.evaluation",
    "loop": "engine.loop",
    "workers": "engine.schedule",
    "distributed": "engine.ray_backend",
    "driver": "ui.driver",
    "reporting": "ui.terminal",
    "plot": "ui.plot",
    "report": "ui.report_command",
    "finalize": "ui.finalize",
    "child": "trial_plugin",
    "ciguard": "fitness_json",
}


class _MovedModules:
    """``import pytest_autoresearch.<old>`` gives the module that holds its names now (a meta path
    finder and its loader; plain methods, so that no ``importlib.abc`` import slows every pytest run)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, leaf = fullname.rpartition(".")
        if package != __name__ or leaf not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")
        self._spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec  # the import machinery stamped the old name's spec on it


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
