"""Timing as a score: ``timing.measure``, ``fitness.time`` and pytest-benchmark fitness tests,
and the plain run's table for fitness tests that did not pass."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_autoresearch.timing import Timing, measure, quantile

from helpers import GATE_TEST, Project


class FakeClock:
    """A clock that moves only when the timed function says so: each call costs the next cost."""

    def __init__(self, costs: list[float]) -> None:
        self.now = 0.0
        self.costs = list(costs)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += self.costs[self.calls % len(self.costs)]
        self.calls += 1


def test_measure_takes_the_median_of_rounds_after_the_warmup() -> None:
    # warm-up calls cost 9 s (a cold cache); then rounds of 1, 5, 2, 4, 3 seconds
    clock = FakeClock([9, 9, 1, 5, 2, 4, 3])
    t = measure(clock.work, repeats=5, warmup=2, number=1, clock=clock)
    assert clock.calls == 7
    assert t.times == (1, 5, 2, 4, 3)
    assert (t.value, t.stat, t.number) == (3, "median", 1)
    assert (t.min, t.median, t.mean) == (1, 3, 3)
    assert t.iqr == 2  # quartiles 2 and 4
    assert t.spread == pytest.approx(2 / 3)


def test_measure_min_and_mean() -> None:
    costs = [1, 5, 2, 4, 8]
    assert measure(FakeClock(costs).work, repeats=5, warmup=0, number=1, clock=FakeClock(costs)).value == 0  # its own clock
    clock = FakeClock(costs)
    assert measure(clock.work, repeats=5, warmup=0, number=1, clock=clock, stat="min").value == 1
    clock = FakeClock(costs)
    assert measure(clock.work, repeats=5, warmup=0, number=1, clock=clock, stat="mean").value == 4


def test_measure_times_per_call_over_rounds_long_enough_for_the_clock() -> None:
    # 1 ms a call: with rounds of at least 10 ms, 10 calls per round, and the time is per call
    clock = FakeClock([0.001])
    t = measure(clock.work, repeats=3, warmup=1, clock=clock, min_round_time=0.01)
    assert t.number == 10
    assert clock.calls == 1 + 3 * 10
    assert t.times == pytest.approx((0.001, 0.001, 0.001))
    # a call slower than a round: one call per round
    clock = FakeClock([0.5])
    assert measure(clock.work, repeats=3, warmup=1, clock=clock).number == 1


def test_measure_with_no_warmup_still_calibrates_on_one_call() -> None:
    clock = FakeClock([0.002])
    t = measure(clock.work, repeats=2, warmup=0, clock=clock, min_round_time=0.01)
    assert (t.number, clock.calls) == (5, 1 + 2 * 5)


def test_measure_on_real_clocks() -> None:
    for clock in ("cpu", "wall"):
        t = measure(lambda: sum(range(1000)), repeats=5, clock=clock)
        assert t.clock == clock and len(t.times) == 5 and 0 < t.min <= t.median
        assert "per call" in str(t) and f"{clock} clock" in str(t)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock": "gpu"}, 'clock must be "wall" or "cpu"'),
        ({"stat": "max"}, "stat must be one of median, min, mean"),
        ({"repeats": 0}, "repeats must be a whole number"),
        ({"warmup": -1}, "warmup must be a whole number"),
        ({"number": 0}, "number must be a whole number"),
    ],
)
def test_measure_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        measure(lambda: None, **kwargs)  # type: ignore[arg-type]


def test_quantile_interpolates() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([7.0], 0.25) == 7.0
    assert Timing(1.0, "min", "cpu", 1, (1.0, 1.0)).spread == 0


FITNESS_TIME = """
import pytest

@pytest.mark.fitness(goal="min")
def test_speed(fitness):
    t = fitness.time(lambda: sorted(range(2000, 0, -1)), repeats=5)
    assert t.value == fitness.score and t.clock == "cpu"
