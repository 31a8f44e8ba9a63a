"""The frozen evaluator: validation AUC, gated by sensitivity at 90% specificity."""

from __future__ import annotations

import json

import pytest
import torch

import data
import train
from metrics import auc, sensitivity_at_specificity, threshold_at_specificity
from pytest_autoresearch.torch import parameter_count, weights_hash

# At the operating point a screening service would use (9 in 10 benign lesions cleared), the
# model must still flag this share of the malignant ones; the baseline flags 0.36.
SENSITIVITY_FLOOR = 0.30
SPECIFICITY = 0.90


@pytest.mark.fitness(goal="max")
def test_validation_auc(fitness, trained: train.Trained, tmp_path) -> None:
    x, y = data.split("validation")
    p = train.predict(trained, x)
    fitness(auc(p, y))
    fitness.metric("sensitivity_at_spec90", sensitivity_at_specificity(p, y, SPECIFICITY), min=SENSITIVITY_FLOOR)
    fitness.metric("parameters", parameter_count(trained.net))
    # The audit trail (each trial's result.json) ties this score to exactly these weights and
    # the operating threshold a deployment would use with them.
    weights = tmp_path / "weights.pt"
    torch.save(trained.state(), weights)
    card = tmp_path / "model_card.json"
    card.write_text(json.dumps({
        "weights_hash": weights_hash(trained.net),
        "threshold_at_spec90": threshold_at_specificity(p, y, SPECIFICITY),
    }, indent=1))
    fitness.artifact(weights)
    fitness.artifact(card)
