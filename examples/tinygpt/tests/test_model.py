"""Gates: whatever train.py becomes, the model must be a fair next-character predictor."""

from __future__ import annotations

import torch

import train
from prepare import EVAL_BYTES, VOCAB_SIZE, eval_windows


def _untrained():
    torch.manual_seed(0)
    return train.train(0.0).eval()


def test_the_model_does_not_look_ahead():
    """Changing a character may change the predictions at and after it, never before it:
    a model that peeks at the character it predicts would score far too well."""
    model = _untrained()
    length = min(int(model.block_size), 48)
    ids = torch.randint(VOCAB_SIZE, (2, length))
    device = next(model.parameters()).device
    with torch.no_grad():
        before = model(ids.to(device))
        assert before.shape == (2, length, VOCAB_SIZE)
        for t in sorted({length // 2, length - 1}):
            changed = ids.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB_SIZE
            after = model(changed.to(device))
            assert torch.allclose(before[:, :t], after[:, :t], atol=1e-5), f"predictions before {t} changed"


def test_every_validation_byte_is_scored_once_whatever_the_block_size():
    for block_size in (1, 7, 64, 1000, EVAL_BYTES + 5):
        windows = eval_windows(block_size)
        assert all(0 < end - start <= block_size for start, end in windows)
        assert [i for start, end in windows for i in range(start, end)] == list(range(EVAL_BYTES))