"""


def test_fitness_time_records_the_score_and_its_spread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FITNESS_TIME)
    result = pytester.runpytest("--junitxml=out.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_speed * min * time_iqr=*, time_rounds=5"])
    case = next(ET.parse(pytester.path / "out.xml").getroot().iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert float(props["fitness"]) > 0 and props["fitness.metric.time_rounds"] == "5.0"


def test_fitness_time_keeps_its_clock_when_code_under_test_replaces_time_functions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        def candidate():
            time.process_time = time.perf_counter = lambda: 0.0  # every round would take no time
            sum(range(5000))

        @pytest.mark.fitness(goal="min")
        def test_speed(fitness):
            assert fitness.time(candidate, repeats=3).value > 0
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # a process of its own: time is patched


def test_fitness_time_needs_goal_min_and_good_arguments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fitness(goal="max")
        def test_max(fitness):
            fitness.time(lambda: None)

        @pytest.mark.fitness(goal="min")
        def test_clock(fitness):
            fitness.time(lambda: None, clock="sundial")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            '*fitness.time() records seconds per call, so the test needs goal="min", not goal="max"',
            '*fitness.time(): clock must be "wall" or "cpu"*',
        ]
    )


BENCHMARK_TEST = """
import pytest

@pytest.mark.benchmark(max_time=0.02, min_rounds=7)
@pytest.mark.fitness(goal="min", stat="{stat}")
def test_sort_speed(benchmark):
    assert benchmark(sorted, range(500, 0, -1))[0] == 1
"""


def test_a_benchmark_test_is_a_fitness_test_scored_by_its_statistic(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BENCHMARK_TEST.format(stat="median"))
    result = pytester.runpytest("--junitxml=out.xml", "--benchmark-json=bench.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_sort_speed * min * time_iqr=*, time_rounds=*"])
    case = next(ET.parse(pytester.path / "out.xml").getroot().iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    stats = json.loads((pytester.path / "bench.json").read_text())["benchmarks"][0]["stats"]
    assert float(props["fitness"]) == pytest.approx(stats["median"])
    assert float(props["fitness.metric.time_rounds"]) == stats["rounds"] >= 7
    assert float(props["fitness.metric.time_iqr"]) == pytest.approx(stats["iqr"])


def test_a_benchmark_fitness_test_measures_even_where_benchmarks_are_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BENCHMARK_TEST.format(stat="min") + "\n\ndef test_other(benchmark):\n    benchmark(len, 'ab')\n")
    result = pytester.runpytest("--benchmark-disable")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*::test_sort_speed * min * time_rounds=*"])


def test_ops_is_scored_with_goal_max(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BENCHMARK_TEST.format(stat="ops").replace('goal="min"', 'goal="max"'))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_sort_speed * max*"])


@pytest.mark.parametrize(
    ("test", "message"),
    [
        (
            BENCHMARK_TEST.format(stat="p99"),
            "*stat= must be one of 'min', 'median', 'mean', 'max', 'ops', got 'p99'",
        ),
        (
            BENCHMARK_TEST.format(stat="ops"),
            '*fitness(stat="ops") scores calls per second, so it needs goal="max", not goal="min"',
        ),
        (
            BENCHMARK_TEST.format(stat="median").replace('goal="min"', 'goal="max"'),
            '*fitness(stat="median") scores seconds per call, so it needs goal="min", not goal="max"',
        ),
        (
            '@__import__("pytest").mark.fitness(goal="min", stat="median")\ndef test_sort_speed(fitness):\n    fitness(1)\n',
            "*takes the score from pytest-benchmark's benchmark fixture, which this test does not use",
        ),
        (
            '@__import__("pytest").mark.fitness(goal="min", stat="median")\ndef test_sort_speed(benchmark):\n    pass\n',
            "*the benchmark fixture measured nothing: call benchmark(fn, ...)*",
        ),
        (
            '@__import__("pytest").mark.fitness(goal="min", stat="min")\n'
            "def test_sort_speed(benchmark, fitness):\n    benchmark(len, 'a')\n    fitness(1)\n",
            "*the score of a @pytest.mark.fitness(stat=\"min\") test is the benchmark's statistic; "
            "the test must not call fitness(value) too*",
        ),
    ],
)
def test_a_benchmark_fitness_test_used_wrongly_fails_with_the_reason(pytester: pytest.Pytester, test: str, message: str) -> None:
    pytester.makepyfile(test)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message])
    assert "test_sort_speed  1 " not in result.stdout.str()


def test_the_table_shows_a_failed_fitness_test_as_failed_not_its_score(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fitness(goal="min")
        def test_recorded_then_failed(fitness):
            fitness(0.123)
            fitness.metric("size", 77)
            assert False, "the output was wrong"

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown broke")

        @pytest.mark.fitness(goal="min")
        def test_teardown_error(fitness, broken_teardown):
            fitness(0.456)

        @pytest.mark.fitness(goal="max")
        def test_skipped(fitness):
            pytest.skip("no data here")

        @pytest.mark.xfail(reason="known bad")
        @pytest.mark.fitness(goal="min")
        def test_xfailed(fitness):
            fitness(0.789)
            assert False

        @pytest.mark.fitness(goal="min")
        def test_good(fitness):
            fitness(0.5)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1, errors=1, skipped=1, xfailed=1)  # teardown error: passed too
    out = result.stdout.str()
    table = out[out.index("- fitness -"):]
    for score in ("0.123", "77", "0.456", "0.789"):
        assert score not in table
    result.stdout.fnmatch_lines(
        [
            "*::test_recorded_then_failed * failed * min",
            "*::test_teardown_error * error * min",
            "*::test_skipped * skipped*",
            "*::test_xfailed * xfailed * min",
            "*::test_good * 0.5 * min",
        ]
    )


def test_save_keeps_no_score_of_a_failed_fitness_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fitness(goal="min")
        def test_failed(fitness):
            fitness(0.123)
            assert False

        @pytest.mark.fitness(goal="min")
        def test_good(fitness):
            fitness(0.5)
        """
    )
    result = pytester.runpytest("--autoresearch-save")
    saved = json.loads((pytester.path / "fitness.json").read_text())["tests"]
    assert list(saved) == ["test_save_keeps_no_score_of_a_failed_fitness_test.py::test_good"]
    result.stdout.fnmatch_lines(["autoresearch: *::test_failed did not pass; its score was not saved"])


