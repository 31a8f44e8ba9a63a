"""What the ``mutate`` agent may change: the literals of the surface that are settings.

A literal is a setting when it is a module- or class-level constant of a Python file
(``LR = 0.01``, ``BETAS = (0.9, 0.95)``, ``USE_BIAS = True``) or a ``key = number`` line of a
config file. A Python file with no such constant offers its numeric keyword arguments instead
(``SGD(params, lr=0.01)``) and the numeric defaults of its functions' parameters
(``def lru_cache(maxsize=128)``: a library's knobs are often only there), at a lower weight. Everything else is code, and changing it changes
what the program does rather than how well: positional call arguments, ``range()`` bounds, loop,
slice and index literals, comparisons, keyword arguments that count or index (``step=2``) or that
sit where they steer control flow. Mutating those mostly breaks or hangs a trial (a hung trial
costs its whole time limit), so they are never targets. Nor are guards and what they guard
(``if TYPE_CHECKING:``, ``if __name__ == "__main__":``, ``sys.version_info`` / ``sys.platform``
tests, ``if False:``), seeds (tuning one only fits the evaluator's noise), versions, dunders and
flags for typing or debugging (``TYPE_CHECKING = False``): flipping one changes no result the
fitness test measures, so a trial on it is wasted.

A user widens or narrows this with declared choices (:mod:`..core.choices`): a marker comment on a
constant's line (``LOSS = "mse"  # autoresearch-choices: "mse", "huber"``, ``LR = 0.01  #
autoresearch-range: 1e-4, 1.0``) or a line of ``autoresearch_choices``. A declared setting is a
target whatever its name, a string constant only when it has declared choices, and every
offline operator keeps to what was declared.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import math
import re
import tokenize
from collections.abc import Callable, Iterator, Mapping

from ..core.choices import Choice, Declared, for_path, read_comment, same

Value = bool | int | float | str
#: What the autoresearch_choices setting declares: (path, NAME) -> the choices.
Setting = Mapping[tuple[str, str], tuple[Choice, ...]]

#: How often a kind of target is drawn, relative to a constant.
WEIGHTS = {"constant": 1.0, "config": 1.0, "keyword": 0.25, "parameter": 0.25}

# Tuning a random seed only fits the evaluator's noise, so seeds are never targets.
_SKIP_NAME = re.compile(r"seed|random_state|^_*version(_info)?_*$|^__\w+__$", re.IGNORECASE)
# Python names that switch typing or debugging aids, or that record the platform or what is
# installed: not behaviour the fitness test measures.
_FLAG_NAME = re.compile(
    r"^_*(type_checking|typing|mypy|debug|debugging|(is_|on_|running_on_)?(windows|win32|posix|linux|darwin|macos|"
    r"pypy|cpython|jython|py\d+)|(has|have)_\w+)_*$",
    re.IGNORECASE,
)
# Keyword arguments that count, index or bound iteration, or that are codes: code, not settings.
_CONTROL_KEYWORDS = frozenset(
    "step steps start stop end begin index idx pos offset axis dim n k i j count times repeat repeats "
    "maxsplit maxlen maxsize limit size chunk chunksize chunk_size width level depth stacklevel nargs "
    "default issue version code exitcode returncode errno flags mode protocol port fd".split()
)
# Calls whose numeric arguments are iteration bounds or table entries whatever their keyword.
_CONTROL_CALLS = frozenset({"range", "slice", "islice", "enumerate", "repeat", "count", "cycle", "sleep", "exit", "_exit", "dict", "OrderedDict"})
# Base classes of enumerations: their members are codes.
_ENUM_BASES = re.compile(r"(Enum|Flag)$")
_TABLE = 8  # a tuple or list with more elements than this is a data table, not settings
# What a guard tests: the interpreter, the platform, the module's role.
_GUARD_NAMES = frozenset({"TYPE_CHECKING", "MYPY", "__debug__", "__name__", "version_info", "platform", "implementation", "hexversion", "maxsize", "byteorder"})
_NOT_DECIMAL = re.compile(r"0[xXoObB]")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_KEY_VALUE = re.compile(
    r"""^[ \t]*(?:export[ \t]+)?["']?(?P<name>[A-Za-z_][\w.\-]*)["']?[ \t]*[:=][ \t]*"""
    r"""(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)[ \t]*(?=[,;#]|//|\r?$)""",
    re.MULTILINE,
)


