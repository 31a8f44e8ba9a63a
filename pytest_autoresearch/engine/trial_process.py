"""Running one trial: ``python -m pytest`` in its own process group, under hard bounds.

pytest-timeout bounds each test inside the trial (and reports where it hung), each test's
limit lowered to what is left of the trial's budget (:mod:`pytest_autoresearch.trial_deadline`);
the driver holds the wall-clock deadline, asks the trial for every thread's traceback just
before it, and kills the whole process group, children and grandchildren included, when it
passes, when the trial's memory passes the optional cap, and again when the trial ends, so
nothing a candidate started outlives its trial. Where the machine has
cgroups (:mod:`pytest_autoresearch.system.cgroups`) the trial runs in one of its own, entered
before any candidate code runs: the kernel counts and caps its memory (tmpfs and shared memory
included) and its processes, and the whole cgroup is killed at the end, ``setsid`` children too. Output is pumped into a
per-trial log file up to a size limit; the driver keeps only a bounded tail, so a candidate
printing gigabytes fills neither the disk nor the driver's memory.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from ..core.records import RunResult
from ..names import TRIAL_ENV
from ..system import cgroups
from ..system.procs import (
    SharedFolders,
    Stopping,
    catches,
    descendants,
    group_rss_mb,
    kill_group,
    reap_orphans,
    remove_stale,
    remove_tree,
    rss_mb,
    start_group,
    wait_unreaped,
)
from .trial_channel import ChannelReader, decode_alarms, decode_channel, parse_channel


TAIL_BYTES = 8192
LOG_LIMIT = 32 * 1024 * 1024
MEMORY_POLL = 0.25
GATE_ENV = "PYTEST_AUTORESEARCH_GATE"  # the launcher waits on this socket until the trial is in its cgroup
DUMP_SIGNAL = signal.SIGRTMIN + 6  # the trial writes every thread's traceback on it (a real-time signal nothing else sends)


def limit_margin(timeout: float) -> float:
    """How long before the trial's deadline every test's time limit ends: the time the session
    has to report a test that timed out (its traceback, the fixtures' teardown, the result)."""
    return max(1.0, min(0.1 * timeout, 10.0))


def dump_grace(timeout: float) -> float:
    """How long before the hard kill a trial still running is asked for its threads' tracebacks."""
    return min(1.0, 0.05 * timeout)


@dataclasses.dataclass(frozen=True)
class TrialCommand:
    """How to start a trial: the command line, where, with what environment and reporting."""

    argv: tuple[str, ...]  # the full command: python -m pytest ..., possibly inside a sandbox
    cwd: Path
    env: Mapping[str, str]
    shadow: tuple[str, ...] = ()  # the user's copies of surface files, which must not be imported
    manifest: Path | None = None  # the frozen-file manifest the trial verifies
    holdout_only: bool = False  # run the holdout fitness tests and nothing else
    memory_mb: float | None = None
    sandbox: tuple[str, ...] | None = None  # bubblewrap arguments, when the trial runs sandboxed
    # what the trial's audit hook counts as the candidate's own code: the files of its worktree
    # that the manifest does not freeze (the surface, files added at run time), and these
    worktree: Path | None = None
    run_folder: Path | None = None  # opened by candidate code (outside its worktree): an alarm
    candidate: tuple[str, ...] = ()


def memory_accounting(memory_mb: float) -> str:
    """The run's header line on the memory cap: which accounting is in force on this machine."""
    return f"memory cap {memory_mb:g} MiB per trial ({cgroups.layout().describe_cap()})"


def _cgroup(memory_mb: float | None, notes: list[str]) -> cgroups.Cgroup | None:
    """The trial's cgroup: capped where the kernel can count its memory, else one that only
    tracks its processes (which costs well under a millisecond); None where none is writable."""
    layout = cgroups.layout()
    parents = (layout.for_cap() if memory_mb is not None else []) or layout.for_tracking()
    if not parents:
        return None
    try:
        return cgroups.Cgroup.create(parents, memory_bytes=None if memory_mb is None else int(memory_mb * 2**20))
    except OSError as exc:
        notes.append(f"the trial ran without a cgroup: {exc}")
        return None


def _admit(proc: subprocess.Popen[bytes], cgroup: cgroups.Cgroup, gate: socket.socket | None, timeout: float | None, notes: list[str]) -> bool:
    """Move the trial into its cgroup before it runs any candidate code: the launcher says it has
    started on the gate and waits (after importing the harness) for the go; every process of the
    trial so far (bwrap's, under the sandbox) is moved, then the go is sent. False when the cgroup
    does not hold the trial."""
    if gate is not None:
        gate.settimeout(timeout)
        try:
            ready = gate.recv(1) == b"r"
        except OSError:  # the deadline passed first
            ready = False
        if not ready:
            return False
    try:
        for pid in descendants(proc.pid):
            cgroup.add(pid)
    except OSError as exc:
        notes.append(f"the trial could not be moved into its cgroup ({exc}); its memory was polled instead")
        return False
    finally:
        if gate is not None:
            with contextlib.suppress(OSError):
                gate.sendall(b"g")
    return True


def _wait_bounded(proc: subprocess.Popen[bytes], timeout: float | None, memory_mb: float | None, cgroup: cgroups.Cgroup | None = None) -> str:
    """Wait for the trial: "exited", "timeout", or "memory" (it passed the cap). In a capped
    cgroup the kernel enforces the cap; the driver watches for its OOM killer. Otherwise the
    resident memory of the trial's processes (its cgroup's, else its process group's) is polled."""
    if memory_mb is None:
        return "exited" if wait_unreaped(proc, timeout) else "timeout"
    capped = cgroup is not None and cgroup.limit is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = MEMORY_POLL if deadline is None else min(MEMORY_POLL, max(0.0, deadline - time.monotonic()))
        if wait_unreaped(proc, step):
            return "memory" if capped and cgroup.exceeded() else "exited"  # type: ignore[union-attr]
        if capped:
            if cgroup.exceeded():  # type: ignore[union-attr]
                return "memory"
        elif (rss_mb(cgroup.pids()) if cgroup is not None else group_rss_mb(proc.pid)) > memory_mb:
            return "memory"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"


SHARED = SharedFolders()


@functools.cache
def _sweep_temp() -> None:
    """Once per process: remove the temporary folders of trials whose driver was killed outright."""
    remove_stale(tempfile.gettempdir(), SharedFolders.OURS)


class OutputPump(threading.Thread):
    """Copies the trial's output into its log file, up to ``limit`` bytes, keeping a tail."""

    def __init__(self, source: IO[bytes], log_path: Path, limit: int = LOG_LIMIT) -> None:
        super().__init__(daemon=True, name=f"autoresearch output {log_path.name}")
        self.source = source
        self.log_path = log_path
        self.limit = limit
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.dropped = 0

    def run(self) -> None:
        written = 0
        with contextlib.suppress(ValueError, OSError), self.log_path.open("wb") as log:
            while chunk := self.source.read1(65536):  # type: ignore[attr-defined]
                room = max(0, self.limit - written)
                log.write(chunk[:room])
                written += min(room, len(chunk))
                self.dropped += len(chunk) - min(room, len(chunk))
                self.tail.append(chunk)
                self.tail_size += len(chunk)
                while self.tail_size - len(self.tail[0]) >= TAIL_BYTES:
                    self.tail_size -= len(self.tail.popleft())
            if self.dropped:
                log.write(
                    f"\n[pytest-autoresearch: {self.dropped} bytes of output past the {self.limit}-byte "
                    "limit were dropped; the last of them follow]\n".encode()
                )
                log.write(self.text().encode())

    def text(self) -> str:
        return b"".join(self.tail)[-TAIL_BYTES:].decode("utf-8", "replace")


def run(
    command: TrialCommand,
    timeout: float | None,
    log_path: Path,
    started: Callable[[int], None] | None = None,
) -> RunResult:
    """Run one trial to completion or to one of its bounds; always leaves nothing running.

    The trial gets its spec (nonce, manifest, the paths it must not import) through an
    unlinked file and reports through a pipe, both inherited file descriptors: nothing
    candidate code could find on disk or in the environment and simply write to.
    ``started`` is told the trial's process-group id as soon as it exists.

    The trial runs in a cgroup of its own where the machine has them (:func:`_cgroup`), moved
    there before any candidate code runs, and killed whole at its end; it gets a fresh
    temporary folder (TMPDIR, TMP and TEMP), removed with everything in it when it ends (under
    the sandbox, its /tmp and /dev/shm are tmpfs mounts of its own, gone with it). Without the
    sandbox, what it left in /dev/shm is removed and what it left in /tmp reported in its log.
    """
    notes: list[str] = []
    shared = SHARED if command.sandbox is None else None
    tmp: str | None = None
    cgroup: cgroups.Cgroup | None = None
    if shared is not None:
        shared.enter()
    try:
        if command.sandbox is None:
            _sweep_temp()
            tmp = tempfile.mkdtemp(prefix=f"{SharedFolders.OURS}{os.getpid()}-")
        cgroup = _cgroup(command.memory_mb, notes)
        result = _run(command, timeout, log_path, started, tmp, cgroup, notes)
    finally:
        left_shmem = None  # unknown: no memory cgroup
        if cgroup is not None:
            cgroup.kill()  # again: nothing in it may outlive the trial
            left_shmem = cgroup.shmem_bytes()
            if not cgroup.remove():
                notes.append(f"its cgroup could not be removed: {', '.join(map(str, cgroup.dirs))}")
        if tmp is not None and not remove_tree(tmp):
            notes.append(f"its temporary folder {tmp} could not be removed")
        if shared is not None:
            notes += shared.leave(left_tmpfs=None if left_shmem is None else left_shmem > 0)
        if notes:
            with contextlib.suppress(OSError), log_path.open("a", encoding="utf-8") as log:
                log.write("".join(f"\n[pytest-autoresearch: {note}]" for note in notes) + "\n")
    return result


def _run(
    command: TrialCommand,
    timeout: float | None,
    log_path: Path,
    started: Callable[[int], None] | None,
    tmp: str | None,
    cgroup: cgroups.Cgroup | None,
    notes: list[str],
) -> RunResult:
    nonce = secrets.token_hex(16)
    spec = {
        "nonce": nonce,
        "shadow": list(command.shadow),
        "manifest": str(command.manifest) if command.manifest else None,
        "holdout_only": command.holdout_only,
        "worktree": str(command.worktree) if command.worktree else None,
        "run_folder": str(command.run_folder) if command.run_folder else None,
        "candidate": list(command.candidate),
        "dump_signal": int(DUMP_SIGNAL),
    }
    if timeout is not None:  # the trial lowers each test's limit to what is left before this
        spec.update(deadline=time.monotonic() + timeout - limit_margin(timeout), budget=timeout)
    gated = cgroup is not None and LAUNCHER in command.argv
    with contextlib.ExitStack() as stack:
        spec_file = stack.enter_context(tempfile.TemporaryFile())
        spec_file.write(json.dumps(spec).encode())
        spec_file.seek(0)
        result_read, result_write = os.pipe()
        stack.callback(os.close, result_write)
        alarm_read, alarm_write = os.pipe()
        stack.callback(os.close, alarm_write)
        fds = [spec_file.fileno(), result_write, alarm_write]
        argv = tuple(command.argv)
        if command.sandbox is not None:
            # bwrap reads its (possibly thousands of) mount arguments from a file descriptor
            args_file = stack.enter_context(tempfile.TemporaryFile())
            args_file.write(b"\0".join(a.encode() for a in command.sandbox) + b"\0")
            args_file.seek(0)
            fds.append(args_file.fileno())
            argv = ("bwrap", "--args", str(args_file.fileno()), *argv)
        env = dict(command.env)
        env[TRIAL_ENV] = f"{spec_file.fileno()},{result_write},{alarm_write}"
        folder = tmp if tmp is not None else env.get("TMPDIR", "/tmp")  # the sandbox's own /tmp
        env.update(TMPDIR=folder, TMP=folder, TEMP=folder)
        gate = None
        if gated:
            gate, gate_child = socket.socketpair()
            stack.callback(gate_child.close)
            fds.append(gate_child.fileno())
            env[GATE_ENV] = str(gate_child.fileno())
        start = time.monotonic()
        try:
            proc = start_group(
                argv,
                cwd=command.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=fds,
            )
        except Stopping:
            os.close(result_read)
            os.close(alarm_read)
            if gate is not None:
                gate.close()
            return RunResult(exit_code=None, seconds=0.0, finished=False, output_tail="not started: the run is stopping", log_path=log_path)
    assert proc.stdout is not None
    if started is not None:
        started(proc.pid)
    pump = OutputPump(proc.stdout, log_path)
    pump.start()
    channel = ChannelReader(result_read)
    channel.start()
    alarm_channel = ChannelReader(alarm_read, limit=1024 * 1024)
    alarm_channel.start()
    held_by_cgroup = False
    try:
        held_by_cgroup = cgroup is not None and _admit(proc, cgroup, gate, timeout, notes)
        held = cgroup if held_by_cgroup else None
        grace = 0.0 if timeout is None else dump_grace(timeout)
        left = None if timeout is None else max(0.0, timeout - grace - (time.monotonic() - start))
        ended = _wait_bounded(proc, left, command.memory_mb, held)
        if ended == "timeout" and timeout is not None and grace > 0 and _ask_for_tracebacks(proc):
            ended = _wait_bounded(proc, max(0.0, timeout - (time.monotonic() - start)), command.memory_mb, held)
            if ended == "timeout":
                notes.append(
                    f"still running {grace:g}s before its {timeout:g}s deadline, it was killed: above, the traceback "
                    "each of its threads had then (\"Current thread 0x...\", \"Thread 0x...\"), innermost call first"
                )
    finally:
        if gate is not None:
            gate.close()
        if cgroup is not None:
            cgroup.kill()
        kill_group(proc)
        reap_orphans()
        pump.join(timeout=5)  # a process that escaped the group could hold the pipes open
        channel.join(timeout=5)
        alarm_channel.join(timeout=5)
        proc.stdout.close()
        os.close(result_read)
        os.close(alarm_read)
    seconds = time.monotonic() - start
    if cgroup is not None and cgroup.limit is not None and held_by_cgroup:
        peak = cgroup.peak_mb()
        if ended == "memory" or (peak is not None and command.memory_mb is not None and peak > 0.9 * command.memory_mb):
            notes.append(f"its cgroup's memory peaked at {peak:.0f} MiB of the {command.memory_mb:g} MiB cap (tmpfs and shared memory included)")
    if cgroup is not None and (refused := cgroup.refused_forks()):
        notes.append(f"the process limit ({cgroups.PIDS_MAX} processes and threads) refused {refused} forks")
    data = decode_channel(bytes(channel.data), nonce) if ended == "exited" else None
    result = RunResult(
        exit_code=proc.returncode if ended == "exited" else None,
        seconds=seconds,
        finished=data is not None,
        killed=ended == "timeout",
        memory_exceeded=ended == "memory",
        output_tail=pump.text(),
        log_path=log_path,
    )
    if data is not None:
        result.tests, result.fitness, result.shadowed = parse_channel(data)
        result.tampered = [str(p) for p in data.get("tampered", [])]
        result.holdout = [str(p) for p in data.get("holdout", [])]
        (log_path.with_suffix(".result.json")).write_bytes(bytes(channel.data))
    elif ended == "exited" and channel.data:
        result.tampered = ["<the trial's result channel carried something other than its own report>"]
    reported = data.get("alarms") if data is not None else None
    result.alarms, closed = decode_alarms(bytes(alarm_channel.data), nonce, reported if isinstance(reported, list) else [])
    if data is not None and not closed:
        result.tampered.append("<the trial's alarm channel was cut before its session ended>")
    notes += [alarm.describe() + (f": {alarm.text}" if alarm.text else "") for alarm in result.alarms]
    return result


def _ask_for_tracebacks(proc: subprocess.Popen[bytes]) -> bool:
    """Send the trial's own process (under the sandbox, bubblewrap's child that runs the launcher;
    never a child of the trial's) :data:`DUMP_SIGNAL`, once it catches it: before, the signal
    would end it. False where no such process was found."""
    launcher = [b"-c", LAUNCHER.encode()]
    for pid in descendants(proc.pid):  # parents first: the trial before the children it forked
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[1:3] != launcher:  # bwrap's command line holds it too
                    continue
            if not catches(pid, DUMP_SIGNAL):
                return False
            os.kill(pid, DUMP_SIGNAL)
        except OSError:
            continue
        return True
    return False


# Real pytest and this plugin are imported before the trial's folder joins sys.path, so that
# a candidate file named pytest.py (or pytest_autoresearch/, pytest_timeout.py) cannot stand in
# for the harness; then the folder is put first, as `python -m pytest` would, for the user's own
# imports. pytest warns of a plugin module imported before its assertion rewriter
# (PytestAssertRewriteWarning, an error under `filterwarnings = ["error"]`) unless the module's
# docstring says PYTEST_DONT_REWRITE, which the launcher adds to the modules it imported beyond
# what `python -m pytest` has at this point (the plugin's, pytest-timeout's; not the standard
# library's): a trial warns of nothing a plain run does not. With a gate, the launcher tells the
# driver it has started and, once the harness is imported, waits until the driver has moved it
# into the trial's cgroup (the move, an RCU grace period of the kernel's, overlaps the imports):
# no candidate code runs outside the cgroup.
LAUNCHER = """\
import os
gate = os.environ.pop("PYTEST_AUTORESEARCH_GATE", None)
if gate is not None:
    os.write(int(gate), b"r")
import runpy, sys
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
import pytest
plain = set(sys.modules)
import pytest_autoresearch.plugin
try:
    import pytest_timeout
except ImportError:
    pass
for name in set(sys.modules) - plain:
    if name.partition(".")[0] not in sys.stdlib_module_names:
        try:
            sys.modules[name].__doc__ = (sys.modules[name].__doc__ or "") + "\\n\\nPYTEST_DONT_REWRITE"
        except (AttributeError, TypeError):
            pass
if gate is not None:
    if os.read(int(gate), 1) != b"g":
        os._exit(70)
    os.close(int(gate))
sys.path.insert(0, os.getcwd())
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""


def pytest_argv(args: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The command line of a trial: ``python -m pytest ARGS``, with the harness imported first."""
    return (sys.executable, "-c", LAUNCHER, *args)
