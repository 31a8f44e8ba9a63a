"""The trained model, once per test session: the gates and the fitness test share it."""

from __future__ import annotations

import pytest

import train


@pytest.fixture(scope="session")
def trained() -> train.Trained:
    return train.fit()
