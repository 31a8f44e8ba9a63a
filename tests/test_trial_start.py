"""A trial behaves as a plain ``pytest`` run of the same suite: what real projects' suites do
(warnings as errors, strict options, multiprocessing, subprocesses that trap signals, a hang
late in a long suite) meets the same outcome in a trial as under plain pytest, or, for a hang,
a timeout that says where it hung.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import FITNESS_TEST, GATE_TEST, MODEL, PYPROJECT, Project

from pytest_autoresearch.engine.trial_process import TrialCommand, pytest_argv, run

STRICT = PYPROJECT + 'addopts = ["--strict-config", "--strict-markers"]\nfilterwarnings = ["error"]\n'


def better(scale: float = 2.5) -> dict[str, str]:
    return {"model.py": MODEL.replace("SCALE = 1.0", f"SCALE = {scale}")}


def log(project: Project, number: int, tag: str = "t") -> str:
    return (project.path / ".autoresearch" / tag / "trials" / f"{number:03d}.log").read_text(encoding="utf-8")


# --- warnings ---------------------------------------------------------------------------------


def test_a_suite_that_turns_warnings_into_errors_runs_its_baseline_and_trials(project: Project) -> None:
    """``filterwarnings = ["error"]`` with ``--strict-config --strict-markers``, run with the cache
    off: the harness the trial imports before pytest starts (the plugin, pytest-timeout) raises
    no PytestAssertRewriteWarning, and the trial's own options nothing --strict-config refuses
    (no ``-o cache_dir`` without the cache): the trial log shows what a plain run shows."""
    strict = STRICT + "autoresearch_baseline_runs = 1\n"
    project.init({"model.py": MODEL, "tests/test_fitness.py": FITNESS_TEST, "tests/test_gate.py": GATE_TEST, "pyproject.toml": strict})
    plain = project.run()
    assert plain.ret == 0 and "Warning" not in plain.stdout.str(), plain.stdout.str()
    result = project.loop(project.replay({"description": "scale", "files": better()}), "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "keep"]
    for number in (0, 1):
        text = log(project, number)
        assert "2 passed" in text, text
        assert "Warning" not in text and "warnings summary" not in text, text


@pytest.mark.parametrize("autoload", [True, False], ids=["entry points", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"])
def test_a_trial_warns_of_nothing_a_plain_run_does_not(tmp_path: Path, autoload: bool) -> None:
    """One trial of a warnings-as-errors suite, with the plugins found by their entry points and
    named with ``-p`` (pytest marks ``pytest_autoresearch.plugin`` itself for rewriting then)."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "model.py").write_text(MODEL, encoding="utf-8")
    (tmp_path / "tests" / "test_gate.py").write_text(GATE_TEST, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(STRICT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    args = ["--timeout=30", "tests"]
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        args = ["-p", "pytest_autoresearch.plugin", "-p", "pytest_timeout", *args]
    result = run(TrialCommand(argv=pytest_argv(args), cwd=tmp_path, env=env), 60.0, tmp_path / "trial.log")
    text = (tmp_path / "trial.log").read_text(encoding="utf-8")
    assert (result.finished, result.exit_code) == (True, 0), text
    assert "1 passed" in text and "Warning" not in text, text


FAKE = '''"""A candidate's stand-in for {name}: never to be imported by the harness."""
import pathlib
pathlib.Path({marker!r}).write_text("imported")
raise SystemExit(99)
'''


def test_the_candidate_cannot_shadow_the_plugin_or_pytest_timeout(project: Project) -> None:
    """With a surface wide enough to add them, ``pytest_timeout.py`` and a ``pytest_autoresearch``
    package in the worktree are never imported in place of the real ones (the launcher imports
    them before the worktree joins ``sys.path``), under warnings-as-errors too."""
    wide = STRICT.replace('autoresearch_mutable = ["model.py"]', 'autoresearch_mutable = ["*.py", "pytest_autoresearch/*.py"]')
    project.init({"model.py": MODEL, "tests/test_fitness.py": FITNESS_TEST, "tests/test_gate.py": GATE_TEST, "pyproject.toml": wide})
    markers = {name: project.outside / f"imported-{name}" for name in ("pytest_timeout", "pytest_autoresearch", "plugin")}
    files = {
        **better(),
        "pytest_timeout.py": FAKE.format(name="pytest-timeout", marker=str(markers["pytest_timeout"])),
        "pytest_autoresearch/__init__.py": FAKE.format(name="the plugin's package", marker=str(markers["pytest_autoresearch"])),
        "pytest_autoresearch/plugin.py": FAKE.format(name="the plugin", marker=str(markers["plugin"])),
    }
    result = project.loop(project.replay({"description": "shadows", "files": files}), "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    # scored and better; parked for review, for what the added files reach for
    assert [r["status"] for r in rows] == ["baseline", "review"], [r["reason"] for r in rows]
    assert "timeout method: signal" in log(project, 1)  # the real pytest-timeout's report header
    assert [m.name for m in markers.values() if m.exists()] == []


# --- children ---------------------------------------------------------------------------------

POOLS = '''import concurrent.futures
import multiprocessing
import os
import subprocess
import sys

import model


def test_a_pool_terminated_by_its_context_manager():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(model.predict, [1.0, 2.0]) == [model.predict(1.0), model.predict(2.0)]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_process_pool_executor(start):
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(start)) as pool:
        assert list(pool.map(model.predict, [1.0, 2.0])) == [model.predict(1.0), model.predict(2.0)]


TRAP = """
import signal, sys, time
def bye(signum, frame):
    print("trapped", signum, flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_subprocess_that_traps_sigterm():
    proc = subprocess.Popen([sys.executable, "-c", TRAP], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\\n"
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (3, "trapped 15\\n")


def test_a_forked_child_that_goes_on_into_the_session():
    pid = os.fork()
    if pid == 0:
        return  # the child runs the rest of the session, and ends it, as under plain pytest
    os.waitpid(pid, 0)
'''.replace("import model\n", "import model\nimport pytest\n")


def test_children_of_a_trial_behave_as_under_plain_pytest(project: Project) -> None:
    """``Pool.terminate()`` (the end of ``with Pool() as pool:``) sends SIGTERM to forked
    workers, which must not take the trial with them; ``ProcessPoolExecutor`` with fork and
    spawn, a subprocess that traps SIGTERM, and a forked child that runs on into the session
    (whose session end must not report for the trial) all pass as under plain pytest."""
    pyproject = PYPROJECT + "autoresearch_baseline_runs = 1\n"
    project.init({"model.py": MODEL, "tests/test_fitness.py": FITNESS_TEST, "tests/test_pools.py": POOLS, "pyproject.toml": pyproject})
    plain = project.run()
    assert plain.ret == 0, plain.stdout.str()
    result = project.loop(project.replay({"description": "scale", "files": better()}), "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep"], [r["reason"] for r in rows]
    text = log(project, 1)
    assert "6 passed" in text, text
    assert "tamper" not in result.stdout.str() and "alarm" not in result.stdout.str(), result.stdout.str()


def test_a_trial_of_a_suite_with_pools_finishes_and_reports_once(tmp_path: Path) -> None:
    """The same suite as one trial, without the loop around it: it finishes, every test passed,
    and neither a worker nor the forked child sent anything on the trial's channels."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "model.py").write_text(MODEL, encoding="utf-8")
    (tmp_path / "tests" / "test_pools.py").write_text(POOLS, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    result = run(TrialCommand(argv=pytest_argv(["-p", "no:cacheprovider", "tests"]), cwd=tmp_path, env=env), 60.0, tmp_path / "trial.log")
    assert (result.finished, result.exit_code) == (True, 0), (tmp_path / "trial.log").read_text(encoding="utf-8")
    assert sorted(t.outcome for t in result.tests) == ["passed"] * 5, result.tests
    assert (result.tampered, result.alarms) == ([], [])


# --- a hang late in the suite -------------------------------------------------------------------

SLOW_TEST = '''import time


def test_takes_most_of_the_budget():
    time.sleep(3)
'''

LATE_TEST = '''import model


def test_calls_the_model_late():
    assert model.predict(1.0) is not None
'''

SLEEPS = MODEL.replace("SCALE = 1.0", "import time\nSCALE = 2.5").replace("    return SCALE", "    time.sleep(600)  # hangs here\n    return SCALE")


def test_a_hang_late_in_the_suite_is_a_timeout_that_says_where_it_hung(project: Project) -> None:
    """The last test starts after half of the 6 s budget went to the test before it, and hangs:
    its time limit is what was left, not the whole budget's, so it times out before the hard
    kill, its name is on the trial's line and the log has the traceback of the hanging line."""
    project.init(
        {
            "model.py": MODEL,
            "tests/test_fitness.py": FITNESS_TEST,
            "tests/test_a_slow.py": SLOW_TEST,
            "tests/test_b_late.py": LATE_TEST,
            "pyproject.toml": PYPROJECT + "autoresearch_baseline_runs = 1\n",
        }
    )
    result = project.loop(project.replay({"description": "sleeps", "files": {"model.py": SLEEPS}}), "--autoresearch-trials=1", "--autoresearch-timeout=6")
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "timeout"], [r["reason"] for r in rows]
    assert rows[1]["reason"] == "tests/test_b_late.py::test_calls_the_model_late exceeded its time limit"
    assert float(rows[1]["seconds"]) < 6
    result.stdout.fnmatch_lines(["*trial   1  timeout*test_calls_the_model_late exceeded its time limit*"])
    text = log(project, 1)
    assert "time.sleep(600)  # hangs here" in text and "Timeout (>" in text, text
    assert "time limit was lowered from 5s to " in text, text


def test_a_test_that_starts_late_gets_only_what_is_left(tmp_path: Path) -> None:
    """One trial of 6 s whose first test takes 2 s and whose second hangs: the second's limit
    (4 s from ``--timeout``) is lowered to what is left, so pytest-timeout stops it, with its
    traceback, before the driver's hard kill, and the session reports it."""
    (tmp_path / "test_a_slow.py").write_text(SLOW_TEST.replace("sleep(3)", "sleep(2)"), encoding="utf-8")
    (tmp_path / "test_b_late.py").write_text("import time\n\n\ndef test_hangs():\n    time.sleep(600)  # hangs here\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    command = TrialCommand(argv=pytest_argv(["-p", "no:cacheprovider", "--timeout=4", "test_a_slow.py", "test_b_late.py"]), cwd=tmp_path, env=env)
    result = run(command, 6.0, tmp_path / "trial.log")
    text = (tmp_path / "trial.log").read_text(encoding="utf-8")
    assert result.finished and not result.killed, text
    assert [(t.nodeid, t.outcome, t.timed_out) for t in result.tests] == [
        ("test_a_slow.py::test_takes_most_of_the_budget", "passed", False),
        ("test_b_late.py::test_hangs", "failed", True),
    ]
    assert "time.sleep(600)  # hangs here" in text and "time limit was lowered from 4s to " in text, text


DEAF = '''import signal


def test_spins_where_pytest_timeout_cannot_reach():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    while True:  # spins here
        pass
'''


def test_a_hang_no_test_limit_stops_leaves_every_threads_traceback_in_the_log(tmp_path: Path) -> None:
    """A test that blocks SIGALRM (pytest-timeout's signal) and spins is killed at the trial's
    deadline; just before, the trial wrote every thread's traceback to its log."""
    (tmp_path / "test_deaf.py").write_text(DEAF, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    command = TrialCommand(argv=pytest_argv(["-p", "no:cacheprovider", "--timeout=3", "test_deaf.py"]), cwd=tmp_path, env=env)
    result = run(command, 4.0, tmp_path / "trial.log")
    assert result.killed and not result.finished
    assert result.seconds < 5
    text = (tmp_path / "trial.log").read_text(encoding="utf-8")
    line = DEAF.splitlines().index("    while True:  # spins here") + 1
    assert "Current thread 0x" in text, text
    assert f'test_deaf.py", line {line}' in text or f'test_deaf.py", line {line + 1}' in text, text
    assert "before its 4s deadline, it was killed" in text, text
