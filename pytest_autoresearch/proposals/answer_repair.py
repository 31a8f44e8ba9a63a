"""The near misses of small models' answers, repaired where only one repair fits.

A 0.5B or 1.5B model served on a laptop gets the idea and the format roughly right and the
details wrong: it prefixes the file's folder or drops it, copies SEARCH lines with their inner
spacing, blank lines or the case of names changed, writes ``>>>>>>> REPLACE`` half or not at all
when its answer ends, copies the answer format's example, repeats the SEARCH lines unchanged as
REPLACE, writes the edit as two code blocks labelled SEARCH and REPLACE, writes HTML
entities that a chat template put into what it read, or copies a setting as it was before an
earlier trial changed it (``WINDOW = 5`` where the file now reads ``WINDOW = 3``: the block sets
it all the same; any other line that matches nowhere gets a reason quoting the nearest line).
:mod:`.answers` asks here before it gives up on a block, so such an answer applies when what it
means is unambiguous, and otherwise gets a reason that says what to write instead.
"""

from __future__ import annotations

import ast
import difflib
import html
import re
from collections.abc import Iterable, Mapping

from .diffs import find_matches

#: the example of the answer format; an answer that copies it is told so
EXAMPLE_PATH = "some/folder/example.py"
EXAMPLE_SEARCH = ["    steps = 10"]
EXAMPLE_REPLACE = ["    steps = 20"]

#: the lines of a SEARCH/REPLACE block and of a code fence
SEARCH_MARK = re.compile(r"^\s*<{5,9}\s*SEARCH\b")
DIVIDER = re.compile(r"^\s*={5,9}\s*$")
REPLACE_MARK = re.compile(r"^\s*>{5,9}\s*REPLACE\b")
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*(.*?)\s*$")

#: a REPLACE marker that lost its word or part of it (``>>>>>>>``, ``>>>>>>> REPL``), or says
#: UPDATED as older aider prompts taught
LOOSE_REPLACE = re.compile(r"^\s*>{5,9}\s*(?:R(?:E(?:P(?:L(?:A(?:C(?:E)?)?)?)?)?)?|UPDATED)?\s*$", re.IGNORECASE)


#: a line that labels the code block below it as the lines to find, or as what replaces them
#: (``**SEARCH**``, ``### Original code:``, ``- Replace with:``), as small models write an edit
_LABEL = r"^\s*(?:[-*#>]+\s*)*(?:\*\*|__)?\s*(?:{words})(?:\s+(?:code|lines?|block|text|with))?(?:\s+\d+)?(?:\s*\([^)]*\))?\s*:?\s*(?:\*\*|__)?\s*:?\s*$"
SEARCH_LABEL = re.compile(_LABEL.format(words="search(?:/replace)?|find|original|before|old|current"), re.IGNORECASE)
REPLACE_LABEL = re.compile(_LABEL.format(words="replace|replacement|modified|updated|after|new|changed"), re.IGNORECASE)


def labelled(lines: list[str]) -> list[str]:
    """An answer whose edits are pairs of code blocks labelled SEARCH and REPLACE (or original and
    modified, before and after), each pair rewritten as one SEARCH/REPLACE block in its place; the
    answer as it is when it has real SEARCH markers or no such pair."""
    if any(SEARCH_MARK.match(line) for line in lines):
        return lines
    out: list[str] = []
    i = 0
    while i < len(lines):
        pair = _labelled_pair(lines, i)
        if pair is None:
            out.append(lines[i])
            i += 1
            continue
        search, replace, i = pair
        out += ["<<<<<<< SEARCH", *search, "=======", *replace, ">>>>>>> REPLACE"]
    return out


def _labelled_pair(lines: list[str], i: int) -> tuple[list[str], list[str], int] | None:
    """The SEARCH and REPLACE blocks of a labelled pair starting at line ``i``, and the line after it."""
    if not SEARCH_LABEL.match(lines[i]):
        return None
    search = _fenced_after(lines, i + 1)
    if search is None or (label := _nonblank(lines, search[1])) is None or not REPLACE_LABEL.match(lines[label]):
        return None
    replace = _fenced_after(lines, label + 1)
    return None if replace is None else (search[0], replace[0], replace[1])


def _nonblank(lines: list[str], i: int) -> int | None:
    return next((j for j in range(i, len(lines)) if lines[j].strip()), None)


def _fenced_after(lines: list[str], i: int) -> tuple[list[str], int] | None:
    """The body of the closed code block that opens at the first non-blank line from ``i``, and the line after it."""
    start = _nonblank(lines, i)
    if start is None or not (opening := FENCE.match(lines[start])):
        return None
    for end in range(start + 1, len(lines)):
        closing = FENCE.match(lines[end])
        if closing and not closing.group(3) and closing.group(2)[0] == opening.group(2)[0] and len(closing.group(2)) >= len(opening.group(2)):
            return lines[start + 1 : end], end + 1
    return None


