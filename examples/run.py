"""Run the research loop on a bundled example, in a fresh temporary copy with its own git.

    python examples/run.py quickstart                 # 20 trials with the offline mutate agent
    python examples/run.py quickstart --autoresearch-trials=50 -v

The copy lives outside this repository, so the run creates its branch and run folder there
and touches nothing here. Extra arguments go to pytest. The copy is kept for inspection;
its path is printed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
GIT_IDENTITY = ["-c", "user.name=pytest-autoresearch example", "-c", "user.email=example@localhost"]


def prepare(name: str) -> Path:
    """Copy ``examples/<name>`` into a new temporary folder and commit it there."""
    source = EXAMPLES / name
    if not (source / "pyproject.toml").is_file():
        known = sorted(p.name for p in EXAMPLES.iterdir() if (p / "pyproject.toml").is_file())
        raise SystemExit(f"no example {name!r}; known: {', '.join(known)}")
    target = Path(tempfile.mkdtemp(prefix=f"autoresearch-{name}-")) / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".autoresearch", ".pytest_cache"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*GIT_IDENTITY, "commit", "-q", "-m", f"{name} example"]):
        subprocess.run(["git", *args], cwd=target, check=True)
    return target


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    name, extra = argv[0], argv[1:]
    target = prepare(name)
    if not any(a.startswith("--autoresearch-trials") for a in extra):
        extra = ["--autoresearch-trials=20", *extra]
    print(f"example {name} copied to {target}\n", flush=True)
    code = subprocess.call([sys.executable, "-m", "pytest", "--autoresearch", "--autoresearch-tag=demo", *extra], cwd=target)
    print(f"\nthe example's repository, with branch autoresearch/demo and .autoresearch/demo/: {target}")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
