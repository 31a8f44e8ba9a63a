"""``autoresearch_sandbox = true``: trials under bubblewrap, where it is installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import MODEL, Project


def _bwrap_works() -> bool:
    if shutil.which("bwrap") is None:
        return False
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--unshare-net", "true"]
    return subprocess.run(args, capture_output=True, timeout=30, check=False).returncode == 0


needs_bwrap = pytest.mark.skipif(not _bwrap_works(), reason="needs a working bubblewrap (bwrap)")


def _probe(body: str) -> str:
    """A model whose predict() first runs ``body`` (which raises if the sandbox let it through)."""
    return MODEL.replace("def predict(x):\n", "def predict(x):\n" + "".join(f"    {line}\n" for line in body.splitlines()))


@needs_bwrap
def test_a_sandboxed_trial_cannot_write_frozen_files_reach_the_network_or_read_home(project: Project) -> None:
    project.init()
    home = Path.home()
    (home / "secret.txt").write_text("hunter2")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept() -> None:
        try:
            server.accept()
        except OSError:  # closed at the end of the test
            pass

    threading.Thread(target=accept, daemon=True).start()
    frozen = project.path / ".autoresearch" / "t" / "worktree" / "tests" / "test_gate.py"
    attempts = f'''import socket, pathlib
blocked = []
try:
    pathlib.Path({str(frozen)!r}).write_text("def test_nothing():\\n    pass\\n")
except OSError:
    blocked.append("write")
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
except OSError:
    blocked.append("network")
try:
    pathlib.Path({str(home / "secret.txt")!r}).read_text()
except OSError:
    blocked.append("home")
assert blocked == ["write", "network", "home"], blocked'''
    model = _probe(attempts).replace("SCALE = 1.0", "SCALE = 2.5")
    result = project.loop(
        project.replay({"description": "probe", "files": {"model.py": model}}),
        "--autoresearch-trials=1",
        "-o",
        "autoresearch_sandbox=true",
    )
    server.close()
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    # every attempt was blocked (the candidate asserts so) and it scored better; it tried, so it is
    # parked for review, never kept (its code names the run folder's worktree)
    assert [r["status"] for r in rows] == ["baseline", "review"], [r["reason"] for r in rows]
    assert "its code reaches for the run folder" in rows[1]["reason"]
    assert project.git("show", "autoresearch/t:tests/test_gate.py") == project.git("show", "HEAD:tests/test_gate.py")


@needs_bwrap
def test_without_the_sandbox_the_same_probe_gets_through(project: Project) -> None:
    """The control: the probe above does fail its assertion when not sandboxed."""
    project.init()
    home = Path.home()
    (home / "secret.txt").write_text("hunter2")
    model = _probe(f"open({str(home / 'secret.txt')!r}).read()\nraise RuntimeError('read the home folder')")
    result = project.loop(project.replay({"description": "probe", "files": {"model.py": model}}), "--autoresearch-trials=1")
    assert result.ret == 0
    assert project.statuses() == ["baseline", "crash"]
    assert "read the home folder" in project.rows()[1]["reason"]


def test_asking_for_the_sandbox_without_bwrap_is_a_setup_error(project: Project, tmp_path: Path) -> None:
    project.init()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    result = project.loop("-o", "autoresearch_sandbox=true", env={"PATH": str(bin_dir)})
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: autoresearch: autoresearch_sandbox = true needs bubblewrap (bwrap)*"])
    assert not (project.path / ".autoresearch").exists()


@needs_bwrap
def test_a_sandboxed_root_trial_has_no_capabilities(tmp_path: Path) -> None:
    """Run as root, bubblewrap would keep root's capabilities: a trial could remount /sys (and its
    cgroup's files) writable and move itself out of its limits. The sandbox drops them all."""
    import os

    from pytest_autoresearch.system.sandbox import bwrap_args

    worktree = tmp_path / "worktree"
    worktree.mkdir()
    args = bwrap_args(repo_root=tmp_path, worktree=worktree, frozen=[], writable=[], readable=[], cwd=worktree)
    probe = "grep CapEff /proc/self/status; mount -o remount,rw /sys 2>/dev/null && echo REMOUNTED || echo REFUSED"
    out = subprocess.run(["bwrap", *args, "sh", "-c", probe], capture_output=True, text=True, timeout=60).stdout
    assert "CapEff:\t0000000000000000" in out, out
    if os.geteuid() == 0:
        assert "REFUSED" in out, out
