"""Process groups: how every subprocess the loop starts is started, bounded, killed and reaped.

Trials and agent commands each run in a session (and process group) of their own, registered
here, so that a group kill takes their children and grandchildren too, and so that orphans a
finished trial leaves behind (a daemon that called ``setsid``) can be told from live trials and
killed. Knows nothing of trials: the engine and the command agent both start processes here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import threading


_live: set[int] = set()  # process groups started here, running now: trials (K with workers), agent commands
_live_lock = threading.Lock()
_stopping = False  # set by kill_running: the run is ending, no new process may start


class Stopping(Exception):
    """The run is ending (:func:`kill_running`): no new process is started."""





def wait_unreaped(proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Wait until the process exits, without reaping it; False when the timeout passed.

    Not reaping keeps the process-group id from being reused until the group is killed.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def start_group(argv: tuple[str, ...] | list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a process in a session (and process group) of its own, registered as the
    driver's, so that :func:`reap_orphans` never takes it for an orphan; end it with
    :func:`kill_group`."""
    with _live_lock:  # registered before another worker's reap_orphans could see it unregistered
        if _stopping:
            raise Stopping("the run is stopping")
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        _live.add(proc.pid)
    return proc


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with _live_lock:
        _live.discard(proc.pid)


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the group, in MiB (Linux /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != pgid:  # the field after state and ppid
                continue
            with open(f"/proc/{entry.name}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20














def kill_running() -> None:
    """Kill every process group in flight, trials and agent commands (the run is stopping
    early), and start no more: :func:`start_group` raises :class:`Stopping`, so their
    :func:`pytest_autoresearch.engine.trial_process.run` calls return unfinished;
    :func:`allow_new` opens the gate again."""
    global _stopping
    with _live_lock:
        _stopping = True
        groups = list(_live)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def allow_new() -> None:
    global _stopping
    with _live_lock:
        _stopping = False


def become_subreaper() -> None:
    """Make orphaned descendants of trials (a daemon that left its process group with setsid,
    say) this process's children rather than init's, so that :func:`reap_orphans` finds them."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    """Kill and reap processes re-parented to this (subreaper) process by a finished trial.

    Such orphans are never in this process's own group (trials start their own session),
    which tells them from the driver's own short-lived children (git commands); trials still
    running for other workers are left alone.
    """
    me, group = str(os.getpid()), os.getpgrp()
    for _ in range(50):
        with _live_lock:  # no trial starts while orphans are told from trials
            orphans = []
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError, IndexError, ValueError):
                    with open(f"/proc/{entry.name}/stat", "rb") as f:
                        fields = f.read().rsplit(b")", 1)[1].split()
                    if fields[1].decode() == me and int(fields[2]) != group and int(fields[2]) not in _live:
                        orphans.append(int(entry.name))
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if not orphans:
            return




