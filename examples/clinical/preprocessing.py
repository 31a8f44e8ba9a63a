"""Feature scaling: mutable, but every change waits for human review (`autoresearch_review`).

How measurements are scaled and clipped decides what the model can see of an artefact (a size
in the wrong unit, a saturated contrast value), so a change here is a clinical decision, not a
hyperparameter. The statistics come from the training split only.
"""

from __future__ import annotations

import torch

LOG_SIZE = False  # model log(size) instead of size
CLIP = 8.0  # standardised values are clipped to [-CLIP, CLIP]


def fit(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scaling statistics of the training features."""
    x = _raw(x)
    return {"mean": x.mean(0), "std": x.std(0)}


def transform(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    z = (_raw(x) - state["mean"]) / (state["std"] + 1e-6)
    return z.clamp(-CLIP, CLIP)


def _raw(x: torch.Tensor) -> torch.Tensor:
    if LOG_SIZE:
        x = x.clone()
        x[:, 0] = torch.log(x[:, 0].clamp_min(1e-6))
    return x
