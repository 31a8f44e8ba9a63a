"""``mutate[:SEED]``: the offline default agent, a seeded (1+1) search over numeric constants.

It needs no network and no model. Each trial it nudges one to three settings of the surface
(what :mod:`.targets` finds: module- and class-level constants of Python files, their numeric
keyword arguments when a file has none, ``key = number`` lines of config files), keeping their
types, and says where and what it changed (``model.py:12 LR 0.1 -> 0.05``). It repeats a move
that was just kept and adapts a step size per constant, so it finds real gains on small
hyperparameter problems: it is the baseline every LLM agent has to beat.

Settings in files under ``autoresearch_review`` keep their values while others are left
(:func:`.targets.unreviewed`). Declared choices (:mod:`..core.choices`) steer it: a setting with listed alternatives moves to
another of them, never elsewhere (a string constant is a setting only when it has them), and a
number with a declared range stays inside it.

It never proposes a version of the surface it proposed before in the run (a resumed run's
earlier trials included, read from their commits): a repeat costs a whole trial and can only
tell what the log already says. When every change within its reach was tried it says so and
the run ends.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping

from ..core.choices import FORMS, same
from ..proposals.proposal import Proposal
from .base import Agent, AgentError, AgentExhausted, ProposalContext
from .commits import ReadError, digest, tried_versions
from .edits import Change, apply_changes, describe_changes, format_value, render
from .targets import Setting, Target, Value, declared_problems, find_targets, held_files, unreviewed, within

__all__ = ["MutateAgent", "Target", "find_targets", "format_value", "perturb", "repeat"]

_LN2 = math.log(2.0)
_SCALE_RANGE = (0.25, 3.0)
_DRAWS = 50  # random draws before the neighbours are enumerated
_ENUMERATED = 2000  # neighbouring versions checked before the space counts as exhausted
WHAT_IT_CHANGES = (
    "it changes numeric and boolean constants at module or class level (`LR = 0.01`, `USE_BIAS = True`), "
    "in a Python file without such constants its numeric keyword arguments (`lr=0.01`), `key = 12` "
    "lines of config files, and constants with declared choices (`LOSS = \"mse\"  # autoresearch-choices: "
    "\"mse\", \"huber\"`, or the autoresearch_choices setting); it leaves seeds, versions, dunders, typing "
    "and debug flags (`TYPE_CHECKING`), guarded blocks (`if TYPE_CHECKING:`, `sys.version_info`, `__main__`) "
    "and literals that steer control flow (`range()` bounds, `step=`, comparisons, slices) alone"
)


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


def move(target: Target, rng: random.Random, scale: float = 1.0) -> Value | None:
    """A random change of one target: another of its declared choices, or a nearby value
    (inside its declared range)."""
    if target.choices:
        others = [c for c in target.choices if not same(c, target.value)]
        return rng.choice(others) if others else None
    for _ in range(10):
        new = perturb(target.value, rng, scale)
        if new is None or within(new, target.bounds):
            return new
    return None


def alternatives(target: Target) -> list[Value]:
    """A target's nearest moves (:func:`neighbours`), or its other declared choices."""
    if target.choices:
        return [c for c in target.choices if not same(c, target.value)]
    return [v for v in neighbours(target.value) if within(v, target.bounds)]


def neighbours(value: Value) -> list[Value]:
    """A value's nearest moves, a finite list: what is left to try once random draws only find
    versions proposed before (a boolean's one flip, a count's steps, a factor of 2 either way)."""
    space = _space(value)
    if space == "bool":
        return [not value]
    if space == "zero":
        return [1, -1] if isinstance(value, int) else [0.001, 0.01, 0.1]
    x = _to_x(space, value)
    moves = (1.0, -1.0, 2.0, -2.0) if space == "step" else (_LN2, -_LN2, _LN2 / 2, -_LN2 / 2) if space == "log" else (0.5, -0.5, 1.0, -1.0)
    out: list[Value] = []
    for move in moves:
        new = _from_x(space, x + move, value)
        if new is not None and _differs(new, value) and all(_differs(new, o) for o in out):
            out.append(new)
    return out


def settings_problem(files: Mapping[str, str], declared: Setting | None, nothing: Callable[[str], str]) -> str | None:
    """Why an offline operator (``mutate``, ``optuna``) can propose nothing for ``files``, or None:
    declared choices it cannot use, or no setting at all (``nothing`` words that, given the files' names)."""
    if problems := declared_problems(files, declared):
        return "declared choices that cannot be used: " + "; ".join(problems) + f" (write them as {FORMS})"
    if find_targets(files, declared):
        return None
    return nothing(", ".join(sorted(files)) or "the surface (it has no files yet)")


