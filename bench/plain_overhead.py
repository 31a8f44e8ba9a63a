"""What the installed plugin costs a plain ``pytest`` run (no ``--autoresearch``).

Every project that installs pytest-autoresearch loads its entry point in every run, so the
plugin must add no noticeable time. This times ``python -m pytest -q`` on a generated suite
of ordinary tests with the plugin enabled and with ``-p no:autoresearch``, interleaved, and
reports the medians, their difference, and the plugin's own import time (``-X importtime``).

    .venv/bin/python bench/plain_overhead.py [--runs 30]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_suite(root: Path, tests: int = 50) -> None:
    (root / "tests").mkdir()
    body = "\n".join(f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n" for i in range(tests))
    (root / "tests" / "test_plain.py").write_text(body)
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def plugin_import_ms() -> float:
    """Cumulative import time of the entry point beyond pytest itself, from -X importtime."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_autoresearch.plugin"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    match = re.search(r"\|\s*(\d+) \| pytest_autoresearch\.plugin$", out, re.MULTILINE)
    return int(match.group(1)) / 1000 if match else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_suite(root)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        on, off = [], []
        for _ in range(2):  # warm-up
            timed(base, root)
            timed([*base, "-p", "no:autoresearch"], root)
        for _ in range(args.runs):
            on.append(timed(base, root))
            off.append(timed([*base, "-p", "no:autoresearch"], root))
    with_plugin, without = statistics.median(on), statistics.median(off)
    print("pytest-autoresearch: cost of the installed plugin to a plain run")
    print(f"machine: {platform.machine()}, python {platform.python_version()}, {args.runs} runs each, interleaved")
    print(f"  pytest -q, 50 tests, plugin enabled       {1000 * with_plugin:7.1f} ms (median)")
    print(f"  pytest -q, 50 tests, -p no:autoresearch   {1000 * without:7.1f} ms (median)")
    print(f"  difference                                {1000 * (with_plugin - without):+7.1f} ms")
    print(f"  import of the entry point (-X importtime) {plugin_import_ms():7.1f} ms (pytest itself excluded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
