"""The pip command that adds an extra (``plot``, ``llm``, ``torch``, ``ray``), said the way the
plugin was installed.

The plugin is not on a package index, so ``pip install 'pytest-autoresearch[plot]'`` fails for
most users: the hint must name where this copy came from. pip records that in the
distribution's ``direct_url.json`` (PEP 610): a checkout (editable or not), a VCS URL, or an
archive; without the file the copy came from an index and the name is right. Stdlib only, and
``importlib.metadata`` is imported only when a hint is asked for, since hints are printed on
failure paths a plain run never takes.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

DIST = "pytest-autoresearch"
#: The checkout this module runs from (where pyproject.toml sits when it is one).
CHECKOUT = Path(__file__).resolve().parent.parent


def pip_install(extra: str, distribution: Any = None) -> str:
    """``pip install ...`` that adds ``extra`` to this installation, quoted for a POSIX shell.

    ``distribution`` is an ``importlib.metadata.Distribution`` (the installed plugin's by default).
    """
    return "pip install " + requirement(extra, distribution)


def requirement(extra: str, distribution: Any = None) -> str:
    """The argument(s) for ``pip install`` that add ``extra`` to this installation."""
    if distribution is None:
        from importlib import metadata

        try:
            distribution = metadata.distribution(DIST)
        except metadata.PackageNotFoundError:
            distribution = None
    if distribution is None:
        # run from a checkout on sys.path without being installed
        if (CHECKOUT / "pyproject.toml").is_file():
            return "-e " + shlex.quote(f"{CHECKOUT}[{extra}]")
        return shlex.quote(f"{DIST}[{extra}]")
    text = distribution.read_text("direct_url.json")
    try:
        info = json.loads(text) if text else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return shlex.quote(f"{DIST}[{extra}]")  # from an index: the name is what pip knows
    return _from_direct_url(extra, info)


def _from_direct_url(extra: str, info: dict[str, Any]) -> str:
    url: str = info["url"]
    if isinstance(info.get("dir_info"), dict):
        target = f"{_local_path(url)}[{extra}]"
        return ("-e " if info["dir_info"].get("editable") else "") + shlex.quote(target)
    if isinstance(info.get("vcs_info"), dict):
        vcs = info["vcs_info"]
        revision = vcs.get("requested_revision")
        url = f"{vcs.get('vcs', 'git')}+{url}" + (f"@{revision}" if revision else "")
    subdirectory = info.get("subdirectory")
    if subdirectory:
        url += f"#subdirectory={subdirectory}"
    return shlex.quote(f"{DIST}[{extra}] @ {url}")


def _local_path(url: str) -> str:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url
