"""``mutate[:SEED]``: the offline default agent, a seeded (1+1) search over numeric constants.

It needs no network and no model. Each trial it nudges one to three settings of the surface
(what :mod:`.targets` finds: module- and class-level constants of Python files, their numeric
keyword arguments when a file has none, ``key = number`` lines of config files), keeping their
types, and says where and what it changed (``model.py:12 LR 0.1 -> 0.05``). It repeats a move
that was just kept and adapts a step size per constant, so it finds real gains on small
hyperparameter problems: it is the baseline every LLM agent has to beat.

It never proposes a version of the surface it proposed before in the run (a resumed run's
earlier trials included, read from their commits): a repeat costs a whole trial and can only
tell what the log already says. When every change within its reach was tried it says so and
the run ends.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import subprocess
from collections.abc import Mapping

from ..proposals.proposal import Proposal
from .base import Agent, AgentError, AgentExhausted, ProposalContext
from .targets import Target, Value, find_targets

__all__ = ["MutateAgent", "Target", "find_targets", "format_value", "perturb", "repeat"]

_LN2 = math.log(2.0)
_SCALE_RANGE = (0.25, 3.0)
_DRAWS = 50  # random draws before the neighbours are enumerated
_ENUMERATED = 2000  # neighbouring versions checked before the space counts as exhausted
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")
WHAT_IT_CHANGES = (
    "it changes numeric and boolean constants at module or class level (`LR = 0.01`, `USE_BIAS = True`), "
    "in a Python file without such constants its numeric keyword arguments (`lr=0.01`), and `key = 12` "
    "lines of config files; it leaves seeds, versions, dunders, typing and debug flags (`TYPE_CHECKING`), "
    "guarded blocks (`if TYPE_CHECKING:`, `sys.version_info`, `__main__`) and literals that steer control "
    "flow (`range()` bounds, `step=`, comparisons, slices) alone"
)


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
        self._seen: set[str] = set()  # digests of every surface version proposed (or started from)
        self._read_log = False

    def describe(self) -> str:
        return f"mutate (seed {self.seed})"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        if find_targets(files):
            return None
        names = ", ".join(sorted(files)) or "the surface (it has no files yet)"
        return (
            f"mutate found nothing it can change in {names}: {WHAT_IT_CHANGES}. Name files with such "
            "settings in autoresearch_mutable, move the knobs into module constants, or use an agent that "
            "edits code (--autoresearch-agent=litellm:MODEL or cmd:COMMAND)"
        )

    def start(self, context: ProposalContext) -> None:
        if reason := self.preflight(context.files):
            raise AgentError(reason)
        self._remember_log(context)

    def propose(self, context: ProposalContext) -> Proposal:
        self._learn(context)
        self._remember_log(context)
        targets = find_targets(context.files)
        if not targets:
            return Proposal("mutate: nothing to perturb", error="mutate: the surface files have no numeric constants left")
        self._seen.add(_digest(context.files))
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
        files = _apply(context.files, changes)
        self._seen.add(_digest({**context.files, **files}))
        self._moves[context.trial] = [(t.path, t.name, t.value, new) for t, new in changes]
        return Proposal(_describe(changes), files)

    def _new(self, files: Mapping[str, str], changes: list[Change]) -> bool:
        return _digest({**files, **_apply(files, changes)}) not in self._seen

    def _untried(self, targets: list[Target], files: Mapping[str, str], rng: random.Random) -> list[Change] | None:
        """The first neighbour of the current best not proposed yet: one setting's, then two's."""
        options = [[(t, v) for v in neighbours(t.value)] for t in rng.sample(targets, len(targets))]
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
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
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
        for target in sorted(_sample(targets, count, rng), key=lambda t: (t.path, t.start)):
            new = perturb(target.value, rng, self._scale.get(target.key, 1.0))
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


def _apply(files: Mapping[str, str], changes: list[Change]) -> dict[str, str]:
    """The new text of each changed file: only the literals' spans are replaced."""
    out: dict[str, str] = {}
    for target, new in sorted(changes, key=lambda c: (c[0].path, -c[0].start)):
        text = out.get(target.path, files[target.path])
        out[target.path] = text[: target.start] + format_value(new) + text[target.end :]
    return out


def _settings(targets: list[Target]) -> str:
    """``2 settings: model.py:3 EXACT, model.py:4 DEPTH``; only the count when there are many."""
    count = f"{len(targets)} setting{'s' if len(targets) != 1 else ''}"
    return count if len(targets) > 5 else f"{count}: " + ", ".join(t.place for t in targets)


def _describe(changes: list[Change]) -> str:
    """``model.py:12 LR 0.1 -> 0.05, model.py:14 DEPTH 2 -> 3``: where, what, from and to."""
    ordered = sorted(changes, key=lambda c: (c[0].path, c[0].start))
    return ", ".join(f"{t.place} {''.join(t.text.split())} -> {format_value(new)}" for t, new in ordered)


def tried_versions(context: ProposalContext) -> set[str]:
    """Digests of the surface as each logged trial's commit has it: what a resumed run tried.

    One ``git cat-file --batch`` for all of them, in the current best's worktree with its git
    dirs named (``context.git_env``), so nothing of the trials' own checkout is trusted.
    """
    commits = sorted({r.commit for r in context.history if r.commit})
    paths = sorted(context.files)
    if not commits or not paths:
        return set()
    prefix = _git(context, "rev-parse", "--show-prefix").decode().strip()
    wanted = "".join(f"{commit}:{prefix}{path}\n" for commit in commits for path in paths)
    blobs = _batch(_git(context, "cat-file", "--batch", stdin=wanted.encode()))
    if len(blobs) != len(commits) * len(paths):
        raise ValueError(f"git cat-file answered {len(blobs)} of {len(commits) * len(paths)} requests")
    rows = [blobs[i : i + len(paths)] for i in range(0, len(blobs), len(paths))]
    return {_digest({path: text for path, text in zip(paths, row) if text is not None}) for row in rows}


def _git(context: ProposalContext, *args: str, stdin: bytes | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update({**context.git_env, "GIT_OPTIONAL_LOCKS": "0"})
    proc = subprocess.run(["git", *args], cwd=context.workdir, env=env, input=stdin, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise subprocess.SubprocessError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _batch(out: bytes) -> list[str | None]:
    """``git cat-file --batch`` output: each blob's text as the worktree's reader decodes it
    (UTF-8, universal newlines), None for a path the commit lacks or a file that is not text."""
    blobs: list[str | None] = []
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3 or not header[2].isdigit():
            blobs.append(None)  # "<name> missing"
            continue
        size = int(header[2])
        data, pos = out[pos : pos + size], pos + size + 1
        try:
            blobs.append(data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n") if header[1] == b"blob" else None)
        except UnicodeDecodeError:
            blobs.append(None)
    return blobs


def _digest(files: Mapping[str, str | None]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()
