"""The frozen training harness: seeded, deterministic, a few seconds on a CPU.

It owns the data flow so that the loss can only change in `loss.py` and the scaling only in
`preprocessing.py` (the reviewed files): scaling statistics from the training split, seeded
shuffling, minibatches, the optimiser `model.py` builds, and predictions in eval mode.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

import data
import loss
import model
import preprocessing
from pytest_autoresearch.torch import seed_everything

SEED = 0


@dataclasses.dataclass
class Trained:
    net: nn.Module
    scaling: dict[str, torch.Tensor]

    def state(self) -> dict[str, object]:
        """What a deployment would ship: the weights and the scaling they expect."""
        return {"net": self.net.state_dict(), "scaling": self.scaling}


def fit() -> Trained:
    seed_everything(SEED)
    torch.set_num_threads(1)
    x, y = data.split("train")
    scaling = preprocessing.fit(x)
    features = preprocessing.transform(scaling, x)
    net = model.build(features.shape[1])
    opt = model.optimizer(net.parameters())
    order = torch.Generator().manual_seed(SEED)
    net.train()
    for _ in range(model.EPOCHS):
        for batch in torch.randperm(len(y), generator=order).split(model.BATCH_SIZE):
            opt.zero_grad()
            loss.loss(net(features[batch]).squeeze(-1), y[batch]).backward()
            opt.step()
    net.eval()
    return Trained(net, scaling)


@torch.no_grad()
def predict(trained: Trained, x: torch.Tensor) -> torch.Tensor:
    """The probability of malignancy of each lesion."""
    trained.net.eval()
    return torch.sigmoid(trained.net(preprocessing.transform(trained.scaling, x)).squeeze(-1))
