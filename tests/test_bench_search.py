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
    assert search.main(["--quick", "--operators", "mutate", "seeded=mutate:{seed}", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for problem in ("rosenbrock", "kmodule"):
        rows = [line for line in printed.splitlines() if line.startswith(f"| {problem} (")]
        assert [row.split("|")[2].strip() for row in rows] == ["mutate", "seeded"]
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert len(cells) == 9 and cells[2] == "8"  # --quick: 8 trials
            assert re.fullmatch(r"\d+/2", cells[6]) and cells[7] == "0/2"  # reached target, ended early, of 2 seeds
            assert cells[4] == "-"  # no random search to compare with
    data = json.loads(out.read_text())
    runs = data["runs"]
    assert sorted((r["problem"], r["operator"], r["seed"]) for r in runs) == [
        (p, o, s) for p in ("kmodule", "rosenbrock") for o in ("mutate", "seeded") for s in (0, 1)
    ]
    for run in runs:
        assert run["error"] == "" and len(run["best"]) == 9  # the baseline and 8 trials
        assert run["best"][0] == (pytest.approx(24.2) if run["problem"] == "rosenbrock" else 0.0)  # the start's score
        scored = [s for s, status in zip(run["scores"], run["statuses"]) if status in ("baseline", "keep")]
        goal_best = min if run["problem"] == "rosenbrock" else max
        assert run["best"][-1] == goal_best(scored)  # the best kept is the best score the keep rule kept
        steps = list(zip(run["best"], run["best"][1:]))
        assert all(a >= b for a, b in steps) if run["problem"] == "rosenbrock" else all(a <= b for a, b in steps)
    by_seed = {(r["problem"], r["operator"], r["seed"]): r["descriptions"] for r in runs}
    assert by_seed[("rosenbrock", "mutate", 0)] == by_seed[("rosenbrock", "seeded", 0)]  # the same spec is the same run
    moved = {d for r in runs if r["problem"] == "kmodule" for d in r["descriptions"][1:]}
    assert moved and all(re.fullmatch(r'(pipeline\.py:\d \w+ "\w+" -> "\w+"(, )?)+', d) for d in moved), moved
    # --report prints the same table again from the file, running nothing
    assert search.main(["--report", str(out)]) == 0
    again = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert again == [line for line in printed.splitlines() if line.startswith("|")]


def test_the_tuner_and_random_search_are_compared_seed_by_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "runs.json"
    assert search.main(["--quick", "--problems", "kmodule", "--operators", "random", "tpe", "cmaes", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    ops = [line.split("|")[2].strip() for line in printed.splitlines() if line.startswith("| kmodule (")]
    assert ops == ["random", "tpe"]  # CMA-ES runs on the continuous problem only
    rows = {(r["problem"], r["operator"]): r for r in json.loads(out.read_text())["rows"]}
    runs = {(r["problem"], r["operator"], r["seed"]): r for r in json.loads(out.read_text())["runs"]}
    for (problem, op), row in rows.items():
        if op == "random":
            assert "paired" not in row
            continue
        better = worse = 0
        for seed in (0, 1):
            mine, ref = runs[(problem, op, seed)]["best"][-1], runs[(problem, "random", seed)]["best"][-1]
            better += mine > ref  # the K-module score is maximised
            worse += mine < ref
        assert (row["better_than_random"], row["worse_than_random"], row["paired"]) == (better, worse, 2)
    assert "- tpe beats random search on every problem:" in printed


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


def test_model_and_hybrid_operators_ask_the_server_that_api_base_names(tmp_path: Path) -> None:
    """In a process of its own: litellm imported into this one would confuse later in-process pytest runs."""
    if importlib.util.find_spec("litellm") is None or importlib.util.find_spec("optuna") is None:
        pytest.skip("needs litellm and optuna")
    from llm_server import answer, scripted_server

    out = tmp_path / "runs.json"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    no_edit = answer("No edit this time.")
    # the model operator's 6 trials, then the hybrid's model trials: 1 and 6 (every 5th);
    # an answer with no edit is refused and goes back once with the reason, so it costs two requests
    with scripted_server(answer(MOVE_X), *[no_edit] * 10, answer(MOVE_X), no_edit, no_edit) as server:
        argv = ["--problems", "rosenbrock", "--operators", "model=litellm:openai/scripted", "hybrid=hybrid:litellm:openai/scripted"]
        argv += ["--seeds", "1", "--trials", "6", "--api-base", server.url, "--json", str(out)]
        proc = subprocess.run([sys.executable, str(BENCH / "search.py"), *argv], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model, hybrid = json.loads(out.read_text())["runs"]
    assert model["error"] == hybrid["error"] == "", (model["error"], hybrid["error"])
    assert len(server.requests) == 14 and {r["body"]["model"] for r in server.requests} == {"scripted"}
    assert "X = 1.8" in server.prompts()[0] and "Minimise the score" in server.prompts()[0]
    assert model["statuses"] == ["baseline", "keep", *["invalid"] * 5]
    assert model["best"][1] == pytest.approx(problems.rosenbrock(1.9, 4.0))
    assert hybrid["statuses"][:2] == ["baseline", "keep"] and hybrid["statuses"][6] == "invalid"
    # the tuner's trials between the model's, from the model's keep: both settings drawn each time
    tuned = hybrid["descriptions"][2:6]
    assert all(re.fullmatch(r"point\.py:3 X 1\.9 -> [\d.]+, point\.py:4 Y 4\.0 -> [\d.]+", d) for d in tuned), tuned
    for name in ("model", "hybrid"):
        assert f"| rosenbrock (min, target 1) | {name} | 6 |" in proc.stdout
