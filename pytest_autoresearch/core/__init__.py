"""The pure core: what a trial is, how noisy a score is, and the verdict on it.

No I/O, no pytest, no git: every module here is plain data and arithmetic, so the engine, the
reports, the agents and the benchmarks (``bench/noise.py``) share one definition of each rule.
"""
