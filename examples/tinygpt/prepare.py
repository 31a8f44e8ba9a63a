"""Frozen: the corpus, its split, the vocabulary, the time budget and the evaluation.

As in karpathy's autoresearch, this file is fixed and train.py is what the agent changes.
The score is bits per byte on a fixed slice of the validation split. It does not depend on
anything train.py chooses (its batch size, its block size): every byte of the slice is
predicted exactly once, in windows of the model's own context length.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from pytest_autoresearch.torch import bits_per_byte

CORPUS = Path(__file__).resolve().parent / "corpus.txt"
CORPUS_SHA256 = "d2108e5e67e075941ca24513c00fa13d634f63d00e29765a8ef49646690f73b6"

# Seconds of training per run. TINYGPT_TIME_BUDGET overrides it for quick checks only:
# scores are comparable between runs with the same budget.
TIME_BUDGET = float(os.environ.get("TINYGPT_TIME_BUDGET", "20"))

VAL_FRACTION = 0.1  # the last 10% of the corpus is the validation split
EVAL_BYTES = 16_384  # the first bytes of the validation split are the ones scored
EVAL_BATCH = 32  # windows per forward pass when evaluating


def _load() -> str:
    data = CORPUS.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CORPUS_SHA256:
        raise RuntimeError(f"{CORPUS.name} has sha256 {digest}, not the pinned {CORPUS_SHA256}: run make_corpus.py")
    return data.decode("ascii")


TEXT = _load()
VOCAB = sorted(set(TEXT))
VOCAB_SIZE = len(VOCAB)
_INDEX = {ch: i for i, ch in enumerate(VOCAB)}
_SPLIT = int(len(TEXT) * (1 - VAL_FRACTION))


def encode(text: str) -> torch.Tensor:
    return torch.tensor([_INDEX[ch] for ch in text], dtype=torch.long)


def decode(ids: torch.Tensor | list[int]) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


def train_data() -> torch.Tensor:
    """The training split as character ids: all that training may see."""
    return encode(TEXT[:_SPLIT])


def eval_windows(block_size: int) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` windows of at most ``block_size`` inputs: the inputs are
    ``val[start:end]``, the targets ``val[start + 1:end + 1]``, so targets 1..EVAL_BYTES are
    each predicted once, whatever the block size."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, not {block_size}")
    return [(s, min(s + block_size, EVAL_BYTES)) for s in range(0, EVAL_BYTES, block_size)]


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module) -> float:
    """Validation bits per byte of ``model``: ``model(ids)`` maps a (batch, time) tensor of ids,
    time at most ``model.block_size``, to (batch, time, VOCAB_SIZE) next-character logits."""
    val = encode(TEXT[_SPLIT : _SPLIT + EVAL_BYTES + 1])
    device = next(model.parameters()).device
    windows = eval_windows(int(model.block_size))
    was_training = model.training
    model.eval()
    total_nats = 0.0
    try:
        for length in sorted({end - start for start, end in windows}):
            same = [start for start, end in windows if end - start == length]
            for i in range(0, len(same), EVAL_BATCH):
                starts = same[i : i + EVAL_BATCH]
                x = torch.stack([val[s : s + length] for s in starts]).to(device)
                y = torch.stack([val[s + 1 : s + length + 1] for s in starts]).to(device)
                logits = model(x)
                if logits.shape != (*x.shape, VOCAB_SIZE):
                    raise ValueError(f"model returned logits of shape {tuple(logits.shape)} for inputs {tuple(x.shape)}")
                loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), y.reshape(-1), reduction="sum")
                total_nats += loss.item()
    finally:
        model.train(was_training)
    return bits_per_byte(total_nats, len(TEXT[_SPLIT + 1 : _SPLIT + EVAL_BYTES + 1].encode("utf-8")))


@torch.no_grad()
def sample(model: torch.nn.Module, prompt: str = "Once upon a time", length: int = 300) -> str:
    """Text the model writes after ``prompt``, each character sampled from its distribution."""
    device = next(model.parameters()).device
    ids = encode(prompt).to(device)
    model.eval()
    for _ in range(length):
        logits = model(ids[-int(model.block_size) :][None])[0, -1]
        ids = torch.cat([ids, torch.multinomial(torch.softmax(logits.float(), -1), 1)])
    return decode(ids.tolist())