class MutateAgent(Agent):
    """A (1+1) search: perturb one to three constants, repeat what was kept, and widen or
    narrow each constant's step by how often changing it helped (the 1/5th success rule)."""

    name = "mutate"

    def __init__(self, seed: int = 0, choices: Setting | None = None) -> None:
        self.seed = seed
        self.declared = dict(choices or {})  # what autoresearch_choices declares
        self._moves: dict[int, list[tuple[str, str, Value, Value]]] = {}  # trial -> (path, name, old, new)
        self._learned: set[int] = set()
        self._scale: dict[tuple[str, str], float] = {}
        self._seen: set[str] = set()  # digests of every surface version proposed (or started from)
        self._read_log = False

    def describe(self) -> str:
        return f"mutate (seed {self.seed})"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        return settings_problem(
            files,
            self.declared,
            lambda names: f"mutate found nothing it can change in {names}: {WHAT_IT_CHANGES}. Name files with such "
            "settings in autoresearch_mutable, move the knobs into module constants, or use an agent that "
            "edits code (--autoresearch-agent=litellm:MODEL or cmd:COMMAND)",
        )

    def start(self, context: ProposalContext) -> None:
        if reason := self.preflight(context.files):
            raise AgentError(reason)
        self._remember_log(context)
        found = find_targets(context.files, self.declared)
        if held := held_files(found, unreviewed(found, context.reviewed)):
            context.note(f"mutate: the settings of {', '.join(held)} stay as they are (autoresearch_review): it changes the others")

    def propose(self, context: ProposalContext) -> Proposal:
        self._learn(context)
        self._remember_log(context)
        targets = unreviewed(find_targets(context.files, self.declared), context.reviewed)
        if not targets:
            return Proposal("mutate: nothing to perturb", error="mutate: the surface files have no numeric constants left")
        self._seen.add(digest(context.files))
        rng = random.Random(f"{self.seed}:{context.trial}")
        last = context.history[-1] if context.history else None
        first: list[Change] = []
        if last is not None and last.status == "keep" and last.trial in self._moves and rng.random() < 0.5:
            first = self._repeat(last.trial, targets, rng)
        draws = itertools.chain([first] if first else [], (self._draw(targets, rng) for _ in range(_DRAWS)))
        changes = next((c for c in draws if c and self._new(context.files, c)), None) or self._untried(targets, context.files, rng)
        if changes is None:
            raise AgentExhausted(
                f"mutate: nothing new to propose: every change it can make to the current best (trial "
                f"{context.best.trial}) was tried already ({_settings(targets)}; {len(self._seen)} versions of the "
                "surface seen); widen autoresearch_mutable or use another agent to go on"
            )
        files = apply_changes(context.files, changes)
        self._seen.add(digest({**context.files, **files}))
        self._moves[context.trial] = [(t.path, t.name, t.value, new) for t, new in changes]
        return Proposal(describe_changes(changes), files)

    def _new(self, files: Mapping[str, str], changes: list[Change]) -> bool:
        return digest({**files, **apply_changes(files, changes)}) not in self._seen

    def _untried(self, targets: list[Target], files: Mapping[str, str], rng: random.Random) -> list[Change] | None:
        """The first neighbour of the current best not proposed yet: one setting's, then two's."""
        options = [[(t, v) for v in alternatives(t)] for t in rng.sample(targets, len(targets))]
        singles = ([change] for option in options for change in option)
        pairs = (list(pair) for a, b in itertools.combinations(options, 2) for pair in itertools.product(a, b))
        for changes in itertools.islice(itertools.chain(singles, pairs), _ENUMERATED):
            if self._new(files, changes):
                return changes
        return None

    def _remember_log(self, context: ProposalContext) -> None:
        """Once per session: the versions the run's logged trials tried (a resumed run's)."""
        if self._read_log:
            return
        self._read_log = True
        try:
            self._seen |= tried_versions(context)
        except ReadError as exc:
            context.note(f"mutate: could not read the earlier trials' files ({exc}); it may propose a version tried before")

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
            if target is None or target.choices or render(target, target.value) != render(target, new):
                continue
            again = repeat(target.value, old, rng)
            if again is not None and within(again, target.bounds):
                changes.append((target, again))
        return changes

    def _draw(self, targets: list[Target], rng: random.Random) -> list[Change]:
        r = rng.random()
        count = min(len(targets), 1 if r < 0.7 else 2 if r < 0.9 else 3)
        changes: list[Change] = []
        for target in sorted(_sample(targets, count, rng), key=lambda t: (t.path, t.start)):
            new = move(target, rng, self._scale.get(target.key, 1.0))
            if new is not None:
                changes.append((target, new))
        return changes


def _sample(targets: list[Target], count: int, rng: random.Random) -> list[Target]:
    """Up to ``count`` distinct targets of one weight, drawn by it: constants and config keys come
    before keyword arguments, and a draw of several never drags a keyword argument along."""
    if len({t.weight for t in targets}) > 1:
        first = rng.choices(targets, weights=[t.weight for t in targets])[0]
        targets = [t for t in targets if t.weight == first.weight]
        return [first, *rng.sample([t for t in targets if t is not first], min(count, len(targets)) - 1)]
    return rng.sample(targets, count)


def _settings(targets: list[Target]) -> str:
    """``2 settings: model.py:3 EXACT, model.py:4 DEPTH``; only the count when there are many."""
    count = f"{len(targets)} setting{'s' if len(targets) != 1 else ''}"
    return count if len(targets) > 5 else f"{count}: " + ", ".join(t.place for t in targets)
