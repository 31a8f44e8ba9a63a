"""Helpers for fitness tests of torch models: determinism, bits per byte, memory, weights' hash.

Imported only by evaluators that use torch (the ``torch`` extra: ``pip install -e '/path/to/checkout[torch]'``);
nothing in the plugin imports it. Everything works on the CPU and on CUDA.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import resource
import sys
from typing import Any

import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy (when present) and torch (CPU and CUDA), and ask torch for
    deterministic kernels, so that a fitness test scores the same code the same way."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if hasattr(torch.backends, "cudnn"):
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True


def device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bits_per_byte(total_loss_nats: float, total_bytes: int) -> float:
    """Summed cross-entropy (in nats) over the bytes it predicted, in bits per byte: comparable
    across vocabularies and tokenisers, as autoresearch's val_bpb."""
    if total_bytes <= 0:
        raise ValueError("bits_per_byte needs a positive byte count")
    return total_loss_nats / (math.log(2) * total_bytes)


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """Peak memory in MiB: CUDA's peak allocation when on a GPU, else the process's peak
    resident set size (which includes the interpreter and torch itself)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_hash(model: torch.nn.Module | dict[str, Any]) -> str:
    """SHA-256 of a model's weights (its state dict, in key order, on the CPU): the same weights
    give the same hash on any device, so an audit trail can name exactly the model a trial made."""
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        digest.update(key.encode())
        if isinstance(tensor, torch.Tensor):
            t = tensor.detach().to("cpu").contiguous()
            digest.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            digest.update(repr(tensor).encode())
    return digest.hexdigest()
