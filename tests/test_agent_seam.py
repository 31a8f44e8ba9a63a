"""Agents from plugins: the hook that makes them, what they may do, and how they may fail."""

from __future__ import annotations

import pytest
from helpers import PYPROJECT, Project, default_files

AGENTS = '''
from pytest_autoresearch.agents import Agent
from pytest_autoresearch.proposal import Proposal


class Workdir(Agent):
    """Edits files in its working copy the way an external coding tool would."""

    name = "workdir"
    edits_workdir = True

    def propose(self, context):
        model = context.workdir / "model.py"
        model.write_text(model.read_text().replace("SCALE = 1.0", "SCALE = 2.5"))
        gate = context.workdir / "tests" / "test_gate.py"
        gate.write_text("def test_nothing():\\n    pass\\n")  # outside the surface: must not survive
        return Proposal("edited in the workdir", {"model.py": model.read_text()})


class Broken(Agent):
    name = "broken"

    def propose(self, context):
        return {}["no such key"]


class Refuser(Agent):
    name = "refuser"

    def preflight(self, files):
        return f"refuser looked for TODO in {', '.join(sorted(files))} and found none: add one"

    def propose(self, context):
        raise AssertionError("never asked")


class BrokenCheck(Refuser):
    def preflight(self, files):
        raise RuntimeError("boom")


def pytest_autoresearch_make_agent(config, spec):
    return {"workdir": Workdir, "broken": Broken, "refuser": Refuser, "brokencheck": BrokenCheck}.get(spec, lambda: None)()
'''


def test_a_plugin_agent_that_edits_its_workdir(project: Project) -> None:
    project.init({**default_files(), "conftest.py": AGENTS})
    result = project.loop("--autoresearch-agent=workdir", "--autoresearch-trials=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "invalid"]
    assert "leaves every file as it is" in rows[2]["reason"]
    assert "SCALE = 2.5" in project.git("show", "autoresearch/t:model.py")
    assert project.git("show", "autoresearch/t:tests/test_gate.py") == project.git("show", "HEAD:tests/test_gate.py")
    result.stdout.fnmatch_lines(["*agent workdir*"])


def test_an_agent_that_crashes_stops_the_loop_with_a_clear_message(project: Project) -> None:
    project.init({**default_files(), "conftest.py": AGENTS})
    result = project.loop("--autoresearch-agent=broken", "--autoresearch-trials=3")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: autoresearch: agent broken failed: KeyError: 'no such key' (*conftest.py:*)"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline"]  # the log keeps what finished
    result.stdout.fnmatch_lines(["*0 trials: none yet*"])


def test_pythonpath_pointing_at_the_checkout_is_redirected_to_the_worktree(project: Project) -> None:
    """A user who exports PYTHONPATH=<their checkout> still gets candidates imported from the
    trial's worktree, not the unchanged files."""
    project.init({**default_files(), "pyproject.toml": PYPROJECT.replace('pythonpath = ["."]\n', "")})
    result = project.loop(
        project.replay({"description": "steeper", "files": project.model_with(SCALE=2.5)}),
        "--autoresearch-trials=1",
        env={"PYTHONPATH": str(project.path)},
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep"]
    assert float(rows[1]["score"]) < float(rows[0]["score"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("refuser", "ERROR: autoresearch: agent refuser: refuser looked for TODO in model.py and found none: add one"),
        ("brokencheck", "ERROR: autoresearch: agent brokencheck: its preflight check failed: RuntimeError: boom"),
    ],
)
def test_an_agent_refuses_the_surface_before_the_baseline(project: Project, spec: str, message: str) -> None:
    """A fitness test that would take 30 s never runs: the refusal comes first and leaves nothing."""
    slow = default_files()["tests/test_fitness.py"].replace("def test_error(fitness):\n", "def test_error(fitness):\n    __import__('time').sleep(30)\n")
    project.init({**default_files(), "conftest.py": AGENTS, "tests/test_fitness.py": slow})
    refs = project.git("for-each-ref")
    result = project.loop(f"--autoresearch-agent={spec}", timeout=120)
    assert result.ret != 0
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()
    assert result.duration < 25, result.duration
    assert not (project.path / ".autoresearch").exists()
    assert project.git("for-each-ref") == refs and project.git("worktree", "list").count("\n") == 0
