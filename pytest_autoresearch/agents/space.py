"""The tuner's search space: each target of the surface (:mod:`.targets`) as one dimension.

A dimension is centred on the setting's value when its study starts, wide enough to matter and
narrow enough that a few dozen trials can search it:

- declared choices, and booleans: categorical;
- a declared range (``# autoresearch-range: LOW, HIGH``) wins: the literal's type over it, on a
  log scale when both ends are positive and HIGH / LOW >= 100;
- a float in (0, 1), a ratio or a rate: the logit scale, ``logit(v) +- ln 10`` (0.9 moves in
  [0.47, 0.99], 0.01 in [0.001, 0.09]): it never reaches 0 or 1;
- any other float: log scale, [v / 10, 10 v] (a negative one mirrored: its sign is kept);
- an integer: [max(1, v // 4), 4 v], on a log scale when that spans a factor of 10 or more (a
  negative one mirrored);
- zero, whose scale nothing tells: [-4, 4] for an integer, [-1, 1] for a float.

A study's parameters are the dimensions' *internal* values: the logit of a ratio, the magnitude
of a mirrored negative, the value itself otherwise; :meth:`Dimension.decode` turns one into the
literal written into the file (floats to 3 significant digits, as ``mutate`` writes them) and
:meth:`Dimension.encode` turns a literal that ran back into a parameter. No Optuna here: the
tuner turns dimensions into Optuna distributions, and a benchmark can read the space without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.choices import same
from .edits import format_value
from .targets import Target, Value

LN10 = math.log(10.0)
#: a log scale when the range spans this factor (ints: :data:`INT_LOG_FACTOR`)
LOG_FACTOR = 100.0
INT_LOG_FACTOR = 10.0


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One setting as a study parameter: ``kind`` is "categorical", "int" or "float"."""

    name: str  # "model.py:LR": the target's path and name
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    logit: bool = False  # the parameter is logit(value)
    sign: int = 1  # -1: the parameter is -value (a negative setting on a log scale)
    choices: tuple[Value, ...] = ()

    def decode(self, x: Any) -> Value:
        """The literal for parameter ``x``."""
        if self.kind == "categorical":
            return x
        if self.kind == "int":
            return self.sign * int(x)
        if self.logit:
            v = 1.0 / (1.0 + math.exp(-max(-700.0, min(700.0, float(x)))))
            near = min(v, 1.0 - v)  # 3 significant digits of the distance to the nearer end: 0.9996 stays below 1
            rounded = _round3(near)
            v = rounded if v <= 0.5 else float(f"{1.0 - rounded:.12g}")
            return min(max(v, 1e-300), math.nextafter(1.0, 0.0))
        return self.sign * min(max(_round3(float(x)), self.low), self.high)

    def encode(self, value: Value) -> Any:
        """The parameter for a literal that ran, or None when this dimension cannot hold it."""
        if self.kind == "categorical":
            return next((c for c in self.choices if same(c, value)), None)
        if isinstance(value, (bool, str)) or (self.kind == "int") != isinstance(value, int):
            return None
        x: float = self.sign * value
        if self.logit:
            if not 0.0 < value < 1.0:
                return None
            x = math.log(value / (1.0 - value))
        slack = 1e-9 * max(1.0, abs(self.low), abs(self.high))
        if not self.low - slack <= x <= self.high + slack:
            return None
        return int(x) if self.kind == "int" else min(max(float(x), self.low), self.high)

    def describe(self) -> str:
        """``model.py:LR float in [0.001, 0.1], log``: for the run header and the study's notes."""
        if self.kind == "categorical":
            return f"{self.name} one of {', '.join(format_value(c) for c in self.choices)}"
        if self.logit:
            ends = (self.decode(self.low), self.decode(self.high))
            return f"{self.name} {self.kind} in [{format_value(ends[0])}, {format_value(ends[1])}], logit scale"
        ends = sorted((self.sign * self.low, self.sign * self.high))
        kind = f"{self.kind} in [{format_value(_plain(ends[0], self.kind))}, {format_value(_plain(ends[1], self.kind))}]"
        return f"{self.name} {kind}" + (", log scale" if self.log else "")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"choices": list(self.choices)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dimension:
        return cls(**{**data, "choices": tuple(data.get("choices") or ())})


