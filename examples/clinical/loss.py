"""The training loss: mutable, but every change waits for human review (`autoresearch_review`).

The weight of a missed malignancy against a false alarm is a clinical trade-off, so changes to
it are parked for a person to accept, never merged by the loop.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

POS_WEIGHT = 1.0  # weight of a malignant lesion's error against a benign one's
LABEL_SMOOTHING = 0.1  # targets become LABEL_SMOOTHING / 2 and 1 - LABEL_SMOOTHING / 2


def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    targets = labels * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / 2
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor(POS_WEIGHT))
