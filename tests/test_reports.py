"""What people read of a run: trials in JUnit, the live progress line, the progress plot, the
report command, the audit trail, and finalize's review branch."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import FITNESS_TEST, Project, default_files
from pytest_autoresearch.install_hint import pip_install

ARTIFACT_TEST = FITNESS_TEST.replace(
    "    fitness(sum(",
    "    weights = tmp_path / 'weights.bin'\n    weights.write_bytes(repr(model.SCALE).encode())\n    fitness.artifact(weights)\n    fitness(sum(",
).replace("def test_error(fitness):", "def test_error(fitness, tmp_path):")


def _run(project: Project) -> pytest.RunResult:
    """A small run: a keep, a discard, a crash, a keep."""
    project.init({**default_files(), "tests/test_fitness.py": ARTIFACT_TEST})
    result = project.loop(
        project.replay(
            {"description": "steeper", "files": project.model_with(SCALE=2.0)},
            {"description": "worse", "files": project.model_with(SCALE=0.5)},
            {"description": "broken", "files": {"model.py": "def predict(x):\n    raise ValueError('no')\n"}},
            {"description": "exact", "files": project.model_with(SCALE=2.5, OFFSET=3)},
        ),
        f"--junitxml={project.outside / 'junit.xml'}",
        "--autoresearch-trials=4",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    return result


def test_every_trial_is_a_junit_testcase_with_its_figures(project: Project) -> None:
    _run(project)
    rows = project.rows()
    cases = ET.parse(project.outside / "junit.xml").getroot().iter("testcase")
    props = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert len(props) == len(rows) == 5
    for row, prop in zip(rows, props):
        assert prop["trial"] == row["trial"] and prop["status"] == row["status"] and prop["commit"] == row["commit"]
        assert prop["score"] == row["score"] and prop["delta"] == row["delta"]
        assert float(prop["seconds"]) == pytest.approx(float(row["seconds"]), abs=0.002)
    assert props[0]["status"] == "baseline" and props[3]["status"] == "crash" and "ValueError" in props[3]["reason"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trials_junit_time_is_its_real_time(project: Project, workers: int) -> None:
    """Serial and parallel trials alike: each testcase's time covers its runs, not the report."""
    project.init()
    result = project.loop(
        project.replay(
            {"description": "steeper", "files": project.model_with(SCALE=2.0)},
            {"description": "worse", "files": project.model_with(SCALE=0.5)},
            {"description": "exact", "files": project.model_with(SCALE=2.5, OFFSET=3)},
        ),
        f"--junitxml={project.outside / 'junit.xml'}",
        "--autoresearch-trials=3",
        f"--autoresearch-workers={workers}",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    cases = list(ET.parse(project.outside / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == 4
    for case in cases:
        seconds = float({p.get("name"): p.get("value") for p in case.iter("property")}["seconds"])
        assert seconds > 0.05  # a real pytest run of the suite
        assert seconds - 0.002 <= float(case.get("time")) < seconds + 10, case.get("name")


def test_tokens_and_cost_reach_junit_when_the_model_reports_them(project: Project) -> None:
    pytest.importorskip("litellm")
    from llm_server import answer, scripted_server

    project.init()
    edit = "Steeper.\n\nmodel.py\n<<<<<<< SEARCH\nSCALE = 1.0\n=======\nSCALE = 2.5\n>>>>>>> REPLACE\n"
    with scripted_server(answer(edit, prompt_tokens=120, completion_tokens=30)) as server:
        result = project.loop(
            "--autoresearch-agent=litellm:openai/gpt-4o-mini",
            "-o", f"autoresearch_api_base={server.url}",
            "--autoresearch-trials=1",
            f"--junitxml={project.outside / 'junit.xml'}",
            env={"OPENAI_API_KEY": "sk-test"},
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    cases = list(ET.parse(project.outside / "junit.xml").getroot().iter("testcase"))
    trial = {p.get("name"): p.get("value") for p in cases[1].iter("property")}
    assert trial["tokens_in"] == "120" and trial["tokens_out"] == "30" and float(trial["cost_usd"]) > 0


def test_the_live_line_says_how_far_the_run_is(project: Project) -> None:
    result = _run(project)
    out = result.stdout.str()
    assert re.search(r"trial   1  keep .*\| 1/4, best [\d.]+ \(trial 1\), eta \d:\d\d$", out, re.MULTILINE), out
    assert "| 4/4, best 0 (trial 4), eta 0:00" in out
    assert "\x1b[" not in out and "\r" not in out  # a CI log gets plain lines
    project_q = project.loop("--autoresearch-trials=1", "-q", tag="quiet")
    assert "| 1/1" not in project_q.stdout.str() and "trial   1" not in project_q.stdout.str()
    timed = project.loop("--autoresearch-trials=1", "--autoresearch-time=1h", tag="timed")
    assert "| 1/1, 0:0" in timed.stdout.str() and " of 1:00:00, best " in timed.stdout.str()


def test_the_progress_plot_is_a_png_in_the_run_folder(project: Project) -> None:
    pytest.importorskip("matplotlib")
    result = _run(project)
    png = project.path / ".autoresearch" / "t" / "progress.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 600)
    assert f"progress plot: {png}" in result.stdout.str()


def test_a_run_of_the_baseline_alone_draws_no_plot(project: Project) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("needs matplotlib: without it no run draws a plot")
    project.init()
    result = project.loop("--autoresearch-trials=0")
    assert result.ret == 0, result.stdout.str()
    assert "1 baseline in" in result.stdout.str() and "progress plot" not in result.stdout.str()
    assert not (project.path / ".autoresearch" / "t" / "progress.png").exists()


def test_without_matplotlib_the_run_says_how_to_get_the_plot(project: Project) -> None:
    project.init()
    fake = project.outside / "nomatplotlib"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH", "")) if p)  # this checkout still on the path
    result = project.loop("--autoresearch-trials=1", env={"PYTHONPATH": path})
    assert result.ret == 0, result.stdout.str()
    assert f"no progress plot: the progress plot needs matplotlib: {pip_install('plot')}" in result.stdout.str()
    assert not (project.path / ".autoresearch" / "t" / "progress.png").exists()


def test_the_report_reprints_a_run_from_its_log_and_runs_nothing(project: Project) -> None:
    live = _run(project)
    before = project.snapshot(), project.git("for-each-ref"), sorted(p.name for p in (project.path / ".autoresearch" / "t" / "trials").iterdir())
    report = project.run("--autoresearch-report", "--autoresearch-tag=t")
    assert report.ret == 0, report.stderr.str()
    out = report.stdout.str()
    summary = live.stdout.str().split("= autoresearch =")[1]
    for line in summary.splitlines():
        if line.startswith(("test_error (min)", "4 trials:", "branch autoresearch/t is at")):
            assert line in out  # the same figures as at the end of the run
    assert "broken" in out and "worse" in out
    kept = project.run("--autoresearch-report", "--autoresearch-tag=t", "--autoresearch-kept").stdout.str()
    assert "steeper" in kept and "exact" in kept and "worse" not in kept and "broken" not in kept
    assert (project.snapshot(), project.git("for-each-ref"), sorted(p.name for p in (project.path / ".autoresearch" / "t" / "trials").iterdir())) == before
    project.loop("--autoresearch-trials=1", tag="second")
    listing = project.run("--autoresearch-report").stdout.str()
    assert "t                   4 trials    2 kept   test_error (min) 113.625 -> 0" in listing
    assert "second" in listing and "--autoresearch-tag=TAG" in listing
    unknown = project.run("--autoresearch-report", "--autoresearch-tag=nope")
    assert unknown.ret == 4 and "no run 'nope'" in unknown.stderr.str() and "runs: t, second" in unknown.stderr.str()


def test_the_audit_trail_accounts_for_every_trial(project: Project) -> None:
    _run(project)
    folder = project.path / ".autoresearch" / "t"
    records = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    rows = project.rows()
    assert [r["trial"] for r in records] == [int(row["trial"]) for row in rows]
    for record, row in zip(records, rows):
        assert record["status"] == row["status"] and record["commit"] == row["commit"]
        assert (record["score"] is None and row["score"] == "") or record["score"] == float(row["score"])
        assert record["tree"] == project.git("rev-parse", f"{row['commit']}^{{tree}}")
        assert record["environment"]["python"] and record["environment"]["packages"]["pytest"]
        assert (folder / f"environment-{record['environment']['packages_sha256'][:12]}.txt").exists()
        assert record["started"] <= record["ended"]
        for log in record["logs"]:
            assert (folder / log).exists()
        if record["status"] == "baseline":
            continue
        assert record["parent"] == project.git("rev-parse", f"{row['commit']}^")
        diff = subprocess.run(["git", "diff", "--binary", "--full-index", record["parent"], record["commit"]], cwd=project.path, capture_output=True).stdout
        assert record["diff_sha256"] == hashlib.sha256(diff).hexdigest()
    # the weights the evaluator registered, by hash: each matches the model the trial ran
    for record in records:
        if record["status"] in ("baseline", "keep", "discard"):
            scale = project.git("show", f"{record['commit']}:model.py").split("SCALE = ")[1].split("\n")[0]
            (artifact,) = record["artifacts"]["tests/test_fitness.py::test_error"].values()
            assert artifact == hashlib.sha256(repr(float(scale)).encode()).hexdigest()
    assert records[3]["artifacts"] == {}  # the crash registered nothing


def test_finalize_makes_a_review_branch_and_a_summary(project: Project) -> None:
    _run(project)
    before = project.snapshot()
    result = project.run("--autoresearch-finalize", "--autoresearch-tag=t")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "review branch autoresearch-review/t (2 commits)" in result.stdout.str()
    assert project.git("rev-parse", "autoresearch-review/t^{tree}") == project.git("rev-parse", "autoresearch/t^{tree}")
    summary = (project.path / ".autoresearch" / "t" / "SUMMARY.md").read_text()
    assert "steeper" in summary and "exact" in summary
    assert project.snapshot() == before
    missing = project.run("--autoresearch-finalize", "--autoresearch-tag=nope")
    assert missing.ret != 0 and "nope" in missing.stderr.str()


def test_reading_commands_need_no_git_repository_of_runs(project: Project, tmp_path: Path) -> None:
    project.init()
    result = project.run("--autoresearch-report")
    assert result.ret == 0 and "no runs under" in result.stdout.str()
