"""bench/search.py: its problems score as they say, and a tiny run prints the table it promises."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


search = _load("search")
problems = sys.modules["search_problems"]  # what search.py imported, beside it in bench/


def _pipeline(**modules: str) -> dict[str, str]:
    """The K-module surface with some modules set: the start's file, its literals replaced."""
    text = problems.KMODULE.files["pipeline.py"]
    for name, option in modules.items():
        text = re.sub(rf'^{name} = "[^"]*"', f'{name} = "{option}"', text, flags=re.MULTILINE)
    return {"pipeline.py": text}


def test_the_k_module_score_counts_the_right_modules_and_nothing_else() -> None:
    answer = problems.kmodule_answer(3)
    assert problems.kmodule_score(problems.KMODULE.files, answer) == 0.0  # the start is wrong everywhere
    names = list(problems.KMODULE_OPTIONS)
    for k in range(1, 5):
        right = {name: answer[name] for name in names[:k]}
        assert problems.kmodule_score(_pipeline(**right), answer) == float(k)
    # a right module set elsewhere counts the same: only how many, not which
    assert problems.kmodule_score(_pipeline(FORMATTER=answer["FORMATTER"]), answer) == 1.0
    assert problems.kmodule_score(_pipeline(LOADER="yaml_reader"), answer) is None  # not one of its options
    wrong = {name: next(o for o in options if o not in (answer[name], problems.KMODULE_START[name])) for name, options in problems.KMODULE_OPTIONS.items()}
    assert problems.kmodule_score(_pipeline(**wrong), answer) == 0.0


def test_the_k_module_answer_is_drawn_per_seed_away_from_the_start() -> None:
    answers = [problems.kmodule_answer(seed) for seed in range(20)]
    assert len({tuple(a.values()) for a in answers}) > 10
    for answer in answers:
        for name, option in answer.items():
            assert option in problems.KMODULE_OPTIONS[name] and option != problems.KMODULE_START[name]


def test_each_k_module_constant_declares_its_five_choices() -> None:
    lines = problems.KMODULE.files["pipeline.py"].splitlines()
    declared = {}
    for line in lines:
        if "# autoresearch-choices:" in line:
            code, _, listed = line.partition("# autoresearch-choices:")
            declared[code.split("=")[0].strip()] = ast.literal_eval(listed.strip())
    assert declared == problems.KMODULE_OPTIONS


def test_rosenbrock_starts_at_the_classic_point_and_its_minimum_is_where_the_readme_says() -> None:
    evaluate = problems.ROSENBROCK.evaluator(0)
    assert evaluate(problems.ROSENBROCK.files) == pytest.approx(24.2)
    assert evaluate({"point.py": "X = 4.0\nY = 4.0\n"}) == 0.0
    assert evaluate({"point.py": "X = 4.0\n"}) is None  # a surface without Y cannot be scored


def test_a_quick_run_prints_one_row_per_problem_and_operator_and_keeps_every_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs.json"
    assert search.main(["--quick", "--problems", "rosenbrock", "--operators", "mutate", "seeded=mutate:{seed}", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| rosenbrock")]
    assert [row.split("|")[2].strip() for row in rows] == ["mutate", "seeded"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 8 and cells[2] == "8"  # --quick: 8 trials
        assert re.fullmatch(r"\d+/2", cells[6])  # reached target, of 2 seeds
    data = json.loads(out.read_text())
    runs = data["runs"]
    assert sorted((r["operator"], r["seed"]) for r in runs) == [("mutate", 0), ("mutate", 1), ("seeded", 0), ("seeded", 1)]
    for run in runs:
        assert run["error"] == "" and len(run["best"]) == 9  # the baseline and 8 trials
        assert run["best"][0] == pytest.approx(24.2)
        scored = [s for s, status in zip(run["scores"], run["statuses"]) if status in ("baseline", "keep")]
        assert run["best"][-1] == min(scored)  # the best kept is the lowest score the keep rule kept
        assert all(a >= b for a, b in zip(run["best"], run["best"][1:]))  # never worse after a trial
    by_seed = {(r["operator"], r["seed"]): r["descriptions"] for r in runs}
    assert by_seed[("mutate", 0)] == by_seed[("seeded", 0)]  # the same spec is the same run


def test_an_unknown_operator_is_named_with_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="unknown operator 'anneal'; known: random, mutate"):
        search.parse_operators(["anneal"])


MOVE_X = """Move X towards the valley.

point.py
<<<<<<< SEARCH
X = 1.8
=======
X = 1.9
>>>>>>> REPLACE
"""


def test_a_model_operator_asks_the_server_that_api_base_names(tmp_path: Path) -> None:
    """In a process of its own: litellm imported into this one would confuse later in-process pytest runs."""
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("litellm is not installed")
    from llm_server import answer, scripted_server

    out = tmp_path / "runs.json"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with scripted_server(answer(MOVE_X), answer("No edit this time.")) as server:
        argv = ["--problems", "rosenbrock", "--operators", "model=litellm:openai/scripted", "--seeds", "1", "--trials", "2"]
        argv += ["--api-base", server.url, "--json", str(out)]
        proc = subprocess.run([sys.executable, str(BENCH / "search.py"), *argv], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert run["error"] == "", run["error"]
    assert len(server.requests) == 2 and server.requests[0]["body"]["model"] == "scripted"
    assert "X = 1.8" in server.prompts()[0] and "Minimise the score" in server.prompts()[0]
    assert run["statuses"] == ["baseline", "keep", "invalid"]
    assert run["best"][1] == pytest.approx(problems.rosenbrock(1.9, 4.0))
    assert "| rosenbrock (min, target 1) | model | 2 |" in proc.stdout
