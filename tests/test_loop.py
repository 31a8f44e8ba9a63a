"""The research loop end to end, as a user runs it: real git repositories, real trials."""

from __future__ import annotations

import os
import signal
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import MODEL, Project, default_files, processes_with

from pytest_autoresearch.store.results_log import LEADING, TRAILING


def test_keep_discard_and_the_branch(project: Project) -> None:
    project.init()
    before = project.snapshot()
    head = project.git("rev-parse", "HEAD")
    result = project.loop(
        project.replay(
            {"description": "steeper slope", "files": project.model_with(SCALE=2.5)},
            {"description": "negative slope", "files": project.model_with(SCALE=-1.0)},
            {"description": "offset three", "files": project.model_with(SCALE=2.5, OFFSET=3)},
        ),
        "--autoresearch-trials=3",
    )
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "discard", "keep"]
    assert [int(r["trial"]) for r in rows] == [0, 1, 2, 3]
    scores = [float(r["score"]) for r in rows]
    assert scores[1] < scores[0] and scores[2] > scores[1] and scores[3] < scores[1]
    assert scores[3] == 0.0
    assert rows[0]["commit"] == head

    # the branch holds exactly the kept commits, each with the evaluated tree and trailers
    assert project.git("rev-parse", "autoresearch/t") == rows[3]["commit"]
    assert project.git("rev-list", "--reverse", f"{head}..autoresearch/t").split() == [rows[1]["commit"], rows[3]["commit"]]
    assert "OFFSET = 3" in project.git("show", "autoresearch/t:model.py")
    message = project.git("log", "-1", "--format=%B", "autoresearch/t")
    assert message.startswith("offset three")
    assert "Autoresearch-Trial: 3" in message and "Autoresearch-Status: keep" in message
    assert f"Autoresearch-Score: {float(rows[3]['score'])!r}" in message

    # the discarded trial stays reachable, with its diff
    ref = "refs/autoresearch/t/trials/002"
    assert project.git("rev-parse", ref) == rows[2]["commit"]
    assert "SCALE = -1.0" in project.git("show", f"{ref}:model.py")
    assert project.git("rev-parse", f"{ref}^") == rows[1]["commit"]
    assert "+SCALE = -1.0" in project.git("show", ref)

    # the user's checkout: untouched; the run folder: invisible to git status
    assert project.snapshot() == before
    assert ".autoresearch" not in project.git("status", "--porcelain", "--ignored=no")
    result.stdout.fnmatch_lines(
        [
            "*test_error (min): baseline 113.625 -> best 0 (trial 3*",
            "*3 trials: 2 keep, 1 discard*",
            "*git merge autoresearch/t*",
            "*1 baseline, 2 keep, 1 discard in *",
        ]
    )
    assert not (project.path / ".autoresearch" / "t" / "worktree").exists()


def test_crashes_are_logged_with_a_reason_and_are_not_failures(project: Project) -> None:
    project.init()
    head = project.git("rev-parse", "HEAD")
    broken = MODEL.replace("return SCALE * x + OFFSET", "return str(SCALE * x)")
    syntax = MODEL.replace("def predict(x):", "def predict(x)")
    nan = MODEL.replace("SCALE = 1.0", 'SCALE = float("nan")')
    result = project.loop(
        project.replay(
            {"description": "breaks the gate", "files": {"model.py": broken}},
            {"description": "syntax error", "files": {"model.py": syntax}},
            {"description": "not a number", "files": {"model.py": nan}},
        ),
        "--autoresearch-trials=3",
    )
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "crash", "crash", "crash"]
    assert "tests/test_gate.py::test_predict_returns_a_float failed" in rows[1]["reason"]
    assert "SyntaxError" in rows[2]["reason"] or "invalid syntax" in rows[2]["reason"] or "expected ':'" in rows[2]["reason"]
    assert "test_error" in rows[3]["reason"] and "finite number" in rows[3]["reason"]
    assert all(r["score"] == "" for r in rows[1:])
    assert project.git("rev-parse", "autoresearch/t") == head
    # each crashed trial still has its commit
    for n in (1, 2, 3):
        assert project.git("rev-parse", f"refs/autoresearch/t/trials/00{n}") == rows[n]["commit"]
    result.stdout.fnmatch_lines(["*trial   1  crash*breaks the gate*test_predict_returns_a_float*"])


