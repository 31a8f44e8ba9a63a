"""Fitness for pebble: the poll interval of its pools and decorators (lower reacts sooner);
pebble's own multiprocessing tests are the gates that keep it working."""

import pytest

from pebble.common import CONSTS


@pytest.mark.fitness(goal="min")
def test_poll_interval(fitness):
    fitness(CONSTS.sleep_unit)
