"""Trials past one machine: each run is a task on a Ray cluster (``--autoresearch-backend=ray``).

The state the workers share is a bare git repository, the *remote* (by default
``.autoresearch/<tag>/remote.git``; ``autoresearch_remote`` names another, e.g. on a shared
file system or a git server). For every run of a trial the driver pushes the candidate
commit to ``refs/autoresearch/<tag>/candidates/NNN`` together with the run's branch (the
current best); a worker fetches the candidate into a mirror of its own, checks it out in a
worktree of its own, runs the suite there exactly as a local trial runs (own process group,
deadline, memory cap, the result channel, frozen files verified), pushes
``refs/autoresearch/<tag>/evaluated/NNN[.runK]`` back to say it ran it, and returns the
result. The driver stays the single writer of the branch and the log: it judges results in
finishing order, as with local workers.

Ray is imported only here, only when this backend is chosen (the ``ray`` extra).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..store.gitstate import IDENTITY, NO_HOOKS
from ..errors import FatalError
from ..names import branch_ref, candidate_ref, evaluated_ref
from ..system.manifest import Manifest
from ..core.records import RunResult
from ..system.sandbox import scrub
from .trial_process import TrialCommand, run

LOG_RETURN_LIMIT = 4 * 1024 * 1024  # bytes of a trial's log a worker sends back


@dataclasses.dataclass(frozen=True)
class RemoteRun:
    """What a worker needs to run one trial, all of it plain data."""

    remote: str
    ref: str  # the candidate's ref on the remote
    commit: str
    evaluated_ref: str  # the ref the worker pushes once it ran the candidate
    args: tuple[str, ...]  # pytest arguments; WORKTREE stands for the worker's checkout
    cwd: str  # relative to the worktree
    blobs: dict[str, str]  # frozen files: repository-relative path -> blob id
    shadow: tuple[str, ...]
    pass_env: tuple[str, ...]
    env: dict[str, str]
    timeout: float | None
    memory_mb: float | None
    holdout_only: bool
    log_name: str


WORKTREE = "\0worktree\0"


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """git with the keys that run a command switched off; ``env`` names a worktree's git dirs."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **IDENTITY, **NO_HOOKS, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _worktree_env(mirror: Path, worktree: Path) -> dict[str, str]:
    return {"GIT_DIR": str(mirror / "worktrees" / worktree.name), "GIT_COMMON_DIR": str(mirror), "GIT_WORK_TREE": str(worktree)}


