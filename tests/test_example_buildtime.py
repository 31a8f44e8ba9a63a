"""examples/buildtime: the wall time of a clean gcc build of a generated C project, tuned through
build.toml; the program's checksum is the gate."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import example_copy, mutate_trials, run_pytest

NAME = "buildtime"
SCORE = re.compile(r"tests/test_fitness.py::test_build_seconds\s+(\d+\.\d+)\s+min\s+.*\bunits=(\d+), jobs_used=(\d+)")

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not on PATH: the example builds a C project with it")


def set_settings(copy: Path, **settings: int) -> None:
    path = copy / "build.toml"
    text = path.read_text()
    for name, value in settings.items():
        text = re.sub(rf"(?m)^{name} = \d+", f"{name} = {value}", text)
    path.write_text(text)


@needs_gcc
def test_plain_pytest_builds_and_shows_the_build_time(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    result = run_pytest(copy)
    out = "\n".join(result.outlines)
    assert result.ret == 0, out
    match = SCORE.search(out)
    assert match, out
    assert 0 < float(match.group(1)) < 60
    assert match.group(2, 3) == ("17", "1")  # 16 modules and main.c, one compiler at a time


@needs_gcc
def test_a_build_that_changes_the_program_fails_and_jobs_are_capped(tmp_path: Path) -> None:
    """-ffast-math builds fine but changes the checksum (from -O1 up); 64 jobs run as this
    machine's CPUs. A light configuration otherwise, so the three builds are quick."""
    copy = example_copy(NAME, tmp_path)
    set_settings(copy, fast_math=1, opt_level=1, debug_info=0, jobs=64, unity_chunks=4)
    result = run_pytest(copy)
    out = "\n".join(result.outlines)
    assert result.ret == 1, out
    assert "FAILED tests/test_build.py::test_the_program_prints_the_expected_checksum" in out
    assert "the build changed the program's behaviour" in out
    match = SCORE.search(out)
    assert match, out
    assert match.group(2, 3) == ("4", str(len(os.sched_getaffinity(0))))


def test_a_value_out_of_range_fails_clearly_without_building(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    set_settings(copy, opt_level=7)
    result = run_pytest(copy)
    out = "\n".join(result.outlines)
    assert result.ret == 1, out
    assert "build.toml: opt_level = 7 is out of range: it must be an integer from 0 to 3" in out
    assert result.duration < 15, "a rejected configuration should not be built"


def test_without_gcc_the_build_tests_skip_with_the_reason(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    result = run_pytest(copy, "-rs", env={"PATH": str(tmp_path / "empty")})
    out = "\n".join(result.outlines)
    assert result.ret == 0, out
    assert "gcc is not on PATH: this example times a gcc build of a C project" in out
    assert re.search(r"\b2 skipped\b", out), out


@needs_gcc
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_mutate_trials(tmp_path: Path) -> None:
    rows = mutate_trials(NAME, tmp_path, timed=True)
    assert all(float(r["score"]) > 0 for r in rows if r["score"]), rows  # a timing, measured on every scored trial
