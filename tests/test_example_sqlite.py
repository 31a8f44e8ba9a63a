"""examples/sqlite: index and PRAGMA tuning of an SQLite query workload, scored by p95 latency."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import example_copy, mutate_trials, run_pytest

NAME = "sqlite"

# Prints each query's plan on the example's database, tuned by indexes.sql changed as argv[1] says.
PLANS = r'''
import json, pathlib, re, sys, tempfile
import workload
text = pathlib.Path("indexes.sql").read_text()
if sys.argv[1] == "switches-on":
    text = re.sub(r"(?m)^(idx_\w+) = 0$", r"\1 = 1", text)
elif sys.argv[1] == "plain-statement":
    text += "\nCREATE INDEX by_status_total ON orders(status, total_cents);\n"
path = pathlib.Path(tempfile.mkdtemp()) / "shop.db"
workload.build(path)
conn = workload.connect(path, text)
print(json.dumps({name: " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, workload.params()[name][0]))
                  for name, sql in workload.QUERIES.items()}))
'''


def plans(copy: Path, change: str) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", PLANS, change], cwd=copy, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_plain_pytest_shows_the_score(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    result = run_pytest(copy)
    out = "\n".join(result.outlines)
    assert result.ret == 0, out
    match = re.search(r"tests/test_fitness.py::test_p95_latency_ms\s+(\d+(?:\.\d+)?)\s+min\s+median_ms=[\d.]+, wall_p95_ms=[\d.]+, indexes=0", out)
    assert match, out
    assert float(match.group(1)) > 0


def test_the_baseline_has_no_useful_index_and_each_switch_adds_one(tmp_path: Path) -> None:
    """The knobs mutate can reach really matter: each of six switches gives a query its index."""
    copy = example_copy(NAME, tmp_path)
    assert not any("USING INDEX" in plan or "USING COVERING INDEX" in plan for plan in plans(copy, "as-shipped").values())
    on = plans(copy, "switches-on")
    for query, index in [
        ("orders_of_customer", "idx_orders_customer"),
        ("items_of_order", "idx_items_order"),
        ("customer_by_email", "idx_customers_email"),
        ("revenue_of_week", "idx_orders_day"),
        ("sales_of_product", "idx_items_product"),
        ("names_like", "idx_customers_name"),
    ]:
        assert index in on[query], (query, on[query])


def test_a_plain_create_index_statement_needs_no_switch(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    assert "by_status_total" in plans(copy, "plain-statement")["big_orders"]


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM orders WHERE id > 100", "DROP TABLE items", "ATTACH DATABASE ':memory:' AS other", "ANALYZE"],
)
def test_a_statement_other_than_index_or_pragma_fails_naming_it(tmp_path: Path, statement: str) -> None:
    copy = example_copy(NAME, tmp_path)
    with (copy / "indexes.sql").open("a") as f:
        f.write(f"\nPRAGMA cache_size = 100; {statement};\n")
    result = run_pytest(copy, "tests/test_tuning.py")
    out = "\n".join(result.outlines)
    assert result.ret == 1, out
    assert f"indexes.sql may hold only CREATE INDEX and PRAGMA statements, not: {statement}" in out


def test_a_pragma_that_changes_answers_fails_the_gate(tmp_path: Path) -> None:
    copy = example_copy(NAME, tmp_path)
    with (copy / "indexes.sql").open("a") as f:
        f.write("\nPRAGMA case_sensitive_like = 1;\n")
    result = run_pytest(copy, "tests/test_tuning.py")
    out = "\n".join(result.outlines)
    assert result.ret == 1, out
    assert "indexes.sql changes the answers of: names_like" in out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_mutate_trials(tmp_path: Path) -> None:
    rows = mutate_trials(NAME, tmp_path, timed=True)
    assert all(float(r["score"]) > 0 for r in rows if r["score"]), rows  # a timing, measured on every scored trial
