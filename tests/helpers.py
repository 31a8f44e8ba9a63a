"""Driving the plugin the way a user does: real git repositories, real pytest subprocesses,
nothing of ours mocked."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}

MODEL = '''"""A tiny tunable model: the mutable surface."""

SCALE = 1.0
OFFSET = 0


def predict(x):
    return SCALE * x + OFFSET
'''

FITNESS_TEST = '''import pytest

import model


@pytest.mark.fitness(goal="min")
def test_error(fitness):
    fitness(sum((model.predict(x) - (2.5 * x + 3)) ** 2 for x in range(10)) / 10)
'''

GATE_TEST = '''import model


def test_predict_returns_a_float():
    assert isinstance(model.predict(1.0), float)
'''

PYPROJECT = '''[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
autoresearch_mutable = ["model.py"]
'''


class Project:
    """A user's repository in ``pytester.path``, and ways to run pytest in it."""

    def __init__(self, pytester: pytest.Pytester, outside: Path) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.outside = outside  # a folder outside the repository, for replay files and markers

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def init(self, files: dict[str, str] | None = None, commit: bool = True) -> Project:
        self.write(files if files is not None else default_files())
        self.git("init", "-q", "-b", "main")
        if commit:
            self.git("add", "-A")
            self.git("commit", "-q", "-m", "initial")
        return self

    def run(self, *args: str, timeout: float = 180, cwd: Path | None = None, env: dict[str, str] | None = None) -> pytest.RunResult:
        """``python -m pytest ARGS`` in the repository, as a user types it (pytester's own runners
        leave files in the working directory, which would dirty the user's checkout)."""
        return run_pytest(cwd or self.path, *args, timeout=timeout, env=env)

    def loop(self, *args: str, tag: str = "t", timeout: float = 180, env: dict[str, str] | None = None) -> pytest.RunResult:
        return self.run("--autoresearch", f"--autoresearch-tag={tag}", *args, timeout=timeout, env=env)

    def replay(self, *proposals: dict[str, object], name: str = "proposals.jsonl") -> str:
        path = self.outside / name
        path.write_text("".join(json.dumps(p) + "\n" for p in proposals), encoding="utf-8")
        return f"--autoresearch-agent=replay:{path}"

    def rows(self, tag: str = "t") -> list[dict[str, str]]:
        path = self.path / ".autoresearch" / tag / "results.tsv"
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))

    def statuses(self, tag: str = "t") -> list[str]:
        return [r["status"] for r in self.rows(tag)]

    def model_with(self, **constants: object) -> dict[str, str]:
        """The model file with module constants replaced, as a replay ``files`` mapping."""
        text = MODEL
        for name, value in constants.items():
            lines = text.splitlines(keepends=True)
            text = "".join(f"{name} = {value}\n" if line.startswith(f"{name} = ") else line for line in lines)
        return {"model.py": text}

    def snapshot(self) -> dict[str, object]:
        """Everything of the user's checkout the loop must leave alone."""
        files = {}
        for root, dirs, names in os.walk(self.path):
            dirs[:] = [d for d in dirs if d not in (".git", ".autoresearch")]
            for name in names:
                full = Path(root) / name
                files[full.relative_to(self.path).as_posix()] = hashlib.sha256(full.read_bytes()).hexdigest()
        return {
            "head": self.git("rev-parse", "HEAD", check=False),
            "symbolic": self.git("symbolic-ref", "-q", "HEAD", check=False),
            "index": self.git("ls-files", "-s", "--debug", check=False),
            "status": self.git("--no-optional-locks", "status", "--porcelain", "--untracked-files=all", check=False),
            "files": files,
        }


def default_files() -> dict[str, str]:
    return {
        "model.py": MODEL,
        "tests/test_fitness.py": FITNESS_TEST,
        "tests/test_gate.py": GATE_TEST,
        "pyproject.toml": PYPROJECT,
    }


def processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example_copy(name: str, dest: Path) -> Path:
    """A fresh copy of ``examples/<name>`` in ``dest``, committed to a new git repository,
    as a user who starts from the example would have it."""
    import shutil

    target = dest / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__", ".autoresearch", ".pytest_cache"))
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", f"{name} example"]):
        subprocess.run(["git", *args], cwd=target, env=env, check=True, capture_output=True)
    return target


def _env(args: tuple[str, ...], env: dict[str, str] | None) -> dict[str, str]:
    """A plain pytest run writes no bytecode unless the test asks: tests rewrite a module within
    the second, at the same size, and Python would run its stale cache (the loop's own processes
    keep theirs out of the checkout, and their trials write none)."""
    plain = not any(a.startswith("--autoresearch") for a in args)
    return {**os.environ, **({"PYTHONDONTWRITEBYTECODE": "1"} if plain else {}), **(env or {})}


def run_pytest(cwd: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> pytest.RunResult:
    """``python -m pytest ARGS`` in ``cwd``."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(args, env),
    )
    return pytest.RunResult(proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), time.monotonic() - start)


def results_of(copy: Path, tag: str = "t") -> list[dict[str, str]]:
    with (copy / ".autoresearch" / tag / "results.tsv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


TRIAL_STATUSES = {"keep", "discard", "review", "crash", "timeout", "invalid"}


def mutate_trials(
    name: str, dest: Path, *args: str, env: dict[str, str] | None = None, trials: int = 2, timed: bool = False
) -> list[dict[str, str]]:
    """Run ``trials`` mutate trials on a fresh copy of ``examples/<name>``, as a user starting from
    it would; check the run ended normally with a baseline and whole trials; return the rows.

    ``timed``: the example scores a timing, and on a machine busy with other tests a kept trial's
    gain can vanish when the final best is scored again outside the run; the loop then warns and
    exits 1, which is what it should do, so that ending counts as normal too."""
    copy = example_copy(name, dest)
    result = run_pytest(
        copy, "--autoresearch", "--autoresearch-agent=mutate", f"--autoresearch-trials={trials}", "--autoresearch-tag=t", *args, env=env
    )
    output = "\n".join(result.outlines + result.errlines)
    unreproduced = timed and result.ret == 1 and "WARNING: the final best did not reproduce" in output
    assert result.ret == 0 or unreproduced, output
    rows = results_of(copy)
    assert len(rows) == trials + 1 and rows[0]["status"] == "baseline", rows
    assert {r["status"] for r in rows[1:]} <= TRIAL_STATUSES, rows
    return rows
