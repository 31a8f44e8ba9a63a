"""The frozen evaluator: train for the time budget, then score validation bits per byte."""

from __future__ import annotations

import math
import time

import pytest
import torch

import train
from prepare import TIME_BUDGET, evaluate_bpb
from pytest_autoresearch.torch import parameter_count, peak_memory_mb, reset_peak_memory, seed_everything

# train() may run past its budget by one step and its setup, not by more
GRACE_SECONDS = 0.1 * TIME_BUDGET + 5


@pytest.mark.fitness(goal="min")
def test_val_bpb(fitness, tmp_path):
    torch.set_num_threads(1)  # one thread: on a busy machine two threads that wait on each other crawl
    seed_everything(0)
    reset_peak_memory()
    start = time.perf_counter()
    model = train.train(TIME_BUDGET)
    seconds = time.perf_counter() - start
    assert seconds <= TIME_BUDGET + GRACE_SECONDS, f"train() took {seconds:.1f} s of a {TIME_BUDGET:g} s budget"
    bpb = evaluate_bpb(model)
    assert math.isfinite(bpb), f"validation bits per byte is {bpb}: training diverged"
    fitness(bpb)
    fitness.metric("params", parameter_count(model))
    fitness.metric("peak_memory_mb", peak_memory_mb())
    fitness.metric("train_seconds", seconds)
    if isinstance(getattr(model, "steps", None), int):
        fitness.metric("steps", model.steps)
    weights = tmp_path / "model.pt"
    torch.save(model.state_dict(), weights)
    fitness.artifact(weights)
