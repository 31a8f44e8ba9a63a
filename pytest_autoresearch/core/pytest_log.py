"""The first error in a pytest log, with its traceback: what a failed set-up shows.

A session that did not finish leaves a log whose last lines are rarely the cause: the
collection's progress, a summary, a hundred warnings, a plugin's teardown. The cause is the
first error pytest reported, in one of the blocks its terminal reporter writes:

- ``____ ERROR collecting tests/test_x.py ____`` or ``____ ERROR at setup of test_y ____`` (a
  section headed by a ``_`` rule, up to the next rule of ``_`` or ``=``);
- ``ImportError while loading conftest '...'.`` with its traceback (up to a blank line);
- ``INTERNALERROR> ...`` lines (a plugin or hook raised);
- a plain ``Traceback (most recent call last):`` (the interpreter died), up to its exception line.

Which comes first in the log wins; when none is found the caller shows the log's tail.
"""

from __future__ import annotations

import re

_SECTION = re.compile(r"^_{3,} (ERROR collecting .+|ERROR at (setup|teardown) of .+|.+) _{3,}$")
_RULE = re.compile(r"^(_{3,}|={3,})( .* (_{3,}|={3,}))?$")
_CONFTEST = re.compile(r"^(ImportError|\w+Error) while loading conftest ")
_INTERNAL = "INTERNALERROR>"
_TRACEBACK = "Traceback (most recent call last):"


def _section(lines: list[str], start: int) -> list[str]:
    end = next((i for i in range(start + 1, len(lines)) if _RULE.match(lines[i])), len(lines))
    return lines[start:end]


def _until_blank(lines: list[str], start: int) -> list[str]:
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def _internal(lines: list[str], start: int) -> list[str]:
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith(_INTERNAL)), len(lines))
    return lines[start:end]


def _traceback(lines: list[str], start: int) -> list[str]:
    """Up to the exception line: the first line after the frames that is not indented."""
    for i in range(start + 1, len(lines)):
        if lines[i] and not lines[i][0].isspace():
            return lines[start : i + 1]
    return lines[start:]


def first_error(text: str, limit: int = 4000) -> str | None:
    """The first error block of a pytest log (at most ``limit`` characters, cut in the middle so
    the heading and the exception both show), or None when the log has none."""
    lines = text.splitlines()
    block: list[str] | None = None
    for i, line in enumerate(lines):
        if _SECTION.match(line) and "FAILURES" not in line and "ERRORS" not in line:
            block = _section(lines, i)
        elif _CONFTEST.match(line):
            block = _until_blank(lines, i)
        elif line.startswith(_INTERNAL):
            block = _internal(lines, i)
        elif line.strip() == _TRACEBACK:
            block = _traceback(lines, i)
        if block is not None:
            break
    if block is None:
        return None
    out = "\n".join(block).strip("\n")
    if len(out) <= limit:
        return out
    half = max(1, limit // 2)
    return out[:half].rstrip() + "\n...\n" + out[-half:].lstrip("\n")
