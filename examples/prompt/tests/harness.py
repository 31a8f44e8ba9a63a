"""The frozen evaluation: build the prompt from prompt.toml, ask the task model, read and score.

Nothing here depends on which model answers: the scripted one in scripted_model.py or a real one
reached through litellm.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("laterality", "size_mm", "birads", "followup")
FOLLOWUPS = ("routine", "short_interval", "additional_imaging", "biopsy")
FORMATS = {
    True: "Answer with one JSON object and nothing else. Use null for a field the report does not state.",
    False: "Answer with one line per field, written as name: value. Write none for a field the report does not state.",
}
LIMITS = {"few_shot": (0, 8), "temperature": (0.0, 2.0), "max_tokens": (1, 1024), "json_output": (0, 1)}
SCRIPTED_MODEL = "openai/scripted-extractor"


def load_reports(split: str) -> list[dict]:
    rows = (json.loads(line) for line in (ROOT / "reports.jsonl").read_text(encoding="utf-8").splitlines())
    return [r for r in rows if r["split"] == split]


def load_prompt(path: Path = ROOT / "prompt.toml") -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)


def render_answer(gold: dict, as_json: bool) -> str:
    """A worked example's answer, in the format the prompt asks for."""
    if as_json:
        return json.dumps({f: gold[f] for f in FIELDS})
    return "\n".join(f"{f}: {'none' if gold[f] is None else gold[f]}" for f in FIELDS)


def build_messages(prompt: dict, report: str, shots: list[dict]) -> list[dict]:
    """System: the instruction and the answer format; then the worked examples; then the report."""
    as_json = prompt["json_output"] >= 1
    messages = [{"role": "system", "content": f"{prompt['instruction'].strip()}\n\n{FORMATS[as_json]}"}]
    for shot in shots[: prompt["few_shot"]]:
        messages.append({"role": "user", "content": f"Report:\n{shot['text']}"})
        messages.append({"role": "assistant", "content": render_answer(shot["gold"], as_json)})
    messages.append({"role": "user", "content": f"Report:\n{report}"})
    return messages


def prompt_tokens(messages: list[dict]) -> int:
    """The prompt's length in tokens, estimated as characters / 4 (the same for every model)."""
    return math.ceil(sum(len(m["content"]) for m in messages) / 4)


def parse_answer(text: str) -> dict:
    """The four fields from an answer: a JSON object if there is one, else ``name: value`` lines.
    Anything unreadable is missing (None)."""
    raw: dict = {}
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    try:
        raw = json.loads(match.group(0)) if match else {}
    except json.JSONDecodeError:
        raw = {}
    if not isinstance(raw, dict) or not raw:
        raw = dict(re.findall(r"^[ \t]*[-*]?[ \t]*([A-Za-z_ -]+?)[ \t]*:[ \t]*(.+?)[ \t]*$", text or "", re.MULTILINE))
    fields = {re.sub(r"[^a-z]", "", str(k).lower()): v for k, v in raw.items()}
    return {
        "laterality": _laterality(fields.get("laterality")),
        "size_mm": _number(fields.get("sizemm", fields.get("size"))),
        "birads": _category(fields.get("birads")),
        "followup": _followup(fields.get("followup")),
    }


def _missing(value: object) -> bool:
    return value is None or str(value).strip().lower() in ("", "none", "null", "n/a", "not stated", "unknown")


def _laterality(value: object) -> str | None:
    text = "" if _missing(value) else str(value).lower()
    return next((side for side in ("bilateral", "left", "right") if side in text), None)


def _number(value: object) -> int | None:
    """Millimetres, as the field's name says: a number written in other units is read as mm."""
    found = None if _missing(value) else re.search(r"\d+(?:\.\d+)?", str(value))
    return round(float(found.group(0))) if found else None


def _category(value: object) -> int | None:
    found = None if _missing(value) else re.search(r"\b[0-6]\b", str(value))
    return int(found.group(0)) if found else None


def _followup(value: object) -> str | None:
    text = "" if _missing(value) else str(value).lower().replace("-", "_").replace(" ", "_")
    return next((code for code in FOLLOWUPS if code in text), None)


def score(predictions: list[dict], golds: list[dict]) -> tuple[float, dict[str, float]]:
    """Micro F1 over all fields, and F1 per field. A right value is a true positive; a value
    where the gold has none is a false positive; a missing one is a false negative; a wrong one
    is both. Two Nones agree and count nothing."""
    counts = {f: [0, 0, 0] for f in FIELDS}  # tp, fp, fn
    for pred, gold in zip(predictions, golds, strict=True):
        for f in FIELDS:
            c = counts[f]
            if pred[f] is not None and pred[f] == gold[f]:
                c[0] += 1
            else:
                c[1] += pred[f] is not None
                c[2] += gold[f] is not None

    def f1(tp: int, fp: int, fn: int) -> float:
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0

    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return f1(*total), {f: f1(*c) for f, c in counts.items()}


def complete(messages: list[dict], prompt: dict, endpoint: dict) -> str:
    """One call to the task model through litellm (imported here, so a plain import of this
    module stays cheap and nothing reaches for the network on its own)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    response = litellm.completion(
        model=endpoint["model"],
        messages=messages,
        temperature=float(prompt["temperature"]),
        max_tokens=int(prompt["max_tokens"]),
        api_base=endpoint.get("api_base"),
        api_key=endpoint.get("api_key"),
        num_retries=2,
    )
    return response.choices[0].message.content or ""


def evaluate(prompt: dict, split: str, endpoint: dict) -> dict:
    """Ask the task model about every report of ``split``; return the scores and what was sent."""
    reports, shots = load_reports(split), load_reports("shots")
    requests = [build_messages(prompt, r["text"], shots) for r in reports]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda m: complete(m, prompt, endpoint), requests))
    predictions = [parse_answer(a) for a in answers]
    f1, per_field = score(predictions, [r["gold"] for r in reports])
    return {
        "f1": f1,
        "per_field": per_field,
        "prompt_tokens": sum(map(prompt_tokens, requests)) / len(requests),
        "answers": answers,
        "predictions": predictions,
    }
