"""Fitness tests without --autoresearch: ordinary tests that also report a score."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

TWO_SCORES = """
import pytest

@pytest.mark.fitness(goal="min")
def test_loss(fitness):
    fitness(0.125)
    fitness.metric("params", 1200)

@pytest.mark.fitness(goal="max", primary=True)
def test_accuracy(fitness):
    fitness(0.5)

def test_ordinary():
    pass
"""


def test_the_summary_shows_each_score_with_its_goal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_SCORES)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*- fitness -*",
            "test * score * goal * metrics",
            "test_the_summary_shows_each_score_with_its_goal.py::test_loss * 0.125 * min * params=1200",
            "test_the_summary_shows_each_score_with_its_goal.py::test_accuracy * 0.5 * max",
        ]
    )


def test_the_summary_shows_under_q_but_not_qq(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_SCORES)
    assert "0.125" in pytester.runpytest("-q").stdout.str()
    assert "0.125" not in pytester.runpytest("-qq").stdout.str()


def test_no_fitness_tests_no_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ordinary():\n    pass\n")
    result = pytester.runpytest()
    assert "- fitness -" not in result.stdout.str()


def test_junitxml_carries_the_score(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_SCORES)
    result = pytester.runpytest("--junitxml=out.xml")
    result.assert_outcomes(passed=3)
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "out.xml").getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_loss"].iter("property")}
    assert props == {"fitness.goal": "min", "fitness": "0.125", "fitness.metric.params": "1200.0"}
    assert not list(cases["test_ordinary"].iter("property"))


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("float('nan')", "nan"),
        ("float('inf')", "inf"),
        ("'0.5'", "'0.5'"),
        ("None", "None"),
        ("True", "True"),
        ("[1.0, 2.0]", "[1.0, 2.0]"),
    ],
)
def test_anything_but_a_finite_number_fails_the_test(pytester: pytest.Pytester, value: str, shown: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.fitness(goal="min")
        def test_score(fitness):
            fitness({value})
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert f"Failed: fitness(value) must be a finite number, got {shown}" in result.stdout.str()
    assert "FitnessUsageError" not in result.stdout.str()  # one clear message, not a chained traceback


def test_numbers_of_any_kind_are_accepted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import fractions
        import pytest

        class Tensorish:
            def __float__(self):
                return 2.5

        @pytest.mark.fitness(goal="min")
        def test_int(fitness):
            fitness(3)

        @pytest.mark.fitness(goal="min")
        def test_fraction(fitness):
            fitness(fractions.Fraction(1, 4))

        @pytest.mark.fitness(goal="max")
        def test_object(fitness):
            fitness(Tensorish())
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_int * 3 * min", "*test_fraction * 0.25 * min", "*test_object * 2.5 * max"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("fitness(1)\n    fitness(2)", "fitness(value) was already called with 1.0; a test records one score"),
        ("pass", "*test_score finished without recording a score: call fitness(value)"),
        ("fitness.metric('', 1)", "fitness.metric name must be a non-empty one-line string, got ''"),
        ("fitness.metric('a', 1)\n    fitness.metric('a', 2)", "fitness.metric('a') was already recorded"),
        ("fitness.metric('a', float('nan'))", "fitness.metric('a', value) must be a finite number, got nan"),
    ],
)
def test_misuse_of_the_fixture_fails_with_a_clear_message(pytester: pytest.Pytester, body: str, message: str) -> None:
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.fitness(goal='min')\ndef test_score(fitness):\n    " + body + "\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert message.lstrip("*") in result.stdout.str()


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('@pytest.mark.fitness(goal="minimize")', "@pytest.mark.fitness needs goal=\"min\" or goal=\"max\", got 'minimize'"),
        ("@pytest.mark.fitness", "@pytest.mark.fitness needs goal=\"min\" or goal=\"max\", got None"),
        ('@pytest.mark.fitness(goal="min", weight=2)', "@pytest.mark.fitness got unknown argument(s) ['weight']; it takes ['goal', 'holdout', 'primary', 'stat']"),
        ('@pytest.mark.fitness(goal="min", primary="yes")', "@pytest.mark.fitness primary= must be True or False, got 'yes'"),
        ('@pytest.mark.fitness("min", goal="max")', '@pytest.mark.fitness takes one goal: fitness(goal="min")'),
        ("", "*test_score uses the fitness fixture but has no @pytest.mark.fitness(goal=\"min\"|\"max\")"),
    ],
)
def test_a_bad_marker_fails_the_test_with_a_clear_message(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        {marker}
        def test_score(fitness):
            fitness(1.0)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert message.lstrip("*") in result.stdout.str()


def test_the_goal_may_be_positional(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fitness("max")
        def test_score(fitness):
            fitness(1.0)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_score * 1 * max"])


def test_a_marked_test_without_the_fixture_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fitness(goal="min")
        def test_score():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_score is marked @pytest.mark.fitness but does not use the fitness fixture*"])


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_SCORES)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=3)
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.fitness(goal=*"])


def test_options_and_their_ini_twins_are_documented(pytester: pytest.Pytester) -> None:
    out = pytester.runpytest("--help").stdout.str()
    for name in (
        "--autoresearch ",
        "--autoresearch-agent=SPEC",
        "--autoresearch-trials=N",
        "--autoresearch-timeout=SECONDS",
        "--autoresearch-tag=TAG",
        "--autoresearch-program=PATH",
        "autoresearch_mutable",
        "autoresearch_agent",
        "autoresearch_timeout",
        "autoresearch_trials",
        "autoresearch_program",
        "autoresearch_tests",
    ):
        assert name in out, name


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest_autoresearch, pytest_autoresearch.plugin;"
        "print(sorted(m for m in ('git', 'tabulate', 'litellm', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
