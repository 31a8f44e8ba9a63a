"""The frozen evaluator: root-mean-square error of the denoised signal against the clean one."""

import math

import pytest
from signal_data import CLEAN


@pytest.mark.fitness(goal="min")
def test_rmse(fitness, denoised):
    out = denoised["noisy"]  # data from the denoiser's own process (conftest.py): check it, then score it
    assert len(out) == len(CLEAN) and all(type(y) in (int, float) for y in out), "one number per sample"
    fitness(math.sqrt(sum((a - b) ** 2 for a, b in zip(out, CLEAN)) / len(CLEAN)))
