"""Frozen data: synthetic lesion measurements with a benign/malignant label (seeded, in memory).

Each lesion has a hidden malignancy risk built from its true size, margin irregularity,
contrast enhancement, texture entropy and the patient's age; what the model sees are noisy
"radiomic" measurements of them, two features that carry no signal, and the artefacts of real
reports (a few sizes recorded in centimetres as millimetres, a few saturated contrast values).
About one lesion in six is malignant. The three splits are drawn from their own seeds, so
they never change and never overlap: train (fit), validation (the score the loop sees) and
test (the holdout, scored only on the baseline and the final best).
"""

from __future__ import annotations

import math
import random

import torch

FEATURES = (
    "size_mm",
    "irregularity",
    "contrast",
    "texture_entropy",
    "margin_sharpness",
    "age",
    "calcified",
    "slice_thickness",  # no signal
    "scanner_gain",  # no signal
)
SIZES = {"train": 1000, "validation": 800, "test": 800}
_SEEDS = {"train": 11, "validation": 22, "test": 33}


def _risk(size: float, irregular: float, contrast: float, entropy: float, age: float, calcified: int) -> float:
    """The hidden rule: a log-odds of malignancy with a threshold, an interaction and a U shape."""
    return (
        -2.7
        + 1.8 * math.tanh((size - 14.0) / 6.0)
        + 5.0 * (irregular - 0.3) * contrast
        + 0.9 * (entropy - 4.5) ** 2
        + 0.03 * (age - 60.0)
        - 1.2 * calcified
    )


def _lesion(rng: random.Random) -> tuple[list[float], float]:
    size = math.exp(rng.gauss(math.log(12.0), 0.5))
    irregular = rng.betavariate(2.0, 5.0)
    contrast = max(0.0, rng.gauss(1.0, 0.35))
    entropy = rng.gauss(4.5, 0.8)
    age = rng.gauss(60.0, 12.0)
    calcified = 1 if rng.random() < 0.25 else 0
    label = 1.0 if rng.random() < 1.0 / (1.0 + math.exp(-_risk(size, irregular, contrast, entropy, age, calcified))) else 0.0
    seen_size = size * math.exp(rng.gauss(0.0, 0.1)) * (10.0 if rng.random() < 0.02 else 1.0)
    seen_contrast = 8.0 + rng.random() if rng.random() < 0.02 else contrast + rng.gauss(0.0, 0.1)
    features = [
        seen_size,
        irregular + rng.gauss(0.0, 0.05),
        seen_contrast,
        entropy + rng.gauss(0.0, 0.2),
        -2.0 * irregular + rng.gauss(0.0, 0.4),
        age,
        float(calcified),
        rng.choice((1.0, 2.5, 5.0)),
        rng.gauss(100.0, 15.0),
    ]
    return features, label


def split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (n, len(FEATURES)) and labels (n,) of one split, as float32 tensors."""
    rng = random.Random(_SEEDS[name])
    rows = [_lesion(rng) for _ in range(SIZES[name])]
    x = torch.tensor([r[0] for r in rows], dtype=torch.float32)
    y = torch.tensor([r[1] for r in rows], dtype=torch.float32)
    return x, y
