"""A candidate that can tell it is being evaluated: the re-score of the final best.

Every trial runs somewhere a candidate can recognise (a worktree under ``.autoresearch/``, the
trial's launcher on its command line, the plugin's trial reporter loaded, a temporary folder
named for trials, the driver's channel in its initial environment). A candidate that returns a
much better answer only there fools every trial and is kept. At the end of a run that kept
something, the final best is scored again in a fresh clone in the system's temporary folder,
as you would run it, with none of those markers; a disagreement beyond the noise is a loud
WARNING in the summary, ``rescore`` in run.json, and exit status 1. Run with and without
``autoresearch_sandbox``; after every run the user's checkout, ``.git`` and the folder outside
are as they were, no process is left and the clone is gone.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest
from helpers import Project, default_files, processes_with
from test_attacks_text import sandbox_args
from test_containment import Containment, digest, hostile, reasons

from pytest_autoresearch.core.noise import Noise, NoiseRule
from pytest_autoresearch.core.records import FitnessResult, MetricSpec, Reproduction, Rescore, RunResult, TrialRecord
from pytest_autoresearch.core.verdict import rescored
from pytest_autoresearch.engine.rescore import junit_address, neutral_environment
from pytest_autoresearch.store.runfolder import RunMeta
from pytest_autoresearch.ui.summary_md import RunView, Step, render_summary
from pytest_autoresearch.ui.terminal import summary

SANDBOX = [pytest.param(False, id="plain"), pytest.param(True, id="sandbox")]

#: Ways a candidate tells a trial of the loop from a run of yours, each True in every trial
#: without the sandbox. Spelled so that the static look at a would-be keep's added lines
#: (``proposals/reach.py``) sees none of them, and read so that the trial's run-time watch does
#: not either (``/proc`` through ``cat``): the re-score is what catches what both miss.
SNIFFERS = """
import tempfile
M = "auto" + "research"
PROC = "/pr" + "oc/"
def _read(path):  # through cat, whose reads the trial's run-time watch does not see
    import subprocess
    path = path.replace("/self/", "/" + str(os.getpid()) + "/")
    return subprocess.run(["cat", path], capture_output=True).stdout.decode(errors="replace")
