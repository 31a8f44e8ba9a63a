"""``mutate[:SEED]``: the offline default agent, a seeded (1+1) search over numeric constants.

It needs no network and no model. Each trial it nudges one to three literals of the surface
files (module- and class-level constants of Python files, or their numeric keyword arguments
when a file has no such constant; ``key = number`` lines of config files),
keeping their types, and says what it changed. It repeats a move that was just kept and
adapts a step size per constant, so it finds real gains on small hyperparameter problems:
it is the baseline every LLM agent has to beat.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import math
import random
import re
from collections.abc import Mapping

from ..proposals.proposal import Proposal
from .base import Agent, AgentError, ProposalContext

Value = bool | int | float

# Tuning a random seed only fits the evaluator's noise, so seeds are never targets.
_SKIP_NAME = re.compile(r"seed|random_state", re.IGNORECASE)
_NOT_DECIMAL = re.compile(r"0[xXoObB]")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_KEY_VALUE = re.compile(
    r"""^[ \t]*(?:export[ \t]+)?["']?(?P<name>[A-Za-z_][\w.\-]*)["']?[ \t]*[:=][ \t]*"""
    r"""(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)[ \t]*(?=[,;#]|//|\r?$)""",
    re.MULTILINE,
)
_LN2 = math.log(2.0)
_SCALE_RANGE = (0.25, 3.0)


@dataclasses.dataclass(frozen=True)
class Target:
    """One literal the agent may change: where its source text lies and what it means."""

    path: str
    name: str
    start: int  # character offsets of the literal's source text in the file
    end: int
    text: str
    value: Value

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.name)


def find_targets(files: Mapping[str, str]) -> list[Target]:
    """All targets of the surface files, in path and position order."""
    targets: list[Target] = []
    for path in sorted(files):
        text = files[path]
        if not isinstance(text, str) or "\0" in text:
            continue
        found = _python_targets(path, text) if path.endswith(".py") else _text_targets(path, text)
        targets.extend(_disambiguate(found, text))
    return targets


