"""Search operators side by side: the same problems, the same trial budgets, several seeds each.

    .venv/bin/python bench/search.py [--problems rosenbrock kmodule quickstart clinical [sqlite]]
        [--operators random mutate tpe cmaes] [--seeds N] [--trials N] [--jobs N]
        [--json out.json] [--plot bench/search.png] [--api-base URL] [--quick]
    .venv/bin/python bench/search.py --report out.json [--plot search.png]   # the table again, running nothing

Each operator is an agent spec, seeded per run (``{seed}`` in its spec): ``random`` is
``optuna:random:{seed}`` (random search over the same space the tuner builds), ``mutate``
``mutate:{seed}``, ``tpe`` ``optuna:tpe:{seed}``, ``cmaes`` ``optuna:cmaes:{seed}`` (on the
continuous problem only). Any other agent is ``NAME=SPEC``: ``--operators
hybrid=hybrid:litellm:openai/qwen-coder --api-base http://127.0.0.1:8000/v1``; a spec without
``{seed}`` is the same for every seed. The problems are in ``search_problems.py``: the function
problems run in-process through the agent seam (``search_harness.py``), the examples run the
real loop.

It prints, per problem and operator, the median best score at the trial budget (and at the
problem's further checkpoints), on how many seeds it beat random search (same seed, same
problem; ties counted apart), the median trials to reach the problem's target, how many seeds
reached it, and how many runs ended before the budget (the agent said its space was exhausted);
then whether the targets the benchmark was built to check hold. ``--json``
keeps every run (each trial's score and the best kept after it); ``--plot`` draws the median best
against trials. ``--quick`` is a tiny run of the function problems (a test runs it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_harness  # noqa: E402
from search_harness import RunLog  # noqa: E402
from search_problems import DEFAULT, PROBLEMS, Problem  # noqa: E402

OPERATORS = {
    "random": "optuna:random:{seed}",
    "mutate": "mutate:{seed}",
    "tpe": "optuna:tpe:{seed}",
    "cmaes": "optuna:cmaes:{seed}",
}
#: operators that only make sense on a continuous space
CONTINUOUS_ONLY = {"cmaes"}
REFERENCE = "random"
QUICK = {"problems": ["rosenbrock", "kmodule"], "seeds": 2, "trials": 8}


def parse_operators(entries: Sequence[str]) -> dict[str, str]:
    """``random`` (a built-in name) or ``NAME=SPEC``: operator name -> spec template."""
    out: dict[str, str] = {}
    for entry in entries:
        name, sep, spec = entry.partition("=")
        if sep:
            if not name or not spec:
                raise SystemExit(f"--operators: {entry!r} is not NAME=SPEC")
            out[name] = spec
        elif entry in OPERATORS:
            out[entry] = OPERATORS[entry]
        else:
            raise SystemExit(f"--operators: unknown operator {entry!r}; known: {', '.join(OPERATORS)}, or NAME=SPEC")
    return out


def plan(problems: Sequence[Problem], operators: dict[str, str], seeds: int | None, trials: int | None) -> list[tuple[Problem, str, str, int, int]]:
    """Every run to make: (problem, operator, spec, seed, trials)."""
    runs = []
    for problem in problems:
        budget = trials if trials is not None else max((problem.budget, *problem.checkpoints))
        for name, template in operators.items():
            if name in CONTINUOUS_ONLY and not problem.continuous:
                continue
            for seed in range(seeds if seeds is not None else problem.seeds):
                runs.append((problem, name, template.replace("{seed}", str(seed)), seed, budget))
    return runs


def _one(job: tuple[Problem, str, str, int, int], api_base: str | None) -> RunLog:
    problem, name, spec, seed, trials = job
    return search_harness.run(problem, name, spec, seed, trials, api_base)


def better(a: float | None, b: float | None, goal: str) -> bool:
    if a is None:
        return False
    if b is None:
        return True
    return a < b if goal == "min" else a > b


def trials_to_target(problem: Problem, log: RunLog, budget: int) -> float:
    """The first trial after which the best kept score reached the target (0: the baseline had); inf if never within budget."""
    return next((float(i) for i, best in enumerate(log.best[: budget + 1]) if problem.reached(best)), math.inf)


def summarise(problem: Problem, logs: list[RunLog], budget: int) -> list[dict[str, object]]:
    """One row per operator at ``budget`` trials."""
    by_op: dict[str, list[RunLog]] = {}
    for log in logs:
        by_op.setdefault(log.operator, []).append(log)
    reference = {log.seed: log for log in by_op.get(REFERENCE, []) if not log.error}
    rows = []
    for name, runs in by_op.items():
        runs.sort(key=lambda r: r.seed)
        row: dict[str, object] = {"problem": problem.name, "operator": name, "trials": budget, "seeds": len(runs)}
        failed = [r for r in runs if r.error]
        if failed:
            row["error"] = failed[0].error
            rows.append(row)
            continue
        bests = [r.best_at(budget) for r in runs]
        row["median_best"] = statistics.median(b for b in bests if b is not None) if any(b is not None for b in bests) else None
        if name != REFERENCE and reference:
            paired = [(r.best_at(budget), reference[r.seed].best_at(budget)) for r in runs if r.seed in reference]
            row["better_than_random"] = sum(better(a, b, problem.goal) for a, b in paired)
            row["worse_than_random"] = sum(better(b, a, problem.goal) for a, b in paired)
            row["paired"] = len(paired)
        hits = [trials_to_target(problem, r, budget) for r in runs]
        row["median_trials_to_target"] = statistics.median(hits)
        row["reached"] = sum(math.isfinite(h) for h in hits)
        row["seconds_per_run"] = statistics.mean(r.seconds for r in runs)
        row["stopped_early"] = sum(len(r.best) - 1 < budget for r in runs)  # the agent ran out before this many trials
        # would-be keeps parked for a person (they touch autoresearch_review files): never on the branch
        parked = [[s for s, st in zip(r.scores[1 : budget + 1], r.statuses[1 : budget + 1]) if st == "review" and s is not None] for r in runs]
        row["parked"] = sum(len(p) for p in parked)
        top = [(min(p) if problem.goal == "min" else max(p)) for p in parked if p]
        row["median_best_parked"] = statistics.median(top) if top else None
        rows.append(row)
    return rows


def _num(value: object) -> str:
    if value is None:
        return "-"
    assert isinstance(value, float)
    return f"{value:.4g}"


def table(problems: Sequence[Problem], logs: list[RunLog], trials: int | None) -> tuple[str, list[dict[str, object]]]:
    """The markdown table of every problem and operator, and its rows as data."""
    lines = [
        "| problem | operator | trials | median best | better / worse than random (seeds) | median trials to target | reached target | ended early | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    all_rows = []
    for problem in problems:
        mine = [log for log in logs if log.problem == problem.name]
        if not mine:
            continue
        full = max(log.budget for log in mine)
        primary = problem.budget if trials is None else full
        budgets = [b for b in dict.fromkeys([primary, *problem.checkpoints]) if b <= full]
        for budget in budgets:
            for row in summarise(problem, mine, budget):
                row["primary"] = budget == primary
                all_rows.append(row)
                name = f"{problem.name} ({'min' if problem.goal == 'min' else 'max'}, target {problem.target:g})"
                if "error" in row:
                    why = str(row["error"]).replace("|", "/")[:90]
                    lines.append(f"| {name} | {row['operator']} | {budget} | cannot run: {why} | | | | | |")
                    continue
                versus = (
                    f"{row['better_than_random']} / {row['worse_than_random']} of {row['paired']}" if "paired" in row
                    else "(reference)" if row["operator"] == REFERENCE else "-"
                )
                hit = row["median_trials_to_target"]
                to_target = f">{budget}" if not math.isfinite(hit) else f"{hit:g}"  # type: ignore[arg-type]
                lines.append(
                    f"| {name} | {row['operator']} | {budget} | {_num(row['median_best'])} | {versus} | {to_target} | "
                    f"{row['reached']}/{row['seeds']} | {row['stopped_early']}/{row['seeds']} | {row['seconds_per_run']:.1f} |"
                )
    notes = [
        f"- {r['problem']}, {r['operator']}: {r['parked']} of {r['seeds'] * r['trials']} trials were parked for review "
        f"(better, but they touch autoresearch_review files); the best parked score, median over seeds: {_num(r['median_best_parked'])}"
        for r in all_rows if r.get("parked") and r["primary"]
    ]
    return "\n".join(lines + ([""] + notes if notes else [])), all_rows


def targets(rows: list[dict[str, object]], problems: Sequence[Problem]) -> list[str]:
    """Whether the benchmark's targets hold, each with its numbers (rows at each problem's own budget)."""
    at_budget = {(r["problem"], r["operator"]): r for r in rows if r["primary"]}
    out = []

    def beats(problem: str, op: str) -> tuple[bool | None, str]:
        row, ref = at_budget.get((problem, op)), at_budget.get((problem, REFERENCE))
        if row is None or ref is None or "error" in row or "error" in ref:
            return None, f"{problem}: not measured"
        goal = next(p.goal for p in problems if p.name == problem)
        median = better(row["median_best"], ref["median_best"], goal)  # type: ignore[arg-type]
        most = 2 * int(row["better_than_random"]) > int(row["paired"])  # type: ignore[call-overload]
        text = (
            f"{problem}: median {_num(row['median_best'])} vs {_num(ref['median_best'])}, better on "
            f"{row['better_than_random']} of {row['paired']} seeds"
        )
        return median and most, text

    names = [p.name for p in problems]
    results = [beats(name, "tpe") for name in names]
    measured = [ok for ok, _ in results if ok is not None]
    verdict = "not measured" if not measured else "HOLDS" if all(measured) and len(measured) == len(names) else "FAILS" if not all(measured) else "partly measured"
    out.append(f"- tpe beats random search on every problem: {verdict} ({'; '.join(t for _, t in results)})")
    solved = [
        (r["operator"], r["reached"], r["seeds"]) for r in rows
        if r["problem"] == "kmodule" and r["primary"] and "error" not in r
    ]
    if solved:
        best_op = max(solved, key=lambda s: int(s[1]))  # type: ignore[call-overload]
        trials = next(r["trials"] for r in rows if r["problem"] == "kmodule" and r["primary"])
        ok = int(best_op[1]) >= 0.9 * int(best_op[2]) and int(best_op[2]) >= 10 and trials == 50  # type: ignore[call-overload]
        listed = ", ".join(f"{op} {n}/{s}" for op, n, s in solved)
        verdict = ("HOLDS" if ok else "FAILS") if trials == 50 and int(best_op[2]) >= 10 else f"not measured at 10 seeds x 50 trials"  # type: ignore[call-overload]
        out.append(f"- an operator solves the K-module problem in at least 9 of 10 seeds within 50 trials: {verdict} ({listed}, within {trials} trials)")
    else:
        out.append("- an operator solves the K-module problem in at least 9 of 10 seeds within 50 trials: not measured")
    parts = []
    holds = []
    for name in names:
        row, ref = at_budget.get((name, "mutate")), at_budget.get((name, REFERENCE))
        if row is None or ref is None or "error" in row or "error" in ref:
            parts.append(f"{name}: not measured")
            continue
        goal = next(p.goal for p in problems if p.name == name)
        ok = not better(ref["median_best"], row["median_best"], goal)  # type: ignore[arg-type]
        holds.append(ok)
        parts.append(f"{name}: median {_num(row['median_best'])} vs {_num(ref['median_best'])}")
    verdict = "not measured" if not holds else "HOLDS" if all(holds) and len(holds) == len(names) else "FAILS" if not all(holds) else "partly measured"
    out.append(f"- mutate is no worse than random search (median best at the budget): {verdict} ({'; '.join(parts)})")
    return out


def plot(problems: Sequence[Problem], logs: list[RunLog], path: Path) -> None:
    """Median best kept score against trials, per problem and operator, with the interquartile band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [p for p in problems if any(log.problem == p.name and not log.error for log in logs)]
    if not shown:
        return
    cols = min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    for ax, problem in zip(axes.flat, shown):
        by_op: dict[str, list[RunLog]] = {}
        for log in logs:
            if log.problem == problem.name and not log.error:
                by_op.setdefault(log.operator, []).append(log)
        for name, runs in by_op.items():
            length = max(r.budget for r in runs) + 1
            curves = [[r.best_at(i) for i in range(length)] for r in runs]
            xs, med, lo, hi = [], [], [], []
            for i in range(length):
                values = sorted(c[i] for c in curves if c[i] is not None)
                if not values:
                    continue
                q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
                xs.append(i)
                med.append(statistics.median(values))
                lo.append(q[0])
                hi.append(q[2])
            (line,) = ax.plot(xs, med, label=f"{name} ({len(runs)} seeds)")
            ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
        ax.axhline(problem.target, color="grey", linestyle=":", linewidth=1)
        values = [v for log in logs if log.problem == problem.name for v in log.best if v is not None]
        if values and min(values) > 0 and max(values) >= 10 * min(values):
            ax.set_yscale("log")
        ax.set_title(problem.title, fontsize=9)
        ax.set_xlabel("trials")
        ax.set_ylabel(f"best score ({problem.goal})")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=list(DEFAULT))
    parser.add_argument("--operators", nargs="+", default=list(OPERATORS), help="built-in names or NAME=SPEC ({seed} is replaced)")
    parser.add_argument("--seeds", type=int, help="seeds per problem (default: each problem's own, 10 or 5)")
    parser.add_argument("--trials", type=int, help="trials per run (default: each problem's budget and checkpoints)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1; the examples' timings share the cores)")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--plot", type=Path, help="draw the median best against trials here (PNG; needs matplotlib)")
    parser.add_argument("--api-base", help="the model server of a litellm: or hybrid operator")
    parser.add_argument("--quick", action="store_true", help=f"a tiny run: {QUICK}")
    parser.add_argument("--report", type=Path, metavar="JSON", help="run nothing: the table and the plot of an earlier --json file")
    args = parser.parse_args(argv)
    if args.report:
        return report(parser, args.report, args.plot)
    if args.quick:
        args.problems = [p for p in args.problems if p in QUICK["problems"]] if args.problems != list(DEFAULT) else QUICK["problems"]
        args.seeds = args.seeds or QUICK["seeds"]
        args.trials = args.trials or QUICK["trials"]
    problems = [PROBLEMS[name] for name in args.problems]
    operators = parse_operators(args.operators)
    jobs = plan(problems, operators, args.seeds, args.trials)
    start = time.monotonic()
    print(f"{len(jobs)} runs: {', '.join(p.name for p in problems)} x {', '.join(operators)}", flush=True)
    logs: list[RunLog] = []
    if args.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(_one, job, args.api_base) for job in jobs]
            for future in futures:
                logs.append(future.result())
                _progress(logs[-1])
    else:
        for job in jobs:
            logs.append(_one(job, args.api_base))
            _progress(logs[-1])
    wall = time.monotonic() - start
    text, rows = table(problems, logs, args.trials)
    print()
    print(text)
    print()
    for line in targets(rows, problems):
        print(line)
    print(f"\n{len(logs)} runs in {wall:.0f} s wall, load average {os.getloadavg()[0]:.1f}")
    if args.json:
        finite = [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in row.items()} for row in rows]  # never reached: null
        data = {"command": ["bench/search.py", *(sys.argv[1:] if argv is None else argv)], "trials": args.trials, "wall_seconds": wall, "rows": finite, "runs": [log.to_json() for log in logs]}
        args.json.write_text(json.dumps(data, indent=1, default=str, allow_nan=False) + "\n")
    if args.plot:
        plot(problems, logs, args.plot)
        print(f"plot: {args.plot}")
    return 0