def test_hung_trials_are_killed_with_their_children(project: Project, no_leftovers: str) -> None:
    project.init()
    spawn = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{no_leftovers}'])\n"
    )
    hang = MODEL.replace("    return SCALE * x + OFFSET", "    while True:\n        pass")
    # pytest-timeout cannot interrupt this one: only the driver's hard deadline can
    deaf = MODEL.replace(
        "    return SCALE * x + OFFSET",
        "    import signal\n    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n    while True:\n        pass",
    )
    child_then_hang = spawn + hang
    child_then_pass = spawn + project.model_with(SCALE=2.5)["model.py"]
    start = time.monotonic()
    result = project.loop(
        project.replay(
            {"description": "hang", "files": {"model.py": hang}},
            {"description": "deaf hang", "files": {"model.py": deaf}},
            {"description": "child then hang", "files": {"model.py": child_then_hang}},
            {"description": "leaves a child behind", "files": {"model.py": child_then_pass}},
        ),
        "--autoresearch-trials=4",
        "--autoresearch-timeout=5",
    )
    elapsed = time.monotonic() - start
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "timeout", "timeout", "timeout", "keep"]
    assert "exceeded its time limit" in rows[1]["reason"]
    assert "killed at the 5s trial deadline" in rows[2]["reason"]
    assert all(float(r["seconds"]) < 6 for r in rows[1:4]), [r["seconds"] for r in rows]
    assert elapsed < 60
    time.sleep(0.2)
    assert processes_with(no_leftovers) == []


def test_every_row_is_whole(project: Project) -> None:
    project.init()
    result = project.loop(
        project.replay(
            {"description": "tab\there and\nnewlines\r\ntoo", "files": project.model_with(SCALE=2.0)},
            {"description": "outside", "files": {"tests/test_gate.py": "def test_x():\n    pass\n"}},
            {"description": "", "files": project.model_with(SCALE=3.0)},
        ),
        "--autoresearch-trials=3",
    )
    assert result.ret == 0, result.stdout.str()
    text = (project.path / ".autoresearch" / "t" / "results.tsv").read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    header = lines[0].split("\t")
    assert header[: len(LEADING)] == list(LEADING) and header[-len(TRAILING):] == list(TRAILING)
    assert len(lines) == 5
    for line in lines[1:]:
        assert len(line.split("\t")) == len(header), line
    rows = project.rows()
    assert rows[1]["description"] == "tab here and newlines too"
    assert rows[2]["status"] == "invalid" and "tests/test_gate.py" in rows[2]["reason"]
    assert rows[2]["commit"] == ""
    assert rows[3]["description"] == "(proposals.jsonl line 3)"
    for row in rows:
        float(row["seconds"])
    # the invalid proposal never reached any commit or the worktree
    assert "def test_x" not in project.git("log", "--all", "-p")


def test_patch_proposals_apply(project: Project) -> None:
    project.init()
    patch = (
        "diff --git a/model.py b/model.py\n"
        "index 0000000..1111111 100644\n"
        "--- a/model.py\n"
        "+++ b/model.py\n"
        "@@ -2,5 +2,5 @@\n"
        " \n"
        "-SCALE = 1.0\n"
        "-OFFSET = 0\n"
        "+SCALE = 2.5\n"
        "+OFFSET = 3\n"
        " \n"
        " \n"
    )
    bad = "--- a/model.py\n+++ b/model.py\n@@ -1,1 +1,1 @@\n-no such line\n+x\n"
    result = project.loop(
        project.replay({"description": "exact", "patch": patch}, {"description": "stale", "patch": bad}),
        "--autoresearch-trials=2",
    )
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "invalid"]
    assert float(rows[1]["score"]) == 0.0
    assert "does not apply" in rows[2]["reason"]


def test_replay_running_out_ends_the_loop(project: Project) -> None:
    project.init()
    result = project.loop(
        project.replay({"description": "one", "files": project.model_with(SCALE=2.0)}),
        "--autoresearch-trials=5",
    )
    assert result.ret == 0, result.stdout.str()
    assert project.statuses() == ["baseline", "keep"]
    result.stdout.fnmatch_lines(["*stopped: replay: all 1 proposals of proposals.jsonl were used*"])


def test_verbose_lists_each_trial_with_its_status_word(project: Project) -> None:
    project.init()
    result = project.loop(
        project.replay(
            {"description": "better", "files": project.model_with(SCALE=2.0)},
            {"description": "worse", "files": project.model_with(SCALE=0.5)},
            {"description": "outside", "files": {"pyproject.toml": ""}},
        ),
        "--autoresearch-trials=3",
        "-v",
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            ".autoresearch/t::trial-000 BASELINE*baseline*",
            ".autoresearch/t::trial-001 KEEP*better*",
            ".autoresearch/t::trial-002 DISCARD*worse*",
            ".autoresearch/t::trial-003 INVALID*outside*",
        ]
    )


def test_default_output_has_one_live_line_per_trial(project: Project) -> None:
    project.init()
    result = project.loop(project.replay({"description": "better", "files": project.model_with(SCALE=2.0)}), "--autoresearch-trials=1")
    result.stdout.fnmatch_lines(
        [
            "autoresearch: run t from main*",
            "autoresearch: surface model.py; agent replay*; stops at 1 trials or after the last of the 1 proposals in proposals.jsonl",
            "trial   0  baseline *113.625 * baseline",
            "trial   1  keep * (-*) *better  | 1/1, best * (trial 1), eta 0:00",
        ]
    )