SNIFFED = {
    "path": "/." + M + "/" in str(HERE),
    "cwd": "/." + M + "/" in os.getcwd() + "/",
    "environ": "PYTEST_" + M.upper() in _read(PROC + "self/environ"),
    "env": any(M + "-trial-" in v or M.upper() in k for k, v in os.environ.items()),
    "cmdline": "pytest_" + M + ".plugin" in _read(PROC + "self/cmdline"),
    "argv": any("." + M in a or M + "_" in a for a in sys.argv),
    "modules": "pytest_" + M + ".trial_plugin" in getattr(sys, "mod" + "ules"),
    "tmpdir": M in tempfile.gettempdir(),
}
"""
#: Only the sandbox hides the driver, the re-score's parent: its command line says --autoresearch.
PARENT = 'SNIFFED["parent"] = "--" + M in _read(PROC + str(os.getppid()) + "/cmdline")\n'


def sniffing(parent: bool = False) -> str:
    return SNIFFERS + (PARENT if parent else "") + "LOOP = any(SNIFFED.values())\n"


def cheat(parent: bool, marker: str) -> str:
    """The perfect model where it can tell a loop evaluates it, the baseline's elsewhere; there
    it also starts a detached process (which must not outlive the re-score)."""
    prelude = sniffing(parent) + textwrap.dedent(
        f"""\
        if not LOOP:
            import subprocess
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {marker!r}], start_new_session=True)
        """
    )
    return hostile(prelude=prelude, scale="2.5 if LOOP else 1.0", offset="3 if LOOP else 0")


def rescore_of(project: Project, tag: str = "t") -> dict:
    return json.loads((project.path / ".autoresearch" / tag / "run.json").read_text())["rescore"]


def assert_untouched(guard: Containment, project: Project, tag: str = "t") -> None:
    """The invariants that hold whatever was kept: checkout, .git, the folder outside, no
    worktree left, and the clone gone."""
    assert project.snapshot() == guard.before, "the user's checkout changed"
    assert guard.git_state() == guard.git_before, "the user's .git (config, hooks, HEAD) changed"
    assert digest(guard.target) == guard.target_before, "something was written outside the repository"
    assert not (project.path / ".autoresearch" / tag / "worktree").exists()
    folder = Path(rescore_of(project, tag)["folder"])
    assert "autoresearch" not in str(folder) and not folder.parent.exists(), "the re-score's clone is left"


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_a_candidate_that_cheats_only_under_the_loop_is_kept_and_does_not_reproduce(project: Project, sandbox: bool, no_leftovers: str) -> None:
    project.init()
    guard = Containment(project)
    result = project.loop(
        project.replay({"description": "tuned", "files": {"model.py": cheat(sandbox, no_leftovers)}}), "--autoresearch-trials=1", *sandbox_args(sandbox)
    )
    out = result.stdout.str()
    assert result.ret == 1, out  # a script that merges on success does not merge this
    assert project.statuses() == ["baseline", "keep"], reasons(project.rows())  # it fooled the trial
    assert float(project.rows()[1]["score"]) == 0.0
    result.stdout.fnmatch_lines(
        [
            "WARNING: the final best did not reproduce: trial 1 scored 113.625, recorded 0 in a fresh clone outside the run*"
            "test_error 113.625 (the mean of 3 runs, goal min) against 0 recorded*",
            "*log: */.autoresearch/t/trials/001.rescore3.log",
            "WARNING: review branch autoresearch/t before you merge it: its final best did not reproduce outside the run*",
        ]
    )
    rescore = rescore_of(project)
    assert rescore["outcome"] == "differs" and rescore["agreed"] is False
    assert (rescore["trial"], rescore["commit"], rescore["score"], rescore["recorded"]) == (1, project.rows()[1]["commit"], 113.625, 0.0)
    assert rescore["sandbox"] is sandbox and rescore["seconds"] > 0
    assert "113.625" in (project.path / ".autoresearch" / "t" / rescore["log"]).read_text()  # the fitness table of the re-score
    assert_untouched(guard, project)
    report = project.run("--autoresearch-report", "--autoresearch-tag=t")  # the report reads it from run.json
    report.stdout.fnmatch_lines(["WARNING: the final best did not reproduce: trial 1 scored 113.625*"])


@pytest.mark.parametrize("sandbox", SANDBOX)
def test_an_honest_best_reproduces(project: Project, sandbox: bool) -> None:
    project.init()
    guard = Containment(project)
    result = project.loop(
        project.replay({"description": "exact", "files": {"model.py": hostile(scale=2.5, offset=3)}}), "--autoresearch-trials=1", *sandbox_args(sandbox)
    )
    rows = guard.check(result)
    assert [r["status"] for r in rows] == ["baseline", "keep"], reasons(rows)
    where = "in a fresh clone outside the run" + (" (sandboxed)" if sandbox else "")
    result.stdout.fnmatch_lines(
        ["autoresearch: re-scoring the final best (trial 1) in a fresh clone outside the run folder", f"re-score of the best (trial 1) {where}: test_error 0, reproduced"]
    )
    assert "WARNING" not in result.stdout.str()
    rescore = rescore_of(project)
    assert (rescore["outcome"], rescore["agreed"], rescore["scores"], rescore["threshold"]) == ("reproduced", True, [0.0], 0.0)
    assert_untouched(guard, project)


def test_nothing_kept_nothing_rescored(project: Project) -> None:
    project.init()
    result = project.loop(project.replay({"description": "worse", "files": {"model.py": hostile(scale=0.5)}}), "--autoresearch-trials=1")
    assert result.ret == 0 and project.statuses() == ["baseline", "discard"], result.stdout.str()
    assert "re-scor" not in result.stdout.str() and rescore_of(project) is None


PROBE = """
import json
record = {
    "file": str(HERE), "cwd": os.getcwd(), "argv": sys.argv, "tmpdir": tempfile.gettempdir(),
    "cmdline": _read(PROC + "self/cmdline").split("\\0"),
    "environ": dict(line.split("=", 1) for line in _read(PROC + "self/environ").split("\\0") if "=" in line),
    "modules": sorted(m for m in getattr(sys, "mod" + "ules") if M in m),
    "carried": (HERE / "data" / "values.txt").read_text() if (HERE / "data" / "values.txt").exists() else None,
    "sniffed": SNIFFED,
}
with open(OUT, "a") as f:
    f.write(json.dumps(record) + "\\n")