@dataclasses.dataclass(frozen=True)
class Target:
    """One literal the agent may change: where its source text lies and what it means."""

    path: str
    name: str  # unique in its file: a repeated name carries its line, "N (line 4)"
    start: int  # character offsets of the literal's source text in the file
    end: int
    text: str
    value: Value
    line: int = 1
    kind: str = "constant"  # a key of WEIGHTS
    label: str = ""  # the name as the source spells it (``name`` without the line); "" when none
    #: declared alternatives, the current value among them (first when the list lacks it)
    choices: tuple[Value, ...] = ()
    bounds: tuple[float, float] | None = None  # a declared range

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.name)

    @property
    def weight(self) -> float:
        return WEIGHTS[self.kind]

    @property
    def place(self) -> str:
        """Where it is, for a description: ``model.py:12 LR``."""
        return f"{self.path}:{self.line}" + (f" {self.label}" if self.label else "")


def find_targets(files: Mapping[str, str], setting: Setting | None = None) -> list[Target]:
    """All targets of the surface files, in path and position order; ``setting`` is what
    autoresearch_choices declares (markers in the files are read with them)."""
    targets: list[Target] = []
    for path in sorted(files):
        text = files[path]
        if not isinstance(text, str) or "\0" in text:
            continue
        declared = for_path(setting or {}, path)
        found = _python_targets(path, text, declared) if path.endswith(".py") else _text_targets(path, text)
        targets.extend(_disambiguate(found))
    return targets


def unreviewed(targets: list[Target], reviewed: Callable[[str], bool]) -> list[Target]:
    """The targets an offline operator changes: those outside files under ``autoresearch_review``
    while any are left. A keep that touches a reviewed file is parked for a person, and a
    blind perturbation there gives the reviewer a change no one can explain; the settings of
    such files keep their values (all of them are changed when they are all there is)."""
    return [t for t in targets if not reviewed(t.path)] or targets


def held_files(targets: list[Target], chosen: list[Target]) -> list[str]:
    """The files whose settings :func:`unreviewed` held back, for the note that says so."""
    return sorted({t.path for t in targets} - {t.path for t in chosen})


def declared_problems(files: Mapping[str, str], setting: Setting | None = None) -> list[str]:
    """What was declared but cannot be used: a malformed marker, a marker on a line with no
    setting, an autoresearch_choices line naming no constant. Empty when all is well."""
    problems: list[str] = []
    targets = find_targets(files, setting)
    lines = {(t.path, t.line + t.text.count("\n")) for t in targets}
    names = {(t.path, n) for t in targets for n in (t.name, t.label)}
    for path in sorted(files):
        text = files[path]
        if not isinstance(text, str) or "\0" in text:
            continue
        for line, comment in _comments(path, text).items():
            try:
                found = read_comment(comment)
            except ValueError as exc:
                problems.append(f"{path}:{line}: {exc}")
                continue
            if found is not None and (path, line) not in lines:
                why = "a `key = number` line (string choices are read in Python files only)" if not path.endswith(".py") else "a constant"
                problems.append(f"{path}:{line}: an autoresearch marker on a line without {why} it could apply to")
    for path, name in sorted((setting or {}).keys()):
        if (path, name) not in names:
            known = sorted({t.label or t.name for t in targets if t.path == path})
            where = f"its settings: {', '.join(known)}" if known else ("no such surface file" if path not in files else "it has no constant of that name")
            problems.append(f"autoresearch_choices names {path}:{name}, which is no constant of the surface ({where})")
    return problems


def within(value: Value, bounds: tuple[float, float] | None) -> bool:
    """Whether a number lies in a declared range (anything does where none was declared)."""
    return bounds is None or isinstance(value, (str, bool)) or bounds[0] <= value <= bounds[1]


def _comments(path: str, text: str) -> dict[int, str]:
    """Each line's comment: Python's by tokenizing (a ``#`` in a string is none), a config
    file's as what follows its first ``#``."""
    if not path.endswith(".py"):
        return {n: line.split("#", 1)[1] for n, line in enumerate(_NEWLINE.split(text), 1) if "#" in line}
    out: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                out[token.start[0]] = token.string
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return out


def _declaration(comment: str | None, choices: tuple[Choice, ...] | None) -> Declared | None:
    """A setting's declaration: the autoresearch_choices line's, else its marker's (one that
    cannot be read declares nothing here; :func:`declared_problems` reports it)."""
    if choices:
        return Declared(choices=choices)
    if comment is None:
        return None
    try:
        return read_comment(comment)
    except ValueError:
        return None


