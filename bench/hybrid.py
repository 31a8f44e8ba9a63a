"""The ``hybrid:SPEC`` agent's mechanics on the quickstart, with a scripted model server.

What is measured
----------------
A fresh copy of ``examples/quickstart`` (its own git) runs the real loop with
``--autoresearch-agent=hybrid:litellm:openai/scripted`` against the scripted OpenAI-compatible
server of ``tests/llm_server.py``, which answers the model's turns in order:

1. the whole of ``denoise.py`` with a median filter in front and its width as a new constant,
   ``MEDIAN = 3`` (a structural change: RMSE 0.2376 -> 0.2215 on its own);
2. an answer without an edit (an ``invalid`` trial, as small models write);
3. the original ``denoise.py`` again (the structure undone, its constants the start's).

With ``autoresearch_hybrid_every`` = E (default 5) the model gets trials 1, 1 + E, 1 + 2E and
the tuner (``autoresearch_hybrid_tuner``, default ``optuna``) the rest. The script prints each
trial (who proposed it, its status and score, and which study a tuner trial was asked in), the
studies in ``optuna.db`` (their parameters and how many trials each holds, by source), the model
requests the server saw, and the run's wall time; then the same number of trials with the tuner
alone, for the best RMSE reached. A scripted model says nothing about a real model's quality:
this checks which trial goes where and that the model's keep starts a study with its constant in
the space.

``--overhead N`` measures instead what the tuner costs per trial: each sampler proposes N trials
through the agent seam in-process (a throwaway folder, the quickstart's settings, a made-up score)
and the time of each ``propose`` (the row's ``tell``, the ``ask``, writing the files) is
reported at trials 1-10 and at the last ten.

Usage: ``python bench/hybrid.py [--trials N] [--every E] [--tuner SPEC] [--overhead N]``
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from llm_server import answer, scripted_server  # noqa: E402

GIT = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
MEDIAN_DOC = '''"""A denoiser for a sampled signal: the mutable surface of this example.

A median filter against outliers, a centred moving average, then two-way exponential
smoothing. The constants below are what the agent tunes.
"""
'''
MEDIAN_STAGE = '''

def median_filter(xs, width):
    half = width // 2
    out = []
    for i in range(len(xs)):
        lo, hi = max(0, i - half), min(len(xs), i + half + 1)
        out.append(sorted(xs[lo:hi])[(hi - lo) // 2])
    return out
'''


def model_answers(original: str) -> list[str]:
    body = original.split('"""', 2)[2].lstrip("\n")  # after the module docstring
    median = MEDIAN_DOC + "\n" + body.replace("PASSES = 1\n", "PASSES = 1\nMEDIAN = 3\n", 1)
    median = median.replace("\n\ndef moving_average", MEDIAN_STAGE + "\n\ndef moving_average", 1)
    median = median.replace("    ys = list(xs)\n", "    ys = median_filter(list(xs), MEDIAN)\n", 1)
    fence = lambda text: f"```python denoise.py\n{text}```\n"
    return [
        "Outliers pass through the moving average: put a median filter in front of it.\n\n" + fence(median),
        "The filters look reasonable as they are; I would keep them.",
        "Go back to the plain moving average.\n\n" + fence(original),
    ]


def copy_quickstart() -> Path:
    target = Path(tempfile.mkdtemp(prefix="hybrid-bench-")) / "quickstart"
    shutil.copytree(REPO / "examples" / "quickstart", target, ignore=shutil.ignore_patterns("__pycache__", ".autoresearch"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*GIT, "commit", "-q", "-m", "quickstart"]):
        subprocess.run(["git", *args], cwd=target, check=True)
    return target


def run_loop(copy: Path, tag: str, agent: str, trials: int, *extra: str) -> tuple[list[dict[str, str]], float, str]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--autoresearch", f"--autoresearch-tag={tag}",
         f"--autoresearch-agent={agent}", f"--autoresearch-trials={trials}", *extra],
        cwd=copy, capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "sk-bench"},
    )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"the {agent} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with (copy / ".autoresearch" / tag / "results.tsv").open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)), seconds, proc.stdout


def studies(copy: Path, tag: str) -> dict[str, list]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{copy}/.autoresearch/{tag}/optuna.db"
    return {name: optuna.load_study(study_name=name, storage=storage).trials for name in optuna.get_all_study_names(storage)}