"""


def test_the_rescore_carries_no_marker_of_the_loop_nor_a_secret_and_has_the_carried_data(project: Project) -> None:
    """A probing candidate records what it sees in the trial and in the re-score: in the trial
    each sniffer fires (none of them is vacuous), in the re-score none does; no variable, option
    or path names the loop; the carried data is there; the secret is not."""
    files = default_files()
    files[".gitignore"] = "data/\n"
    files["pyproject.toml"] += 'autoresearch_carry = ["data"]\n'
    files["tests/test_data.py"] = "from pathlib import Path\n\n\ndef test_data():\n    assert Path('data/values.txt').read_text() == '1 2 3\\n'\n"
    project.init(files)
    (project.path / "data").mkdir()
    (project.path / "data" / "values.txt").write_text("1 2 3\n")
    guard = Containment(project)
    out = project.outside / "probe.jsonl"
    model = hostile(prelude=sniffing() + f"OUT = {str(out)!r}\n" + PROBE, scale=2.5, offset=3)
    secret = "ghp_" + "R3sc0reS3cret" * 3
    result = project.loop(project.replay({"description": "probe", "files": {"model.py": model}}), "--autoresearch-trials=1", env={"GITHUB_PAT": secret})
    assert result.ret == 0, result.stdout.str()
    assert project.statuses() == ["baseline", "keep"], reasons(project.rows())
    records = [json.loads(line) for line in out.read_text().splitlines()]
    trial, again = records[0], records[-1]
    # the trial's argv names the loop only through -o cache_dir=, which is not passed when the
    # cache plugin is off (as here): every other sniffer must fire in the trial
    fired = {k: v for k, v in trial["sniffed"].items() if k != "argv"}
    assert "/.autoresearch/t/worktree" in trial["file"] and all(fired.values()), trial["sniffed"]
    assert not any(again["sniffed"].values()), again["sniffed"]
    assert again["file"] == again["cwd"] and Path(again["file"]).name == project.path.name  # a checkout named as yours
    for where in (again["file"], again["tmpdir"], *again["argv"], *again["cmdline"]):
        assert ".autoresearch" not in where and "autoresearch_" not in where and "--autoresearch" not in where, where
    assert again["cmdline"][1:3] == ["-m", "pytest"], again["cmdline"]  # pytest's own command line, no launcher
    assert not [k for k in again["environ"] if "AUTORESEARCH" in k.upper()], again["environ"]
    assert again["environ"].get("PWD") == again["cwd"]
    assert "pytest_autoresearch.fitness" in again["modules"] and not [m for m in again["modules"] if "trial" in m], again["modules"]
    assert again["carried"] == "1 2 3\n"
    assert "GITHUB_PAT" not in again["environ"] and secret not in json.dumps(again)
    assert "GITHUB_PAT" not in trial["environ"]  # scrubbed from trials as well
    rescore = rescore_of(project)
    assert rescore["outcome"] == "reproduced", rescore
    assert secret not in (project.path / ".autoresearch" / "t" / rescore["log"]).read_text()
    assert_untouched(guard, project)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "LIMIT (README, What the loop cannot do): without autoresearch_sandbox the re-score's parent is the driver, "
        "whose command line says --autoresearch (and /proc shows every process of the machine); the sandbox's pid namespace hides it"
    ),
)
def test_without_the_sandbox_a_candidate_can_still_find_the_driver(project: Project) -> None:
    project.init()
    model = hostile(prelude=SNIFFERS + "SNIFFED.clear()\n" + PARENT + "LOOP = any(SNIFFED.values())\n", scale="2.5 if LOOP else 1.0", offset="3 if LOOP else 0")
    result = project.loop(project.replay({"description": "tuned", "files": {"model.py": model}}), "--autoresearch-trials=1")
    assert project.statuses() == ["baseline", "keep"]
    assert rescore_of(project)["outcome"] == "differs", result.stdout.str()


def test_a_best_that_hangs_outside_the_loop_is_reported(project: Project, no_leftovers: str) -> None:
    """Killed at the trial's deadline in the re-score: a disagreement too, and nothing is left."""
    project.init()
    guard = Containment(project)
    prelude = sniffing() + f"if not LOOP:\n    import subprocess, time\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {no_leftovers!r}])\n    time.sleep(60)\n"
    model = hostile(prelude=prelude, scale=2.5, offset=3)
    result = project.loop(project.replay({"description": "hangs", "files": {"model.py": model}}), "--autoresearch-trials=1", "--autoresearch-timeout=3")
    assert result.ret == 1, result.stdout.str()
    assert project.statuses() == ["baseline", "keep"]
    result.stdout.fnmatch_lines(["WARNING: the final best did not reproduce: trial 1 failed in a fresh clone outside the run: *"])
    rescore = rescore_of(project)
    assert rescore["outcome"] == "failed" and rescore["agreed"] is False and rescore["score"] is None
    assert "Timeout" in rescore["reason"] or "deadline" in rescore["reason"], rescore["reason"]
    assert processes_with(no_leftovers) == []
    assert_untouched(guard, project)


