"""The Ray backend on a local cluster this test starts and stops: the same log and branch
semantics as local workers, with a shared bare repository as the workers' state."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Project
from test_workers import FITNESS, PYPROJECT, knobs_text, patch

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


# a throwaway cluster on this machine: no token to share, no usage statistics
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-CPU Ray head node on 127.0.0.1, stopped (with every worker) at the end."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        ray_cli = Path(shutil.which("ray") or "ray")
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    start = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    proc = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_a_loop_on_a_ray_cluster_keeps_what_local_workers_keep(project: Project, cluster: str) -> None:
    project.init({"knobs.py": knobs_text(), "tests/test_distance.py": FITNESS, "pyproject.toml": PYPROJECT})
    agent = project.replay(
        patch("A 5 -> 3", A=3),
        patch("B 5 -> 9", B=9),
        patch("C 5 -> 4", C=4),
        patch("D 5 -> 3", D=3),
        patch("F 5 -> 2", F=2),
    )
    local = project.loop(agent, "--autoresearch-workers=2", tag="local")
    assert local.ret == 0, local.stdout.str()
    result = project.loop(agent, "--autoresearch-workers=2", f"--autoresearch-backend=ray:{cluster}", tag="ray", timeout=400, env=RAY_ENV)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "2 workers on ray:" in result.stdout.str()
    local_rows, rows = project.rows("local"), project.rows("ray")
    kept = lambda rows: sorted(r["description"] for r in rows if r["status"] == "keep")
    assert kept(rows) == kept(local_rows) == ["A 5 -> 3", "C 5 -> 4", "D 5 -> 3", "F 5 -> 2"]
    assert sorted(int(r["trial"]) for r in rows) == list(range(6)) and all(r["parent"] for r in rows[1:])
    assert project.git("diff", "autoresearch/local", "autoresearch/ray") == ""
    # the driver alone moved the branch; every trial has its ref and its log
    kept_rows = [r for r in rows if r["status"] in ("baseline", "keep")]
    assert project.git("rev-parse", "autoresearch/ray") == kept_rows[-1]["commit"]
    for r in rows[1:]:
        number = int(r["trial"])
        assert project.git("rev-parse", f"refs/autoresearch/ray/trials/{number:03d}") == r["commit"]
        assert (project.path / ".autoresearch" / "ray" / "trials" / f"{number:03d}.log").read_text().strip()
    # the workers fetched candidates from the shared remote and pushed back what they ran
    remote = project.path / ".autoresearch" / "ray" / "remote.git"
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)"], cwd=remote, capture_output=True, text=True).stdout.split()
    assert {f"refs/autoresearch/ray/evaluated/{n:03d}" for n in range(1, 6)} <= set(refs)
    assert {f"refs/autoresearch/ray/candidates/{n:03d}" for n in range(1, 6)} <= set(refs)
    assert project.git("status", "--porcelain") == ""
