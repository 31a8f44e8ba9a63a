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
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
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


def rss_mb(pids: set[int] | list[int]) -> float:
    """Resident memory of the processes ``pids``, in MiB (Linux /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
    return total / 2**20


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its SigCgt mask, Linux /proc)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents first (Linux /proc)."""
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):  # a kernel without CONFIG_PROC_CHILDREN
        return _descendants_by_parent(pid)
    out, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        out.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{current}/task/{task}/children", "rb") as f:
                    todo += [int(c) for c in f.read().split()]
    return out


def _descendants_by_parent(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{entry.name}/stat", "rb") as f:
                children.setdefault(int(f.read().rsplit(b")", 1)[1].split()[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop(0))
        todo += children.get(out[-1], [])
    return out


# --- what finished processes left in shared folders (/dev/shm, /tmp) ------------------------------


def entries(folder: str) -> dict[str, int]:
    """The entries of ``folder`` (not below), by name, with their inode numbers."""
    try:
        with os.scandir(folder) as it:
            return {e.name: e.inode() for e in it}
    except OSError:
        return {}


def new_entries(folder: str, before: dict[str, int]) -> list[str]:
    """Paths of entries of ``folder`` that are not in ``before`` (or are new files under an old
    name) and belong to this process's user."""
    out = []
    for name, inode in sorted(entries(folder).items()):
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if before.get(name) != inode and os.lstat(path).st_uid == os.getuid():
                out.append(path)
    return out


def held(paths: list[str]) -> dict[str, int]:
    """Which of ``paths`` (or files below them) a live process this user can see holds open or
    mapped, and one such process each."""
    if not paths:
        return {}
    found: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        targets: list[str] = []
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    targets.append(os.readlink(f"/proc/{entry.name}/fd/{fd}"))
        with contextlib.suppress(OSError), open(f"/proc/{entry.name}/maps", "rb") as f:
            targets += [line.split(None, 5)[5].decode(errors="replace").strip() for line in f if line.count(b" ") >= 5 and b"/" in line]
        for path in paths:
            if path not in found and any(t == path or t.startswith(path + "/") or t == path + " (deleted)" for t in targets):
                found[path] = int(entry.name)
    return found


def remove_tree(path: str) -> bool:
    """Remove a file or a folder with everything in it, folders the process made unreadable or
    unwritable included; True when it is gone."""
    def retry(func: object, failed: str, exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, **({"onexc": retry} if sys.version_info >= (3, 12) else {"onerror": retry}))  # type: ignore[arg-type]
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return not os.path.lexists(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale(folder: str, prefix: str) -> None:
    """Remove this user's entries ``PREFIX<pid>-...`` of ``folder`` whose process ``pid`` is
    gone (left by a process killed outright)."""
    for name in entries(folder):
        owner = name[len(prefix):].split("-", 1)[0] if name.startswith(prefix) else ""
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if owner.isdigit() and not alive(int(owner)) and os.lstat(path).st_uid == os.getuid():
                remove_tree(path)


class SharedFolders:
    """What processes (trials without a sandbox) leave in /dev/shm, removed (it is memory), and in
    /tmp, reported (it is shared): entries of this user that appeared between the first
    :meth:`enter` and the last :meth:`leave`. They are told apart only when none runs, so that
    the files of one still in flight are never taken for another's; nothing is removed when the
    kernel says none of them left tmpfs pages behind, nor a file a live process holds open."""

    REMOVE = ("/dev/shm",)
    OURS = "autoresearch-trial-"  # the trials' own temporary folders, removed by their runner
    LIMIT = 20  # notes, at most

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.before: dict[str, dict[str, int]] = {}
        self.left_tmpfs = False  # since the last quiet moment, some leaver may have left tmpfs pages

    def folders(self) -> list[str]:
        return list(dict.fromkeys([*self.REMOVE, "/tmp", tempfile.gettempdir(), "/var/tmp"]))

    def enter(self) -> None:
        with self.lock:
            if self.running == 0:
                self.before = {folder: entries(folder) for folder in self.folders()}
                self.left_tmpfs = False
            self.running += 1

    def leave(self, left_tmpfs: bool | None = None) -> list[str]:
        """One process tree is done; ``left_tmpfs``: whether the kernel says it left tmpfs pages
        (None: unknown). Returns what was removed, kept and left, when it was the last."""
        with self.lock:
            self.running -= 1
            self.left_tmpfs = self.left_tmpfs or left_tmpfs is not False
            if self.running:
                return []
            new = {folder: new_entries(folder, self.before.get(folder, {})) for folder in self.folders()}
            removable = [p for folder in self.REMOVE for p in new[folder]] if self.left_tmpfs else []
        notes = []
        holders = held(removable)
        for path in removable:
            if path in holders:
                notes.append(f"kept {path}, which appeared while it ran: process {holders[path]} holds it open")
            elif remove_tree(path):
                notes.append(f"removed {path}, which appeared in {os.path.dirname(path)} while it ran")
        for folder, paths in new.items():
            if folder not in self.REMOVE:
                notes += [
                    f"left {p}, which appeared in {folder} while it ran ({folder} is shared: not removed)"
                    for p in paths
                    if not os.path.basename(p).startswith(self.OURS)
                ]
        if len(notes) > self.LIMIT:
            notes[self.LIMIT:] = [f"... and {len(notes) - self.LIMIT} more"]
        return notes


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




