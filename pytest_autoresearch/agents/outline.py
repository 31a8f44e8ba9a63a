"""An outline of a file: what a model is shown of a surface file too large for its prompt.

Each entry is one line of the file's structure with the line range it covers (``L120-L188``), so
a model can tell where everything is and which part to look at or ask for. Python files are read
with :mod:`ast` (the module docstring, module-level names, classes with their methods, functions
with their signatures and decorators); a file that does not parse, and any other file, gets the
generic outline: Markdown headings, TOML/INI sections, SQL statements, or else blocks of lines
with their first line. ``detail`` (3 down to 0) trades the outline's length for its precision.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re

#: the most detailed outline; lower numbers leave out names, methods and then signatures
FULL = 3
BLOCK_LINES = 40
SIGNATURE_CHARS = 110

_HEADING = re.compile(r"^(#{1,6})\s+\S")
_SECTION = re.compile(r"^\s*\[\[?[^\]]+\]\]?\s*(#.*|;.*)?$")
_SQL = re.compile(r"^\s*(create|alter|drop|select|insert|update|delete|with|grant|comment)\b", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One line of an outline: the lines ``start``-``end`` (1-based, inclusive) hold ``label``."""

    start: int
    end: int
    label: str
    depth: int = 0

    def render(self) -> str:
        return f"{'  ' * self.depth}L{self.start}-L{self.end}  {self.label}"


@functools.lru_cache(maxsize=64)  # a prompt is fitted several times a trial, on the same files
def _entries(path: str, text: str, detail: int) -> tuple[Entry, ...]:
    return tuple(_parse(path, text, detail))


def entries(path: str, text: str, detail: int = FULL) -> list[Entry]:
    """The outline of ``text`` (the file at ``path``) as entries, in file order."""
    return list(_entries(path, text, detail))


def _parse(path: str, text: str, detail: int) -> list[Entry]:
    if path.endswith((".py", ".pyi")):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            pass
        else:
            return _python(tree, detail)
    return _generic(path, text.splitlines(), detail)


def outline(path: str, text: str, detail: int = FULL) -> str:
    """The outline as text, headed by the file's size; the lines are the file's own numbers."""
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    found = entries(path, text, detail)
    head = f"{lines} lines, {len(text.encode())} bytes"
    return "\n".join([head, *(e.render() for e in found)])


def enclosing(found: list[Entry], line: int, span: int) -> tuple[int, int] | None:
    """The innermost entry around ``line`` no longer than ``span`` lines: the whole function or
    section an excerpt should show, or None when there is none that short."""
    best: tuple[int, int] | None = None
    for e in found:
        if e.start <= line <= e.end and e.end - e.start < span:
            if best is None or e.end - e.start < best[1] - best[0]:
                best = (e.start, e.end)
    return best


# -- Python --------------------------------------------------------------------------------


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    text = f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"
    return text if len(text) <= SIGNATURE_CHARS else text[: SIGNATURE_CHARS - 4] + " ..."


def _decorated(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, label: str) -> str:
    decorators = " ".join("@" + ast.unparse(d) for d in node.decorator_list)
    if len(decorators) > SIGNATURE_CHARS // 2:
        decorators = decorators[: SIGNATURE_CHARS // 2 - 4] + " ..."
    return f"{decorators} {label}" if decorators else label


def _start(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _end(node: ast.stmt) -> int:
    return node.end_lineno or node.lineno


def _class_label(node: ast.ClassDef, detail: int) -> str:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    label = f"class {node.name}({', '.join(bases)})" if bases and detail >= 2 else f"class {node.name}"
    return _decorated(node, label) if detail >= FULL else label


def _names(node: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    names: list[str] = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.append(sub.id)
            elif isinstance(sub, ast.Attribute):
                names.append(ast.unparse(sub))
    return names


def _body(body: list[ast.stmt], detail: int, depth: int) -> list[Entry]:
    out: list[Entry] = []
    run: list[ast.stmt] = []  # consecutive assignments, shown as one entry of names

    def flush() -> None:
        if run and detail >= FULL:
            names = [n for s in run for n in _names(s)]
            shown = ", ".join(dict.fromkeys(names))
            if len(shown) > 2 * SIGNATURE_CHARS:
                shown = shown[: 2 * SIGNATURE_CHARS - 4] + " ..."
            out.append(Entry(run[0].lineno, _end(run[-1]), f"names: {shown}", depth))
        run.clear()

    for node in body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            run.append(node)
            continue
        flush()
        if isinstance(node, ast.ClassDef):
            out.append(Entry(_start(node), _end(node), _class_label(node, detail), depth))
            if detail >= 2:
                out += _body(node.body, detail, depth + 1)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            label = _signature(node) if detail >= FULL or (detail == 2 and depth == 0) else f"def {node.name}"
            out.append(Entry(_start(node), _end(node), _decorated(node, label) if detail >= FULL else label, depth))
        elif detail >= FULL and depth == 0 and isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            first = ast.unparse(node).splitlines()[0]
            out.append(Entry(node.lineno, _end(node), first if len(first) <= SIGNATURE_CHARS else first[:SIGNATURE_CHARS - 4] + " ...", depth))
    flush()
    return out


def _python(tree: ast.Module, detail: int) -> list[Entry]:
    body = list(tree.body)
    out: list[Entry] = []
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
        doc = body.pop(0)
        summary = (doc.value.value.strip().splitlines() or [""])[0]  # type: ignore[attr-defined]
        out.append(Entry(doc.lineno, _end(doc), f'"""{summary}"""'))
    if detail <= 0:
        return out
    return out + _body(body, detail, 0)


# -- anything else ---------------------------------------------------------------------------


def _generic(path: str, lines: list[str], detail: int) -> list[Entry]:
    """Headings, sections or statements where the file has them, else fixed blocks of lines."""
    n = len(lines)
    if n == 0:
        return []
    if path.endswith((".md", ".markdown", ".rst", ".txt")):
        marks = _headings(lines, max_level=6 if detail >= 2 else 2)
    elif path.endswith((".toml", ".ini", ".cfg", ".conf")):
        marks = [(i, 1, line.strip()) for i, line in enumerate(lines) if _SECTION.match(line)]
    elif path.endswith(".sql"):
        marks = [(i, 1, line.strip()) for i, line in enumerate(lines) if _SQL.match(line)]
    else:
        marks = []
    if not marks:
        size = BLOCK_LINES * (1 if detail >= 2 else 4)
        marks = [(i, 1, next((l.strip() for l in lines[i : i + size] if l.strip()), "")) for i in range(0, n, size)]
    out = []
    for k, (i, level, label) in enumerate(marks):
        end = next((j for j, lv, _ in marks[k + 1 :] if lv <= level), n)
        label = label if len(label) <= SIGNATURE_CHARS else label[: SIGNATURE_CHARS - 4] + " ..."
        out.append(Entry(i + 1, end, label, level - 1 if path.endswith((".md", ".markdown")) else 0))
    return out


def _headings(lines: list[str], max_level: int) -> list[tuple[int, int, str]]:
    marks: list[tuple[int, int, str]] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match and len(match.group(1)) <= max_level:
            marks.append((i, len(match.group(1)), line.strip()))
    return marks
