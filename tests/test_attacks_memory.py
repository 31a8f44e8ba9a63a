"""Attacks on the memory cap and on the trial's temporary files, and the kernel accounting that
stops them (:mod:`pytest_autoresearch.system.cgroups`).

A process-group RSS poll misses a ``setsid`` child and every page of tmpfs (/dev/shm, a tmpfs
/tmp): where the machine lets us, each trial gets a cgroup that counts them, limits its processes
and is killed whole. Each trial also gets a temporary folder of its own (TMPDIR, TMP, TEMP), gone
when the trial ends; under the sandbox its /tmp and /dev/shm are its own tmpfs and go with it, and
without the sandbox what it leaves in /dev/shm is removed (and what it leaves in /tmp reported).
The attacks run with and without ``autoresearch_sandbox``; the loop-level ones skip, saying why,
where the kernel's memory accounting is not available.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import Project, processes_with
from test_containment import Containment, better, bwrap_works, hostile, reasons

from pytest_autoresearch.system import cgroups
from pytest_autoresearch.system.procs import remove_stale

LAYOUT = cgroups.layout()
SANDBOX = [
    pytest.param(False, id="plain"),
    pytest.param(True, id="sandbox", marks=pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap (bwrap)")),
]
needs_memory_cgroup = pytest.mark.skipif(
    not LAYOUT.for_cap(), reason=f"the kernel's memory accounting is not available here: {LAYOUT.why_not()}"
)
needs_cgroup = pytest.mark.skipif(not LAYOUT.for_tracking(), reason=f"no cgroup is writable here: {LAYOUT.why_not()}")


def sandbox_args(sandboxed: bool) -> tuple[str, ...]:
    return ("-o", "autoresearch_sandbox=true") if sandboxed else ()


def log_of(project: Project, trial: int) -> str:
    return (project.path / ".autoresearch" / "t" / "trials" / f"{trial:03d}.log").read_text(errors="replace")


def marker_of(project: Project) -> str:
    return f"autoresearch-memattack-{os.getpid()}-{project.path.name}"


def no_process_with(marker: str) -> None:
    deadline = time.monotonic() + 3
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == [], "a process the candidate started outlived its trial"


# --- (a) a setsid child holding 1.2 GB ------------------------------------------------------------

SETSID_HOG = '''
import subprocess, time
CHILD = """
import time
hog = bytearray(1200 * 2**20)
for i in range(0, len(hog), 4096):
    hog[i] = 1
