"""The harness's own state inside a trial, snapshotted before candidate code runs and compared
when the result is written: what a forger inside the trial's process would have to change.

Code in one process can reach all of that process, so these are checks, not walls; each change
they find is reported in the trial's ``tampered`` list (the verdict makes it ``tamper``):

- the harness's modules (this package's, pytest's, pluggy's) and the modules the result is
  written with (``json``, ``json.encoder``, ``os``, ``builtins``): every name bound in them or in
  their classes, and every function's code object and defaults, by identity (a
  ``__code__`` swapped into ``Fitness.__call__`` keeps the function but not its code);
- their ``sys.modules`` entries (a module swapped for a lookalike);
- the plugins registered on the session's plugin manager and the hook implementations it calls
  (a plugin registered from the candidate's code, found through ``gc``);
- a test item's ``user_properties``, where a score travels: a plain ``list`` of plain
  ``(str, value)`` tuples, one score at most (a ``list`` subclass rewrites what is appended).

The names the result is written with are also put back before it is written, so a patched
``json.dumps`` or builtin cannot rewrite the report that says it was patched.
"""

from __future__ import annotations

import builtins
import json
import json.encoder
import os
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: Modules whose names, classes and functions a forger would change; prefixes of sys.modules keys.
HARNESS = ("pytest_autoresearch", "_pytest", "pytest", "pluggy")
#: Modules the result is written with: checked and put back before it is written.
WRITERS = (json, json.encoder, os, builtins)
_EXACT_VALUES = (float, int, str)

#: Bound at run time by the harness itself (pytest's lazy caches), not a forger's doing.
_MOVING = frozenset({("pytest_autoresearch.fitness", "frozen_check")})
_FUNCTIONS = (types.FunctionType,)


def _harness_modules() -> list[types.ModuleType]:
    out = []
    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and (name in HARNESS or name.startswith(tuple(p + "." for p in HARNESS))):
            out.append(module)
    return out


def _function_state(fn: types.FunctionType, defaults: bool = True) -> tuple[object, ...]:
    # __globals__ and __closure__ cannot be rebound; each read here is an audit event, so the
    # defaults are read again only where there were some
    return (fn.__code__, fn.__defaults__, fn.__kwdefaults__) if defaults else (fn.__code__,)


class Snapshot:
    """Names, classes and functions of a set of modules, by identity, as they were."""

    def __init__(self, modules: Iterable[types.ModuleType]) -> None:
        self.modules: list[tuple[types.ModuleType, dict[str, object]]] = []
        self.classes: list[tuple[str, type, dict[str, object]]] = []
        self.functions: list[tuple[str, types.FunctionType, tuple[object, ...]]] = []
        seen: set[object] = set()  # classes and functions hash by identity (id() is an audit event)
        for module in modules:
            names = dict(vars(module))
            self.modules.append((module, names))
            for key, value in names.items():
                where = f"{module.__name__}.{key}"
                if isinstance(value, type) and value.__module__ == module.__name__ and value not in seen:
                    seen.add(value)
                    attrs = dict(vars(value))
                    self.classes.append((where, value, attrs))
                    for attr, member in attrs.items():
                        fn = getattr(member, "__func__", member)
                        if isinstance(fn, _FUNCTIONS) and fn not in seen:
                            seen.add(fn)
                            self.functions.append((f"{where}.{attr}", fn, _function_state(fn)))
                elif isinstance(value, _FUNCTIONS) and value not in seen:
                    seen.add(value)
                    self.functions.append((where, value, _function_state(value)))

    def changes(self, restore: bool = False) -> list[str]:
        """What differs now, each described; with ``restore``, the module's names are put back."""
        found = []
        for module, names in self.modules:
            current = vars(module)
            for key, value in names.items():
                if current.get(key, _MISSING) is not value and (module.__name__, key) not in _MOVING:
                    found.append(f"{module.__name__}.{key}")
                    if restore:
                        current[key] = value
        for where, cls, attrs in self.classes:  # their methods: pytest keeps data on some classes
            current = vars(cls)
            found += [f"{where}.{k}" for k, v in attrs.items() if current.get(k, _MISSING) is not v and (_code_like(v) or _code_like(current.get(k)))]
            found += [f"{where}.{k} (added)" for k in current.keys() - attrs.keys() if _code_like(current[k])]
        for where, fn, state in self.functions:
            now = _function_state(fn, state[1] is not None or state[2] is not None)
            if any(a is not b for a, b in zip(now, state)):
                found.append(f"{where} (its code or defaults)")
        return found


