"""Fixtures of the frozen evaluator: the database is built here, never by indexes.sql."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import workload

TUNING = Path(__file__).resolve().parent.parent / "indexes.sql"


@pytest.fixture(scope="session")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "shop.db"
    workload.build(path)
    return path


@pytest.fixture(scope="session")
def expected(base_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each query's answers on the untuned database: what any tuning must reproduce."""
    path = tmp_path_factory.mktemp("untuned") / "shop.db"
    shutil.copy(base_db, path)
    conn = workload.connect(path)
    try:
        return workload.digests(workload.run_pass(conn))
    finally:
        conn.close()


@pytest.fixture(scope="session")
def tuned(base_db: Path, tmp_path_factory: pytest.TempPathFactory):
    """A fresh copy of the database with indexes.sql applied (shared by the gate and the timing)."""
    path = tmp_path_factory.mktemp("tuned") / "shop.db"
    shutil.copy(base_db, path)
    conn = workload.connect(path, TUNING.read_text(encoding="utf-8"))
    yield conn
    conn.close()
