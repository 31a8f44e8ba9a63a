"""Where the driver's Python writes bytecode: never into your checkout.

A ``pytest --autoresearch`` process imports your conftest files (pytest does, before any plugin
can stop it) and, for its checks, sometimes your test modules; with bytecode writing on, Python
and pytest's assertion rewriter would leave ``__pycache__`` folders in the checkout the loop
promises not to touch. Sending every cache file to a folder of this user's outside the checkout
(``sys.pycache_prefix``) keeps that promise and keeps the caches: the plugin's own ~130 modules,
compiled and assert-rewritten on every start otherwise, cost a driver about a second.

The folder is ``<temp>/pytest-autoresearch-<uid>/pycache``, made private (0700) and used only if
it is this user's own real folder; otherwise, or when you chose a prefix or turned bytecode off
(``PYTHONDONTWRITEBYTECODE``), nothing is changed but that nothing is written next to your files.
Trials are not affected: their processes do not inherit the prefix and write no bytecode at all.
Under the sandbox a trial sees an empty ``/tmp``; without it a trial runs with your permissions
and could write there, as it could write to your site-packages.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path


def private_cache() -> Path:
    return Path(tempfile.gettempdir()) / f"pytest-autoresearch-{os.getuid()}" / "pycache"


def _is_own_private_folder(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def keep_out_of_checkout() -> None:
    """Point this process's bytecode caches at :func:`private_cache`, or turn them off when no
    private folder can be had; a prefix you chose, or bytecode you turned off, stays as it is."""
    if sys.dont_write_bytecode or sys.pycache_prefix:
        return
    folder = private_cache()
    try:
        folder.parent.mkdir(mode=0o700, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        pass
    if not (_is_own_private_folder(folder.parent) and _is_own_private_folder(folder)):
        sys.dont_write_bytecode = True
        return
    sys.pycache_prefix = str(folder)
