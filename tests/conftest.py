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


_IMPORT_STATE: dict[str, list[object]] = {}


@pytest.fixture(autouse=True)
def _package_metadata_stays_findable(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that run pytest in this process (pytester's inline runs, ``parseconfig``) find the
    plugin through ``importlib.metadata``. Should an earlier test leave the process's import
    state so that no distribution is found any more (litellm imported while a test runs does,
    which is why tests/test_llm_agent.py imports it at collection), try to put it back as the session started and say which test left it so."""
    import importlib
    import importlib.metadata
    import sys
    import warnings

    if not _IMPORT_STATE:
        _IMPORT_STATE.update(path=list(sys.path), meta_path=list(sys.meta_path))
    yield
    try:
        importlib.metadata.version("pluggy")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    importlib.invalidate_caches()
    sys.path[:] = [p for p in sys.path] + [p for p in _IMPORT_STATE["path"] if p not in sys.path]  # type: ignore[misc]
    sys.meta_path[:] = [f for f in sys.meta_path] + [f for f in _IMPORT_STATE["meta_path"] if f not in sys.meta_path]  # type: ignore[misc]
    try:
        importlib.metadata.version("pluggy")
        how = "repaired"
    except importlib.metadata.PackageNotFoundError:
        how = "NOT repaired"
    warnings.warn(f"{request.node.nodeid} left importlib.metadata finding no distribution ({how}); sys.meta_path={sys.meta_path!r}")


#: Test modules about pytest-benchmark itself: their pytest runs load it as a user's would.
_WITH_PYTEST_BENCHMARK = ("test_timing",)


@pytest.fixture(autouse=True)
def _pytest_benchmark_left_out(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-benchmark is installed for ``test_timing.py``, and loading it costs each pytest
    start about 0.25 s here; the suite starts pytest some thousands of times (pytester runs,
    loops, their trials), so those runs leave it out (``-p no:benchmark`` in PYTEST_ADDOPTS, which
    trials inherit) unless the test is about it. Set after ``pytester`` and ``project``, which
    clear PYTEST_ADDOPTS."""
    if request.module.__name__.rsplit(".", 1)[-1] in _WITH_PYTEST_BENCHMARK:
        return
    import importlib.util

    if importlib.util.find_spec("pytest_benchmark") is None:
        return
    for name in ("project", "pytester"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
    monkeypatch.setenv("PYTEST_ADDOPTS", (os.environ.get("PYTEST_ADDOPTS", "") + " -p no:benchmark").strip())
