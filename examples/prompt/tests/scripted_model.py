"""A scripted stand-in for a language model: an OpenAI-compatible chat server on 127.0.0.1.

It is not a model. It knows the gold answer of every report in reports.jsonl and makes errors
by fixed rules that depend on the request it gets, so that prompt choices matter the way they
tend to with real models (README.md, "The scripted model", lists every rule):

- it answers a field only if the system message names it (FIELD_WORDS);
- it gives sizes in millimetres only if the system message says so; else as the report writes them;
- each answered field is wrong with probability BASE_ERROR * SHOT_FACTOR ** shots + TEMP_ERROR * temperature;
- it answers in JSON if the system message says "JSON"; otherwise in lines after a preamble, and
  in PROSE_RATE of the reports in a sentence instead;
- it stops after max_tokens tokens (4 characters each).

Each (report, field) has one fixed random draw, so the same request always gets the same answer
and a lower error probability only ever turns wrong fields right.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPORTS = Path(__file__).resolve().parent.parent / "reports.jsonl"
FIELD_WORDS = {
    "laterality": r"\blaterality\b|\bside\b",
    "size_mm": r"\bsize\b",
    "birads": r"\bbi-?rads\b",
    "followup": r"\bfollow[- ]?up\b|\brecommend",
}
MM_WORDS = r"\bmillimet|\bmm\b"
BASE_ERROR = {"laterality": 0.12, "size_mm": 0.2, "birads": 0.2, "followup": 0.15}
SHOT_FACTOR = 0.6
TEMP_ERROR = 0.3
PROSE_RATE = 0.2
CHARS_PER_TOKEN = 4
PREAMBLE = "Here are the fields I found in the report:"


def draw(*key: str) -> float:
    """A fixed number in [0, 1) for a key: the scripted model's only randomness."""
    return int.from_bytes(hashlib.sha256("\0".join(key).encode()).digest()[:8], "big") / 2**64


def sizes_as_written(text: str) -> list[float]:
    """The sizes a report states, in the unit it states them."""
    return [float(n) for n, _ in re.findall(r"(\d+(?:\.\d+)?) (mm|cm)\b", text)]


def wrong(field: str, gold: object, text: str, u: float) -> object:
    """A plausible mistake: the other side, the other lesion, a neighbouring category."""
    if field == "laterality":
        return {"left": "right", "right": "left"}.get(gold, "left" if u < 0.5 else "right")
    if field == "size_mm":
        others = [s for s in sizes_as_written(text) if s != gold and s != (gold or 0) / 10]
        return others[0] if others else (gold or 10) + (3 if u < 0.5 else -2)
    if field == "birads":
        return gold + 1 if gold < 5 else gold - 1
    order = ["routine", "short_interval", "additional_imaging", "biopsy"]
    return order[(order.index(gold) + (1 if u < 0.5 else -1)) % len(order)]


def answer(body: dict, gold_by_text: dict[str, dict]) -> str:
    """The scripted answer to one chat request."""
    messages = body["messages"]
    system = next((m["content"] for m in messages if m["role"] == "system"), "").lower()
    text = re.sub(r"^Report:\s*", "", messages[-1]["content"])
    gold = gold_by_text.get(text)
    if gold is None:
        return "I could not find a report in your message."
    shots = sum(m["role"] == "assistant" for m in messages)
    temperature = float(body.get("temperature", 1.0))
    fields = {}
    for field, words in FIELD_WORDS.items():
        if not re.search(words, system):
            continue
        value = gold[field]
        if field == "size_mm" and value is not None and not re.search(MM_WORDS, system):
            value = next((s for s in sizes_as_written(text) if s in (value, value / 10)), value)
            value = int(value) if float(value).is_integer() else value
        p = BASE_ERROR[field] * SHOT_FACTOR**shots + TEMP_ERROR * temperature
        if draw(text, field) < p:
            value = wrong(field, gold[field], text, draw(text, field, "which"))
        fields[field] = value
    if "json" in system:
        out = json.dumps(fields)
    elif draw(text, "prose") < PROSE_RATE:
        out = "The report describes " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items()) + "."
    else:
        out = PREAMBLE + "".join(f"\n{k}: {'none' if v is None else v}" for k, v in fields.items())
    budget = body.get("max_tokens") or body.get("max_completion_tokens") or 4096
    return out[: int(budget) * CHARS_PER_TOKEN]


class ScriptedModel:
    """The server; ``requests`` counts the chat requests it answered."""

    def __init__(self) -> None:
        rows = [json.loads(line) for line in REPORTS.read_text(encoding="utf-8").splitlines()]
        gold_by_text = {r["text"]: r["gold"] for r in rows}
        self.requests = 0
        lock = threading.Lock()
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                content = answer(body, gold_by_text)
                with lock:
                    model.requests += 1
                prompt = sum(len(m.get("content") or "") for m in body.get("messages", []))
                usage = [math.ceil(prompt / CHARS_PER_TOKEN), math.ceil(len(content) / CHARS_PER_TOKEN)]
                data = json.dumps({
                    "id": f"scripted-{model.requests}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "scripted-extractor"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedModel:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":  # serve on its own: PROMPT_API_BASE=<the printed url> pytest
    with ScriptedModel() as served:
        print(f"scripted model at {served.url} (Ctrl-C stops it)", flush=True)
        try:
            served.thread.join()
        except KeyboardInterrupt:
            pass
