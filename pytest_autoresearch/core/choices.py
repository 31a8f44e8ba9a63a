"""Declared choices: the alternatives (or the range) a user lists for one setting of the surface.

The offline operators (``mutate``, ``optuna``) find numbers and booleans by themselves, but they
cannot guess that ``LOSS = "mse"`` could be ``"huber"``, that a batch size only makes sense as a
power of two, or how far a learning rate may go. A user says so in one of two ways:

- a marker comment on the constant's line, read with the file, so it travels with the code::

      LOSS = "mse"  # autoresearch-choices: "mse", "huber", "l1"
      BATCH = 32  # autoresearch-choices: 16, 32, 64
      LR = 0.01  # autoresearch-range: 1e-4, 1.0

- the ``autoresearch_choices`` setting, one line per setting, for files that should not carry it::

      model.py:LOSS = "mse", "huber", "l1"

The part after the colon (or the ``=``) is read with :func:`ast.literal_eval` as a tuple, so it is
written as Python literals: strings, numbers, booleans. Pure text handling: the agents read the
markers from the files they are given, and the settings check the setting's lines when they load.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping

Choice = bool | int | float | str

#: A marker inside a comment: its kind and what follows the colon.
MARKER = re.compile(r"autoresearch-(choices|range)\s*:(.*)$")
SETTING = "autoresearch_choices"
FORMS = (
    '`NAME = value  # autoresearch-choices: "a", "b"` (strings, numbers or booleans), '
    "`NAME = value  # autoresearch-range: LOW, HIGH`, or an autoresearch_choices line "
    '`path.py:NAME = "a", "b"`'
)


@dataclasses.dataclass(frozen=True)
class Declared:
    """What a user declared for one setting: its alternatives, or the range it may move in."""

    choices: tuple[Choice, ...] = ()
    bounds: tuple[float, float] | None = None


def same(a: object, b: object) -> bool:
    """Equal and of one type: ``1``, ``1.0`` and ``True`` are three different literals."""
    return type(a) is type(b) and a == b


def parse_choices(text: str) -> tuple[Choice, ...]:
    """``"mse", "huber"`` or ``16, 32, 64`` as a tuple of distinct literals; ValueError saying what is wrong."""
    values = _literals(text, "choices")
    bad = [repr(v) for v in values if not isinstance(v, (bool, int, float, str)) or (isinstance(v, float) and not math.isfinite(v))]
    if bad:
        raise ValueError(f"choices are strings, numbers or booleans, not {', '.join(bad)}")
    out: list[Choice] = []
    for value in values:
        if any(same(value, seen) for seen in out):
            raise ValueError(f"{value!r} is listed twice")
        out.append(value)
    if len(out) < 2:
        raise ValueError("list at least two choices")
    return tuple(out)


def parse_range(text: str) -> tuple[float, float]:
    """``1e-4, 1.0`` as (low, high): two numbers, low below high."""
    values = _literals(text, "range")
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError("a range is two numbers, LOW, HIGH")
    low, high = values
    if not low < high:
        raise ValueError(f"the range's low end {low!r} is not below its high end {high!r}")
    return (low, high)


def _literals(text: str, what: str) -> tuple[object, ...]:
    try:
        value = ast.literal_eval(f"({text.strip()},)") if text.strip() else ()
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"could not read {text.strip()!r} as {what}: write Python literals separated by commas") from None
    return tuple(value) if isinstance(value, tuple) else (value,)


def read_comment(comment: str) -> Declared | None:
    """The declaration in a comment's text, None when it has no marker; ValueError when it is malformed."""
    match = MARKER.search(comment)
    if match is None:
        return None
    kind, rest = match.groups()
    if kind == "choices":
        return Declared(choices=parse_choices(rest))
    return Declared(bounds=parse_range(rest))


def parse_setting(lines: Iterable[str]) -> dict[tuple[str, str], tuple[Choice, ...]]:
    """``autoresearch_choices``'s lines, ``path:NAME = choice, choice``, keyed by (path, NAME);
    ValueError naming the line that is wrong."""
    out: dict[tuple[str, str], tuple[Choice, ...]] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        left, sep, right = line.partition("=")
        path, colon, name = left.strip().rpartition(":")
        if not sep or not colon or not path.strip() or not name.strip():
            raise ValueError(f"{SETTING} line {line!r} is not path.py:NAME = choice, choice (e.g. model.py:LOSS = \"mse\", \"huber\")")
        key = (path.strip().removeprefix("./"), name.strip())
        if key in out:
            raise ValueError(f"{SETTING} names {key[0]}:{key[1]} twice")
        try:
            out[key] = parse_choices(right)
        except ValueError as exc:
            raise ValueError(f"{SETTING} line {line!r}: {exc}") from None
    return out


def for_path(setting: Mapping[tuple[str, str], tuple[Choice, ...]], path: str) -> dict[str, tuple[Choice, ...]]:
    """The setting's declarations for one file, by NAME."""
    return {name: choices for (p, name), choices in setting.items() if p == path}