def _with_declared(target: Target, declared: Declared | None) -> Target:
    if declared is None:
        return target
    if declared.choices:
        options = declared.choices if any(same(c, target.value) for c in declared.choices) else (target.value, *declared.choices)
        return dataclasses.replace(target, choices=options)
    if declared.bounds is not None and not isinstance(target.value, (str, bool)):
        return dataclasses.replace(target, bounds=declared.bounds)
    return target


def is_guard(test: ast.expr) -> bool:
    """Whether an ``if`` test asks about the interpreter, the platform, typing or the module's
    role rather than the program's data: its branches are not the program's settings."""
    if isinstance(test, ast.Constant):
        return True  # if False: / if 0: / if 1:
    return any(  # not, and, or, comparisons, calls: any part that asks about them
        (isinstance(n, ast.Name) and _guard_name(n.id)) or (isinstance(n, ast.Attribute) and _guard_name(n.attr))
        for n in ast.walk(test)
    )


def _guard_name(name: str) -> bool:
    return name in _GUARD_NAMES or bool(_FLAG_NAME.match(name))


def _python_targets(path: str, text: str, setting: Mapping[str, tuple[Choice, ...]]) -> list[Target]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
    comments = _comments(path, text)

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        line = text[starts[lineno - 1] : starts[lineno] if lineno < len(starts) else len(text)]
        return starts[lineno - 1] + (col if line.isascii() else len(line.encode()[:col].decode(errors="ignore")))

    def make(name: str, node: ast.expr, kind: str) -> Target | None:
        declared = _declaration(comments.get(node.end_lineno or node.lineno), setting.get(name))
        value = _literal(node, strings=declared is not None and bool(declared.choices))
        if value is None or (isinstance(value, bool) and kind in ("keyword", "parameter") and declared is None):
            return None
        start = offset(node.lineno, node.col_offset)
        end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
        if isinstance(value, int) and _NOT_DECIMAL.search(text[start:end]):
            return None
        return _with_declared(Target(path, name, start, end, text[start:end], value, node.lineno, kind, name), declared)

    found = [t for name, node in _constants(tree.body, "") if (t := make(name, node, "constant"))]
    if not found:
        found = [t for name, node in _keywords(tree) if (t := make(name, node, "keyword"))]
        found += [t for name, node in _parameter_defaults(tree) if (t := make(name, node, "parameter"))]
    return [t for t in found if t.choices or t.bounds or not _SKIP_NAME.search(t.name.rsplit(".", 1)[-1].split("[")[0])]


def _constants(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.expr]]:
    """Module- and class-level constant assignments, also inside ``if``/``try`` blocks that are
    not guards (``if CUDA: BATCH = 64``)."""
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            if not _is_enumeration(stmt):
                yield from _constants(stmt.body, f"{prefix}{stmt.name}.")
        elif isinstance(stmt, ast.If):
            if not is_guard(stmt.test):
                yield from _constants(stmt.body, prefix)
                yield from _constants(stmt.orelse, prefix)
        elif isinstance(stmt, ast.Try):
            # what a handler sets records that an import or a probe failed (HAVE_NUMPY = False)
            fallback = {name for h in stmt.handlers for name, _ in _constants(h.body, prefix)}
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                yield from ((name, value) for name, value in _constants(block, prefix) if name.split("[")[0] not in fallback)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            if not isinstance(target, ast.Name) or stmt.value is None or _FLAG_NAME.match(target.id):
                continue
            name, value = prefix + target.id, stmt.value
            if isinstance(value, (ast.Tuple, ast.List)):
                if len(value.elts) > _TABLE:
                    continue
                yield from ((f"{name}[{i}]", element) for i, element in enumerate(value.elts))
            else:
                yield (name, value)


def _is_enumeration(node: ast.ClassDef) -> bool:
    """An ``Enum``/``Flag`` subclass, or a class of three or more integer constants mostly
    numbered in a row (``RED = 31; GREEN = 32; BLUE = 34``): its numbers are codes, not settings."""
    for base in node.bases:
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
        if _ENUM_BASES.search(name):
            return True
    numbers = sorted(
        v for stmt in node.body if isinstance(stmt, ast.Assign)
        if isinstance(v := _literal(stmt.value), int) and not isinstance(v, bool)
    )
    steps = [b - a for a, b in zip(numbers, numbers[1:])]
    return len(numbers) >= 3 and 3 * steps.count(1) >= 2 * len(steps)


