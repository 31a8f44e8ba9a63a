"""A real coding-agent CLI as the ``cmd:`` agent: aider, driven by a real local model.

Opt-in (``--local-model``; CI never passes it): aider in a virtual environment of its own
(``AUTORESEARCH_AIDER``, default /work/aider-venv/bin/aider) and the local model kit
(``AUTORESEARCH_LOCAL_MODEL``, ``AUTORESEARCH_LLAMA_PYTHON``, ``AUTORESEARCH_LOCAL_MODEL_KIT``;
../shared/local-model/README.md), or a server already running (``AUTORESEARCH_LOCAL_MODEL_API_BASE``). A trial takes a minute or more on two shared cores.
The command line is the one docs/agents.md shows (``bench/cli_agent.py`` builds it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from helpers import GIT_ENV, example_copy, results_of, run_pytest

pytestmark = pytest.mark.local_model

BENCH = Path(__file__).resolve().parent.parent / "bench" / "cli_agent.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_agent_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli = _bench()


@pytest.fixture(scope="module")
def api_base(request: pytest.FixtureRequest) -> Iterator[str]:
    if not request.config.getoption("local_model"):
        pytest.skip("a real local model: run with --local-model")
    running = os.environ.get("AUTORESEARCH_LOCAL_MODEL_API_BASE")  # a server already up, serving the alias qwen-coder
    reason = f"aider is not at {cli.AIDER}" if running and not cli.AIDER.exists() else None if running else cli.missing()
    if reason:
        pytest.skip(f"aider or the local model kit is missing: {reason} (see the module's docstring for the variables)")
    if running:
        yield running
        return
    with cli.local_server() as base:
        yield base


@pytest.mark.timeout(1800)  # two trials of a 1.5B model on two shared cores: 5 minutes each when the machine is busy
def test_aider_runs_the_loop_on_the_quickstart_and_leaves_nothing_of_its_own(api_base: str, tmp_path: Path) -> None:
    copy = example_copy("quickstart", tmp_path)
    command = cli.aider_command(cli.AIDER, api_base)
    result = run_pytest(
        copy, "--autoresearch", "--autoresearch-tag=t", "--autoresearch-trials=2", f"--autoresearch-agent=cmd:{command}",
        timeout=1800, env=GIT_ENV,
    )
    out = "\n".join(result.outlines + result.errlines)
    assert result.ret == 0, out
    rows = results_of(copy)
    trials = rows[1:]
    assert [r["trial"] for r in trials] == ["1", "2"], rows
    # aider ran to the end each time: no crash, no timeout, nothing of its own in a proposal
    for row in trials:
        assert "exited with status" not in row["reason"] and "did not finish" not in row["reason"], row
        assert "files of its own" not in row["reason"], row
    assert "files of its own into the worktree" not in out and "added its own files" not in out
    # the model's edits reached the evaluator at least once, and only denoise.py ever changed
    assert any(r["status"] in ("keep", "discard") for r in trials), rows
    for row in trials:
        if row["status"] in ("keep", "discard"):
            changed = subprocess.run(
                ["git", "diff", "--name-only", "main", f"refs/autoresearch/t/trials/{int(row['trial']):03d}"],
                cwd=copy, capture_output=True, text=True, check=True,
            ).stdout.split()
            assert changed == ["denoise.py"], (row, changed)
    # what aider said is kept with each trial; the checkout has nothing of aider's and no changes
    answer = (copy / ".autoresearch/t/trials/001.answer.md").read_text()
    assert "Aider v" in answer and "Tokens:" in answer, answer
    assert not list(copy.rglob(".aider*"))
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy, capture_output=True, text=True).stdout
    assert [line for line in status.splitlines() if ".autoresearch" not in line] == []
    assert subprocess.run(["git", "log", "--format=%s", "main"], cwd=copy, capture_output=True, text=True).stdout.strip() == "quickstart example"
