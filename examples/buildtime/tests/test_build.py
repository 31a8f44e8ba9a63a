"""Gates: the settings are ones the harness accepts, and the build still makes the same program."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import builder

# What every correct build of the generated project prints (any -O, -g, unit grouping or LTO).
EXPECTED = "checksum 1e7243cc875ecaa6"


def test_the_settings_are_in_range() -> None:
    problem = builder.config_problem()
    assert not problem, problem


@pytest.mark.parametrize("line", ["jobs = 0", "opt_level = 4", "debug_info = -1", "pch = 2", "unity_chunks = 65", "jobs = 1.5", "jobs = true"])
def test_the_harness_rejects_a_value_out_of_range(tmp_path: Path, line: str) -> None:
    (tmp_path / "build.toml").write_text(line + "\n")
    with pytest.raises(builder.ConfigError, match="out of range"):
        builder.load_config(tmp_path / "build.toml")


def test_the_harness_ignores_unknown_keys_and_fills_defaults(tmp_path: Path) -> None:
    (tmp_path / "build.toml").write_text("skip_tests = 1\njobs = 2\n")
    config = builder.load_config(tmp_path / "build.toml")
    assert config == {name: default for name, (_, _, default) in builder.SETTINGS.items()} | {"jobs": 2}


def test_the_program_prints_the_expected_checksum(build: builder.Build) -> None:
    out = subprocess.run([str(build.program)], capture_output=True, text=True, timeout=30).stdout.strip()
    assert out == EXPECTED, f"the build changed the program's behaviour: it printed {out!r}, not {EXPECTED!r}"
