"""The mutable surface: a character-level GPT and its training loop.

Anything here may change (the constants, the model, the optimiser, the schedule) as long as
``train(time_budget)`` stops after ``time_budget`` seconds and returns a model that
``prepare.evaluate_bpb`` can score: ``model(ids)`` gives next-character logits, looking
only at earlier characters, and ``model.block_size`` is its longest input.

    python train.py      # one run with the frozen budget: the score and a sample
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from prepare import VOCAB_SIZE, train_data
from pytest_autoresearch.torch import device

N_LAYER = 4
N_HEAD = 4
N_EMBD = 128  # rounded down to a multiple of N_HEAD
BLOCK_SIZE = 64
BATCH_SIZE = 16
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.1
DROPOUT = 0.2
WARMUP_STEPS = 200
FINAL_LR_FRACTION = 0.1  # the learning rate decays to this fraction of its peak by the end of the budget


class Block(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd), nn.Dropout(DROPOUT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, N_HEAD, c // N_HEAD).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=DROPOUT if self.training else 0.0, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        n_embd = max(N_HEAD, N_EMBD - N_EMBD % N_HEAD)
        self.block_size = BLOCK_SIZE
        self.tok = nn.Embedding(VOCAB_SIZE, n_embd)
        self.pos = nn.Embedding(BLOCK_SIZE, n_embd)
        self.drop = nn.Dropout(DROPOUT)
        self.blocks = nn.ModuleList(Block(n_embd) for _ in range(N_LAYER))
        self.ln = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, VOCAB_SIZE, bias=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def learning_rate(step: int, progress: float) -> float:
    """Linear warmup by steps, then cosine decay by the fraction of the time budget spent."""
    warmup = min(1.0, (step + 1) / max(1, WARMUP_STEPS))
    decay = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return LEARNING_RATE * warmup * decay


def train(time_budget: float) -> GPT:
    dev = device()
    data = train_data().to(dev)
    model = GPT().to(dev)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": WEIGHT_DECAY}, {"params": others, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=(0.9, 0.99))
    offsets = torch.arange(BLOCK_SIZE + 1, device=dev)
    limit = 3 * math.log(VOCAB_SIZE)  # three times the loss of a uniform guess: training has blown up
    step, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < time_budget:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, elapsed / time_budget)
        chunk = data[torch.randint(len(data) - BLOCK_SIZE - 1, (BATCH_SIZE, 1), device=dev) + offsets]
        loss = F.cross_entropy(model(chunk[:, :-1]).reshape(-1, VOCAB_SIZE), chunk[:, 1:].reshape(-1))
        value = loss.item()
        if not math.isfinite(value) or value > limit:
            raise FloatingPointError(f"training diverged at step {step}: loss {value:.4g}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
    model.steps = step
    return model


if __name__ == "__main__":
    from prepare import TIME_BUDGET, evaluate_bpb, sample
    from pytest_autoresearch.torch import seed_everything

    torch.set_num_threads(1)  # as the fitness test does
    seed_everything(0)
    trained = train(TIME_BUDGET)
    print(f"{trained.steps} steps in {TIME_BUDGET:g} s, val bpb {evaluate_bpb(trained):.4f}\n")
    print(sample(trained))