_MISSING = object()


def _code_like(value: object) -> bool:
    """A class attribute that runs code: a function, a method wrapper, a descriptor."""
    return callable(value) or hasattr(type(value), "__get__") or isinstance(value, (classmethod, staticmethod, property))


class HarnessState:
    """Everything :mod:`trial_state` checks, taken when the trial's reporter is created."""

    def __init__(self, extra_modules: Sequence[types.ModuleType] = ()) -> None:
        modules = _harness_modules()
        self.harness = Snapshot([*modules, *extra_modules])
        self.writers = Snapshot(WRITERS)
        ours = {id(m) for m in [*modules, *WRITERS]}
        self.entries = {name: module for name, module in sys.modules.items() if id(module) in ours}
        self.plugins: set[int] = set()
        self.conftests: Callable[[], Iterable[object]] = lambda: ()

    def watch_plugins(self, pluginmanager: Any) -> None:
        self.plugins = {id(p) for p in pluginmanager.get_plugins()}
        self.conftests = lambda: getattr(pluginmanager, "_conftest_plugins", ())
        self.hookexec = pluginmanager._hookexec

    def tampered(self, pluginmanager: Any, candidate: Callable[[str], bool]) -> list[str]:
        """What a forger changed, each as a ``<...>`` line for the trial's report."""
        found = [f"<{what} was replaced at run time>" for what in self.writers.changes(restore=True)]
        found += [f"<{what} was replaced at run time>" for what in self.harness.changes()]
        for name, module in self.entries.items():
            if sys.modules.get(name) is not module:
                found.append(f"<sys.modules[{name!r}] was replaced at run time>")
        found += self._plugins(pluginmanager, candidate)
        return found

    def _plugins(self, pm: Any, candidate: Callable[[str], bool]) -> list[str]:
        conftests = {id(c) for c in self.conftests()}
        plugins = pm.get_plugins()
        ids = {id(p) for p in plugins}
        found = []
        for plugin in plugins:
            if id(plugin) in self.plugins or id(plugin) in conftests:
                continue
            source = _source_of(plugin)
            if source is None or candidate(source):
                found.append(f"<a plugin was registered from trial code at run time: {pm.get_name(plugin)!r} ({source or 'no source file'})>")
        if getattr(self, "hookexec", None) is not None and pm._hookexec != self.hookexec:
            found.append("<the plugin manager's hook caller was replaced at run time>")
        for name, caller in list(vars(pm.hook).items()):
            for impl in getattr(caller, "get_hookimpls", lambda: ())():
                code = getattr(getattr(impl.function, "__func__", impl.function), "__code__", None)
                if id(impl.plugin) not in ids:
                    found.append(f"<a hook implementation of {name} belongs to no registered plugin>")
                elif code is not None and id(impl.plugin) not in conftests and candidate(code.co_filename):
                    found.append(f"<{name} was implemented by trial code at run time ({code.co_filename})>")
        return sorted(set(found))


def _source_of(plugin: object) -> str | None:
    """The file that defines a plugin (a module's own, an object's class's module's)."""
    module = plugin if isinstance(plugin, types.ModuleType) else sys.modules.get(getattr(type(plugin), "__module__", ""))
    filename = getattr(module, "__file__", None)
    return filename if isinstance(filename, str) else None


def odd_properties(properties: object) -> list[str]:
    """Why a test's ``user_properties`` cannot be what the fitness fixture wrote: not a plain
    list of plain ``(str, number or str)`` tuples, or more than one score in it."""
    if type(properties) is not list:
        return [f"its user_properties are a {type(properties).__qualname__}, not a list"]
    scores = 0
    for entry in properties:
        if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not str:
            return [f"its user_properties hold a {type(entry).__qualname__} that is not a plain (name, value) tuple"]
        if entry[0].startswith("fitness") and type(entry[1]) not in _EXACT_VALUES:
            return [f"its user_properties hold a {type(entry[1]).__qualname__} as {entry[0]}, not a plain number or text"]
        scores += entry[0] == "fitness"
    return ["its user_properties hold more than one score"] if scores > 1 else []
