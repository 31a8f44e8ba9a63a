"""The file your pytest settings live in, and how a setting is written there.

Hints name a line to add (``autoresearch_carry = ["src/pkg/_version.py"]``), and the line must
be right for your file: pytest 9's native ``[tool.pytest]`` table (TOML types; adding an
``[tool.pytest.ini_options]`` table beside it stops pytest from starting), the older
``[tool.pytest.ini_options]``, ``pytest.toml``, or an INI file (``pytest.ini``, ``tox.ini``,
``setup.cfg``) whose lists are words on one line.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

_INI_OPTIONS = re.compile(r"^\s*\[\s*tool\s*\.\s*pytest\s*\.\s*ini_options\s*\]", re.M)


def _pytest_major() -> int:
    import pytest

    try:
        return int(pytest.__version__.split(".")[0])
    except ValueError:
        return 0


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """Where the settings go: the file's name and its table, and whether values are TOML."""

    name: str  # "pyproject.toml", "pytest.ini", ...
    table: str  # "[tool.pytest]", "[tool.pytest.ini_options]", "[pytest]", "[tool:pytest]"
    toml: bool  # values are TOML (strings quoted, lists in brackets)

    @property
    def where(self) -> str:
        """``pyproject.toml under [tool.pytest]``."""
        return f"{self.name} under {self.table}"

    def line(self, key: str, value: str | Sequence[str]) -> str:
        """The line that sets ``key`` here: a string, or a list (an "args" setting)."""
        if self.toml:
            text = _toml_string(value) if isinstance(value, str) else "[" + ", ".join(_toml_string(v) for v in value) + "]"
        else:
            text = value if isinstance(value, str) else " ".join(shlex.quote(v) for v in value)
        return f"{key} = {text}"

    def setting(self, key: str, value: str | Sequence[str]) -> str:
        """``in pyproject.toml under [tool.pytest]: key = [...]``, for a message."""
        return f"in {self.where}: {self.line(key, value)}"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def of(path: Path | None) -> ConfigFile:
    """What ``path`` (pytest's ``config.inipath``) is; with none, where a new project's settings go."""
    if path is None:
        return _pyproject("")
    name = path.name
    if name == "pyproject.toml":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        return _pyproject(text)
    if name.endswith(".toml"):
        return ConfigFile(name, "[pytest]", True)
    if name == "setup.cfg":
        return ConfigFile(name, "[tool:pytest]", False)
    return ConfigFile(name, "[pytest]", False)


def _pyproject(text: str) -> ConfigFile:
    """pytest 9 reads either table (never both); pytest 8 knows only ``ini_options``."""
    native = _pytest_major() >= 9 and not _INI_OPTIONS.search(text)
    return ConfigFile("pyproject.toml", "[tool.pytest]" if native else "[tool.pytest.ini_options]", True)
