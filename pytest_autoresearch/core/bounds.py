"""Metric bounds (``fitness.metric(name, value, min=..., max=...)``): the gates a candidate keeps.

A leaf with no imports: the fitness fixture, which loads in every pytest run, uses it too.
"""

from __future__ import annotations


def broken_bound(value: float, bound: tuple[float | None, float | None]) -> str | None:
    """How ``value`` leaves ``bound`` (min, max), or None when it is within."""
    low, high = bound
    if low is not None and value < low:
        return f"below its min {low:g}"
    if high is not None and value > high:
        return f"above its max {high:g}"
    return None
