"""A run that cannot start says why in one message, exits non-zero, and changes nothing."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FITNESS_TEST, PYPROJECT, Project, default_files


def _repo_state(project: Project) -> dict[str, object]:
    state = project.snapshot()
    git = project.path / ".git"
    if git.is_dir():
        state["refs"] = project.git("for-each-ref", check=False)
        state["worktrees"] = project.git("worktree", "list", "--porcelain", check=False)
        exclude = git / "info" / "exclude"
        state["exclude"] = exclude.read_text() if exclude.exists() else None
    state["run_dir"] = (project.path / ".autoresearch").exists()
    return state


def _assert_refused(project: Project, result: pytest.RunResult, before: dict[str, object], *message: str) -> None:
    assert result.ret != 0, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: autoresearch: {message[0]}*", *message[1:]])
    assert "Traceback" not in result.stderr.str()
    assert _repo_state(project) == before


def test_not_a_git_repository(project: Project) -> None:
    project.write(default_files())
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(project, result, before, "* is not inside a git repository*git init*")


def test_a_repository_without_commits(project: Project) -> None:
    project.init(commit=False)
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(project, result, before, "the repository at * has no commits yet*")


def test_no_surface_configured(project: Project) -> None:
    project.init({**default_files(), "pyproject.toml": PYPROJECT.replace('autoresearch_mutable = ["model.py"]\n', "")})
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(project, result, before, "autoresearch_mutable is not set*autoresearch_mutable = [[]\"model.py\"[]]*")


def test_a_surface_matching_no_committed_file(project: Project) -> None:
    project.init({**default_files(), "pyproject.toml": PYPROJECT.replace('["model.py"]', '["src/*.py"]')})
    (project.path / "src").mkdir()
    (project.path / "src" / "untracked.py").write_text("X = 1\n")
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(project, result, before, "autoresearch_mutable [[]'src/[*].py'[]] matches no committed file*")


def test_no_fitness_test(project: Project) -> None:
    files = default_files()
    del files["tests/test_fitness.py"]
    project.init(files)
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    log = _assert_refused_keeping_the_log(project, result, before, "no fitness test ran: mark a test with @pytest.mark.fitness*")
    assert "test_gate.py ." in log  # what did run


def _assert_refused_keeping_the_log(project: Project, result: pytest.RunResult, before: dict[str, object], *message: str) -> str:
    """Refused like any setup error (nothing of the run left in the repository), and the
    baseline's log kept outside it, where the message says; returns the log."""
    assert result.ret != 0, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: autoresearch: {message[0]}*(full log: *autoresearch-000-*.log)*", *message[1:]])
    assert "Traceback (most recent call last)" not in result.stderr.str().split("ERROR: autoresearch:")[0]
    assert _repo_state(project) == before
    log = Path(re.search(r"\(full log: (\S+\.log)\)", result.stderr.str()).group(1))
    assert not log.is_relative_to(project.path)
    text = log.read_text()
    log.unlink()
    return text


def test_a_failing_baseline_keeps_its_log(project: Project) -> None:
    project.init({**default_files(), "tests/test_gate.py": "def test_broken():\n    assert 1 == 2, 'the gate is broken'\n"})
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    log = _assert_refused_keeping_the_log(project, result, before, "the baseline fails*", "*test_broken*", "*the gate is broken*")
    assert "the gate is broken" in log
    # the same command again, the gate fixed: nothing of the failed start is in the way
    project.write({"tests/test_gate.py": "def test_fixed():\n    assert 1 == 1\n"})
    project.git("commit", "-qam", "fix the gate")
    again = project.loop("--autoresearch-trials=0")
    assert again.ret == 0, again.stdout.str() + again.stderr.str()
    assert project.statuses() == ["baseline"]


SESSION_BREAKS = """from pathlib import Path

def pytest_collection_modifyitems(items):
    if ".autoresearch" in Path.cwd().parts:  # in a trial's worktree
        raise ValueError("the first real problem: settings.ini is missing")

def pytest_unconfigure(config):
    for i in range(200):
        print(f"teardown chatter {i}")
"""


def test_a_baseline_session_that_breaks_shows_its_first_error(project: Project) -> None:
    project.init({**default_files(), "tests/conftest.py": SESSION_BREAKS})
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    log = _assert_refused_keeping_the_log(project, result, before, "the baseline's pytest session ended with an internal error (exit code 3)")
    assert "teardown chatter 199" in log
    shown = result.stderr.str()
    assert "ValueError: the first real problem: settings.ini is missing" in shown
    assert "teardown chatter" not in shown


