"""Fitness for toolz: how many tasks ``fold`` hands its ``map`` for a sum of 10,000 numbers (a
parallel map pays for each); toolz's own tests (inside the package, beside this file) are the gates."""

import operator

import pytest

from toolz.sandbox.parallel import fold


@pytest.mark.fitness(goal="min")
def test_fold_hands_map_few_tasks(fitness):
    tasks = []

    def counting_map(f, chunks):
        chunks = list(chunks)
        tasks.append(len(chunks))
        return map(f, chunks)

    assert fold(operator.add, range(10_000), map=counting_map) == sum(range(10_000))
    fitness(sum(tasks))
