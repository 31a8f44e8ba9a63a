"""Fitness for cachetools: its main module in fewer non-blank lines; cachetools' own tests
are the gates."""

from pathlib import Path

import pytest

import cachetools


@pytest.mark.fitness(goal="min")
def test_cachetools_is_short(fitness):
    text = Path(cachetools.__file__).read_text(encoding="utf-8")
    fitness(sum(1 for line in text.splitlines() if line.strip()))