def near_path(raw: str, surface: Iterable[str]) -> str | None:
    """The one surface path a path that names no file means: the same path under a folder
    prefix (``examples/quickstart/denoise.py`` for ``denoise.py``), without one, or the same
    file name elsewhere; None when no surface path or more than one fits."""
    paths = list(surface)
    for fits in (
        lambda p: raw.endswith("/" + p) or p.endswith("/" + raw),
        lambda p: p.rpartition("/")[2] == raw.rpartition("/")[2],
    ):
        found = [p for p in paths if fits(p)]
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None


#: an answer whose markers or quotes are HTML entities: the model copied a template's escaping
_ESCAPED = re.compile(r"(?:&lt;){5,}|(?:&gt;){5,}|&#3[49];|&quot;")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);")
_NAME = re.compile(r"[A-Za-z_]\w*")


def unescaped(text: str, files: Mapping[str, str]) -> str:
    """The answer as the model meant it when a chat template escaped HTML in all it read:
    llama-cpp-python's ``chatml-function-calling`` format renders every message with HTML
    autoescape, so the model sees, and copies, ``&lt;&lt;&lt;&lt;&lt;&lt;&lt; SEARCH`` and
    ``&#34;``. The entities are decoded unless the mutable files hold entities themselves."""
    if not _ESCAPED.search(text) or any(_ENTITY.search(t) for t in files.values()):
        return text
    return html.unescape(text)


def respelled(lines: list[str], search: list[str], replace: list[str]) -> tuple[list[str], list[str]] | None:
    """SEARCH and REPLACE with names spelled as the file spells them, when SEARCH occurs in one
    place only once case (and whitespace) is ignored: small models write ``alpha = 0.8`` for
    ``ALPHA = 0.8``, and a REPLACE of ``alpha = 1.0`` means the file's ``ALPHA``. None when it
    occurs nowhere or in several places, or a name would take two spellings."""
    wanted = [s for s in search if s.strip()]
    kept = [i for i, line in enumerate(lines) if line.strip()]
    keys, keys_wanted = [_key(lines[i]).lower() for i in kept], [_key(s).lower() for s in wanted]
    starts = [k for k in range(len(keys) - len(keys_wanted) + 1) if keys[k : k + len(keys_wanted)] == keys_wanted]
    if not wanted or len(starts) != 1:
        return None
    spelling: dict[str, str] = {}
    for mine, theirs in zip(wanted, (lines[i] for i in kept[starts[0] : starts[0] + len(wanted)])):
        for a, b in zip(_NAME.findall(mine), _NAME.findall(theirs)):
            if spelling.setdefault(a, b) != b:
                return None
    if all(a == b for a, b in spelling.items()):
        return None

    def fix(line: str) -> str:
        return _NAME.sub(lambda m: spelling.get(m.group(0), m.group(0)), line)

    return [fix(s) for s in search], [fix(r) for r in replace]


#: a module-level or indented constant: ``NAME = value`` or ``NAME: type = value``
_SETTING = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")


def restated(lines: list[str], search: list[str], replace: list[str]) -> tuple[list[str], list[str]] | None:
    """SEARCH with the file's current lines, when it only sets constants that an earlier trial
    changed: every SEARCH line and every REPLACE line assigns a name, the same names in the same
    order, and the file assigns each of them on exactly one line. A 1.5B model copies
    ``WINDOW = 5`` from what it remembers where the file reads ``WINDOW = 3``; its REPLACE says
    what it wants the setting to be. None when any of that does not hold."""
    wanted = [s for s in search if s.strip()]
    names = _set_names(wanted)
    if not wanted or None in names or names != _set_names([r for r in replace if r.strip()]):
        return None
    in_file = _set_names(lines)
    places = [[line for line, named in zip(lines, in_file) if named == name] for name in names]
    if any(len(found) != 1 for found in places):
        return None
    current = [found[0].rstrip("\r\n") for found in places]
    theirs, mine = _indent(current[0]), _indent(wanted[0])
    return current, [theirs + r[len(mine) :] if r.startswith(mine) else r for r in replace]


def _set_names(lines: list[str]) -> list[str | None]:
    return [m.group(1) if (m := _SETTING.match(line)) else None for line in lines]


def _key(line: str) -> str:
    return "".join(line.split())


def loose_match(lines: list[str], search: list[str]) -> tuple[int, int, tuple[str, str]] | int:
    """Where ``search`` occurs in ``lines`` once its whitespace is ignored (inside lines and
    blank lines alike): (start, end, indentation shift) of the one place, or the number of
    places (0 or several) when there is not exactly one."""
    wanted = [_key(s) for s in search if s.strip()]
    if not wanted:
        return 0
    kept = [i for i, line in enumerate(lines) if line.strip()]
    keys = [_key(lines[i]) for i in kept]
    starts = [k for k in range(len(keys) - len(wanted) + 1) if keys[k : k + len(wanted)] == wanted]
    if len(starts) != 1:
        return len(starts)
    first, last = kept[starts[0]], kept[starts[0] + len(wanted) - 1]
    pattern_line = next(s for s in search if s.strip())
    shift = (_indent(pattern_line), _indent(lines[first]))
    return first, last + 1, shift


