"""Gates: whatever the loop changes, the classifier must behave like one a clinic could run."""

from __future__ import annotations

import torch

import data
import train


def test_outputs_are_probabilities(trained: train.Trained) -> None:
    x, _ = data.split("validation")
    p = train.predict(trained, x)
    assert p.shape == (len(x),)
    assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()


def test_a_batch_of_zeros_does_not_crash(trained: train.Trained) -> None:
    p = train.predict(trained, torch.zeros(4, len(data.FEATURES)))
    assert p.shape == (4,) and torch.isfinite(p).all()


def test_a_lesion_scores_the_same_alone_as_in_a_batch(trained: train.Trained) -> None:
    """One patient's score must not depend on who else was in the batch (no dropout or batch
    statistics at inference)."""
    x, _ = data.split("validation")
    together = train.predict(trained, x[:32])
    alone = torch.cat([train.predict(trained, x[i : i + 1]) for i in range(32)])
    assert torch.allclose(together, alone, atol=1e-6)