def _plain(x: float, kind: str) -> Value:
    return int(x) if kind == "int" else float(x)


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def param_name(target: Target) -> str:
    return f"{target.path}:{target.name}"


def dimension(target: Target) -> Dimension:
    """The dimension a target gets when its study starts (see the module's docstring)."""
    name, v = param_name(target), target.value
    if target.choices:
        return Dimension(name, "categorical", choices=target.choices)
    if isinstance(v, bool):
        return Dimension(name, "categorical", choices=(False, True))
    if isinstance(v, str):
        return Dimension(name, "categorical", choices=(v,))
    if target.bounds is not None:
        low, high = target.bounds
        if isinstance(v, int):
            low, high = math.ceil(low), math.floor(high)
        if low < high:
            log = low > 0 and high / low >= LOG_FACTOR
            return Dimension(name, "int" if isinstance(v, int) else "float", low, high, log=log)
    sign = -1 if v < 0 else 1
    if isinstance(v, int):
        if v == 0:
            return Dimension(name, "int", -4, 4)
        low, high = max(1, abs(v) // 4), abs(v) * 4
        return Dimension(name, "int", low, high, log=high / low >= INT_LOG_FACTOR, sign=sign)
    if v == 0:
        return Dimension(name, "float", -1.0, 1.0)
    if 0 < v < 1:
        x = math.log(v / (1 - v))
        return Dimension(name, "float", x - LN10, x + LN10, logit=True)
    return Dimension(name, "float", abs(v) / 10, abs(v) * 10, log=True, sign=sign)


@dataclasses.dataclass(frozen=True)
class Space:
    """The dimensions of one study, in the surface's order."""

    dims: tuple[Dimension, ...]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def params(self, values: Mapping[str, Value]) -> dict[str, Any] | None:
        """The parameters for these literal values, or None when one lies outside the space."""
        out = {}
        for d in self.dims:
            if d.name not in values or (x := d.encode(values[d.name])) is None:
                return None
            out[d.name] = x
        return out

    def literals(self, params: Mapping[str, Any]) -> dict[str, Value]:
        return {d.name: d.decode(params[d.name]) for d in self.dims}

    def to_json(self) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.dims]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> Space:
        return cls(tuple(Dimension.from_json(d) for d in data))


def space_of(targets: Sequence[Target]) -> Space:
    return Space(tuple(dimension(t) for t in targets))


def values_of(targets: Sequence[Target]) -> dict[str, Value]:
    """The targets' literal values, by parameter name."""
    return {param_name(t): t.value for t in targets}


def version_key(values: Mapping[str, Value]) -> tuple[tuple[str, str], ...]:
    """One version of the settings as hashable text: two versions with equal keys write the same literals."""
    return tuple(sorted((name, format_value(v)) for name, v in values.items()))


def skeleton(files: Mapping[str, str], targets: Sequence[Target]) -> str:
    """The program without its settings' values: the surface's text with each target's literal
    replaced by its type. Two versions with one skeleton are one program with other settings, so
    their scores belong in one study; a structural change makes a new skeleton."""
    h = hashlib.sha256()
    for path in sorted(files):
        text, pos = files[path], 0
        h.update(f"{path}\0".encode("utf-8", "surrogatepass"))
        for t in sorted((t for t in targets if t.path == path), key=lambda t: t.start):
            h.update(f"{text[pos:t.start]}\0{type(t.value).__name__}:{t.name}\0".encode("utf-8", "surrogatepass"))
            pos = t.end
        h.update(f"{text[pos:]}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()