def evaluate_on_worker(spec: RemoteRun) -> tuple[RunResult, bytes]:
    """Run one trial where this process runs (a Ray worker): the result and the log's text."""
    home = Path(tempfile.gettempdir()) / "pytest-autoresearch-workers" / hashlib.sha1(spec.remote.encode()).hexdigest()[:16]
    home.mkdir(parents=True, exist_ok=True)
    mirror, worktree = home / "mirror.git", home / f"worktree-{os.getpid()}"
    with (home / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # workers of one machine share the mirror
        if not mirror.exists():
            _git("init", "-q", "--bare", str(mirror))
        _git("fetch", "-q", spec.remote, f"+{spec.ref}:{spec.ref}", cwd=mirror, env={"GIT_DIR": str(mirror)})
        dirs = _worktree_env(mirror, worktree)  # never found through the worktree's .git, which a trial can rewrite
        if worktree.exists():
            _git("checkout", "-q", "--detach", "--force", spec.commit, cwd=worktree, env=dirs)
            _git("clean", "-ffdqx", cwd=worktree, env=dirs)
        else:
            shutil.rmtree(dirs["GIT_DIR"], ignore_errors=True)  # a dead worker's, of the same name
            _git("worktree", "add", "-q", "--detach", str(worktree), spec.commit, cwd=mirror, env={"GIT_DIR": str(mirror)})
    manifest = Manifest.pin(worktree, spec.blobs)
    changed_now = manifest.changed()
    if changed_now:  # a checkout that does not match its own commit cannot be judged
        raise RuntimeError(f"the worker's checkout of {spec.commit[:10]} differs from it in {', '.join(changed_now)}")
    manifest_file = home / f"manifest-{os.getpid()}.json"
    manifest.save(manifest_file)
    env, _ = scrub(os.environ, spec.pass_env)
    env.update(spec.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    args = tuple(a.replace(WORKTREE, str(worktree)) for a in spec.args)
    from .trial_process import pytest_argv

    command = TrialCommand(
        argv=pytest_argv(args),
        cwd=worktree / spec.cwd,
        env=env,
        shadow=spec.shadow,
        manifest=manifest_file,
        memory_mb=spec.memory_mb,
        holdout_only=spec.holdout_only,
        worktree=worktree,
    )
    log_path = home / f"{os.getpid()}-{spec.log_name}"
    result = run(command, spec.timeout, log_path)
    status = _git("status", "--porcelain=v1", "-z", "--untracked-files=no", "--no-renames", "--ignore-submodules=all", cwd=worktree, env=dirs)
    changed = {entry[3:] for entry in status.split("\0") if len(entry) > 3} | set(manifest.changed())
    result.tampered = sorted(set(result.tampered) | {p for p in changed if p in spec.blobs})
    with contextlib.suppress(RuntimeError):
        _git("push", "-q", spec.remote, f"{spec.commit}:{spec.evaluated_ref}", cwd=mirror, env={"GIT_DIR": str(mirror)})
    try:
        with log_path.open("rb") as f:
            log = f.read(LOG_RETURN_LIMIT)
        log_path.unlink()
    except OSError:
        log = b""
    result.log_path = None
    return result, log


class RayRunner:
    """Runs trials as Ray tasks; a run's result comes back as a future."""

    def __init__(self, loop: Any, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            from ..install_hint import pip_install

            raise FatalError(f"--autoresearch-backend=ray needs Ray: {pip_install('ray')}") from None
        if loop.settings.sandbox:
            raise FatalError("autoresearch_sandbox is not available with the ray backend yet: trials run unsandboxed on the workers")
        self.ray = ray
        self.loop = loop
        run_ = loop.run
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        gpus = ray.cluster_resources().get("GPU", 0)
        self.task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=0)(evaluate_on_worker)
        self.remote = loop.settings.remote or str(run_.folder.path / "remote.git")
        if loop.settings.remote is None and not Path(self.remote).exists():
            _git("init", "-q", "--bare", self.remote)
        self.refs: dict[concurrent.futures.Future[RunResult], Any] = {}

    def submit(self, pending: Any, attempt: int) -> concurrent.futures.Future[RunResult]:
        loop, run_ = self.loop, self.loop.run
        tag = run_.tag
        name = f"{pending.number:03d}" + ("" if attempt == 1 else f".run{attempt}")
        commit = pending.slot.worktree.commit_tree(pending.tree, pending.parent.commit, f"candidate for trial {pending.number}")
        ref = candidate_ref(tag, pending.number)
        run_.repo.git.push("-q", "--force", self.remote, f"{commit}:{ref}", f"{loop.history.best.commit}:{branch_ref(tag)}")
        command = loop.evaluator.command(slot=pending.slot)
        root = str(pending.slot.worktree.path)
        spec = RemoteRun(
            remote=self.remote,
            ref=ref,
            commit=commit,
            evaluated_ref=evaluated_ref(tag, pending.number, "" if attempt == 1 else f".run{attempt}"),
            args=tuple(a.replace(root, WORKTREE) for a in command.argv[3:]),  # after: python -c LAUNCHER
            cwd=os.path.relpath(command.cwd, root),
            blobs=dict(pending.slot.manifest.blobs),
            shadow=command.shadow,
            pass_env=loop.settings.pass_env,
            env=dict(pending.slot.env),
            timeout=loop.evaluator.timeout,
            memory_mb=loop.settings.memory_mb,
            holdout_only=False,
            log_name=f"{name}.log",
        )
        log_path = run_.folder.trials / f"{name}.log"
        object_ref = self.task.remote(spec)
        future: concurrent.futures.Future[RunResult] = concurrent.futures.Future()

        def done(inner: concurrent.futures.Future[Any]) -> None:
            try:
                result, log = inner.result()
            except BaseException as exc:  # the task failed: a crash of this run, not of the loop
                result, log = _failed_task(exc), str(exc).encode()
            log_path.write_bytes(log)
            result.log_path = log_path
            future.set_result(loop.evaluator.clean(result))  # redacted and neutralised, as a local run

        object_ref.future().add_done_callback(done)
        self.refs[future] = object_ref
        future.add_done_callback(lambda f: self.refs.pop(f, None))
        return future

    def cancel_all(self) -> None:
        for object_ref in list(self.refs.values()):
            with contextlib.suppress(Exception):
                self.ray.cancel(object_ref, force=True)

    def close(self) -> None:
        if self.started_ray:
            with contextlib.suppress(Exception):
                self.ray.shutdown()


def _failed_task(exc: BaseException) -> RunResult:
    return RunResult(exit_code=None, seconds=0.0, finished=False, output_tail=f"the Ray task failed: {type(exc).__name__}: {exc}"[-8192:])