SLOW_MODEL = '''"""The mutable surface: a sort that does redundant passes."""

PASSES = 40
DATA = list(range(300, 0, -1))


def work():
    out = DATA
    for _ in range(PASSES):
        out = sorted(DATA)
    return out
'''

BENCHMARK_FITNESS = '''import pytest

import model


@pytest.mark.benchmark(max_time=0.05, min_rounds=5)
@pytest.mark.fitness(goal="min", stat="median")
def test_work_speed(benchmark):
    assert benchmark(model.work)[0] == 1
'''


def test_a_benchmark_fitness_test_drives_the_loop(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # under xdist (CI) pytest-benchmark would see a worker and, with --benchmark-only, refuse the
    # re-score's plain run, which runs the user's options as they are
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    # what a project that saves its benchmarks has, with absolute paths into the checkout: neither
    # a trial nor the final re-score writes any of it, and a trial still runs the gates
    addopts = (
        f"--benchmark-autosave --benchmark-storage=file://{project.path}/.saved "
        f"--benchmark-json={project.path}/bench.json --benchmark-only"
    )
    project.init(
        {
            "model.py": SLOW_MODEL,
            "tests/test_speed.py": BENCHMARK_FITNESS,
            "tests/test_gate.py": GATE_TEST.replace("float", "list").replace("predict(1.0)", "work()"),
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["."]\n'
            f'autoresearch_mutable = ["model.py"]\naddopts = "{addopts}"\n',
        }
    )
    before = project.snapshot()
    fast = SLOW_MODEL.replace("PASSES = 40", "PASSES = 1")
    slower = SLOW_MODEL.replace("PASSES = 40", "PASSES = 160")
    agent = project.replay({"description": "one pass", "files": {"model.py": fast}}, {"description": "more passes", "files": {"model.py": slower}})
    result = project.loop(agent, "--autoresearch-trials=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "did not reproduce" not in result.stdout.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "discard"], rows
    baseline, kept, worse = (float(r["score"]) for r in rows)
    assert kept < baseline / 5 < worse
    assert "time_rounds" in rows[0] and int(float(rows[0]["time_rounds"])) >= 5
    assert project.snapshot() == before
    made = [name for name in (".saved", ".benchmarks", "bench.json") if (project.path / name).exists()]
    assert not made, f"pytest-benchmark's folders in the checkout: {made}"  # empty folders escape git
    log = (project.path / ".autoresearch" / "t" / "trials" / "001.log").read_text()
    assert "tests/test_gate.py ." in log, log  # run, not skipped by --benchmark-only
    assert "benchmark data" not in log  # neither "Wrote" (JSON) nor "Saved" (storage)
