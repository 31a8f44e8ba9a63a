"""Frozen data: a smooth signal and a noisy measurement of it (seeded, generated in memory)."""

import math
import random

_rng = random.Random(2026)
CLEAN = [math.sin(t / 15) + 0.3 * math.sin(t / 4) for t in range(400)]
NOISY = [x + _rng.gauss(0, 0.4) for x in CLEAN]
