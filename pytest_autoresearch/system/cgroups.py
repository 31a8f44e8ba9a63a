"""The kernel's accounting of a group of processes: one cgroup (per hierarchy) per process tree.

A cgroup counts what a process-group poll cannot: children that left the group with ``setsid``,
and every page the group charged, shared memory and tmpfs files (/dev/shm, a tmpfs /tmp)
included. Its memory limit is enforced by the kernel (whose OOM killer acts inside it), its
process limit refuses forks past it, and every process in it can be found and killed at once.

:func:`detect` finds, once, where this process may create cgroups: cgroup v2 where the memory
controller is delegated to a cgroup it can write (its own or the nearest ancestor, whose
``cgroup.controllers`` and ``cgroup.subtree_control`` both name it), else the cgroup v1 memory
and pids hierarchies, below this process's own cgroup there. Without either, a cgroup it can
write still tracks the processes (no memory counted), and without that nothing does: the caller
falls back to polling. :class:`Cgroup` is one tree's cgroups: created with limits, processes
moved in, their memory overrun told, killed whole, removed. Knows nothing of trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .procs import alive

PIDS_MAX = 4096  # tasks (processes and threads) of one tree
WANTED = frozenset({"memory", "pids"})
_names = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Parent:
    """A cgroup this process may create children in: which hierarchy, and what a child gets."""

    path: Path
    version: int  # 1 or 2
    controllers: frozenset[str]  # of "memory" and "pids": what a child of it counts and limits


@dataclasses.dataclass(frozen=True)
class Layout:
    """What this machine offers, found by :func:`detect`."""

    v2_memory: Parent | None = None  # v2, memory delegated (pids too, maybe)
    v2_own: Parent | None = None  # v2, this process's own cgroup, writable (controllers or not)
    v1_memory: Parent | None = None
    v1_pids: Parent | None = None
    problems: tuple[str, ...] = ()

    def for_cap(self) -> list[Parent]:
        """Where a tree's memory can be capped: one v2 cgroup, or v1 memory (+ pids)."""
        if self.v2_memory is not None:
            pids = [] if "pids" in self.v2_memory.controllers or self.v1_pids is None else [self.v1_pids]
            return [self.v2_memory, *pids]
        if self.v1_memory is not None:
            return [self.v1_memory, *([self.v1_pids] if self.v1_pids else [])]
        return []

    def for_tracking(self) -> list[Parent]:
        """Where a tree can be tracked and killed whole without a memory cap: the same cgroups
        (whose memory controller, limit or not, tells what the tree left in tmpfs), else any
        this process can write."""
        if cap := self.for_cap():
            return cap
        for parent in (self.v1_pids, self.v2_own):
            if parent is not None:
                return [parent]
        return []

    def pids_parent(self) -> Parent | None:
        for parent in (self.v2_memory, self.v2_own, self.v1_pids):
            if parent is not None and "pids" in parent.controllers:
                return parent
        return None

    def why_not(self) -> str:
        return "; ".join(self.problems) or "no cgroup hierarchy is mounted"

    def describe_cap(self) -> str:
        """Which memory accounting a capped tree gets here, in words."""
        cap = self.for_cap()
        if cap:
            limit = (
                f"at most {PIDS_MAX} processes and threads"
                if any("pids" in p.controllers for p in cap)
                else "no process limit (no pids controller)"
            )
            return f"cgroup v{cap[0].version}: memory incl. tmpfs and shared memory, {limit}"
        if self.for_tracking():
            return (
                "resident memory of the trial's processes, polled, tmpfs and shared memory not counted; "
                f"the kernel's memory accounting is not available: {self.why_not()}"
            )
        return f"process-group RSS; the kernel's cgroups are not available: {self.why_not()}"


# --- detection ------------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _can_write(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _mounts(mountinfo: str) -> list[tuple[str, Path, str, set[str]]]:
    """(fstype, mount point, root within the hierarchy, super options) of each cgroup mount."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or fields[sep + 1] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].encode().decode("unicode_escape")  # "\040" for a space
        out.append((fields[sep + 1], Path(point), fields[3], set(fields[sep + 3].split(","))))
    return out


def _own(self_cgroup: str) -> tuple[dict[str, str], str | None]:
    """This process's cgroup path per v1 controller, and its v2 path."""
    v1, v2 = {}, None
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        for name in parts[1].split(","):
            v1[name] = parts[2]
    return v1, v2


