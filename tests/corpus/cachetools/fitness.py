"""Fitness for cachetools: the hit rate of ``lru_cache()`` with its default size on a skewed,
seeded workload; cachetools' own tests are the gates."""

import random

import pytest

import cachetools.func


@pytest.mark.fitness(goal="max")
def test_default_lru_cache_hit_rate(fitness):
    rng = random.Random(14)
    keys = [int(2000 * rng.random() ** 3) for _ in range(20_000)]
    cached = cachetools.func.lru_cache()(lambda key: key)
    for key in keys:
        cached(key)
    info = cached.cache_info()
    fitness(info.hits / (info.hits + info.misses))