time.sleep(60)
"""
subprocess.Popen([sys.executable, "-c", CHILD, {marker!r}], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(30)
'''


@needs_memory_cgroup
@pytest.mark.parametrize("sandboxed", SANDBOX)
def test_a_setsid_child_holding_more_than_the_cap(project: Project, sandboxed: bool) -> None:
    """The candidate starts a child in a session of its own (outside the trial's process group)
    that touches 1.2 GB and holds it, against ``autoresearch_memory_mb = 300``."""
    project.init()
    guard = Containment(project)
    marker = marker_of(project)
    result = project.loop(
        project.replay(
            {"description": "setsid hog", "files": {"model.py": hostile(SETSID_HOG.format(marker=marker), scale=2.5)}},
            {"description": "honest", "files": better(2.5)},
        ),
        "--autoresearch-trials=2",
        "--autoresearch-timeout=25",
        "-o",
        "autoresearch_memory_mb=300",
        *sandbox_args(sandboxed),
    )
    rows = guard.check(result, marker=marker)
    assert [r["status"] for r in rows] == ["baseline", "crash", "keep"], reasons(rows)
    assert "killed: its processes used more than 300 MiB (autoresearch_memory_mb)" in rows[1]["reason"]
    assert float(rows[1]["seconds"]) < 15
    no_process_with(marker)
    header = result.stdout.str()
    assert "autoresearch: memory cap 300 MiB per trial (cgroup v" in header, header


# --- (b) files in tmpfs: /dev/shm, $TMPDIR, /tmp --------------------------------------------------

TMPFS_HOG = '''
import pathlib
MARK = {marker!r}
def fill(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(b"x" * 2**20)
            f.flush()
fill(os.path.join(os.environ["TMPDIR"], MARK + "-tmpdir"), 100)
fill("/tmp/" + MARK + "-tmp", 100)
fill("/dev/shm/" + MARK + "-shm", 600)
'''


@needs_memory_cgroup
@pytest.mark.parametrize("sandboxed", SANDBOX)
def test_files_in_tmpfs_count_against_the_cap_and_go_with_the_trial(project: Project, sandboxed: bool) -> None:
    """The candidate writes 100 MB to $TMPDIR, 100 MB to /tmp/<name>, then 600 MB to
    /dev/shm/<name>: tmpfs pages are charged to the trial's cgroup, so it is killed for memory;
    afterwards its files are gone (TMPDIR always; /tmp and /dev/shm under the sandbox, whose
    tmpfs mounts die with it; /dev/shm removed by the driver without it, /tmp reported)."""
    project.init()
    guard = Containment(project)
    marker = marker_of(project)
    stray = Path("/tmp") / f"{marker}-tmp"
    try:
        result = project.loop(
            project.replay(
                {"description": "tmpfs hog", "files": {"model.py": hostile(TMPFS_HOG.format(marker=marker), scale=2.5)}},
                {"description": "honest", "files": better(2.5)},
            ),
            "--autoresearch-trials=2",
            "--autoresearch-timeout=25",
            "-o",
            "autoresearch_memory_mb=300",
            *sandbox_args(sandboxed),
        )
        rows = guard.check(result)
        assert [r["status"] for r in rows] == ["baseline", "crash", "keep"], reasons(rows)
        assert "autoresearch_memory_mb" in rows[1]["reason"]
        assert float(rows[1]["seconds"]) < 20
        assert not Path(f"/dev/shm/{marker}-shm").exists(), "the trial's /dev/shm file outlived it"
        assert list(Path(tempfile.gettempdir()).glob(f"autoresearch-trial-*/{marker}*")) == [], "its TMPDIR outlived it"
        log = log_of(project, 1)
        if sandboxed:
            assert not stray.exists(), "a sandboxed trial's /tmp is its own tmpfs"
        else:
            assert f"removed /dev/shm/{marker}-shm" in log, log[-2000:]
            assert stray.exists() and f"left {stray}" in log, log[-2000:]  # /tmp is shared: reported, not removed
    finally:
        stray.unlink(missing_ok=True)
        Path(f"/dev/shm/{marker}-shm").unlink(missing_ok=True)


# --- (c) a fork bomb ------------------------------------------------------------------------------

FORK_BOMB = '''
started = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.setsid()
        os.execv("/bin/sh", ["sh", "-c", "while :; do sleep 1; done", {marker!r}])
    started += 1
if {hang}:
    import time
    time.sleep(60)
raise RuntimeError(f"fork bomb: {{started}} processes started")
'''


@needs_memory_cgroup
@pytest.mark.parametrize("sandboxed", SANDBOX)
def test_a_fork_bomb(project: Project, sandboxed: bool) -> None:
    """The candidate starts 200 processes, each in a session of its own, and then fails, or
    hangs past its deadline: either way every one of them goes with the trial."""
    project.init()
    guard = Containment(project)
    marker = marker_of(project)
    result = project.loop(
        project.replay(
            {"description": "fork bomb", "files": {"model.py": hostile(FORK_BOMB.format(marker=marker, hang=False), scale=2.5)}},
            {"description": "hanging bomb", "files": {"model.py": hostile(FORK_BOMB.format(marker=marker, hang=True), scale=2.5)}},
        ),
        "--autoresearch-trials=2",
        "--autoresearch-timeout=8",
        "-o",
        "autoresearch_memory_mb=300",
        *sandbox_args(sandboxed),
    )
    rows = guard.check(result, marker=marker)
    assert [r["status"] for r in rows] == ["baseline", "crash", "timeout"], reasons(rows)
    assert "fork bomb: 200 processes started" in log_of(project, 1)
    no_process_with(marker)


# --- the trial's own temporary folder, with or without a cap --------------------------------------

TEMP_PROBE = '''
import tempfile
MARK = {marker!r}
def probe():
    folder = os.environ["TMPDIR"]
    assert os.environ["TMP"] == os.environ["TEMP"] == folder == tempfile.gettempdir(), dict(os.environ)
    assert folder == "/tmp" if {sandboxed} else os.path.basename(folder).startswith("autoresearch-trial-"), folder
    assert not [n for n in os.listdir(folder) if MARK in n], os.listdir(folder)  # fresh: nothing of another trial's
    pathlib.Path(folder, MARK + "-tmpdir-{n}").write_text("x")
    pathlib.Path("/tmp", MARK + "-tmp").write_text("x")  # beside TMPDIR (the same file for both trials)
if HERE.name.startswith("worktree"):  # in a trial (the final best's re-score runs in a clone elsewhere)
    probe()
'''


@pytest.mark.parametrize("sandboxed", SANDBOX)
def test_each_trial_has_its_own_temporary_folder(project: Project, sandboxed: bool) -> None:
    """Two trials write into TMPDIR and /tmp and pass: each saw a fresh TMPDIR (TMP and TEMP
    the same), gone with it; under the sandbox /tmp is the trial's own too, without it what
    appeared in /tmp is named in the trial's log."""
    project.init()
    guard = Containment(project)
    marker = marker_of(project)
    probe = lambda n, scale: hostile(TEMP_PROBE.format(marker=marker, sandboxed=sandboxed, n=n), scale=scale)
    stray = Path("/tmp") / f"{marker}-tmp"
    try:
        result = project.loop(
            project.replay(
                {"description": "temp 1", "files": {"model.py": probe(1, 2.5)}},
                {"description": "temp 2", "files": {"model.py": probe(2, 2.4)}},
            ),
            "--autoresearch-trials=2",
            *sandbox_args(sandboxed),
        )
        rows = guard.check(result)
        assert [r["status"] for r in rows] == ["baseline", "keep", "discard"], reasons(rows)
        assert list(Path(tempfile.gettempdir()).glob(f"autoresearch-trial-*/{marker}*")) == [], "a trial's TMPDIR outlived it"
        if sandboxed:
            assert not stray.exists()
        else:
            assert stray.exists() and f"left {stray}" in log_of(project, 1), log_of(project, 1)[-2000:]
            stray.unlink()
    finally:
        stray.unlink(missing_ok=True)


# the path is spelled in parts so that the static look at a would-be keep (which parks code naming
# /proc for review) leaves this probe alone: what it checks is the trial's cgroup
CGROUP_PROBE = '''
lines = pathlib.Path("/", "proc", "self", "cgroup").read_text().splitlines()
assert any("/autoresearch-" in line for line in lines), lines
'''


@needs_cgroup
@pytest.mark.parametrize("sandboxed", SANDBOX)
@pytest.mark.parametrize("memory", [None, "300"], ids=["no-cap", "cap"])
def test_candidate_code_runs_inside_its_cgroup(project: Project, sandboxed: bool, memory: str | None) -> None:
    """The trial is moved into its cgroup before any candidate code runs (the launcher waits
    for the driver), with or without a memory cap."""
    project.init()
    guard = Containment(project)
    cap = ("-o", f"autoresearch_memory_mb={memory}") if memory else ()
    result = project.loop(
        project.replay({"description": "where am I", "files": {"model.py": hostile(CGROUP_PROBE, scale=2.5)}}),
        "--autoresearch-trials=1",
        *cap,
        *sandbox_args(sandboxed),
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "keep"], reasons(rows)
    assert ("autoresearch: memory cap" in result.stdout.str()) == bool(memory)


# --- system.cgroups on this machine's kernel ------------------------------------------------------


def _hold(parents: list[cgroups.Parent], script: str, **limits: object) -> tuple[cgroups.Cgroup, subprocess.Popen[bytes]]:
    """``script`` in a new cgroup: it waits for a byte on stdin until it has been moved there."""
    group = cgroups.Cgroup.create(parents, **limits)  # type: ignore[arg-type]
    gated = "import os\nos.read(0, 1)\n" + script
    proc = subprocess.Popen([sys.executable, "-c", gated], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    group.add(proc.pid)
    assert proc.stdin is not None
    proc.stdin.write(b"g")
    proc.stdin.close()
    return group, proc


HIERARCHIES = [
    pytest.param(parent, id=f"v{parent.version}-{'-'.join(sorted(parent.controllers)) or 'none'}")
    for parent in dict.fromkeys(p for p in (LAYOUT.v2_memory, LAYOUT.v2_own, LAYOUT.v1_memory, LAYOUT.v1_pids) if p is not None)
] or [pytest.param(None, marks=pytest.mark.skip(reason=f"no cgroup is writable here: {LAYOUT.why_not()}"))]


@pytest.mark.parametrize("parent", HIERARCHIES)
def test_killing_a_cgroup_takes_every_process_setsid_ones_included(parent: cgroups.Parent) -> None:
    """In each hierarchy this machine offers (cgroup v2 without controllers here: cgroup.kill)."""
    script = (
        "import os, subprocess, sys, time\n"
        "for _ in range(5):\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    group, proc = _hold([parent], script)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        members = group.pids()
        assert proc.pid in members and len(members) == 6, members
        assert group.kill()
        proc.wait(5)
        assert group.pids() == set()
        assert all(_gone(pid) for pid in members)
    finally:
        group.kill()
        assert group.remove()
        assert not any(d.exists() for d in group.dirs)


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (killed, its parent not yet told)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not LAYOUT.pids_parent(), reason=f"no pids controller here: {LAYOUT.why_not()}")
def test_the_process_limit_refuses_forks_past_it() -> None:
    script = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(60):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(30); os._exit(0)\n"
        "    n += 1\n"
        "print(n, flush=True)\n"
        "time.sleep(30)\n"
    )
    group, proc = _hold([LAYOUT.pids_parent()], script, pids_max=20)
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == 19  # 20 tasks: the parent and 19 children
        assert group.refused_forks() >= 1
    finally:
        group.kill()
        proc.wait(5)
        assert group.remove()


@needs_memory_cgroup
def test_the_memory_limit_counts_shared_memory_and_tells_an_oom_kill() -> None:
    name = f"/dev/shm/autoresearch-unit-{os.getpid()}"
    script = f"f = open({name!r}, 'wb')\nfor _ in range(200):\n    f.write(b'x' * 2**20)\n"
    group, proc = _hold(LAYOUT.for_cap(), script, memory_bytes=64 * 2**20)
    try:
        proc.wait(20)
        assert proc.returncode == -signal.SIGKILL
        assert group.exceeded()
        assert os.path.getsize(name) <= 64 * 2**20
    finally:
        os.unlink(name)
        group.kill()
        assert group.remove()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@needs_cgroup
def test_what_a_driver_killed_outright_left_is_swept(tmp_path: Path) -> None:
    """A driver killed outright leaves its trial's cgroup (with a setsid daemon in it) and its
    temporary folder; the next driver on the machine kills and removes them, and leaves those
    of live drivers alone."""
    dead = _dead_pid()
    parents = LAYOUT.for_tracking()
    group, proc = _hold(parents, "import time\nprint('ready', flush=True)\ntime.sleep(60)\n", name=f"autoresearch-{dead}-1")
    live = cgroups.Cgroup.create(parents)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        for parent in parents:
            cgroups._sweep(parent.path)
        proc.wait(5)
        assert not any(d.exists() for d in group.dirs)
        assert all(d.exists() for d in live.dirs)
    finally:
        group.kill()
        group.remove()
        assert live.remove()
    (tmp_path / f"autoresearch-trial-{dead}-abc" / "sub").mkdir(parents=True)
    (tmp_path / f"autoresearch-trial-{dead}-abc" / "sub" / "f").write_text("x")
    (tmp_path / f"autoresearch-trial-{os.getpid()}-abc").mkdir()
    remove_stale(str(tmp_path), "autoresearch-trial-")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"autoresearch-trial-{os.getpid()}-abc"]


