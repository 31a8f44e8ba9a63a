"""Gates: tuning may make the workload faster, never change what it answers or what it runs on."""

from __future__ import annotations

import pytest
import workload

from conftest import TUNING


def test_only_index_and_pragma_statements() -> None:
    try:
        workload.plan(TUNING.read_text(encoding="utf-8"))
    except workload.TuningError as e:
        pytest.fail(str(e), pytrace=False)


def test_answers_match_the_untuned_database(tuned, expected: dict[str, str]) -> None:
    got = workload.digests(workload.run_pass(tuned))
    changed = [name for name in expected if got[name] != expected[name]]
    assert not changed, f"indexes.sql changes the answers of: {', '.join(changed)}"
