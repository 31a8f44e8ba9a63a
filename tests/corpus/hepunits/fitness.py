"""Fitness for hepunits: hbar*c in MeV fm against the textbook's round 197 (a toy goal that the
Planck constant moves); hepunits' own tests, under filterwarnings = error, are the gates."""

import pytest

from hepunits import MeV, fermi
from hepunits.constants import hbarc


@pytest.mark.fitness(goal="min")
def test_hbarc_is_near_197(fitness):
    fitness(abs(hbarc / (MeV * fermi) - 197.0))