def _under(point: Path, root: str, own: str) -> Path | None:
    """The folder of cgroup ``own`` in a hierarchy mounted at ``point`` from ``root``."""
    root, own = "/" + root.strip("/"), "/" + own.strip("/")
    if root != "/" and own != root and not own.startswith(root + "/"):
        return None
    rel = own[len(root):].strip("/") if root != "/" else own.strip("/")
    return point / rel if rel else point


def detect(mountinfo: str | None = None, self_cgroup: str | None = None, writable: Callable[[Path], bool] | None = None) -> Layout:
    """Where this process may create cgroups (from /proc/self/mountinfo and /proc/self/cgroup)."""
    mountinfo = _read(Path("/proc/self/mountinfo")) if mountinfo is None else mountinfo
    self_cgroup = _read(Path("/proc/self/cgroup")) if self_cgroup is None else self_cgroup
    can_write = writable or _can_write
    usable = lambda d: d.is_dir() and can_write(d) and can_write(d / "cgroup.procs")
    v1_own, v2_path = _own(self_cgroup)
    found: dict[str, Parent | None] = {"v2_memory": None, "v2_own": None, "v1_memory": None, "v1_pids": None}
    problems: list[str] = []
    mounts = _mounts(mountinfo)
    for fstype, point, root, options in mounts:
        if fstype == "cgroup2" and v2_path is not None and found["v2_own"] is None and found["v2_memory"] is None:
            own = _under(point, root, v2_path)
            if own is None or not own.is_dir():
                continue
            chain = [own, *[p for p in own.parents if p.is_relative_to(point)]]
            for folder in chain:
                enabled = set(_read(folder / "cgroup.subtree_control").split())
                if "memory" in _read(folder / "cgroup.controllers").split() and "memory" in enabled and usable(folder):
                    found["v2_memory"] = Parent(folder, 2, frozenset(enabled & WANTED))
                    break
            else:
                problems.append(f"cgroup v2 at {point} has no memory controller delegated to a cgroup this process can write")
            if usable(own):
                found["v2_own"] = Parent(own, 2, frozenset(set(_read(own / "cgroup.subtree_control").split()) & WANTED))
            else:
                problems.append(f"cannot write {own}")
        elif fstype == "cgroup":
            for controller in sorted(options & WANTED):
                key = f"v1_{controller}"
                if found[key] is not None or controller not in v1_own:
                    continue
                own = _under(point, root, v1_own[controller])
                if own is None or not own.is_dir():
                    problems.append(f"this process's cgroup v1 {controller} folder is not under {point}")
                elif not usable(own):
                    problems.append(f"cannot write {own}")
                else:
                    found[key] = Parent(own, 1, frozenset({controller}))
    if not mounts:
        problems.append("no cgroup hierarchy is mounted")
    elif found["v1_memory"] is None and not any(t == "cgroup" and "memory" in o for t, _, _, o in mounts):
        problems.append("no cgroup v1 memory hierarchy is mounted")
    if found["v2_memory"] is not None or found["v1_memory"] is not None:
        problems = [p for p in problems if "memory" not in p]
    return Layout(**found, problems=tuple(problems))


@functools.cache
def layout() -> Layout:
    """This machine's layout, found once per process; cgroups left by dead drivers are removed."""
    found = detect()
    for parent in {p for p in (found.v2_memory, found.v2_own, found.v1_memory, found.v1_pids) if p is not None}:
        _sweep(parent.path)
    return found


def _sweep(parent: Path) -> None:
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            owner = entry.name.split("-")[1] if entry.name.startswith("autoresearch-") else ""
            if owner.isdigit() and entry.is_dir() and not alive(int(owner)):
                stale = Cgroup([Path(entry.path)])
                stale.kill()
                stale.remove(wait=0.0)


# --- one tree's cgroups ---------------------------------------------------------------------------


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:  # cgroup files take one write(2) each
        f.write(value)