def test_mutate_finds_an_improvement_within_twelve_trials(project: Project) -> None:
    project.init()
    result = project.loop("--autoresearch-agent=mutate", "--autoresearch-trials=12")
    assert result.ret == 0, result.stdout.str()
    rows = project.rows()
    assert len(rows) == 13
    kept = [float(r["score"]) for r in rows if r["status"] == "keep"]
    assert kept, [r["status"] for r in rows]
    assert kept[-1] < float(rows[0]["score"])
    assert all(b < a for a, b in zip([float(rows[0]["score"])] + kept, kept))
    assert all(r["description"] and "->" in r["description"] for r in rows[1:])


def test_the_driver_never_imports_the_code_under_test(project: Project) -> None:
    marker = project.outside / "imported-by"
    files = {
        "model.py": MODEL + f"\nimport os\nwith open({str(marker)!r}, 'a') as _f:\n    _f.write(f'{{os.getpid()}}\\n')\n",
    }
    project.init()
    project.write(files)
    project.git("commit", "-qam", "record importers")
    proc = project.pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", "--autoresearch-tag=t", "--autoresearch-trials=1"],
        stdout=open(os.devnull, "w"),
        stderr=open(os.devnull, "w"),
    )
    assert proc.wait(timeout=120) == 0
    importers = {int(line) for line in marker.read_text().split()}
    assert len(importers) >= 2  # the baseline and the trial imported it, each in its own process
    assert proc.pid not in importers


def test_trials_run_what_the_command_line_selects(project: Project) -> None:
    files = {**default_files(), "tests/test_other.py": "def test_always_fails():\n    assert False\n"}
    project.init(files)
    assert project.loop("--autoresearch-trials=0").ret != 0  # the whole suite fails at the baseline
    result = project.loop("tests/test_fitness.py", "tests/test_gate.py", "--autoresearch-trials=1", tag="narrow")
    assert result.ret == 0, result.stdout.str()
    assert project.statuses("narrow")[0] == "baseline"
    log = (project.path / ".autoresearch" / "narrow" / "trials" / "000.log").read_text()
    assert "test_other" not in log


def test_autoresearch_tests_narrows_the_trials(project: Project) -> None:
    files = {
        **default_files(),
        "tests/test_other.py": "def test_always_fails():\n    assert False\n",
        "pyproject.toml": default_files()["pyproject.toml"] + 'autoresearch_tests = ["tests/test_fitness.py"]\n',
    }
    project.init(files)
    result = project.loop("--autoresearch-trials=0")
    assert result.ret == 0, result.stdout.str()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_trial_kills_it_and_keeps_the_log(project: Project, no_leftovers: str, sig: signal.Signals) -> None:
    project.init()
    hang = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{no_leftovers}'])\n"
        + MODEL.replace("    return SCALE * x + OFFSET", "    while True:\n        pass")
    )
    agent = project.replay(
        {"description": "better", "files": project.model_with(SCALE=2.0)},
        {"description": "hang", "files": {"model.py": hang}},
    )
    proc = project.pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", "--autoresearch-tag=t", agent, "--autoresearch-timeout=120"],
        stdout=open(project.outside / "out.txt", "w"),
        stderr=open(project.outside / "err.txt", "w"),
    )
    log = project.path / ".autoresearch" / "t" / "trials" / "002.log"
    deadline = time.monotonic() + 60
    while not processes_with(no_leftovers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(no_leftovers), "the hanging trial never started"
    assert log.exists()
    proc.send_signal(sig)
    assert proc.wait(timeout=30) != 0
    time.sleep(0.2)
    assert processes_with(no_leftovers) == []
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "crash"]
    assert rows[2]["reason"] == "interrupted (Ctrl-C or SIGTERM) before it was judged"
    assert project.git("rev-parse", "refs/autoresearch/t/trials/002") == rows[2]["commit"]
    assert project.git("rev-parse", "autoresearch/t") == rows[1]["commit"]
    assert project.git("status", "--porcelain") == ""
    assert not (project.path / ".autoresearch" / "t" / "worktree").exists()
    out = (project.outside / "out.txt").read_text()
    assert "2 trials: 1 keep, 1 crash" in out, out
    assert "stopped: interrupted; run again with --autoresearch-tag=t to continue this run" in out