# --- detection against a fake /sys/fs/cgroup --------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _mountinfo(*mounts: tuple[str, Path, str, str]) -> str:
    """mountinfo lines for (fstype, mount point, super options, root)."""
    return "".join(
        f"{30 + i} 23 0:{40 + i} {root} {point} rw,relatime - {fstype} {fstype.replace('2', '')} {opts}\n"
        for i, (fstype, point, opts, root) in enumerate(mounts)
    ) + "23 1 253:0 / / rw - ext4 /dev/vda rw\n"


def test_detecting_cgroup_v1(tmp_path: Path) -> None:
    mem, pids = tmp_path / "memory", tmp_path / "pids"
    _tree(mem, {"cgroup.procs": "", "memory.limit_in_bytes": "", "job/a/cgroup.procs": "", "job/a/memory.limit_in_bytes": ""})
    _tree(pids, {"cgroup.procs": "", "pids.max": ""})
    layout = cgroups.detect(
        _mountinfo(("cgroup", mem, "rw,memory", "/"), ("cgroup", pids, "rw,pids", "/"), ("cgroup2", tmp_path / "none", "rw", "/")),
        "8:pids:/\n4:memory:/job/a\n1:cpu:/\n0::/\n",
    )
    cap = layout.for_cap()
    assert [(p.version, p.path, set(p.controllers)) for p in cap] == [(1, mem / "job/a", {"memory"}), (1, pids, {"pids"})]
    assert layout.describe_cap() == "cgroup v1: memory incl. tmpfs and shared memory, at most 4096 processes and threads"
    group = cgroups.Cgroup.create(cap, memory_bytes=300 * 2**20, pids_max=4096, name="autoresearch-1-1")
    assert (mem / "job/a/autoresearch-1-1/memory.limit_in_bytes").read_text() == str(300 * 2**20)
    assert (mem / "job/a/autoresearch-1-1/memory.memsw.limit_in_bytes").read_text() == str(300 * 2**20)
    assert (pids / "autoresearch-1-1/pids.max").read_text() == "4096"
    group.add(12345)
    assert (mem / "job/a/autoresearch-1-1/cgroup.procs").read_text() == "12345"
    assert (pids / "autoresearch-1-1/cgroup.procs").read_text() == "12345"
    (mem / "job/a/autoresearch-1-1/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not group.exceeded()
    (mem / "job/a/autoresearch-1-1/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert group.exceeded()
    # without a cap the same cgroups, without a memory limit (they tell what a trial left in tmpfs)
    assert layout.for_tracking() == cap
    uncapped = cgroups.Cgroup.create(cap, name="autoresearch-1-2")
    assert uncapped.memory == mem / "job/a/autoresearch-1-2" and uncapped.limit is None
    assert not (mem / "job/a/autoresearch-1-2/memory.limit_in_bytes").exists()
    (mem / "job/a/autoresearch-1-2/memory.stat").write_text("cache 0\nshmem 8192\ntotal_shmem 12288\n")
    assert uncapped.shmem_bytes() == 12288
    # a machine with only the pids hierarchy: tracked there
    only_pids = cgroups.detect(_mountinfo(("cgroup", pids, "rw,pids", "/")), "8:pids:/\n0::/\n")
    assert only_pids.for_cap() == [] and [p.path for p in only_pids.for_tracking()] == [pids]
    assert only_pids.describe_cap().startswith("resident memory of the trial's processes, polled")


def test_detecting_a_delegated_cgroup_v2(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    _tree(
        root,
        {
            "cgroup.controllers": "cpuset cpu io memory pids",
            "cgroup.subtree_control": "memory pids",
            "cgroup.procs": "",
            "user.slice/cgroup.controllers": "memory pids",
            "user.slice/cgroup.subtree_control": "memory pids",
            "user.slice/cgroup.procs": "",
            "user.slice/app.slice/cgroup.controllers": "cpu memory pids",
            "user.slice/app.slice/cgroup.subtree_control": "memory pids",
            "user.slice/app.slice/cgroup.procs": "",
            "user.slice/app.slice/term.scope/cgroup.controllers": "memory pids",
            "user.slice/app.slice/term.scope/cgroup.subtree_control": "",
            "user.slice/app.slice/term.scope/cgroup.procs": "4242\n",
        },
    )
    # only the user's own part of the tree is writable (delegation), not the slices above it
    writable = lambda path: Path(path).is_relative_to(root / "user.slice/app.slice")
    layout = cgroups.detect(_mountinfo(("cgroup2", root, "rw,nsdelegate", "/")), "0::/user.slice/app.slice/term.scope\n", writable=writable)
    (parent,) = layout.for_cap()
    assert (parent.version, parent.path, set(parent.controllers)) == (2, root / "user.slice/app.slice", {"memory", "pids"})
    assert layout.describe_cap().startswith("cgroup v2: memory incl. tmpfs and shared memory, at most 4096 processes")
    group = cgroups.Cgroup.create([parent], memory_bytes=300 * 2**20, pids_max=4096, name="autoresearch-7-3")
    made = root / "user.slice/app.slice/autoresearch-7-3"
    assert group.dirs == [made]
    assert (made / "memory.max").read_text() == str(300 * 2**20)
    assert (made / "memory.swap.max").read_text() == "0"
    assert (made / "memory.oom.group").read_text() == "1"
    assert (made / "pids.max").read_text() == "4096"
    group.add(777)
    assert (made / "cgroup.procs").read_text() == "777"
    (made / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 0\noom_kill 0\n")
    assert not group.exceeded()  # reaching the limit and reclaiming is no overrun
    (made / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert group.exceeded()
    # the driver's own cgroup has processes, so it cannot enable controllers: children of
    # app.slice are used; without a cap too (pids there)
    assert [p.path for p in layout.for_tracking()] == [root / "user.slice/app.slice"]


def test_detecting_no_usable_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    _tree(root, {"cgroup.controllers": "cpu io", "cgroup.subtree_control": "", "cgroup.procs": ""})
    layout = cgroups.detect(_mountinfo(("cgroup2", root, "rw", "/")), "0::/\n", writable=lambda path: False)
    assert layout.for_cap() == [] and layout.for_tracking() == []
    text = layout.describe_cap()
    assert text.startswith("process-group RSS; the kernel's cgroups are not available: "), text
    assert "no memory controller" in text and "cannot write" in text, text
    # nothing mounted at all
    bare = cgroups.detect("23 1 253:0 / / rw - ext4 /dev/vda rw\n", "0::/\n")
    assert bare.for_cap() == [] and "no cgroup" in bare.describe_cap()


def test_detecting_v2_without_memory_but_writable(tmp_path: Path) -> None:
    """A writable cgroup v2 with no memory controller (this machine's hybrid layout): trials are
    tracked and killed whole there, their memory polled from their processes' RSS."""
    root = tmp_path / "unified"
    _tree(root, {"cgroup.controllers": "", "cgroup.subtree_control": "", "cgroup.procs": ""})
    layout = cgroups.detect(_mountinfo(("cgroup2", root, "rw", "/")), "0::/\n")
    assert layout.for_cap() == []
    assert [(p.version, p.path, set(p.controllers)) for p in layout.for_tracking()] == [(2, root, set())]
    assert layout.describe_cap().startswith("resident memory of the trial's processes, polled")
