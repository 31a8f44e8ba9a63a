"""Frozen metrics in plain torch: ROC AUC and sensitivity at a fixed specificity."""

from __future__ import annotations

import math

import torch


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The probability that a malignant lesion outscores a benign one (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def threshold_at_specificity(scores: torch.Tensor, labels: torch.Tensor, specificity: float) -> float:
    """The strictest threshold that still clears at least `specificity` of the benign lesions
    (a lesion is flagged when its score is above it)."""
    neg = scores[labels == 0].sort().values
    return float(neg[math.ceil(specificity * len(neg)) - 1])


def sensitivity_at_specificity(scores: torch.Tensor, labels: torch.Tensor, specificity: float) -> float:
    """The share of malignant lesions flagged at that threshold."""
    threshold = threshold_at_specificity(scores, labels, specificity)
    return float((scores[labels == 1] > threshold).double().mean())