def nearest_line(lines: list[str], search: list[str]) -> str:
    """Where the file has the line most like the SEARCH's first one, as a reason quotes it
    (``line 66 reads 'WINDOW = 3'``), or ``""``: a model that copied ``WINDOW = 5`` from an
    older version of the file is shown the line to copy instead."""
    first = next((s.strip() for s in search if s.strip()), "")
    stripped = [line.strip() for line in lines]
    close = difflib.get_close_matches(first, [s for s in stripped if s], n=1, cutoff=0.6)
    if not close or close[0] == first:  # the first line is there: what differs is further on
        return ""
    return f"line {stripped.index(close[0]) + 1} reads {close[0][:80]!r}"


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def unchanged(search: list[str], replace: list[str]) -> bool:
    """A block whose REPLACE repeats its SEARCH (whitespace aside): it changes nothing."""
    return [_key(s) for s in search if s.strip()] == [_key(r) for r in replace if r.strip()]


def echoes(body: list[str], current: str | None) -> bool:
    """A code block that repeats a file of the prompt as it is (small models echo the prompt's
    file sections before, or instead of, their change)."""
    return current is not None and [_key(b) for b in body if b.strip()] == [_key(c) for c in current.splitlines() if c.strip()]


def copies_example(search: list[str], replace: list[str]) -> bool:
    return [s.strip() for s in search if s.strip()] == [e.strip() for e in EXAMPLE_SEARCH] and [
        r.strip() for r in replace if r.strip()
    ] == [e.strip() for e in EXAMPLE_REPLACE]


def in_text(search: list[str], text: str) -> bool:
    """Whether SEARCH lines occur once in ``text``, exactly or with their whitespace ignored."""
    lines = text.splitlines(keepends=True)
    found = find_matches(lines, search)
    return len(found) == 1 if found else isinstance(loose_match(lines, search), tuple)


def echo_end(lines: list[str], i: int, current: str | None, mutable: bool) -> int | None:
    """Where a SEARCH part without ``=======`` that is no edit ends (at the next marker or a
    closing fence; one that runs to the end of the answer was cut off): small models echo a file
    of the prompt under a SEARCH marker beside their real block. It is no edit when it repeats
    lines of the ``mutable`` file it names, or names an existing file the agent may not change at
    all (a frozen test, say, which no edit could change). None for anything else."""
    j = i
    while j < len(lines) and not (DIVIDER.match(lines[j]) or SEARCH_MARK.match(lines[j]) or REPLACE_MARK.match(lines[j]) or FENCE.match(lines[j])):
        j += 1
    if j == len(lines) or DIVIDER.match(lines[j]) or not "".join(lines[i:j]).strip():
        return None
    if current is None or mutable and not in_text(lines[i:j], current):
        return None
    return j + 1 if FENCE.match(lines[j]) else j


def resembles(body: list[str], surface: str | None, named: str | None) -> bool:
    """Whether a code block shares more lines with the surface file than with the file its prose
    named (a frozen file mentioned in passing: "... against the clean signal (`tests/test_fitness.py`)")."""
    mine = {_key(b) for b in body if b.strip()}
    return len(mine & {_key(x) for x in (surface or "").splitlines()}) > len(mine & {_key(x) for x in (named or "").splitlines()})


def _defines(node: ast.stmt) -> list[str]:
    """The top-level names a statement defines: a function, a class, or plain assignments."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _spans(tree: ast.Module) -> dict[str, tuple[int, int] | None]:
    spans: dict[str, tuple[int, int] | None] = {}
    for node in tree.body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        for name in _defines(node):
            spans[name] = None if name in spans else (start, node.end_lineno or node.lineno)
    return spans


def apply_fragments(bodies: list[list[str]], current: str) -> str | None:
    """A Python file with code blocks that each restate some of its top-level definitions
    (``PASSES = 0``, a whole ``def denoise``) put in place of those definitions: how small models
    write a change when they write no SEARCH/REPLACE. None when any statement of the blocks is
    not a definition the file has exactly once, or nothing changes."""
    try:
        spans = _spans(ast.parse(current))
    except SyntaxError:
        return None
    edits: dict[tuple[int, int], str] = {}
    for body in bodies:
        text = "".join(line + "\n" for line in body)
        try:
            fragment = ast.parse(text)
        except SyntaxError:
            return None
        rows = text.splitlines(keepends=True)
        for node in fragment.body:
            names = _defines(node)
            places = {spans.get(name) for name in names}
            if not names or len(places) != 1 or None in places:
                return None
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
            edits[places.pop()] = "".join(rows[start : node.end_lineno or node.lineno])  # type: ignore[index]
    lines = current.splitlines(keepends=True)
    for (start, end), new in sorted(edits.items(), reverse=True):
        lines[start:end] = [new if new.endswith("\n") else new + "\n"]
    result = "".join(lines)
    return result if edits and result != current else None
