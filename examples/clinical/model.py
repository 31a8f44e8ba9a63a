"""The classifier and its optimiser: the mutable surface the loop tunes freely.

A small multilayer perceptron over the preprocessed lesion features; it returns one logit per
lesion. The frozen harness (`train.py`) reads the constants below and calls `build` and
`optimizer`; the loss lives in `loss.py` and the feature scaling in `preprocessing.py`,
which a human reviews.
"""

from __future__ import annotations

import torch
from torch import nn

HIDDEN = 16
LAYERS = 1
DROPOUT = 0.3
LEARNING_RATE = 0.003
WEIGHT_DECAY = 0.05
EPOCHS = 20
BATCH_SIZE = 128


def build(n_features: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(LAYERS):
        layers += [nn.Linear(width, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT)]
        width = HIDDEN
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def optimizer(parameters) -> torch.optim.Optimizer:
    return torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
