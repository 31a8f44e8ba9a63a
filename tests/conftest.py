"""Fixtures for the plugin's tests: a user's repository and a guard against leftover processes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import GIT_ENV, Project, processes_with


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Project:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return Project(pytester, tmp_path_factory.mktemp("outside"))


@pytest.fixture
def no_leftovers() -> Iterator[str]:
    """A unique marker for processes a test starts; fails the test if any outlive it."""
    marker = f"autoresearch-leftover-{os.getpid()}-{id(object())}"
    yield marker
    alive = processes_with(marker)
    for pid in alive:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    assert not alive, f"processes outlived the run: {alive}"
