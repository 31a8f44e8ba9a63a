"""How often a real small model's answers apply and keep: the loop on bundled examples with the
``litellm:`` agent against a Qwen2.5-Coder model served on 127.0.0.1 by llama-cpp-python.

    .venv/bin/python bench/local_model.py [--sizes 1.5b 0.5b] [--examples quickstart sqlite]
        [--tools off on] [--trials 5] [--n-ctx 8192] [--keep DIR] [--json out.json]

For each model size and tools setting one server is started (tools: llama-cpp-python's
function-calling chat format, and ``-o autoresearch_agent_tools=on`` for the loop); each example
is copied into a temporary git repository (as ``examples/run.py`` does) and run for ``--trials``
trials. The table gives per run: the share of first answers that applied (a refused one goes
back to the model once, ``autoresearch_agent_corrections``), the share of trials whose answer
applied in the end (status not ``invalid``), how many of the corrected ones then applied, the
share that kept, the wall-clock seconds per trial (model and tests), and why the invalid ones
failed (results.tsv's reasons). ``--keep DIR`` copies each trial's prompt and answer there: real
answers to turn into parser tests. Without the model kit (``tests/local_model.py`` says where it
is looked for) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
TAG = "bench"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kit = _load("autoresearch_local_model_kit", REPO / "tests" / "local_model.py")
examples = _load("autoresearch_examples_run", REPO / "examples" / "run.py")


def run_loop(example: str, url: str, trials: int, tools: bool, timeout: float, checkout: Path = REPO) -> dict[str, object]:
    """One loop on a fresh copy of ``example``; its rows, reasons and timings."""
    copy = examples.prepare(example)
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", f"--autoresearch-tag={TAG}"]
    args += [f"--autoresearch-trials={trials}", f"--autoresearch-agent={kit.AGENT}", f"--autoresearch-api-base={url}"]
    args += ["-o", "autoresearch_agent_tools=on"] if tools else []
    env = {**os.environ, "OPENAI_API_KEY": "none", "PYTHONPATH": os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
    start = time.monotonic()
    try:
        proc = subprocess.run(args, cwd=copy, capture_output=True, text=True, env=env, timeout=timeout)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}", None
    wall = time.monotonic() - start
    folder = copy / ".autoresearch" / TAG
    rows = _rows(folder / "results.tsv")
    baseline = float(rows[0]["seconds"] or 0) if rows else 0.0
    done = [r for r in rows if r["status"] != "baseline"]
    return {
        "example": example,
        "tools": tools,
        "tools_known": not (tools and "autoresearch_agent_tools" in output and "nknown config option" in output),
        "copy": str(copy),
        "exit": code,
        "trials": len(done),
        "statuses": [r["status"] for r in done],
        "reasons": [r["reason"] for r in done if r["status"] == "invalid"],
        "corrected": [r["status"] for r in done if _corrected(folder / "trials", r["trial"])],
        "seconds_per_trial": (wall - baseline) / len(done) if done else None,
        "error": "" if done else (output.strip().splitlines() or ["no output"])[-1],
    }


def _corrected(trials: Path, number: str) -> bool:
    """Whether the trial's first answer was refused and sent back to the model (its transcript says so)."""
    path = trials / f"{int(number):03d}.conversation.json"
    if not path.is_file():
        return False
    kept = json.loads(path.read_text(encoding="utf-8"))
    return kept.get("kind") == "correction" or "correction" in kept


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def keep_answers(result: dict[str, object], size: str, into: Path) -> None:
    trials = Path(str(result["copy"])) / ".autoresearch" / TAG / "trials"
    target = into / f"{size}-{result['example']}-tools-{'on' if result['tools'] else 'off'}"
    if trials.is_dir():
        shutil.copytree(trials, target, dirs_exist_ok=True)
        shutil.copy(trials.parent / "results.tsv", target / "results.tsv")


def _reason_class(reason: str) -> str:
    """A reason without its particulars (the block's number, the quoted line), to count alike ones."""
    reason = re.sub(r"^SEARCH/REPLACE block \d+ ", "", reason.split(" (its first line")[0])
    return reason[:110]


def table(size: str, result: dict[str, object]) -> list[object]:
    statuses = list(result["statuses"])  # type: ignore[call-overload]
    n = len(statuses)
    applied = sum(s != "invalid" for s in statuses)
    kept = statuses.count("keep")
    corrected = list(result.get("corrected", []))  # type: ignore[call-overload]
    first = n - len(corrected)  # answers that applied as first given (a refused one was sent back)
    fixed = sum(s != "invalid" for s in corrected)
    reasons = Counter(_reason_class(r) for r in result["reasons"])  # type: ignore[union-attr]
    tools = ("on" if result["tools_known"] else "on (setting unknown: ran without)") if result["tools"] else "off"
    seconds = result["seconds_per_trial"]
    return [
        size,
        result["example"],
        tools,
        n,
        f"{first}/{n} ({100 * first / n:.0f}%)" if n else "-",
        f"{applied}/{n} ({100 * applied / n:.0f}%)" if n else "-",
        f"{fixed}/{len(corrected)}",
        f"{kept}/{n} ({100 * kept / n:.0f}%)" if n else "-",
        f"{seconds:.0f}" if isinstance(seconds, float) else "-",
        "; ".join(f"{c}x {r}" for r, c in reasons.most_common()) or str(result["error"])[:120],
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1.5b", "0.5b"], choices=sorted(kit.MODELS))
    parser.add_argument("--examples", nargs="+", default=["quickstart", "sqlite"])
    parser.add_argument("--tools", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--n-ctx", type=int, default=8192, help="the server's context window (tokens)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per loop")
    parser.add_argument("--keep", type=Path, help="copy each trial's prompt and answer into this folder")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the checkout whose plugin the loop imports (another branch, for a before/after)")
    options = parser.parse_args(argv)

    from tabulate import tabulate

    rows: list[list[object]] = []
    results: list[dict[str, object]] = []
    for size in options.sizes:
        if problem := kit.kit_problem(size):
            print(f"skipped {size}: {problem}", flush=True)
            continue
        for tools in (t == "on" for t in options.tools):
            try:
                with kit.serve(size, tools=tools, n_ctx=options.n_ctx) as server:
                    for example in options.examples:
                        print(f"{size} tools={'on' if tools else 'off'} {example}: {options.trials} trials ...", flush=True)
                        result = run_loop(example, server.url, options.trials, tools, options.timeout, options.checkout.resolve())
                        result["size"] = size
                        results.append(result)
                        rows.append(table(size, result))
                        print("   ", " | ".join(map(str, rows[-1])), flush=True)
                        if options.keep:
                            keep_answers(result, size, options.keep)
            except kit.ServerProblem as exc:
                print(f"skipped {size} (tools {'on' if tools else 'off'}): {exc}", flush=True)
    if rows:
        headers = ["model", "example", "tools", "trials", "first answer applied", "applied", "corrected", "kept", "s/trial", "why the invalid ones failed"]
        print(tabulate(rows, headers=headers, tablefmt="github"))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
