"""pytest_autoresearch.torch: the helpers the torch examples (and users' evaluators) use."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from pytest_autoresearch import torch as helpers


def test_seeding_makes_training_repeatable() -> None:
    def train() -> str:
        helpers.seed_everything(7)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(32, 4), torch.randn(32, 1)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        return helpers.weights_hash(model)

    assert train() == train()


def test_the_weights_hash_names_exactly_the_weights() -> None:
    helpers.seed_everything(0)
    model = torch.nn.Linear(3, 2)
    first = helpers.weights_hash(model)
    assert first == helpers.weights_hash(model.state_dict()) and len(first) == 64
    with torch.no_grad():
        model.weight[0, 0] += 1e-6
    assert helpers.weights_hash(model) != first
    assert helpers.weights_hash(torch.nn.Linear(3, 2).to(torch.float64)) != helpers.weights_hash(torch.nn.Linear(3, 2))


def test_bits_per_byte_is_nats_per_byte_in_bits() -> None:
    assert helpers.bits_per_byte(math.log(2) * 100, 100) == pytest.approx(1.0)
    assert helpers.bits_per_byte(0.0, 10) == 0.0
    with pytest.raises(ValueError):
        helpers.bits_per_byte(1.0, 0)


def test_memory_and_parameters() -> None:
    helpers.reset_peak_memory()
    assert helpers.peak_memory_mb() > 10  # at least the interpreter and torch
    assert helpers.parameter_count(torch.nn.Linear(3, 2)) == 8
    assert helpers.device().type in ("cpu", "cuda")


ARTIFACT_TEST = """
import pytest

@pytest.mark.fitness(goal="min")
def test_model(fitness, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    digest = fitness.artifact(path)
    assert digest == "{sha}"
    fitness(1.0)
"""


def test_fitness_artifact_records_a_files_hash(pytester: pytest.Pytester) -> None:
    import hashlib
    import xml.etree.ElementTree as ET

    sha = hashlib.sha256(b"weights").hexdigest()
    pytester.makepyfile(ARTIFACT_TEST.replace("{sha}", sha))
    result = pytester.runpytest("--junitxml=out.xml")
    result.assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "out.xml").getroot().iter("property")}
    assert props["fitness.artifact.weights.bin"] == sha
