"""Declared choices: ``# autoresearch-choices:`` / ``# autoresearch-range:`` markers and the
``autoresearch_choices`` setting, as the offline operators read them (targets, mutate), and the
clear message a declaration that cannot be used gets before anything runs."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from helpers import Project, default_files

from pytest_autoresearch.agents import AgentExhausted, ProposalContext
from pytest_autoresearch.agents.edits import render
from pytest_autoresearch.agents.mutate import MutateAgent
from pytest_autoresearch.agents.targets import declared_problems, find_targets
from pytest_autoresearch.core.choices import parse_choices, parse_range, parse_setting
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.proposals.surface import Surface
from pytest_autoresearch.settings import load_settings

METRIC = MetricSpec("tests/test_fit.py::test_fit", "mse", "min", True)


def context(files: Mapping[str, str], trial: int = 1, history: Sequence[TrialRecord] = ()) -> ProposalContext:
    baseline = TrialRecord(0, "baseline", "baseline", score=1.0)
    return ProposalContext(
        trial=trial, tag="test", rootdir=Path("."), workdir=Path("."), surface=Surface(sorted(files)), files=dict(files),
        program="", metric=METRIC, baseline=baseline, best=baseline, history=[baseline, *history], last_failure=None,
        trials_left=None, read=lambda path: None,
    )


MARKED = '''"""A model with declared choices."""

LOSS = "mse"  # autoresearch-choices: "mse", "huber", "l1"
MODE = 'fast'
BATCH = 32  # autoresearch-choices: 16, 32, 64
WIDTH = 48  # autoresearch-choices: 16, 32, 64
LR = 0.01  # autoresearch-range: 1e-4, 1.0
SEED = 7  # autoresearch-range: 0, 100
NOTE = "a # autoresearch-choices: 1, 2 inside a string is no marker"
'''


def test_markers_make_targets_of_strings_and_bound_numbers() -> None:
    targets = {t.name: t for t in find_targets({"model.py": MARKED})}
    assert sorted(targets) == ["BATCH", "LOSS", "LR", "SEED", "WIDTH"]  # MODE and NOTE: strings without choices
    assert targets["LOSS"].value == "mse" and targets["LOSS"].choices == ("mse", "huber", "l1")
    assert targets["BATCH"].choices == (16, 32, 64)
    assert targets["WIDTH"].choices == (48, 16, 32, 64)  # the current value counts as one of them
    assert targets["LR"].bounds == (1e-4, 1.0) and targets["LR"].choices == ()
    assert targets["SEED"].bounds == (0, 100)  # a seed is left alone unless a range is declared for it
    assert declared_problems({"model.py": MARKED}) == []


def test_the_setting_declares_choices_for_a_file_without_markers() -> None:
    text = 'LOSS = "mse"\nclass Net:\n    ACT = "relu"\n'
    setting = parse_setting(['model.py:LOSS = "mse", "huber"', "model.py:Net.ACT = 'relu', 'gelu', 'tanh'"])
    targets = {t.name: t for t in find_targets({"model.py": text}, setting)}
    assert targets["LOSS"].choices == ("mse", "huber") and targets["Net.ACT"].choices == ("relu", "gelu", "tanh")
    assert find_targets({"model.py": text}) == []  # without it, strings are no settings
    assert find_targets({"other.py": text}, setting) == []  # a declaration belongs to its file


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("choices: 'a'", "list at least two choices"),
        ("choices: 'a', 'a'", "'a' is listed twice"),
        ("choices: [1], 2", "strings, numbers or booleans, not [1]"),
        ("choices: mse, huber", "could not read 'mse, huber' as choices: write Python literals"),
        ("range: 1.0", "a range is two numbers"),
        ("range: 2, 1", "the range's low end 2 is not below its high end 1"),
    ],
)
def test_a_malformed_marker_is_reported_with_its_line(text: str, why: str) -> None:
    files = {"model.py": f"K = 3\nX = 1  # autoresearch-{text}\n"}
    (problem,) = declared_problems(files)
    assert problem.startswith("model.py:2: ") and why in problem, problem
    assert MutateAgent().preflight(files).startswith("declared choices that cannot be used: model.py:2: ")  # type: ignore[union-attr]


def test_declarations_that_match_nothing_are_reported() -> None:
    files = {"model.py": 'K = 3\ndef f():  # autoresearch-choices: 1, 2\n    return "x"\n', "conf.toml": 'name = "a"  # autoresearch-choices: "a", "b"\n'}
    setting = parse_setting(['model.py:LOSS = "mse", "huber"', 'lib.py:K = 1, 2'])
    problems = declared_problems(files, setting)
    assert problems == [
        "conf.toml:1: an autoresearch marker on a line without a `key = number` line (string choices are read in Python files only) it could apply to",
        "model.py:2: an autoresearch marker on a line without a constant it could apply to",
        "autoresearch_choices names lib.py:K, which is no constant of the surface (no such surface file)",
        "autoresearch_choices names model.py:LOSS, which is no constant of the surface (its settings: K)",
    ]


def test_parsing_the_forms() -> None:
    assert parse_choices(' "mse", "huber" ') == ("mse", "huber")
    assert parse_choices("1, 1.0, True") == (1, 1.0, True)  # three different literals
    assert parse_range("1e-4, 1.0") == (1e-4, 1.0)
    assert parse_setting(["", "# a comment", "./src/m.py:A.B = 1, 2"]) == {("src/m.py", "A.B"): (1, 2)}
    for line, why in [("LOSS = 1, 2", "is not path.py:NAME = choice"), ("m.py:X = 1", "list at least two"), ("m.py:X 1, 2", "is not path.py:NAME")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_setting([line])
    with pytest.raises(ValueError, match="names m.py:X twice"):
        parse_setting(["m.py:X = 1, 2", "m.py:X = 3, 4"])


def test_a_string_is_written_in_the_quotes_it_had() -> None:
    single, double = (find_targets({"m.py": text})[0] for text in ("A = 'x'  # autoresearch-choices: 'x', 'y'\n", 'A = "x"  # autoresearch-choices: "x", "y"\n'))
    number = find_targets({"m.py": "A = 1  # autoresearch-choices: 1, 'two'\n"})[0]
    for target in (single, double, number):
        for value in ("y", "it's", 'say "hi"', "both ' and \"", "back\\slash", "ünï\n"):
            text = render(target, value)
            assert ast.literal_eval(text) == value, (target.text, value, text)
    assert render(single, "y") == "'y'" and render(double, "y") == '"y"' and render(number, "two") == '"two"'


def test_mutate_moves_a_declared_setting_only_among_its_choices() -> None:
    seen: dict[str, set[object]] = {"LOSS": set(), "BATCH": set(), "WIDTH": set(), "LR": set()}
    for seed in range(40):
        proposal = MutateAgent(seed).propose(context({"model.py": MARKED}))
        after = {t.name: t.value for t in find_targets({"model.py": proposal.files["model.py"]})}
        for name in seen:
            seen[name].add(after[name])
        assert 1e-4 <= after["LR"] <= 1.0
        assert "MODE = 'fast'\n" in proposal.files["model.py"] and "NOTE = " in proposal.files["model.py"]
        for part in proposal.description.split(", "):
            assert re.fullmatch(r'model\.py:\d+ (LOSS "mse" -> "(huber|l1)"|BATCH 32 -> (16|64)|WIDTH 48 -> (16|32|64)|LR 0\.01 -> [\d.e-]+|SEED 7 -> \d+)', part), part
    assert seen["LOSS"] == {"mse", "huber", "l1"} and seen["BATCH"] == {16, 32, 64} and seen["WIDTH"] == {48, 16, 32, 64}
    assert len(seen["LR"]) > 5


def test_mutate_runs_out_of_choices_and_says_so() -> None:
    """Two alternatives besides the start: each is proposed once, then the run ends."""
    files = {"model.py": 'LOSS = "mse"  # autoresearch-choices: "mse", "huber", "l1"\n'}
    agent, history, seen = MutateAgent(0), [], set()
    for trial in (1, 2):
        proposal = agent.propose(context(files, trial, history))
        seen.add(proposal.files["model.py"])
        history.append(TrialRecord(trial, "discard", proposal.description, score=2.0))
    assert seen == {'LOSS = "huber"  # autoresearch-choices: "mse", "huber", "l1"\n', 'LOSS = "l1"  # autoresearch-choices: "mse", "huber", "l1"\n'}
    with pytest.raises(AgentExhausted, match="nothing new to propose"):
        agent.propose(context(files, 3, history))


def test_a_broken_setting_line_stops_pytest_with_its_name(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nautoresearch_choices =\n    model.py:LOSS = mse, huber\n")
    with pytest.raises(pytest.UsageError, match=r"autoresearch_choices line 'model.py:LOSS = mse, huber': could not read 'mse, huber' as choices"):
        load_settings(pytester.parseconfigure())
    pytester.makeini('[pytest]\nautoresearch_choices =\n    model.py:LOSS = "mse", "huber"\n    model.py:K = 1, 2\n')
    assert load_settings(pytester.parseconfigure()).choices == {("model.py", "LOSS"): ("mse", "huber"), ("model.py", "K"): (1, 2)}


MODEL_WITH_LOSS = '''"""A tiny tunable model: the mutable surface."""

SCALE = 2.5
OFFSET = 3
LOSS = "sq"


def predict(x):
    return SCALE * x + OFFSET
'''


def test_a_declared_name_that_matches_nothing_stops_the_run_before_the_baseline(project: Project) -> None:
    project.init({**default_files(), "model.py": MODEL_WITH_LOSS})
    result = project.loop("--autoresearch-trials=2", "-o", 'autoresearch_choices=model.py:LOS = "sq", "abs"')
    assert result.ret != 0
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "ERROR: autoresearch: agent mutate: declared choices that cannot be used: autoresearch_choices names model.py:LOS, "
        "which is no constant of the surface (its settings: OFFSET, SCALE) (write them as `NAME = value  # autoresearch-choices: "
    ), lines[0]
    assert not (project.path / ".autoresearch").exists()


ONLY_LOSS = '''"""A model whose one setting is a string the ini file declares choices for."""

LOSS = "sq"


def predict(x):
    return 2.5 * x + 3.0
'''


def test_mutate_tries_the_declared_string_in_a_real_run(project: Project) -> None:
    """The ini setting makes LOSS a setting, the only one: its one alternative is tried (logged
    in its quotes), then there is nothing new and the run says so."""
    project.init({**default_files(), "model.py": ONLY_LOSS})
    result = project.loop("--autoresearch-trials=3", "-o", 'autoresearch_choices=model.py:LOSS = "sq", "abs"')
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert [(r["status"], r["description"]) for r in project.rows()] == [("baseline", "baseline"), ("discard", 'model.py:3 LOSS "sq" -> "abs"')]
    assert 'LOSS = "abs"\n' in project.git("show", f"{project.rows()[1]['commit']}:model.py")
    result.stdout.fnmatch_lines(["stopped: mutate: nothing new to propose*1 setting: model.py:3 LOSS*"])