class Cgroup:
    """One cgroup per hierarchy (``dirs``) holding one process tree."""

    def __init__(self, dirs: Iterable[Path], memory: Path | None = None, version: int = 1, limit: int | None = None) -> None:
        self.dirs = list(dirs)
        self.memory = memory  # the folder with the memory controller, if any
        self.version = version
        self.limit = limit  # its memory limit in bytes, if capped

    @classmethod
    def create(cls, parents: Iterable[Parent], memory_bytes: int | None = None, pids_max: int | None = PIDS_MAX, name: str | None = None) -> Cgroup:
        """New cgroups named ``name`` (default: unique to this process) under ``parents``."""
        name = name or f"autoresearch-{os.getpid()}-{next(_names)}"
        made = cls([])
        try:
            for parent in parents:
                folder = parent.path / name
                folder.mkdir()
                made.dirs.append(folder)
                if "memory" in parent.controllers and made.memory is None:
                    made.memory, made.version = folder, parent.version
                if memory_bytes is not None and made.memory == folder:
                    made.limit = memory_bytes
                    if parent.version == 1:
                        _write(folder / "memory.limit_in_bytes", str(memory_bytes))
                        optional = {"memory.memsw.limit_in_bytes": str(memory_bytes)}  # memory plus swap
                    else:
                        _write(folder / "memory.max", str(memory_bytes))
                        optional = {"memory.swap.max": "0", "memory.oom.group": "1"}  # kill it whole on OOM
                    for file, value in optional.items():
                        with contextlib.suppress(OSError):  # no swap accounting; an old kernel
                            _write(folder / file, value)
                if pids_max is not None and "pids" in parent.controllers:
                    _write(folder / "pids.max", str(pids_max))
        except OSError:
            made.remove(wait=0.0)
            raise
        return made

    def add(self, pid: int) -> None:
        """Move process ``pid`` (not its existing children) into every one of the cgroups."""
        for folder in self.dirs:
            _write(folder / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        """Every process in the cgroups, in sub-cgroups too (zombies are not listed)."""
        out: set[int] = set()
        for folder in self.dirs:
            for root, _dirs, _files in os.walk(folder):
                out.update(int(p) for p in _read(Path(root) / "cgroup.procs").split() if p.isdigit())
        return out

    def _counts(self, v1: str, v2: str) -> dict[str, int]:
        if self.memory is None:
            return {}
        text = _read(self.memory / (v1 if self.version == 1 else v2))
        return {k: int(v) for k, v in (line.split() for line in text.splitlines() if len(line.split()) == 2) if v.isdigit()}

    def exceeded(self) -> bool:
        """Whether the tree ran out of its memory: the kernel's OOM killer acted (or would have)."""
        if self.limit is None:
            return False
        events = self._counts("memory.oom_control", "memory.events")
        return events.get("oom_kill", 0) > 0 or events.get("under_oom", 0) > 0 or events.get("oom", 0) > 0

    def shmem_bytes(self) -> int | None:
        """Shared memory and tmpfs pages still charged to the cgroups (once the tree is dead:
        what it left in tmpfs files or System V segments); None without a memory controller."""
        if self.memory is None:
            return None
        stat = self._counts("memory.stat", "memory.stat")
        return stat.get("total_shmem", stat.get("shmem", 0))

    def peak_mb(self) -> float | None:
        if self.limit is None:
            return None
        raw = _read(self.memory / ("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak")).strip()
        return int(raw) / 2**20 if raw.isdigit() else None

    def refused_forks(self) -> int:
        """How many forks the process limit refused."""
        for folder in self.dirs:
            for line in _read(folder / "pids.events").splitlines():
                if line.startswith("max "):
                    return int(line.split()[1])
        return 0

    def kill(self, patience: float = 5.0) -> bool:
        """SIGKILL every process in the cgroups until none is left; False if some outlived
        ``patience`` seconds (a process stuck in the kernel)."""
        for folder in self.dirs:
            if (folder / "cgroup.kill").exists():  # cgroup v2, Linux 5.14: the kernel kills them all at once
                with contextlib.suppress(OSError):
                    _write(folder / "cgroup.kill", "1")
        deadline = time.monotonic() + patience
        pause = 0.001
        while members := self.pids():
            for pid in members:
                self._kill_member(pid)
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(0.05, pause * 2)
        return True

    def _kill_member(self, pid: int) -> None:
        """SIGKILL ``pid``, through a pidfd taken before checking it is still ours (so that a pid
        reused by another process in between is never signalled)."""
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            return
        try:
            name = self.dirs[0].name
            lines = _read(Path(f"/proc/{pid}/cgroup")).splitlines()
            if any(line.endswith(f"/{name}") or f"/{name}/" in line for line in lines):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
        finally:
            os.close(fd)

    def remove(self, wait: float = 2.0) -> bool:
        """Remove the cgroups (sub-cgroups first), waiting up to ``wait`` seconds for the last
        processes to leave; False if one could not be removed."""
        deadline = time.monotonic() + wait
        ok = True
        for folder in self.dirs:
            for root, _dirs, _files in sorted(os.walk(folder), key=lambda w: -len(Path(w[0]).parts)):
                while True:
                    try:
                        os.rmdir(root)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() >= deadline:
                            ok = False
                            break
                        time.sleep(0.01)
        return ok