def _python_targets(path: str, text: str) -> list[Target]:
    """Module- and class-level constants; numeric keyword arguments only when a file has none,
    since other literals (indices, range bounds, initialisers) are code, not settings."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        line = text[starts[lineno - 1] : starts[lineno] if lineno < len(starts) else len(text)]
        return starts[lineno - 1] + (col if line.isascii() else len(line.encode()[:col].decode(errors="ignore")))

    def make(name: str, node: ast.expr, allow_bool: bool) -> Target | None:
        value = _literal(node)
        if value is None or (isinstance(value, bool) and not allow_bool):
            return None
        start = offset(node.lineno, node.col_offset)
        end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
        if isinstance(value, int) and _NOT_DECIMAL.search(text[start:end]):
            return None
        return Target(path, name, start, end, text[start:end], value)

    found = [t for name, node in _constants(tree.body, "") if (t := make(name, node, True))]
    if not found:
        found = [
            t
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            for kw in node.keywords
            if kw.arg and (t := make(kw.arg, kw.value, False))
        ]
    return [t for t in found if not _SKIP_NAME.search(t.name)]


def _constants(body: list[ast.stmt], prefix: str) -> list[tuple[str, ast.expr]]:
    out: list[tuple[str, ast.expr]] = []
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            out.extend(_constants(stmt.body, f"{prefix}{stmt.name}."))
            continue
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            name, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            name, value = stmt.target.id, stmt.value
        else:
            continue
        if isinstance(value, (ast.Tuple, ast.List)):
            out.extend((f"{prefix}{name}[{i}]", element) for i, element in enumerate(value.elts))
        else:
            out.append((prefix + name, value))
    return out


def _literal(node: ast.expr) -> Value | None:
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    inner = node.operand if negative and isinstance(node, ast.UnaryOp) else node
    if not isinstance(inner, ast.Constant):
        return None
    value = inner.value
    if isinstance(value, bool):
        return None if negative else value
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return -value if negative else value


def _text_targets(path: str, text: str) -> list[Target]:
    """``key = 12``, ``key: 0.5``, ``"key": 3`` lines of config files."""
    targets = []
    for match in _KEY_VALUE.finditer(text):
        raw = match.group("value")
        try:
            value: Value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            continue
        if isinstance(value, int) and str(abs(value)) != raw.lstrip("+-"):
            continue  # leading zeros: an id or a code, not a quantity
        if not math.isfinite(value) or _SKIP_NAME.search(match.group("name")):
            continue
        targets.append(Target(path, match.group("name"), match.start("value"), match.end("value"), raw, value))
    return targets


def _disambiguate(targets: list[Target], text: str) -> list[Target]:
    """Give a name that occurs twice in one file its line number, so each key is unique."""
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.name] = counts.get(t.name, 0) + 1
    return [
        t if counts[t.name] == 1 else dataclasses.replace(t, name=f"{t.name} (line {len(_NEWLINE.findall(text, 0, t.start)) + 1})")
        for t in targets
    ]


def format_value(value: Value) -> str:
    """Source text for a value; a float always shows '.' so every format reads it as a float."""
    if isinstance(value, int):  # bools too
        return repr(value)
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def _space(value: Value) -> str:
    """The space a value moves in: integer steps, log scale, logit scale (for ratios)."""
    if isinstance(value, bool):
        return "bool"
    if value == 0:
        return "zero"
    if isinstance(value, int):
        return "step" if abs(value) <= 4 else "log"
    return "logit" if 0 < value < 1 else "log"


def _to_x(space: str, value: Value) -> float:
    if space == "step":
        return float(abs(value))
    if space == "log":
        return math.log(abs(value))
    return math.log(value / (1 - value))


def _from_x(space: str, x: float, like: Value) -> Value | None:
    """The value at ``x`` with the type and sign of ``like``; None if it leaves the domain."""
    sign = -1 if like < 0 else 1
    if space == "step":
        n = int(round(x))
        return sign * n if n >= 1 else None
    x = max(-700.0, min(700.0, x))
    if space == "logit":
        p = _round3(1 / (1 + math.exp(-x)))
        return p if 0 < p < 1 else None
    if isinstance(like, int):
        n = round(math.exp(x))
        return sign * n if n >= 1 else None
    m = _round3(math.exp(x))
    return sign * m if m > 0 else None


def _differs(new: Value | None, old: Value) -> bool:
    return new is not None and format_value(new) != format_value(old)


def perturb(value: Value, rng: random.Random, scale: float = 1.0) -> Value | None:
    """A random nearby value of the same type, or None when none could be found."""
    space = _space(value)
    if space == "bool":
        return not value
    if space == "zero":
        if isinstance(value, int):
            return -1 if rng.random() < 0.1 else 1
        return _round3(10 ** rng.uniform(-3, -1))
    x = _to_x(space, value)
    for _ in range(10):
        if space == "step":
            step = 2 if rng.random() < min(0.9, 0.3 * scale) else 1
            direction = rng.choice((-1, 1))
            if x - step < 1:
                direction = 1  # a count stays >= 1
            new = _from_x(space, x + direction * step, value)
        else:
            sigma = (1.0 if space == "logit" else 0.4 if isinstance(value, int) else _LN2) * scale
            new = _from_x(space, x + rng.gauss(0.0, sigma), value)
        if _differs(new, value):
            return new
    # Steps too small to survive rounding: take one clear step either way.
    for direction in rng.sample((-1, 1), 2):
        new = _from_x("step", x + direction, value) if isinstance(value, int) else _from_x(space, x + direction * 0.5, value)
        if _differs(new, value):
            return new
    return None


def repeat(value: Value, old: Value, rng: random.Random) -> Value | None:
    """The move ``old -> value`` once more from ``value``: same direction, a similar step."""
    space = _space(value)
    if space in ("bool", "zero") or isinstance(old, bool) or (old < 0) != (value < 0):
        return None
    try:
        delta = _to_x(space, value) - _to_x(space, old)
    except (ValueError, ZeroDivisionError):
        return None  # ``old`` lies outside this space (0.0 in log space, 1.0 in logit space)
    if space != "step":
        delta *= math.exp(rng.gauss(0.0, 0.25))
    new = _from_x(space, _to_x(space, value) + delta, value)
    return new if _differs(new, value) else None


Change = tuple[Target, Value]


class MutateAgent(Agent):
    """A (1+1) search: perturb one to three constants, repeat what was kept, and widen or
    narrow each constant's step by how often changing it helped (the 1/5th success rule)."""

    name = "mutate"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._moves: dict[int, list[tuple[str, str, Value, Value]]] = {}  # trial -> (path, name, old, new)
        self._learned: set[int] = set()
        self._scale: dict[tuple[str, str], float] = {}
        self._seen: set[str] = set()

    def describe(self) -> str:
        return f"mutate (seed {self.seed})"

    def start(self, context: ProposalContext) -> None:
        if not find_targets(context.files):
            names = ", ".join(sorted(context.files)) or "the surface (it has no files yet)"
            raise AgentError(
                f"mutate: found no numeric constants to perturb in {names}; it changes module-level "
                "constants such as `LR = 0.01` (failing those, numeric keyword arguments such as "
                "`lr=0.01`) and `key = 12` lines of config files"
            )

    def propose(self, context: ProposalContext) -> Proposal:
        self._learn(context)
        targets = find_targets(context.files)
        if not targets:
            return Proposal("mutate: nothing to perturb", error="mutate: the surface files have no numeric constants left")
        self._seen.add(_digest(context.files))
        rng = random.Random(f"{self.seed}:{context.trial}")
        last = context.history[-1] if context.history else None
        changes: list[Change] = []
        if last is not None and last.status == "keep" and last.trial in self._moves and rng.random() < 0.5:
            changes = self._repeat(last.trial, targets, rng)
        chosen: tuple[list[Change], dict[str, str]] | None = None
        for attempt in range(50):  # the last draw stands if every draw was tried before
            if attempt > 0 or not changes:
                changes = self._draw(targets, rng)
            if not changes:
                continue
            chosen = (changes, _apply(context.files, changes))
            if _digest({**context.files, **chosen[1]}) not in self._seen:
                break
        if chosen is None:
            return Proposal("mutate: nothing to perturb", error="mutate: no constant of the surface could be perturbed")
        changes, files = chosen
        self._seen.add(_digest({**context.files, **files}))
        self._moves[context.trial] = [(t.path, t.name, t.value, new) for t, new in changes]
        return Proposal(_describe(changes, several=len(context.files) > 1), files)

    def _learn(self, context: ProposalContext) -> None:
        """Grow the step of constants whose change was kept, shrink it after each failure."""
        for record in context.history:
            if record.trial not in self._moves or record.trial in self._learned:
                continue
            self._learned.add(record.trial)
            factor = 1.5 if record.status == "keep" else 0.9
            for path, name, _, _ in self._moves[record.trial]:
                scale = self._scale.get((path, name), 1.0) * factor
                self._scale[(path, name)] = min(max(scale, _SCALE_RANGE[0]), _SCALE_RANGE[1])

    def _repeat(self, trial: int, targets: list[Target], rng: random.Random) -> list[Change]:
        by_key = {t.key: t for t in targets}
        changes: list[Change] = []
        for path, name, old, new in self._moves[trial]:
            target = by_key.get((path, name))
            if target is None or format_value(target.value) != format_value(new):
                continue
            again = repeat(target.value, old, rng)
            if again is not None:
                changes.append((target, again))
        return changes

    def _draw(self, targets: list[Target], rng: random.Random) -> list[Change]:
        r = rng.random()
        count = min(len(targets), 1 if r < 0.7 else 2 if r < 0.9 else 3)
        changes: list[Change] = []
        for target in sorted(rng.sample(targets, count), key=lambda t: (t.path, t.start)):
            new = perturb(target.value, rng, self._scale.get(target.key, 1.0))
            if new is not None:
                changes.append((target, new))
        return changes


def _apply(files: Mapping[str, str], changes: list[Change]) -> dict[str, str]:
    """The new text of each changed file: only the literals' spans are replaced."""
    out: dict[str, str] = {}
    for target, new in sorted(changes, key=lambda c: (c[0].path, -c[0].start)):
        text = out.get(target.path, files[target.path])
        out[target.path] = text[: target.start] + format_value(new) + text[target.end :]
    return out


def _describe(changes: list[Change], several: bool) -> str:
    groups: dict[str, list[str]] = {}
    for target, new in sorted(changes, key=lambda c: (c[0].path, c[0].start)):
        old = "".join(target.text.split())
        groups.setdefault(target.path, []).append(f"{target.name} {old} -> {format_value(new)}")
    if not several:
        return ", ".join(part for parts in groups.values() for part in parts)
    return "; ".join(f"{path}: " + ", ".join(parts) for path, parts in groups.items())


def _digest(files: Mapping[str, str | None]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()