def test_trials_appear_in_junitxml(project: Project) -> None:
    project.init()
    junit = project.outside / "junit.xml"
    result = project.loop(
        project.replay({"description": "better", "files": project.model_with(SCALE=2.0)}),
        "--autoresearch-trials=1",
        f"--junitxml={junit}",
    )
    assert result.ret == 0
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["trial-000", "trial-001"]
    props = {p.get("name"): p.get("value") for p in cases[1].findall(".//property")}
    assert props["status"] == "keep"
    assert float(props["score"]) == pytest.approx(float(project.rows()[1]["score"]))


def test_uncommitted_work_elsewhere_is_left_alone(project: Project) -> None:
    project.init()
    (project.path / "tests" / "test_gate.py").write_text(
        (project.path / "tests" / "test_gate.py").read_text() + "\n# my local note\n"
    )
    (project.path / "notes.txt").write_text("untracked notes\n")
    (project.path / "model.py").write_text(MODEL.replace("SCALE = 1.0", "SCALE = 9.0"))
    project.git("add", "tests/test_gate.py")
    (project.path / "tests" / "test_gate.py").write_text(
        (project.path / "tests" / "test_gate.py").read_text() + "# and an unstaged one\n"
    )
    before = project.snapshot()
    result = project.loop(project.replay({"description": "better", "files": project.model_with(SCALE=2.0)}), "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str()
    assert project.snapshot() == before
    result.stdout.fnmatch_lines(
        [
            "*uncommitted changes to model.py, tests/test_gate.py are not part of the run: it starts from HEAD and never "
            "touches your checkout (the loop optimises the committed model.py, not the version in your editor)*"
        ]
    )
    assert "my local note" not in project.git("show", "autoresearch/t:tests/test_gate.py")
    assert float(project.rows()[0]["score"]) == 113.625  # the committed SCALE = 1.0, not the edited 9.0


def test_a_project_in_a_subfolder_of_the_repository(project: Project) -> None:
    files = {f"sub/{k}": v for k, v in default_files().items()}
    project.init(files)
    result = project.run(
        "--rootdir=sub",
        "-c",
        "sub/pyproject.toml",
        "--autoresearch",
        "--autoresearch-tag=t",
        project.replay({"description": "better", "files": project.model_with(SCALE=2.0)}),
        "--autoresearch-trials=1",
    )
    assert result.ret == 0, result.stdout.str()
    rows = Path(project.path / "sub" / ".autoresearch" / "t" / "results.tsv").read_text().splitlines()
    assert [line.split("\t")[3] for line in rows[1:]] == ["baseline", "keep"]
    assert "SCALE = 2.0" in project.git("show", "autoresearch/t:sub/model.py")
    assert project.git("status", "--porcelain") == ""


def test_carried_data_reaches_trials_and_leftovers_do_not_reach_the_next_trial(project: Project) -> None:
    """A data folder git ignores is linked into the worktree (autoresearch_carry); a file a
    trial leaves behind is gone before the next trial, the carried folder is not."""
    files = default_files()
    files[".gitignore"] = "data/\n"
    files["pyproject.toml"] += 'autoresearch_carry = ["data"]\n'
    files["tests/test_data.py"] = (
        "from pathlib import Path\n\n\ndef test_the_carried_data_is_there():\n"
        "    assert Path('data/values.txt').read_text() == '1 2 3\\n'\n"
    )
    project.init(files)
    (project.path / "data").mkdir()
    (project.path / "data" / "values.txt").write_text("1 2 3\n")
    leaves = MODEL + "\nfrom pathlib import Path as _P\n_P(__file__).with_name('leftover.txt').write_text('x')\n"
    checks = MODEL.replace("SCALE = 1.0", "SCALE = 2.5") + (
        "\nfrom pathlib import Path as _P\nassert not _P(__file__).with_name('leftover.txt').exists(), 'a leftover of trial 1'\n"
    )
    result = project.loop(
        project.replay(
            {"description": "leaves a file", "files": {"model.py": leaves.replace("SCALE = 1.0", "SCALE = 2.0")}},
            {"description": "checks for it", "files": {"model.py": checks}},
        ),
        "--autoresearch-trials=2",
    )
    assert result.ret == 0, result.stdout.str()
    assert project.statuses() == ["baseline", "keep", "keep"], [r["reason"] for r in project.rows()]
    assert (project.path / "data" / "values.txt").read_text() == "1 2 3\n"  # the user's data, untouched


def test_the_users_git_hooks_never_run(project: Project) -> None:
    """Refs move without git hooks: a reference-transaction hook that fails (or writes) is not run."""
    project.init()
    marker = project.outside / "hook-ran"
    hook = project.path / ".git" / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    hook.chmod(0o755)
    result = project.loop(project.replay({"description": "steeper", "files": project.model_with(SCALE=2.5)}))
    assert result.ret == 0, result.stdout.str()
    assert [r["status"] for r in project.rows()] == ["baseline", "keep"]
    assert not marker.exists()
