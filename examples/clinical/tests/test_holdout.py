"""The holdout: test-split AUC, scored only on the baseline and the final best, never in trials,
and never shown to an agent, so a run can be checked for overfitting the validation split."""

from __future__ import annotations

import pytest

import data
import train
from metrics import auc


@pytest.mark.fitness(goal="max", holdout=True)
def test_test_split_auc(fitness, trained: train.Trained) -> None:
    x, y = data.split("test")
    fitness(auc(train.predict(trained, x), y))
