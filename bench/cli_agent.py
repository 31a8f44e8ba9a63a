"""The loop on ``examples/quickstart`` driven by aider (``cmd:``) and a real local model.

What it does
------------
Starts the local model kit's OpenAI-compatible server (``../shared/local-model/serve.sh``, a
Qwen2.5-Coder GGUF on 127.0.0.1, a 16k context: aider's own prompt is large), copies the
quickstart into a temporary git repository as ``examples/run.py`` does, and runs
``pytest --autoresearch`` there with ``--autoresearch-agent=cmd:aider ...``: aider reads each
trial's prompt from ``{prompt_file}``, edits ``denoise.py`` in the trial's worktree and exits;
its chat and LLM histories go to the loop's scratch folder (``{scratch}``), it never touches git
(``--no-git``). Then it reports, from ``results.tsv`` and the clock:

* trials, how many **applied** (the edit reached the evaluator: keep or discard) and **kept**;
* seconds per trial (the run's wall time less the baseline's, per trial) and the agent's share;
* each invalid trial's reason, and whether anything of aider's was left in the copy.

aider pins its own litellm, so it lives in a virtual environment of its own
(``python3 -m venv /work/aider-venv && /work/aider-venv/bin/pip install aider-chat``).

Usage::

    python bench/cli_agent.py [--trials 3] [--model PATH.gguf] [--aider PATH] [--api-base URL] [--json PATH]

With ``--api-base`` it uses a server that is already running instead of starting one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KIT = Path(os.environ.get("AUTORESEARCH_LOCAL_MODEL_KIT", REPO.parent / "shared" / "local-model"))
MODEL = Path(os.environ.get("AUTORESEARCH_LOCAL_MODEL", "/tmp/models/qwen2.5-coder-1.5b-instruct-q4km.gguf"))
SERVER_PYTHON = Path(os.environ.get("AUTORESEARCH_LLAMA_PYTHON", "/work/llama-venv/bin/python"))
AIDER = Path(os.environ.get("AUTORESEARCH_AIDER", "/work/aider-venv/bin/aider"))
ALIAS = "qwen-coder"
PORTS = range(8020, 8030)
CONTEXT = 16384

#: aider without a terminal and without git: the prompt from the loop's file, edits applied
#: without asking, its histories in the loop's scratch folder, nothing fetched or suggested.
AIDER_FLAGS = (
    "--no-git",  # no commits, no .gitignore entry, no repository map cache
    "--message-file", "{prompt_file}",
    "--yes-always",
    "--chat-history-file", "{scratch}/aider.chat.history.md",
    "--input-history-file", "{scratch}/aider.input.history",
    "--llm-history-file", "{scratch}/aider.llm.history",
    "--map-tokens", "0",
    "--max-chat-history-tokens", "65536",  # no summary of the chat after the edit: one model call per trial
    "--edit-format", "whole",  # a small model writes the whole file more reliably than a diff
    "--no-show-model-warnings",
    "--no-check-update",
    "--no-show-release-notes",
    "--no-analytics",
    "--no-pretty",
    "--no-stream",
    "--no-fancy-input",
    "--no-auto-lint",
    "--no-suggest-shell-commands",
    "--no-detect-urls",
)


def aider_command(aider: Path, api_base: str, alias: str = ALIAS, files: tuple[str, ...] = ("denoise.py",)) -> str:
    """The ``cmd:`` command line for aider against an OpenAI-compatible server."""
    argv = [str(aider), "--model", f"openai/{alias}", "--openai-api-base", api_base, "--openai-api-key", "none", *AIDER_FLAGS]
    for name in files:
        argv += ["--file", name]
    return shlex.join(argv)


def free_port(ports: range = PORTS) -> int:
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port in {ports.start}-{ports.stop - 1}")


def missing(model: Path = MODEL, python: Path = SERVER_PYTHON, aider: Path = AIDER) -> str | None:
    """What of the kit is not here, in words, or None."""
    for what, path in (("aider", aider), ("the model", model), ("the model server's Python", python), ("serve.sh", KIT / "serve.sh")):
        if not path.exists():
            return f"{what} is not at {path}"
    probe = subprocess.run([str(python), "-c", "import llama_cpp.server"], capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]  # SIGILL: a build for other CPUs
        return f"{python} cannot import llama_cpp.server: {why}"
    return None


@contextlib.contextmanager
def local_server(model: Path = MODEL, python: Path = SERVER_PYTHON, port: int | None = None, log: Path | None = None) -> Iterator[str]:
    """The kit's server on 127.0.0.1 for the duration; yields its API base."""
    port = port or free_port()
    log = log or Path(tempfile.gettempdir()) / f"llama-{port}.log"
    env = {**os.environ, "N_CTX": str(CONTEXT)}
    out = subprocess.run(["bash", str(KIT / "serve.sh"), str(model), ALIAS, str(port), str(log), str(python)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the model server did not start: {out.stderr.strip()} (log {log})")
    pid = int(out.stdout.split()[-1])
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)


def figures(rows: list[dict[str, str]], wall: float) -> dict[str, object]:
    """The run's figures from its results.tsv rows and its wall time."""
    baseline, trials = rows[0], rows[1:]
    statuses = [r["status"] for r in trials]
    trial_seconds = sum(float(r["seconds"] or 0) for r in trials)
    per_trial = (wall - float(baseline["seconds"] or 0)) / len(trials) if trials else 0.0
    return {
        "trials": len(trials),
        "applied": sum(s in ("keep", "discard") for s in statuses),
        "kept": statuses.count("keep"),
        "statuses": statuses,
        "baseline": baseline["score"],
        "best": min((r["score"] for r in rows if r["status"] in ("baseline", "keep")), key=float),
        "seconds_per_trial": round(per_trial, 1),
        "agent_seconds_per_trial": round(per_trial - trial_seconds / max(1, len(trials)), 1),
        "invalid": [r["reason"] for r in trials if r["status"] == "invalid"],
        "descriptions": [r["description"] for r in trials],
    }


def run_quickstart(api_base: str, trials: int, aider: Path = AIDER, timeout: float = 3600) -> tuple[Path, dict[str, object]]:
    """``examples/run.py quickstart`` with aider; the copy's path and the figures."""
    command = aider_command(aider, api_base)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "run.py"), "quickstart", f"--autoresearch-trials={trials}", f"--autoresearch-agent=cmd:{command}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wall = time.monotonic() - start
    copy = Path(proc.stdout.strip().splitlines()[-1].rsplit(": ", 1)[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"the loop exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with (copy / ".autoresearch" / "demo" / "results.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    found = figures(rows, wall)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy, capture_output=True, text=True).stdout
    found["left_in_checkout"] = [line for line in status.splitlines() if ".autoresearch" not in line]
    found["aider_files_in_copy"] = sorted(str(p.relative_to(copy)) for p in copy.rglob(".aider*"))
    found["output"] = proc.stdout
    return copy, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--aider", type=Path, default=AIDER)
    parser.add_argument("--api-base", help="a server already running (else the kit's is started on a free port in 8020-8029)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing(args.model, SERVER_PYTHON, args.aider) if args.api_base is None else None
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        api_base = args.api_base or stack.enter_context(local_server(args.model))
        copy, found = run_quickstart(api_base, args.trials, args.aider)
    print(found.pop("output"))
    print(f"model {args.model.name}, aider at {args.aider}, copy {copy}")
    print(
        f"{found['trials']} trials: {found['applied']} applied, {found['kept']} kept; RMSE {found['baseline']} -> {found['best']}; "
        f"{found['seconds_per_trial']} s per trial ({found['agent_seconds_per_trial']} s of it aider and the model)"
    )
    for reason in found["invalid"]:
        print(f"  invalid: {reason}")
    print(f"left in the copy's checkout: {found['left_in_checkout'] or 'nothing'}; aider's files there: {found['aider_files_in_copy'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model.name, "copy": str(copy), **found}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
