"""How a candidate is evaluated: the trial's command line, environment and sandbox, and runs.

The trial runs what the user's own ``pytest`` would run here (their paths, ``-k``/``-m``/``-p``/
``-o``, ini file and rootdir), mapped into the run's worktree, with a per-test timeout below
the trial's deadline, bytecode writing off, secrets removed, and optionally under bubblewrap.

Trial text enters the driver here and nowhere else (:meth:`Evaluator.clean`): the values of the
variables kept from the trial are redacted from its output, failures and log, and control and
bidi characters in its output and failures become visible escapes, before anything shows or
stores them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import git
import pytest

from ..core.records import RunResult
from ..core.text import Redactor, neutralise
from .setup import Run
from .slots import Slot
from ..system.sandbox import bwrap_args, environment, scrub, secret_values
from ..settings import Settings
from .trial_process import TrialCommand, pytest_argv, run, limit_margin

_CONFIG_FILES = ("*.py", "*.toml", "*.ini", "*.cfg", "*.txt")
_XDIST_FLAGS = ("-n", "-d", "-f", "--dist", "--tx", "--looponfail", "--maxprocesses", "--rsyncdir")


class Evaluator:
    def __init__(self, config: pytest.Config, settings: Settings, run_: Run) -> None:
        self.config = config
        self.settings = settings
        self.run = run_
        self.timeout: float | None = settings.timeout
        self.scrubbed: list[str] = []  # environment variables kept from the trials
        self.redactor = Redactor()  # their values, redacted from what the trials print
        self._secrets: dict[str, str] = {}
        self._hidden: dict[str, str] = {}  # text no trial may pass on (holdout tests' lines) -> label

    @property
    def worktree(self) -> Path:
        return self.run.home.worktree.path

    def in_worktree(self, path: Path, slot: Slot | None = None) -> Path:
        """``path`` of the user's repository, in the worktree of ``slot`` (default: slot 0)."""
        return self.in_copy(path, self.worktree if slot is None else slot.worktree.path)

    def in_copy(self, path: Path, root: Path) -> Path:
        """``path`` of the user's repository, in a copy of it at ``root`` (a worktree, a clone)."""
        rel = os.path.relpath(path.resolve(), self.run.repo.root)
        return root if rel == "." else root / rel

    def inside_repo(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved.is_relative_to(self.run.repo.root) and not resolved.is_relative_to(self.run.folder.path.resolve())

    def command(self, holdout_only: bool = False, slot: Slot | None = None) -> TrialCommand:
        s, run_ = self.settings, self.run
        slot = slot or run_.home
        assert slot is not None
        here = lambda path: self.in_worktree(path, slot)
        # pytest's cache goes to the run folder, not the worktree; where the suite turns the cache
        # off (-p no:cacheprovider), the key is unknown and --strict-config would fail on it
        cache = ["-o", f"cache_dir={run_.folder.cache}"] if self.config.pluginmanager.has_plugin("cacheprovider") else []
        args = ["-x", *cache, *self.pytest_args(here)]
        cwd = self.cwd(here)
        env = self.environment(here, slot.env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-second, same-size edit must not reuse stale bytecode
        sandbox = None
        if s.sandbox:
            env = environment(env)
            root = slot.worktree.path
            sandbox = tuple(
                bwrap_args(
                    repo_root=run_.repo.root,
                    worktree=root,
                    frozen=[root / p for p in slot.manifest.blobs],
                    writable=[run_.folder.cache],
                    readable=[slot.manifest_file, *(Path(os.path.realpath(root / c)) for c in run_.carry)],
                    cwd=cwd,
                )
            )
        return TrialCommand(
            argv=pytest_argv(args),
            cwd=cwd,
            env=env,
            shadow=tuple(str(run_.repo.root / (run_.prefix + p)) for p in run_.surface_files),
            manifest=slot.manifest_file,
            memory_mb=s.memory_mb,
            sandbox=sandbox,
            holdout_only=holdout_only,
            worktree=slot.worktree.path,
            run_folder=run_.folder.path,
            candidate=tuple(str(slot.worktree.path / (run_.prefix + p)) for p in run_.surface_files),
        )

    def pytest_args(self, here: Callable[[Path], Path]) -> list[str]:
        """What the user's own ``pytest`` would be given here, with paths of the repository
        mapped by ``here`` into the copy that runs (and a per-test timeout below the deadline)."""
        s = self.settings
        args: list[str] = []
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            args += ["-p", "pytest_autoresearch.plugin"] + (["-p", "pytest_timeout"] if self._has_timeout_plugin() else [])
        args += self.trimmed
        if self.timeout is not None and self._pytest_timeout_is_ours():
            # below the hard deadline, so a hung test is reported with its traceback (the trial
            # lowers each test's limit further, to what is left of its budget when it starts)
            args.append(f"--timeout={max(self.timeout / 2, self.timeout - limit_margin(self.timeout)):g}")
        args += s.forward_args
        if s.inifile is not None:
            args += ["-c", str(here(s.inifile) if self.inside_repo(s.inifile) else s.inifile)]
        if s.rootdir_given:
            args.append(f"--rootdir={here(s.rootdir)}")
        for arg in s.test_args:
            path, sep, rest = arg.partition("::")
            if Path(path).is_absolute() and self.inside_repo(Path(path)):
                arg = str(here(Path(path))) + sep + rest
            args.append(arg)
        return args

    def cwd(self, here: Callable[[Path], Path]) -> Path:
        s = self.settings
        return here(s.test_args_dir if self.inside_repo(s.test_args_dir) else s.rootdir)

    def environment(self, here: Callable[[Path], Path], extra: Mapping[str, str]) -> dict[str, str]:
        """The driver's environment without secrets (whose values the redactor learns), plus
        ``extra``, with the repository's paths on PYTHONPATH mapped by ``here``."""
        env, self.scrubbed = scrub(os.environ, self.settings.pass_env)
        secrets = {**secret_values(os.environ, self.scrubbed), **self._hidden}
        if secrets != self._secrets:
            self._secrets, self.redactor = secrets, Redactor(secrets)
        env.update(extra)
        if env.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.pathsep.join(
                str(here(Path(p))) if Path(p).is_absolute() and self.inside_repo(Path(p)) else p
                for p in env["PYTHONPATH"].split(os.pathsep)
            )
        return env

    def carried(self) -> list[Path]:
        """Where the carried paths really are (a sandbox must let them be read)."""
        return [Path(os.path.realpath(self.run.repo.root / c)) for c in self.run.carry]

    @functools.cached_property
    def trimmed(self) -> list[str]:
        """``-p no:NAME`` for autoloaded plugins a trial does not need, which cost every trial's
        start-up: anyio's (it serves only tests that use anyio) and xdist's (the driver refuses -n,
        so trials never distribute). Each stays when the suite or its options mention it."""
        s, pm = self.settings, self.config.pluginmanager
        if not s.trim_plugins or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            return []
        options = " ".join([*s.forward_args, os.environ.get("PYTEST_ADDOPTS", ""), *self._addopts()])
        out = []
        for name, entries in (("anyio", ("anyio",)), ("xdist", ("xdist", "xdist.looponfail"))):
            if pm.has_plugin(name) and name not in options and not self._suite_mentions(name):
                if name == "xdist" and any(flag in options.split() for flag in _XDIST_FLAGS):
                    continue
                out += [arg for entry in entries for arg in ("-p", f"no:{entry}")]
        return out

    def _addopts(self) -> list[str]:
        try:
            return [str(a) for a in self.config.getini("addopts")]
        except ValueError:
            return []

    def _suite_mentions(self, word: str) -> bool:
        """Whether any committed Python or configuration file of the repository names ``word``."""
        try:
            self.run.repo.git.grep("-q", "-I", "-w", "-e", word, self.run.start_commit, "--", *_CONFIG_FILES)
        except git.GitCommandError:
            return False
        return True

    def _has_timeout_plugin(self) -> bool:
        return self.config.pluginmanager.hasplugin("timeout")

    def _pytest_timeout_is_ours(self) -> bool:
        """Give each test a timeout below the trial's unless the user configured pytest-timeout."""
        if not self._has_timeout_plugin():
            return False
        if os.environ.get("PYTEST_TIMEOUT") or getattr(self.config.option, "timeout", None) is not None:
            return False
        try:
            return not self.config.getini("timeout")
        except ValueError:
            return True

    def evaluate(self, number: int, attempt: int = 1, holdout_only: bool = False, slot: Slot | None = None) -> RunResult:
        """One run of the suite on a worktree as it is; its log is trials/NNN[.runK|.holdout].log.

        Safe to call from several threads at once, for different slots.
        """
        folder = self.run.folder
        slot = slot or self.run.home
        assert slot is not None
        suffix = ".holdout" if holdout_only else "" if attempt == 1 else f".run{attempt}"
        try:
            result = run(
                self.command(holdout_only, slot),
                self.timeout,
                folder.trials / f"{number:03d}{suffix}.log",
                started=lambda pgid: folder.trial_started(pgid, slot.index),
            )
        finally:
            folder.trial_ended(slot.index)
        return self.clean(result)

    def hide_text(self, lines: dict[str, str]) -> None:
        """Redact these lines (-> a label) too, wherever a trial's text shows them: the holdout
        tests' source, which a candidate could read from git and print."""
        self._hidden = dict(lines)

    def clean(self, result: RunResult) -> RunResult:
        """``result`` as the driver may show and store it: the scrubbed variables' values
        redacted (from its texts, its log and its result file) and its texts neutralised.

        Without secrets to redact, the log is not read again."""
        redactor = self.redactor
        text = lambda t: neutralise(redactor.text(t))
        one = lambda t: neutralise(redactor.text(t), newlines=False)
        result.output_tail = neutralise(redactor.tail(result.output_tail))
        result.tests = [dataclasses.replace(t, nodeid=one(t.nodeid), failure=text(t.failure)) for t in result.tests]
        for fit in result.fitness:
            fit.nodeid, fit.name = one(fit.nodeid), one(fit.name)
        result.tampered = [one(p) for p in result.tampered]
        result.shadowed = [one(p) for p in result.shadowed]
        result.alarms = [
            dataclasses.replace(a, event=one(a.event), what=one(a.what), file=one(a.file), text=one(a.text)) for a in result.alarms
        ]
        if redactor and result.log_path is not None:
            for path in (result.log_path, result.log_path.with_suffix(".result.json")):
                _redact_file(path, redactor)
        return result


def _redact_file(path: Path, redactor: Redactor) -> None:
    try:
        data = path.read_bytes()
    except OSError:
        return
    clean = redactor.bytes(data)
    if clean != data:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(clean)
        os.replace(tmp, path)
