"""With bytecode writing on (Python's default), the loop leaves no ``__pycache__`` in your
checkout: pytest imports your conftest in the driver, and its caches go to a private folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import Project, default_files

CONFTEST = "import helper_module  # a module of yours that the conftest imports\n"


def _with_conftest() -> dict[str, str]:
    return {**default_files(), "tests/conftest.py": CONFTEST, "tests/helper_module.py": "VALUE = 1\n"}


def _caches(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.pyc") if ".git" not in p.parts and ".autoresearch" not in p.parts)


@pytest.fixture
def writes_bytecode(project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bytecode on, and a temporary folder of this test's own, where the private cache goes."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    temp = tmp_path_factory.mktemp("temp")
    monkeypatch.setenv("TMPDIR", str(temp))
    return temp


def test_a_run_leaves_no_bytecode_in_the_checkout_and_keeps_it_in_a_private_folder(project: Project, writes_bytecode: Path) -> None:
    project.init(_with_conftest())
    result = project.loop("--autoresearch-trials=1")
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    assert project.git("status", "--porcelain", "--ignored", "--", ".", ":!.autoresearch") == ""
    assert _caches(project.path) == []
    private = writes_bytecode / f"pytest-autoresearch-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700
    cached = [p.name for p in (private / "pycache").rglob("*.pyc")]
    assert any(name.startswith("conftest.") for name in cached) and any(name.startswith("helper_module.") for name in cached)
    again = project.loop("--autoresearch-trials=1", "--autoresearch-report")
    assert again.ret == 0 and _caches(project.path) == []


def test_a_cache_folder_others_can_write_is_not_used(project: Project, writes_bytecode: Path) -> None:
    """Another user could have made it, or could plant files in it: bytecode stays off instead."""
    project.init(_with_conftest())
    shared = writes_bytecode / f"pytest-autoresearch-{os.getuid()}"
    (shared / "pycache").mkdir(parents=True)
    shared.chmod(0o777)
    result = project.loop("--autoresearch-trials=1")
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    assert _caches(project.path) == [] and list(shared.rglob("*.pyc")) == []


def test_plain_pytest_is_left_as_pytest_makes_it(project: Project, writes_bytecode: Path) -> None:
    """Without --autoresearch the plugin changes nothing: pytest writes its caches where it always does."""
    project.init(_with_conftest())
    assert project.run(env={"PYTHONDONTWRITEBYTECODE": ""}).ret == 0  # the tests' helper turns it off for plain runs
    assert "tests/__pycache__/helper_module.cpython" in " ".join(_caches(project.path))
    assert not (writes_bytecode / f"pytest-autoresearch-{os.getuid()}").exists()
