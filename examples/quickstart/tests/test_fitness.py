"""The frozen evaluator: root-mean-square error of the denoised signal against the clean one."""

import math

import pytest

from denoise import denoise
from signal_data import CLEAN, NOISY


@pytest.mark.fitness(goal="min")
def test_rmse(fitness):
    out = denoise(NOISY)
    fitness(math.sqrt(sum((a - b) ** 2 for a, b in zip(out, CLEAN)) / len(CLEAN)))
