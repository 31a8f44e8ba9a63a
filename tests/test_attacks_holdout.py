"""Attacks on the holdout: a candidate that goes looking for the holdout tests' text.

The files that define holdout tests are absent from every worktree a candidate runs in (they
stay in every commit, being frozen, and the manifest knows they are meant to be gone); the
baseline's and the final best's holdout runs see them; and their lines are redacted from
whatever a trial prints, since a candidate can still read them from git's objects or, without
the sandbox, from your checkout. Run with and without ``autoresearch_sandbox``; after each run
the invariants of ``test_containment.py`` hold.
"""

from __future__ import annotations

import pytest
from helpers import Project, default_files
from test_attacks_text import prompt_dumping_agent, run_texts, sandbox_args
from test_containment import Containment, hostile, reasons

MARK = "holdout points the trials never see: twenty to thirty"
HOLDOUT_TEST = f'''import pytest

import model


@pytest.mark.fitness(goal="min", holdout=True)
def test_holdout_error(fitness):
    # {MARK}
    fitness(sum((model.predict(x) - (1.0 * x + 0)) ** 2 for x in range(20, 30)) / 10)
'''

# Looks for the holdout file in the worktree, in git's objects and in your checkout, prints what
# it found and fails with it (so its text would reach the log, results.tsv and the next prompt).
SEEKER = '''
import subprocess


def seek():
    found = ["EXISTS=" + str((HERE / "tests" / "test_holdout.py").exists())]
    try:
        found.append(subprocess.run(["git", "show", "HEAD:tests/test_holdout.py"], cwd=HERE, capture_output=True, text=True).stdout)
    except OSError:
        pass
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    try:
        found.append((pathlib.Path(common).parent / "tests" / "test_holdout.py").read_text())
    except OSError:
        pass
    print("\\n".join(found))
    raise AssertionError("found: " + " | ".join(found))
'''


def holdout_project(project: Project) -> Containment:
    project.init({**default_files(), "tests/test_holdout.py": HOLDOUT_TEST})
    return Containment(project)


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "sandbox"])
def test_a_candidate_finds_no_holdout_file_and_its_text_reaches_nothing(project: Project, sandbox: bool) -> None:
    guard = holdout_project(project)
    agent, prompts = prompt_dumping_agent(project, hostile(prelude=SEEKER, in_predict="seek()", scale=2.5))
    result = project.loop(agent, "--autoresearch-trials=2", *sandbox_args(sandbox))
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "crash", "keep"], reasons(rows)
    texts = run_texts(project, "t")
    assert "EXISTS=False" in texts["trials/001.log"]  # not in the worktree the candidate ran in
    if not sandbox:  # read from git's objects (the sandbox hides your .git), and redacted
        assert "<redacted holdout text of tests/test_holdout.py>" in texts["trials/001.log"]
    for name, text in texts.items():
        if not name.endswith(".holdout.log"):  # the holdout runs themselves print their own test
            assert MARK not in text, f"the holdout's text shows in {name}"
    prompt = (prompts / "prompt2.md").read_text()
    assert "found:" in prompt and MARK not in prompt  # the failure reaches the agent, the holdout text does not
    assert MARK not in result.stdout.str() + result.stderr.str()
    # the holdout itself still runs where it must: on the baseline and on the final best
    result.stdout.fnmatch_lines(["holdout tests/test_holdout.py::test_holdout_error: baseline 0 -> * at the best (trial 2)"])
    assert (project.path / "tests" / "test_holdout.py").read_text() == HOLDOUT_TEST


@pytest.mark.parametrize("sandbox", [False, True], ids=["plain", "sandbox"])
def test_a_hidden_holdout_file_is_no_tamper_and_comes_back(project: Project, sandbox: bool) -> None:
    """An honest run with a holdout: every trial passes the frozen-file checks although the file
    is gone while it runs, and every trial's commit still holds the file."""
    guard = holdout_project(project)
    result = project.loop(
        project.replay(
            {"description": "steeper", "files": project.model_with(SCALE=2.0)},
            {"description": "exact", "files": project.model_with(SCALE=2.5, OFFSET=3)},
        ),
        "--autoresearch-trials=2",
        *sandbox_args(sandbox),
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep"], reasons(rows)
    for row in rows[1:]:
        assert project.git("show", f"{row['commit']}:tests/test_holdout.py") + "\n" == HOLDOUT_TEST


def test_a_file_with_holdout_and_gate_tests_is_named(project: Project) -> None:
    mixed = HOLDOUT_TEST + "\n\ndef test_a_gate():\n    assert model.predict(1.0) == model.predict(1.0)\n"
    project.init({**default_files(), "tests/test_holdout.py": mixed})
    result = project.loop(project.replay({"description": "steeper", "files": project.model_with(SCALE=2.0)}), "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*tests/test_holdout.py defines holdout tests and other tests: trials run without the file*"])
