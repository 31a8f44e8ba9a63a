"""How often luck gets kept: false-keep rate and power of the keep rules, by simulation.

A synthetic evaluator returns the candidate's true score plus Gaussian noise (sigma = 1).
For each rule, many independent runs of the loop are simulated on no-op proposals (the
true score never changes: every keep is luck) and on real improvements of a few
noise-widths (every discard is a miss). It reports, per rule:

- the chance that the first no-op proposal after the baseline is kept;
- false keeps per no-op trial over 100-trial runs (the branch filling with luck), and the
  improvement the log then claims although the true score never moved (in sigmas);
- the share of real improvements of 2, 3 and 4 sigma that are kept (one proposal, tested
  right after the baseline);
- the share of simpler proposals (fewer lines) kept by the simplicity rule when they are truly
  as good, or truly worse by 1 or 2 sigma (one proposal, right after the baseline): the rule
  keeps "as good within the noise", and this is how far from "as good" that reaches;
- the evaluator runs a trial costs on average.

Each simulated candidate is judged by the loop's own verdict
(:func:`pytest_autoresearch.core.verdict.assess`, with the built-in keep rule
:func:`~pytest_autoresearch.core.verdict.decide` and :mod:`pytest_autoresearch.core.noise`),
fed its confirmation runs as the verdict asks for them and judged on the noise known before it
ran, so the figures are those of the rule and defaults the plugin ships. Run: ``.venv/bin/python bench/noise.py [--seeds 400]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_autoresearch.core import verdict
from pytest_autoresearch.core.columns import MetricColumns
from pytest_autoresearch.core.noise import DEFAULT_BASELINE_RUNS, DEFAULT_CONFIRM_RUNS, DEFAULT_K, DEFAULT_NOISY_BASELINE_RUNS, Noise, NoiseRule
from pytest_autoresearch.core.records import FitnessResult, MetricSpec, RunResult, Status, TrialRecord

#: The simulated primary fitness test: a score to minimise.
METRIC = MetricSpec(nodeid="bench_noise.py::test_score", name="score", goal="min", primary=True)
#: No secondary scores or named metrics: results.tsv would have no metric columns.
COLUMNS = MetricColumns()
#: The naive rule: one run, keep if strictly better (no repeated runs, so no noise is known).
NAIVE = NoiseRule(min_delta=0.0)


def run_of(score: float) -> verdict.Run:
    """One clean run of a candidate (every test passed) that scored ``score``."""
    fit = FitnessResult(METRIC.nodeid, METRIC.name, METRIC.goal, METRIC.primary, score=score)
    return verdict.Run(RunResult(exit_code=0, seconds=0.0, finished=True, fitness=[fit]))


class Loop:
    """The plugin's verdict for a goal="min" metric, on a simulated evaluator."""

    def __init__(self, rng: random.Random, rule: NoiseRule | None, baseline_runs: int, noisy_baseline_runs: int) -> None:
        self.rng, self.rule = rng, rule or NAIVE
        self.runs = self.number = 0
        scores = [self.sample(0.0) for _ in range(baseline_runs if rule else 1)]
        self.noise = Noise()
        if rule is not None:
            if len(set(scores)) > 1:
                scores += [self.sample(0.0) for _ in range(max(0, noisy_baseline_runs - len(scores)))]
            self.noise.add(scores)
        self.best: TrialRecord = verdict.baseline(0, "", scores, [run_of(s).result for s in scores], COLUMNS)
        self.best_true = 0.0

    def sample(self, true: float) -> float:
        self.runs += 1
        return true + self.rng.gauss(0.0, 1.0)

    def trial(self, true: float, lines: int = 0) -> bool:
        """One proposal whose true score is ``true`` (``lines`` net surface lines), judged as the
        loop judges; True when it is kept."""
        self.number += 1
        rule, best = self.rule, self.best
        judging = verdict.Judging(
            trial=self.number, description="simulated proposal", metric=METRIC, best=best, lines=lines, rule=rule, noise=self.noise,
            columns=COLUMNS, timeout=None, memory_mb=None,
            keep_rule=lambda candidate, noise: verdict.decide(rule, noise, METRIC, candidate, best),
        )
        runs = [run_of(self.sample(true))]
        while (outcome := verdict.assess(judging, runs)).record is None:
            assert outcome.attempt == len(runs) + 1
            runs.append(run_of(self.sample(true)))  # a confirmation run, as the verdict asks
        if outcome.noise is not None:
            self.noise = outcome.noise
        keep = outcome.record.status == Status.KEEP
        if keep:
            self.best, self.best_true = outcome.record, true
        return keep


