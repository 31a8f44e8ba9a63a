"""How a candidate is evaluated: the trial's command line, environment and sandbox, and runs.

The trial runs what the user's own ``pytest`` would run here (their paths, ``-k``/``-m``/``-p``/
``-o``, ini file and rootdir), mapped into the run's worktree, with a per-test timeout below
the trial's deadline, bytecode writing off, secrets removed, and optionally under bubblewrap.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .records import RunResult
from .runsetup import Run
from .sandbox import bwrap_args, environment, scrub
from .settings import Settings
from .trial import TrialCommand, pytest_argv, run


class Evaluator:
    def __init__(self, config: pytest.Config, settings: Settings, run_: Run) -> None:
        self.config = config
        self.settings = settings
        self.run = run_
        self.timeout: float | None = settings.timeout
        self.scrubbed: list[str] = []  # environment variables kept from the trials

    @property
    def worktree(self) -> Path:
        assert self.run.worktree is not None
        return self.run.worktree.path

    def in_worktree(self, path: Path) -> Path:
        rel = os.path.relpath(path.resolve(), self.run.repo.root)
        return self.worktree if rel == "." else self.worktree / rel

    def inside_repo(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved.is_relative_to(self.run.repo.root) and not resolved.is_relative_to(self.run.folder.path.resolve())

    def command(self, holdout_only: bool = False) -> TrialCommand:
        s, run_ = self.settings, self.run
        args = ["-x", "-o", f"cache_dir={run_.folder.cache}"]
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            args += ["-p", "pytest_autoresearch.plugin"] + (["-p", "pytest_timeout"] if self._has_timeout_plugin() else [])
        if self.timeout is not None and self._pytest_timeout_is_ours():
            # below the hard deadline, so a hung test is reported with its traceback
            margin = min(2.0, max(1.0, 0.2 * self.timeout))
            args.append(f"--timeout={max(self.timeout / 2, self.timeout - margin):g}")
        args += s.forward_args
        if s.inifile is not None:
            args += ["-c", str(self.in_worktree(s.inifile) if self.inside_repo(s.inifile) else s.inifile)]
        if s.rootdir_given:
            args.append(f"--rootdir={self.in_worktree(s.rootdir)}")
        for arg in s.test_args:
            path, sep, rest = arg.partition("::")
            if Path(path).is_absolute() and self.inside_repo(Path(path)):
                arg = str(self.in_worktree(Path(path))) + sep + rest
            args.append(arg)
        cwd = self.in_worktree(s.test_args_dir if self.inside_repo(s.test_args_dir) else s.rootdir)
        env, self.scrubbed = scrub(os.environ, s.pass_env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a same-second, same-size edit must not reuse stale bytecode
        if env.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.pathsep.join(
                str(self.in_worktree(Path(p))) if Path(p).is_absolute() and self.inside_repo(Path(p)) else p
                for p in env["PYTHONPATH"].split(os.pathsep)
            )
        sandbox = None
        if s.sandbox:
            assert run_.manifest is not None
            env = environment(env)
            sandbox = tuple(
                bwrap_args(
                    repo_root=run_.repo.root,
                    worktree=self.worktree,
                    frozen=[self.worktree / p for p in run_.manifest.blobs],
                    writable=[run_.folder.cache],
                    readable=[run_.folder.manifest, *(Path(os.path.realpath(self.worktree / c)) for c in run_.carry)],
                    cwd=cwd,
                )
            )
        return TrialCommand(
            argv=pytest_argv(args),
            cwd=cwd,
            env=env,
            shadow=tuple(str(run_.repo.root / (run_.prefix + p)) for p in run_.surface_files),
            manifest=run_.folder.manifest,
            memory_mb=s.memory_mb,
            sandbox=sandbox,
            holdout_only=holdout_only,
        )

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

    def evaluate(self, number: int, attempt: int = 1, holdout_only: bool = False) -> RunResult:
        """One run of the suite on the worktree as it is; its log is trials/NNN[.runK|.holdout].log."""
        folder = self.run.folder
        suffix = ".holdout" if holdout_only else "" if attempt == 1 else f".run{attempt}"
        try:
            return run(
                self.command(holdout_only),
                self.timeout,
                folder.trials / f"{number:03d}{suffix}.log",
                started=folder.trial_started,
            )
        finally:
            folder.trial_ended()
