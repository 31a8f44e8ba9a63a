"""The two ways a run ends early, shared by every layer that can end it.

A leaf, so that the settings, the run set-up, the scheduler and the Ray backend raise the same
exceptions without importing one another.
"""

from __future__ import annotations


class SetupError(Exception):
    """The loop cannot start; nothing it created is left behind."""


class FatalError(Exception):
    """The loop cannot go on; the log keeps every finished trial."""