def _keywords(tree: ast.Module) -> Iterator[tuple[str, ast.expr]]:
    """Numeric keyword arguments of calls, except those that count, index or steer control flow
    (in a loop's iterable, a condition, a comparison, a subscript) and those under a guard."""

    def walk(node: ast.AST, steering: bool) -> Iterator[tuple[str, ast.expr]]:
        if isinstance(node, ast.If) and is_guard(node.test):
            return
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if not steering and called not in _CONTROL_CALLS:
                yield from ((kw.arg, kw.value) for kw in node.keywords if kw.arg and kw.arg.lower() not in _CONTROL_KEYWORDS)
        for field, child in ast.iter_fields(node):
            steers = steering or _steers(node, field)
            for item in child if isinstance(child, list) else [child]:
                if isinstance(item, ast.AST):
                    yield from walk(item, steers)

    yield from walk(tree, False)


def _parameter_defaults(tree: ast.Module) -> Iterator[tuple[str, ast.expr]]:
    """Defaults of the parameters of module- and class-level functions (``fold(chunksize)``),
    outside guards: what a caller gets without asking, a library's tuning knob. Unlike a keyword
    argument of a call, a default's name says nothing of how the body uses it, so names that
    count or index are not left out; a default that breaks the project's tests is discarded."""

    def defaults(fn: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> Iterator[tuple[str, ast.expr]]:
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults), *zip(args.kwonlyargs, args.kw_defaults)]
        yield from ((f"{prefix}{fn.name}({a.arg})", d) for a, d in pairs if d is not None)

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, ast.expr]]:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from defaults(stmt, prefix)
            elif isinstance(stmt, ast.ClassDef) and not _is_enumeration(stmt):
                yield from walk(stmt.body, f"{prefix}{stmt.name}.")
            elif isinstance(stmt, ast.If) and not is_guard(stmt.test):
                yield from walk(stmt.body, prefix)
                yield from walk(stmt.orelse, prefix)

    yield from walk(tree.body, "")


def _steers(node: ast.AST, field: str) -> bool:
    """Whether ``node``'s ``field`` decides what runs, or how often."""
    if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        return field in ("iter", "ifs")
    if isinstance(node, (ast.While, ast.If, ast.IfExp, ast.Assert)):
        return field == "test"
    if isinstance(node, ast.Subscript):
        return field == "slice"
    return isinstance(node, (ast.Compare, ast.Slice))


def _literal(node: ast.expr, strings: bool = False) -> Value | None:
    """A number or boolean literal's value (a string's too, with ``strings``), else None."""
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    inner = node.operand if negative and isinstance(node, ast.UnaryOp) else node
    if not isinstance(inner, ast.Constant):
        return None
    value = inner.value
    if isinstance(value, str):
        return value if strings and not negative else None
    if isinstance(value, bool):
        return None if negative else value
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return -value if negative else value


def _text_targets(path: str, text: str) -> list[Target]:
    """``key = 12``, ``key: 0.5``, ``"key": 3`` lines of config files."""
    targets = []
    for match in _KEY_VALUE.finditer(text):
        raw, name = match.group("value"), match.group("name")
        try:
            value: Value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            continue
        if isinstance(value, int) and str(abs(value)) != raw.lstrip("+-"):
            continue  # leading zeros: an id or a code, not a quantity
        if not math.isfinite(value) or _SKIP_NAME.search(name):
            continue
        line = len(_NEWLINE.findall(text, 0, match.start("value"))) + 1
        end = text.find("\n", match.end("value"))
        rest = text[match.end("value") : end if end >= 0 else len(text)]
        declared = _declaration(rest.split("#", 1)[1] if "#" in rest else None, None)
        target = Target(path, name, match.start("value"), match.end("value"), raw, value, line, "config", name)
        targets.append(_with_declared(target, declared))
    return targets


def _disambiguate(targets: list[Target]) -> list[Target]:
    """Give a name that occurs twice in one file its line number, so each key is unique."""
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.name] = counts.get(t.name, 0) + 1
    return [t if counts[t.name] == 1 else dataclasses.replace(t, name=f"{t.name} (line {t.line})") for t in targets]
