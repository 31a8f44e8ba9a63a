"""The frozen evaluator: wall time of a clean build with the settings of build.toml."""

from __future__ import annotations

import pytest

import builder


@pytest.mark.fitness(goal="min")
def test_build_seconds(fitness, build: builder.Build) -> None:
    fitness(build.seconds)  # the fastest of builder.REPEATS clean builds
    fitness.metric("slowest", round(max(build.times), 3))
    fitness.metric("cpu_seconds", round(build.cpu_seconds, 3))
    fitness.metric("units", build.units)
    fitness.metric("jobs_used", build.jobs)