def overhead(trials: int) -> None:
    """Milliseconds per ``propose`` of each sampler, early and late in a study."""
    import statistics

    from pytest_autoresearch.agents import ProposalContext
    from pytest_autoresearch.agents.tuner import OptunaAgent
    from pytest_autoresearch.core.records import MetricSpec, TrialRecord
    from pytest_autoresearch.proposals.surface import Surface

    text = (REPO / "examples" / "quickstart" / "denoise.py").read_text()
    metric = MetricSpec("tests/test_fitness.py::test_rmse", "rmse", "min", True)
    for sampler in ("tpe", "cmaes", "random"):
        root = Path(tempfile.mkdtemp(prefix="tuner-overhead-"))
        agent, history = OptunaAgent(sampler, seed=0), [TrialRecord(0, "baseline", "baseline", score=1.0)]
        times = []
        for n in range(1, trials + 1):
            context = ProposalContext(
                trial=n, tag="t", rootdir=root, workdir=root, surface=Surface(["denoise.py"]), files={"denoise.py": text}, program="",
                metric=metric, baseline=history[0], best=history[0], history=list(history), last_failure=None, trials_left=None,
                read=lambda path: None, note=lambda line: None,
            )
            start = time.perf_counter()
            proposal = agent.propose(context)
            times.append(1000 * (time.perf_counter() - start))
            history.append(TrialRecord(n, "discard", proposal.description, score=1.0 + zlib.crc32(proposal.description.encode()) % 1000 / 1000, parent_trial=0))
        agent.close()
        shutil.rmtree(root)
        print(f"optuna:{sampler}: {statistics.median(times[:10]):.0f} ms per proposal at trials 1-10, {statistics.median(times[-10:]):.0f} ms at trials {trials - 9}-{trials}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--tuner", default="optuna")
    parser.add_argument("--overhead", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.overhead:
        overhead(args.overhead)
        return 0
    copy = copy_quickstart()
    original = (copy / "denoise.py").read_text()
    answers = [answer(text, prompt_tokens=1200, completion_tokens=400) for text in model_answers(original)]
    with scripted_server(*answers, *(answer("No further ideas.") for _ in range(args.trials))) as server:
        rows, seconds, _ = run_loop(
            copy, "hybrid", "hybrid:litellm:openai/scripted", args.trials,
            "-o", f"autoresearch_api_base={server.url}", "-o", f"autoresearch_hybrid_every={args.every}",
            "-o", f"autoresearch_hybrid_tuner={args.tuner}",
        )
        requests = len(server.requests)
    found = studies(copy, "hybrid")
    asked_in = {t.user_attrs["trial"]: name for name, trials in found.items() for t in trials if "trial" in t.user_attrs}
    print(f"hybrid:litellm (scripted) every {args.every}, tuner {args.tuner}, {args.trials} trials on the quickstart: {seconds:.1f} s")
    print("| trial | proposer | status | RMSE | study | description |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        trial = int(row["trial"])
        who = "-" if trial == 0 else ("model" if row["tokens_in"] else "tuner")
        score = f"{float(row['score']):.4f}" if row["score"] else ""
        print(f"| {trial} | {who} | {row['status']} | {score} | {asked_in.get(trial, '')} | {row['description'][:70]} |")
    print(f"\nmodel requests the server saw: {requests}")
    for name, trials in found.items():
        sources: dict[str, int] = {}
        for t in trials:
            source = t.user_attrs.get("source") or ("duplicate" if "duplicate_of" in t.user_attrs else "asked")
            sources[source] = sources.get(source, 0) + 1
        params = ", ".join(p.split(":")[1] for p in trials[0].params)
        print(f"study {name}: parameters {params}; trials {dict(sorted(sources.items()))}")
    best = lambda rs: min(float(r["score"]) for r in rs if r["status"] in ("baseline", "keep"))
    alone, alone_seconds, _ = run_loop(copy, "tuner", args.tuner, args.trials)
    print(f"\nbest RMSE after {args.trials} trials: hybrid {best(rows):.4f} ({seconds:.1f} s), {args.tuner} alone {best(alone):.4f} ({alone_seconds:.1f} s); baseline {float(rows[0]['score']):.4f}")
    print(f"copy: {copy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