def test_a_best_that_plants_a_hook_outside_the_loop_is_caught_and_undone(project: Project) -> None:
    """Code that runs only where it cannot tell a loop is watching gets the same check as a
    trial: your repository's hooks and config, the run's files and refs, repaired."""
    project.init()
    guard = Containment(project)
    hook = project.path / ".git" / "hooks" / "pre-commit"
    plant = f"if not LOOP:\n    pathlib.Path({str(project.path)!r}, '.g' + 'it', 'hooks', 'pre-commit').write_text('#!/bin/sh\\nexit 0\\n')\n"
    model = hostile(prelude=sniffing() + plant, scale=2.5, offset=3)
    result = project.loop(project.replay({"description": "plants", "files": {"model.py": model}}), "--autoresearch-trials=1")
    assert result.ret == 1, result.stdout.str()
    assert project.statuses() == ["baseline", "keep"]
    rescore = rescore_of(project)
    assert rescore["outcome"] == "failed" and "<your repository's .git/hooks/pre-commit>" in rescore["reason"], rescore
    result.stdout.fnmatch_lines(["WARNING: the final best did not reproduce: trial 1 failed in a fresh clone outside the run: it changed what a trial must not*"])
    assert not hook.exists()
    assert_untouched(guard, project)


# -- the rule and the neutral environment, without a loop ---------------------------------------

METRIC = MetricSpec("tests/test_fitness.py::test_error", "test_error", "min", True)


def _run(score: float | None, passed: bool = True) -> RunResult:
    fit = [FitnessResult(METRIC.nodeid, "test_error", "min", True, score)]
    return RunResult(exit_code=0 if passed else 1, seconds=1.0, finished=True, fitness=fit)


def _judge(noise: Noise, *scores: float, recorded: float = 1.0) -> Rescore | None:
    draft = Rescore(3, "c" * 40, Reproduction.NOT_RUN, recorded)
    return rescored(draft, METRIC, NoiseRule(), noise, [_run(s) for s in scores], timeout=60.0, memory_mb=None)


def test_the_noise_rule_judges_the_rescore() -> None:
    deterministic, noisy = Noise(), Noise()
    deterministic.add([1.0, 1.0])
    noisy.add([1.0, 1.2, 0.8])  # spread 0.2: the rule allows 0.4
    assert _judge(deterministic, 1.0).outcome == "reproduced"
    assert _judge(deterministic, 1.0 + 1e-9).outcome == "reproduced"  # one number, whatever the arithmetic's order
    assert _judge(deterministic, 1.001) is None  # beyond it: run twice more before saying so
    assert _judge(deterministic, 1.001, 1.001, 1.001).outcome == "differs"  # the same number three times
    assert _judge(Noise(), 1.001, 1.001, 1.001).outcome == "differs"  # no noise seen (one baseline run): the same, min_delta
    assert _judge(Noise(), 1.1, 0.9, 1.0).outcome == "reproduced"  # the evaluator merely varies: its own spread widens the rule
    assert _judge(noisy, 1.3).outcome == "reproduced"
    assert _judge(noisy, 1.6) is None  # beyond it on one run: confirmed first, as a candidate is
    assert _judge(noisy, 1.6, 1.0, 1.1).outcome == "reproduced"  # the mean of three is within it
    differs = _judge(noisy, 1.6, 1.5, 1.7)
    assert differs.outcome == "differs" and differs.score == pytest.approx(1.6) and differs.agreed is False
    assert "the mean of 3 runs" in differs.reason and "more than the 0.4" in differs.reason
    failed = rescored(Rescore(3, "c", "not run", 1.0), METRIC, NoiseRule(), noisy, [_run(None)], timeout=60.0, memory_mb=None)
    assert failed.outcome == "failed" and "recorded no score" in failed.reason


