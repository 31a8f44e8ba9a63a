"""The bundled examples work the way their READMEs (and the project README) say."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart_passes_plain_pytest(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=EXAMPLES / "quickstart",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    assert re.search(r"tests/test_fitness.py::test_rmse\s+0.237553\s+min", proc.stdout), proc.stdout


def test_the_readme_command_runs_the_loop_on_a_temporary_copy() -> None:
    """examples/run.py is the README's first command: a copy outside this repository, two trials."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "run.py"), "quickstart", "--autoresearch-trials=2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    copy = Path(re.search(r"with branch autoresearch/demo and \.autoresearch/demo/: (\S+)", proc.stdout).group(1))
    try:
        assert not copy.is_relative_to(EXAMPLES.parent)
        rows = list(csv.DictReader((copy / ".autoresearch" / "demo" / "results.tsv").open(), delimiter="\t"))
        assert [r["trial"] for r in rows] == ["0", "1", "2"]
        assert rows[0]["status"] == "baseline"
        assert all(r["status"] in ("keep", "discard") for r in rows[1:])
        assert subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True).stdout == ""
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


def test_an_unknown_example_is_named() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / "run.py"), "nope"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "no example 'nope'; known: buildtime, clinical, prompt, quickstart, sqlite, tinygpt" in proc.stderr