def report(parser: argparse.ArgumentParser, path: Path, plot_path: Path | None) -> int:
    """The table, the targets and the plot again, from the runs an earlier ``--json`` kept."""
    data = json.loads(path.read_text())
    logs = [RunLog.from_json(run) for run in data["runs"]]
    if "trials" in data:  # the run's own --trials (--quick's included) decides its budgets
        trials = data["trials"]
    else:  # a file written before it kept that
        trials = parser.parse_args(data["command"][1:]).trials
    names = {log.problem for log in logs}
    problems = [p for name, p in PROBLEMS.items() if name in names]
    text, rows = table(problems, logs, trials)
    print(text)
    print()
    for line in targets(rows, problems):
        print(line)
    print(f"\n{len(logs)} runs in {data['wall_seconds']:.0f} s wall (from {path})")
    if plot_path:
        plot(problems, logs, plot_path)
        print(f"plot: {plot_path}")
    return 0


def _progress(log: RunLog) -> None:
    what = f"cannot run: {log.error[:80]}" if log.error else f"best {_num(log.best[-1]) if log.best else '-'} after {len(log.best) - 1} trials"
    print(f"  {log.problem} {log.operator} seed {log.seed}: {what} ({log.seconds:.1f} s){'; stopped ' + log.stopped[:60] if log.stopped else ''}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
