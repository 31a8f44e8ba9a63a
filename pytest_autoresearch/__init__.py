"""pytest-autoresearch: fitness tests and an autonomous keep-if-better research loop for pytest.

This package is imported by every pytest run that has the plugin installed, so it imports
nothing beyond the standard library at load time. The driver and its dependencies
(GitPython, tabulate, later litellm) load only when ``--autoresearch`` is given.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
