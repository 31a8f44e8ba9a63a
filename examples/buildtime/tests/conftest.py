"""Frozen: one evaluation (the fastest of a few clean builds) per pytest session, shared by the
gate and the fitness test."""

from __future__ import annotations

import pytest

import builder


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> builder.Build:
    if builder.gcc() is None:
        pytest.skip("gcc is not on PATH: this example times a gcc build of a C project")
    problem = builder.config_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    return builder.best_of(builder.load_config(), tmp_path_factory.mktemp("build"))
