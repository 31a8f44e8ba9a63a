"""The denoiser runs in a process of its own, never in the tests' process.

No test here imports ``denoise.py``: code in the tests' process could reach the score (walk
``gc`` to the ``fitness`` recorder, rewrite ``CLEAN`` in memory, patch ``sum``). One child
process per run computes the denoiser's output for every input the tests need, and the tests
check and score the lists that come back (``pytest_autoresearch.isolate``).
"""

import pytest
from signal_data import NOISY

from pytest_autoresearch.isolate import call_each

#: Every signal a test gives the denoiser, by name.
INPUTS = {"noisy": NOISY, "alternating": [0.0, 1.0] * 50, "constant": [2.0] * 60}


@pytest.fixture(scope="session")
def denoised():
    """What ``denoise`` returns for each of :data:`INPUTS` (lists decoded from JSON)."""
    outputs = call_each("denoise:denoise", [(signal,) for signal in INPUTS.values()], timeout=20)
    return dict(zip(INPUTS, outputs))
