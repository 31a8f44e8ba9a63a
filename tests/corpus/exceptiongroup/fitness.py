"""Fitness for exceptiongroup: the edit distance its "did you mean" suggestions give a name typed
in the wrong case (the costs are module constants mutate can move). The backport's formatter
patches the traceback module when imported, so it is scored in a process of its own (README,
step 7); exceptiongroup's own tests are the gates."""

import pytest

from pytest_autoresearch.isolate import call


@pytest.mark.fitness(goal="min")
def test_case_typos_are_near(fitness):
    fitness(call("exceptiongroup._formatting:_levenshtein_distance", "exceptiongroup", "ExceptionGroup", 1000, timeout=30))