def simulate(rule: NoiseRule | None, seeds: int, baseline_runs: int, noisy_baseline_runs: int) -> dict[str, float]:
    false_keeps = trials = runs = first = 0
    claimed = 0.0
    for seed in range(seeds):
        loop = Loop(random.Random(seed), rule, baseline_runs, noisy_baseline_runs)
        start, baseline = loop.runs, loop.best.score
        assert baseline is not None
        for n in range(100):
            kept = loop.trial(0.0)
            first += kept and n == 0
            false_keeps += kept
            trials += 1
        runs += loop.runs - start
        claimed += baseline - loop.best.score  # type: ignore[operator]
    power = {}
    for d in (2, 3, 4):
        kept = sum(Loop(random.Random(10_000 + s), rule, baseline_runs, noisy_baseline_runs).trial(-float(d)) for s in range(seeds))
        power[d] = kept / seeds
    simpler = {}
    for d in (0, 1, 2):
        kept = sum(Loop(random.Random(20_000 + s), rule, baseline_runs, noisy_baseline_runs).trial(float(d), lines=-1) for s in range(seeds))
        simpler[d] = kept / seeds
    return {
        "first": first / seeds,
        "false_keep": false_keeps / trials,
        "claimed": claimed / seeds,
        "runs_per_trial": runs / trials,
        **{f"power_{d}": p for d, p in power.items()},
        **{f"simpler_{d}": p for d, p in simpler.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    args = parser.parse_args()
    rows = [("naive: one run, keep if better", None, 1, 1)]
    for k in (1.0, 1.5, 2.0, 3.0):
        for confirm in (1, 2, 4):
            for top_up in (DEFAULT_BASELINE_RUNS, DEFAULT_NOISY_BASELINE_RUNS):
                default = k == DEFAULT_K and confirm == DEFAULT_CONFIRM_RUNS and top_up == DEFAULT_NOISY_BASELINE_RUNS
                name = f"k={k:g} confirm={confirm} noisy baseline={top_up}" + ("  <- default" if default else "")
                rows.append((name, NoiseRule(k=k, confirm_runs=confirm), DEFAULT_BASELINE_RUNS, top_up))
    print(f"false keeps of no-op proposals and power on real gains, noise sigma = 1, {args.seeds} simulated runs each", flush=True)
    print(
        f"{'rule':48} {'1st no-op':>9} {'false keep':>10} {'claimed':>8} {'kept 2s':>8} {'kept 3s':>8} {'kept 4s':>8} {'runs/trial':>10}"
        f" {'simpler =':>9} {'-1s':>5} {'-2s':>5}",
        flush=True,
    )
    # The rows are independent simulations: one process each, as many at once as there are CPUs
    # (the verdict builds the loop's own records for every run, which costs more than the arithmetic).
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(len(rows), os.cpu_count() or 1)) as pool:
        futures = [pool.submit(simulate, rule, args.seeds, base, top) for _, rule, base, top in rows]
        for (name, *_), future in zip(rows, futures):
            r = future.result()
            print(
                f"{name:48} {r['first']:9.1%} {r['false_keep']:10.2%} {r['claimed']:7.2f}s {r['power_2']:8.0%} "
                f"{r['power_3']:8.0%} {r['power_4']:8.0%} {r['runs_per_trial']:10.2f} {r['simpler_0']:9.0%} {r['simpler_1']:5.0%} {r['simpler_2']:5.0%}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
