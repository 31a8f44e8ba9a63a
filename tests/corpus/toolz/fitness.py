"""Fitness for toolz: toolz.itertoolz in fewer non-blank lines; toolz's own tests (inside the
package, beside this file) are the gates."""

from pathlib import Path

import pytest

import toolz.itertoolz


@pytest.mark.fitness(goal="min")
def test_itertoolz_is_short(fitness):
    text = Path(toolz.itertoolz.__file__).read_text(encoding="utf-8")
    fitness(sum(1 for line in text.splitlines() if line.strip()))