def test_two_primary_fitness_tests(project: Project) -> None:
    second = FITNESS_TEST.replace('goal="min")', 'goal="min", primary=True)')
    project.init(
        {
            **default_files(),
            "tests/test_fitness.py": second,
            "tests/test_fitness2.py": second.replace("test_error", "test_error2"),
        }
    )
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(project, result, before, "more than one fitness test says primary=True*")


def test_an_unknown_agent(project: Project) -> None:
    project.init()
    before = _repo_state(project)
    result = project.loop("--autoresearch-agent=gpt-from-nowhere", "--autoresearch-trials=1")
    _assert_refused(project, result, before, "unknown agent 'gpt-from-nowhere'*")


def test_a_missing_replay_file(project: Project) -> None:
    project.init()
    before = _repo_state(project)
    result = project.loop("--autoresearch-agent=replay:nowhere.jsonl", "--autoresearch-trials=1")
    _assert_refused(project, result, before, "replay file * does not exist*")


def test_a_mutate_seed_that_is_not_a_number(project: Project) -> None:
    project.init()
    before = _repo_state(project)
    result = project.loop("--autoresearch-agent=mutate:abc", "--autoresearch-trials=1")
    _assert_refused(project, result, before, "agent 'mutate:SEED' needs an integer seed*")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--autoresearch-trials=many"], "invalid number of trials 'many' from --autoresearch-trials*"),
        (["--autoresearch-trials=-1"], "number of trials from --autoresearch-trials must be >= 0*"),
        (["--autoresearch-timeout=0"], "timeout from --autoresearch-timeout must be a positive number*"),
        (["--autoresearch-timeout=soon"], "invalid timeout 'soon' from --autoresearch-timeout*"),
        (["-o", "autoresearch_timeout=-3"], "timeout from ini autoresearch_timeout must be a positive*"),
        (["--autoresearch-program=nope.md"], "the policy file */nope.md (from --autoresearch-program) does not exist*"),
    ],
)
def test_invalid_settings(project: Project, args: list[str], message: str) -> None:
    project.init()
    before = _repo_state(project)
    result = project.loop(*args)
    _assert_refused(project, result, before, message)


def test_an_invalid_tag(project: Project) -> None:
    project.init()
    before = _repo_state(project)
    result = project.run("--autoresearch", "--autoresearch-tag=../escape")
    _assert_refused(project, result, before, "invalid tag '../escape' from --autoresearch-tag*")


def test_shadowed_surface_modules_stop_the_run(project: Project) -> None:
    """A conftest that puts the user's checkout first on sys.path makes trials import the
    unchanged model.py: the loop must refuse rather than score unchanged code."""
    conftest = f"import sys\nsys.path.insert(0, {str(project.path)!r})\n"
    project.init({**default_files(), "tests/conftest.py": conftest})
    before = _repo_state(project)
    result = project.loop("--autoresearch-trials=1")
    _assert_refused(
        project,
        result,
        before,
        f"the trial imported {project.path / 'model.py'} from your checkout instead of the trial's worktree*",
    )


def test_collect_only_lists_the_tests_and_runs_nothing(project: Project) -> None:
    project.init()
    before = _repo_state(project)
    result = project.loop("--collect-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*<Function test_error>*"])
    assert _repo_state(project) == before


def test_xdist_style_numprocesses_is_refused(project: Project) -> None:
    project.init()
    if importlib.util.find_spec("xdist") is not None:
        plugin = ["-n", "2"]
    else:  # the option as pytest-xdist defines it
        conftest = "def pytest_addoption(parser):\n    parser.addoption('--numprocesses', dest='numprocesses')\n"
        (project.outside / "fakexdist.py").write_text(conftest)
        plugin = ["-p", "fakexdist", "--numprocesses=2"]
    before = _repo_state(project)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "--autoresearch"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(project.outside)},
    )
    assert result.returncode != 0
    assert "drop -n/--numprocesses" in result.stderr
    assert _repo_state(project) == before


def test_nothing_heavy_is_imported_by_a_plain_run(project: Project) -> None:
    project.init()
    probe = (
        "import sys\n"
        "def pytest_unconfigure(config):\n"
        "    heavy = [m for m in ('git', 'tabulate', 'litellm', 'torch') if m in sys.modules]\n"
        "    print('HEAVY:', heavy)\n"
    )
    (project.path / "conftest.py").write_text(probe)
    result = project.run("-s")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["HEAVY: []"])
    assert Path(project.path / ".autoresearch").exists() is False
