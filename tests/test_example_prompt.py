"""examples/prompt: prompt optimisation for structured extraction, against a scripted task model."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import example_copy, mutate_trials, results_of, run_pytest

BASELINE = "0.329897"

# Runs in a copy's root: several prompts through the real evaluator (litellm over HTTP) in one process.
PROBE = """
import json, sys
sys.path.insert(0, "tests")
from harness import evaluate, load_prompt
from scripted_model import ScriptedModel

base = {**load_prompt(), "max_tokens": 60}  # room for every field, so only the instruction differs
prompts = {
    "baseline": base,
    "no_laterality": {**base, "instruction": base["instruction"].replace("the laterality of the finding (left, right or bilateral),", "")},
    "follow_up_and_mm": {**base, "instruction": base["instruction"] + "Give the size in millimetres and the recommended follow-up."},
}
out = {}
with ScriptedModel() as server:
    endpoint = {"model": "openai/scripted-extractor", "api_base": server.url, "api_key": "not-needed"}
    for name, prompt in prompts.items():
        before = server.requests
        result = evaluate(prompt, "dev", endpoint)
        out[name] = {"f1": result["f1"], "per_field": result["per_field"], "requests": server.requests - before}
print(json.dumps(out))
"""


def test_plain_pytest_passes_and_shows_the_score(tmp_path: Path) -> None:
    copy = example_copy("prompt", tmp_path)
    result = run_pytest(copy)
    out = "\n".join(result.outlines)
    assert result.ret == 0, out + "\n".join(result.errlines)
    assert re.search(rf"tests/test_fitness.py::test_field_f1\s+{BASELINE}\s+max\s+f1_laterality=", out), out
    assert re.search(r"tests/test_holdout.py::test_holdout_field_f1\s+0\.\d+\s+max", out), out


def test_the_evaluator_calls_the_model_and_each_named_field_counts(tmp_path: Path) -> None:
    copy = example_copy("prompt", tmp_path)
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=copy, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(r["requests"] == 40 for r in runs.values()), runs
    # dropping the field from the instruction loses it; naming one it lacked gains it
    assert runs["no_laterality"]["f1"] < runs["baseline"]["f1"]
    assert runs["no_laterality"]["per_field"]["laterality"] == 0 < runs["baseline"]["per_field"]["laterality"]
    assert runs["baseline"]["per_field"]["followup"] == 0 < runs["follow_up_and_mm"]["per_field"]["followup"]
    assert runs["follow_up_and_mm"]["f1"] > runs["baseline"]["f1"]


def test_pytest_uses_the_model_that_prompt_api_base_names(tmp_path: Path) -> None:
    """With PROMPT_API_BASE set, the conftest starts no model of its own: every request of a
    plain run (40 dev and 40 holdout reports) reaches the server the variable names."""
    copy = example_copy("prompt", tmp_path)
    spec = importlib.util.spec_from_file_location("prompt_scripted_model", copy / "tests" / "scripted_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.ScriptedModel() as server:
        result = run_pytest(copy, env={"PROMPT_API_BASE": server.url})
        assert result.ret == 0, "\n".join(result.outlines + result.errlines)
        assert server.requests == 80
    assert re.search(rf"test_field_f1\s+{BASELINE}\s+max", "\n".join(result.outlines))


def test_the_gold_set_is_what_its_script_makes(tmp_path: Path) -> None:
    copy = example_copy("prompt", tmp_path)
    subprocess.run([sys.executable, "make_reports.py"], cwd=copy, check=True)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True).stdout == ""


def _load(copy: Path, name: str):
    """A module of the copy's tests/ under a unique name (other examples have a harness too)."""
    spec = importlib.util.spec_from_file_location(f"prompt_example_{name}", copy / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_scorer_cannot_be_gamed(tmp_path: Path) -> None:
    """Hedging earns nothing, and no setting of prompt.toml reaches the gold answers: the worked
    examples are a split of their own, and a prompt outside the gates' ranges fails a gate."""
    copy = example_copy("prompt", tmp_path)
    harness = _load(copy, "harness")
    dev = harness.load_reports("dev")
    golds = [r["gold"] for r in dev]
    assert harness.score(golds, golds)[0] == 1.0
    assert harness.score([dict.fromkeys(harness.FIELDS)] * len(golds), golds)[0] == 0.0
    # naming every option reads as one answer (the first the parser knows), never as all of them
    hedge = harness.parse_answer("laterality: left or right\nsize_mm: 10 or 20\nbirads: 2 or 3\nfollowup: routine or biopsy")
    assert hedge == {"laterality": "left", "size_mm": 10, "birads": 2, "followup": "routine"}
    # the most worked examples a prompt can ask for are the 8 shots, none of them a scored report
    prompt = {**harness.load_prompt(), "few_shot": 8}
    scored = {r["text"] for split in ("dev", "holdout") for r in harness.load_reports(split)}
    for report in dev:
        shown = [m["content"] for m in harness.build_messages(prompt, report["text"], harness.load_reports("shots"))[1:-1]]
        assert len(shown) == 16 and not any(c.removeprefix("Report:\n") in scored for c in shown)
    for bad in ("few_shot = 40", "max_tokens = 0", "temperature = -1.0", "json_output = 2"):
        key = bad.split()[0]
        text = re.sub(rf"^{key} = \S+", bad, (copy / "prompt.toml").read_text(), flags=re.MULTILINE)
        (copy / "prompt.toml").write_text(text)
        result = run_pytest(copy, "tests/test_prompt.py")
        assert result.ret == 1 and f"{key} = " in "\n".join(result.outlines), bad
        subprocess.run(["git", "checkout", "prompt.toml"], cwd=copy, check=True)


@pytest.mark.slow
def test_the_loop_keeps_gold_and_evaluator_out_of_reach(tmp_path: Path) -> None:
    """Through the loop: a proposal that rewrites the gold set or the parser is refused before it
    runs, one that breaks a gate is not kept, and an honest better prompt is."""
    copy = example_copy("prompt", tmp_path)
    reports = (copy / "reports.jsonl").read_text()
    toml = (copy / "prompt.toml").read_text()
    better = toml.replace("and the BI-RADS category.", "the BI-RADS category and the follow-up it recommends.\nGive sizes in millimetres.")
    assert better != toml
    proposals = [
        {"description": "gold follows the answers", "files": {"reports.jsonl": reports.replace('"birads": 4', '"birads": 5')}},
        {"description": "lenient parser", "files": {"tests/harness.py": "FIELDS = ()\n"}},
        {"description": "more shots than exist", "files": {"prompt.toml": re.sub(r"^few_shot = \d+", "few_shot = 40", toml, flags=re.M)}},
        {"description": "name every field", "files": {"prompt.toml": better}},
    ]
    replay = tmp_path / "proposals.jsonl"
    replay.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    result = run_pytest(copy, "--autoresearch", f"--autoresearch-agent=replay:{replay}", "--autoresearch-tag=t")
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    assert [r["status"] for r in results_of(copy)] == ["baseline", "invalid", "invalid", "crash", "keep"]
    assert (copy / "reports.jsonl").read_text() == reports


@pytest.mark.slow
def test_two_mutate_trials(tmp_path: Path) -> None:
    rows = mutate_trials("prompt", tmp_path)
    assert f"{float(rows[0]['score']):.6f}" == BASELINE