def test_the_rescore_environment_names_no_loop() -> None:
    env = {
        "PATH": "/usr/bin",
        "PYTEST_AUTORESEARCH_TRIAL": "3,4",
        "MY_AUTORESEARCH_FLAG": "1",
        "PYTEST_CURRENT_TEST": ".autoresearch/t::trial-001 (call)",
        "PYTEST_ADDOPTS": "-q --autoresearch --autoresearch-tag t --autoresearch-trials=3 -o autoresearch_sandbox=true -k fast",
        "PWD": "/home/me/project",
        "OLDPWD": "/home/me",
    }
    out = neutral_environment(env, Path("/tmp/tmpab12/project"))
    assert out == {"PATH": "/usr/bin", "PYTEST_ADDOPTS": "-q -k fast", "PWD": "/tmp/tmpab12/project"}


def test_junit_addresses() -> None:
    assert junit_address("tests/test_fitness.py::test_error") == ("tests.test_fitness", "test_error")
    assert junit_address("tests/test_x.py::TestA::test_b[1-2]") == ("tests.test_x.TestA", "test_b[1-2]")


def test_the_summaries_say_it_loudly_and_run_json_keeps_it() -> None:
    records = [
        TrialRecord(0, "baseline", "baseline", commit="a" * 40, score=10.0),
        TrialRecord(1, "keep", "halve it", commit="b" * 40, score=5.0, delta=-5.0),
    ]
    differs = Rescore(1, "b" * 40, "differs", 5.0, scores=[10.0], threshold=0.0, reason="test_m 10 (goal min) against 5 recorded", log="trials/001.rescore.log")

    def lines(rescore: Rescore) -> list[str]:
        return summary(
            records, goal="min", metric="test_m", branch="autoresearch/x", log_path="/r/.autoresearch/x/results.tsv",
            tag="x", base_ref="main", stop_reason=None, rescore=rescore,
        )

    out = lines(differs)
    assert "WARNING: the final best did not reproduce: trial 1 scored 10, recorded 5 in a fresh clone outside the run: test_m 10 (goal min) against 5 recorded" in out
    assert "  a candidate can behave differently when it can tell it is being evaluated; log: /r/.autoresearch/x/trials/001.rescore.log" in out
    assert out[-1] == "WARNING: review branch autoresearch/x before you merge it: its final best did not reproduce outside the run (see above)"
    assert not any("re-score" in line or "reproduce" in line for line in lines(dataclasses.replace(differs, commit="c" * 40)))  # of an older best
    reproduced = dataclasses.replace(differs, outcome="reproduced", scores=[5.0], reason="", sandbox=True)
    assert [line for line in lines(reproduced) if "re-score" in line] == ["re-score of the best (trial 1) in a fresh clone outside the run (sandboxed): test_m 5, reproduced"]
    meta = RunMeta("x", "a" * 40, "main", MetricSpec("t.py::test_m", "test_m", "min", True), [], [], False, None, rescore=differs)
    again = RunMeta.from_json(json.loads(json.dumps(meta.to_json())))
    assert again.rescore == differs and again.to_json()["rescore"]["agreed"] is False and again.to_json()["rescore"]["score"] == 10.0
    text = render_summary(RunView("x", again, records, "a" * 40, "b" * 40), [Step(records[1], records[0])], ["d" * 40], " m.py | 2 +-")
    assert "**Warning: the final best did not reproduce.** Trial 1 scored 10 against 5 recorded in a fresh clone outside the run" in text
    assert "`.autoresearch/x/trials/001.rescore.log`" in text
