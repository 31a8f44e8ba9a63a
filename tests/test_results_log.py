"""results.tsv: header order, one whole row per trial, cells that never break the table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_autoresearch.core.records import TrialRecord
from pytest_autoresearch.store.results_log import ResultsLog, read_results

HEADER = (
    "trial", "parent", "commit", "status", "score", "delta", "runs", "spread", "lines", "seconds", "accuracy", "loss", "reason", "description",
)


def make_log(tmp_path: Path, metrics: tuple[str, ...] = ("accuracy", "loss")) -> ResultsLog:
    log = ResultsLog(tmp_path / "results.tsv", metrics)
    log.create()
    return log


def cells(row: str) -> list[str]:
    assert row.endswith("\n") and row.count("\n") == 1
    return row[:-1].split("\t")


def test_columns_are_in_the_documented_order(tmp_path: Path) -> None:
    assert ResultsLog(tmp_path / "r.tsv", ["accuracy", "loss"]).columns == HEADER
    assert ResultsLog(tmp_path / "r.tsv", ()).columns == (
        "trial", "parent", "commit", "status", "score", "delta", "runs", "spread", "lines", "seconds", "reason", "description",
    )


def test_create_writes_exactly_the_header(tmp_path: Path) -> None:
    make_log(tmp_path)
    assert (tmp_path / "results.tsv").read_bytes() == b"\t".join(c.encode() for c in HEADER) + b"\n"


def test_create_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "results.tsv"
    path.write_text("earlier run\n", encoding="utf-8")
    with pytest.raises(FileExistsError):
        ResultsLog(path, ()).create()
    assert path.read_text(encoding="utf-8") == "earlier run\n"


def test_a_full_row(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "r.tsv", ["accuracy", "loss"])
    record = TrialRecord(
        trial=3,
        status="keep",
        description="lower the learning rate",
        commit="0123abcd",
        score=0.25,
        delta=-0.5,
        seconds=1.23456,
        metrics={"accuracy": 0.9, "loss": 0.125},
        reason="",
        parent_trial=2,
    )
    assert log.row(record) == "3\t2\t0123abcd\tkeep\t0.25\t-0.5\t1\t\t\t1.235\t0.9\t0.125\t\tlower the learning rate\n"


def test_missing_metrics_give_empty_cells_and_unknown_metrics_are_ignored(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "r.tsv", ["accuracy", "loss"])
    record = TrialRecord(1, "crash", "boom", metrics={"loss": 2.0, "not_a_column": 7.0}, reason="ImportError")
    assert cells(log.row(record)) == ["1", "", "", "crash", "", "", "", "", "", "0.0", "", "2.0", "ImportError", "boom"]


@pytest.mark.parametrize(
    "text",
    [
        "tab\there",
        "new\nline",
        "windows\r\nline",
        "carriage\rreturn",
        "  padded  ",
        "many\t\t\ttabs\n\n\nand lines",
        "form\x0cfeed and vertical\x0btab",
        "unicode\u2028line\u2029separators\x85",
    ],
)
def test_whitespace_in_description_and_reason_is_flattened(tmp_path: Path, text: str) -> None:
    log = ResultsLog(tmp_path / "r.tsv", ["accuracy", "loss"])
    row = log.row(TrialRecord(2, "invalid", text, reason=text))
    fields = cells(row)
    assert len(fields) == len(log.columns)
    assert fields[-1] == fields[-2] == " ".join(text.split())
    assert "\r" not in row


def test_description_with_quotes_and_commas_reads_back_intact(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    text = '"quoted", with commas; and \'single\' quotes \\ backslash'
    log.append(TrialRecord(1, "discard", text, reason='"why"'))
    [row] = read_results(log.path)
    assert row["description"] == text
    assert row["reason"] == '"why"'


@pytest.mark.parametrize(
    "value",
    [0.1, 1 / 3, 2 / 3, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 123456789.12345679, 0.30000000000000004, -42.0],
)
def test_floats_round_trip_exactly(tmp_path: Path, value: float) -> None:
    log = make_log(tmp_path)
    log.append(TrialRecord(1, "keep", "d", score=value, delta=value, metrics={"accuracy": value}))
    [row] = read_results(log.path)
    for column in ("score", "delta", "accuracy"):
        assert float(row[column]) == value
        assert math.copysign(1.0, float(row[column])) == math.copysign(1.0, value)


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_missing_or_non_finite_numbers_give_empty_cells(tmp_path: Path, value: float | None) -> None:
    log = ResultsLog(tmp_path / "r.tsv", ["accuracy", "loss"])
    metrics = {} if value is None else {"accuracy": value}
    fields = cells(log.row(TrialRecord(4, "timeout", "slow", score=value, delta=value, metrics=metrics)))
    row = dict(zip(log.columns, fields))
    assert row["score"] == row["delta"] == row["accuracy"] == ""


def test_seconds_are_rounded_to_milliseconds(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "r.tsv", ())
    row = dict(zip(log.columns, cells(log.row(TrialRecord(0, "baseline", "baseline", seconds=12.3456789)))))
    assert row["seconds"] == "12.346"


def test_appended_rows_are_whole_lines(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.append(TrialRecord(0, "baseline", "baseline", commit="aaa", score=1.0, seconds=2.0))
    log.append(TrialRecord(1, "keep", "first\ttry\nwith lines", commit="bbb", score=0.5, delta=0.5, seconds=1.5))
    log.append(TrialRecord(2, "invalid", "bad", reason="touches paths outside\tthe surface"))
    data = log.path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert len(lines[:-1]) == 4
    assert lines[0] == "\t".join(HEADER)
    for line in lines[:-1]:
        assert len(line.split("\t")) == len(HEADER)


def test_read_results_returns_dicts_keyed_by_column(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.append(TrialRecord(0, "baseline", "baseline", commit="aaa", score=1.0, seconds=2.0, metrics={"loss": 0.5}))
    log.append(TrialRecord(1, "discard", "worse: caf\u00e9", commit="bbb", score=1.5, delta=-0.5, seconds=1.0, parent_trial=0))
    rows = read_results(log.path)
    assert rows == [
        {
            "trial": "0", "parent": "", "commit": "aaa", "status": "baseline", "score": "1.0", "delta": "",
            "runs": "1", "spread": "", "lines": "", "seconds": "2.0", "accuracy": "", "loss": "0.5", "reason": "", "description": "baseline",
        },
        {
            "trial": "1", "parent": "0", "commit": "bbb", "status": "discard", "score": "1.5", "delta": "-0.5",
            "runs": "1", "spread": "", "lines": "", "seconds": "1.0", "accuracy": "", "loss": "", "reason": "", "description": "worse: caf\u00e9",
        },
    ]


def test_read_results_of_a_new_log_is_empty(tmp_path: Path) -> None:
    assert read_results(make_log(tmp_path).path) == []


def test_append_without_create_does_not_make_a_headerless_log(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "results.tsv", ())
    with pytest.raises(FileNotFoundError):
        log.append(TrialRecord(1, "keep", "d"))
    assert not log.path.exists()


def test_a_resumed_log_keeps_the_columns_of_its_header(tmp_path: Path) -> None:
    """A log written before a column existed goes on with its own columns: rows stay whole."""
    path = tmp_path / "results.tsv"
    old = ("trial", "commit", "status", "score", "delta", "runs", "spread", "lines", "seconds", "reason", "description")
    path.write_text("\t".join(old) + "\n0\taaa\tbaseline\t1.0\t\t1\t\t\t2.0\t\tbaseline\n", encoding="utf-8")
    log = ResultsLog(path, ())
    log.adopt()
    assert log.columns == old
    log.append(TrialRecord(1, "keep", "better", commit="bbb", score=0.5, parent_trial=0))
    rows = read_results(path)
    assert rows[1]["status"] == "keep" and rows[1]["description"] == "better" and "parent" not in rows[1]
    assert log.intact()


def test_a_metric_named_like_a_log_column_gets_a_column_of_its_own() -> None:
    """A user's metric called ``tokens_in`` or ``parent`` would otherwise share a column with the log's own."""
    from pytest_autoresearch.core.columns import MetricColumns
    from pytest_autoresearch.core.records import FitnessResult, MetricSpec
    from pytest_autoresearch.store.results_log import LEADING, TRAILING, USAGE

    primary = MetricSpec(nodeid="t.py::test_fit", name="score", goal="min", primary=True)
    names = [*LEADING, *USAGE, *TRAILING]
    fit = FitnessResult(nodeid="t.py::test_fit", name="score", goal="min", primary=True, score=1.0, metrics={n: 1.0 for n in names})
    columns = MetricColumns.of_baseline(primary, [fit]).names
    assert not set(columns) & set(names)
    assert "t.py::test_fit:tokens_in" in columns
