"""Turn a language model's free-text answer into a :class:`Proposal`.

Models answer in whatever shape they were trained on: SEARCH/REPLACE blocks (aider,
OpenEvolve), unified diffs, or whole files in fenced code blocks, wrapped in prose and often a
little off (shifted indentation, trailing blanks, wrong hunk counts). This module accepts all
three, in that order of preference, repairs what it can repair unambiguously, and otherwise
returns a proposal whose ``error`` tells the model precisely what to fix next time. Edits to
files outside the surface are kept so that :func:`pytest_autoresearch.proposals.proposal.check`
rejects them by name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

from .answer_repair import DIVIDER as _DIVIDER, FENCE as _FENCE, REPLACE_MARK as _REPLACE, SEARCH_MARK as _SEARCH
from .answer_repair import EXAMPLE_PATH, EXAMPLE_REPLACE, EXAMPLE_SEARCH, LOOSE_REPLACE, apply_fragments, labelled, copies_example, echo_end, echoes, in_text, resembles, loose_match, near_path, nearest_line, respelled, restated, unchanged, unescaped
from .diffs import PatchError, apply_unified_diff, file_starts, find_matches, keep_final_newline, line_ending, lines_of, reindent
from .proposal import Proposal
from ..core.text import one_line
from .surface import normalize

ANSWER_FORMAT = f"""\
Answer format:
First write one short paragraph describing the single idea you are trying. Then give the
change as one or more SEARCH/REPLACE blocks. This one shows the shape only: its path and its
lines are made up, so write your file's real path and real lines instead:

{EXAMPLE_PATH}
<<<<<<< SEARCH
{chr(10).join(EXAMPLE_SEARCH)}
=======
{chr(10).join(EXAMPLE_REPLACE)}
>>>>>>> REPLACE

- Put the file's path, exactly as this prompt's file headings give it, alone on the line above
  each block.
- SEARCH must copy the current lines of the file exactly, indentation included, with just
  enough lines to match one place in the file. REPLACE holds the new lines, which must differ
  from SEARCH. End every block with the >>>>>>> REPLACE line.
- Blocks apply in order; use several small blocks rather than one big one. An empty SEARCH
  creates a new file.
- Edit only the mutable files named in this prompt; an edit to any other file rejects the
  whole answer. Do not repeat this prompt or its files: write your paragraph and your blocks.
- For a small file you may instead give the whole new file in a fenced code block with its
  path on the line above the fence (or as ```python path/to/file.py).
"""

_PATH_CHARS = re.compile(r"[\w.\-/\\+@]+")
_LABEL = re.compile(r"^(?:(?:single|main|one|my|the)\s+)?(?:idea|description|summary|change|hypothesis|proposal|plan)(?:\s+\d+)?\s*(?::\s*|$)", re.IGNORECASE)
_LANGUAGES = {  # file suffix -> fence languages that fit it (besides the suffix itself)
    "py": {"python", "python3"}, "js": {"javascript"}, "ts": {"typescript"}, "sh": {"bash", "shell", "zsh"},
    "md": {"markdown"}, "yml": {"yaml"}, "yaml": {"yml"}, "txt": {"text", "plain", "plaintext"}, "rs": {"rust"},
    "cpp": {"c++", "cxx"}, "h": {"c", "cpp"}, "c": set(), "go": {"golang"}, "toml": set(), "json": {"jsonc"},
    "cfg": {"ini"}, "ini": {"cfg"}, "sql": set(), "html": set(), "css": set(), "java": set(),
}  # fmt: skip
_KNOWN = set(_LANGUAGES).union(*_LANGUAGES.values())
_FORMAT_HINT = "use SEARCH/REPLACE blocks with the file path on the line above <<<<<<< SEARCH"


class _AnswerError(Exception):
    """Why an answer does not apply, worded for the model that wrote it."""


@dataclasses.dataclass
class _Fence:
    open: int  # index of the opening line
    closed: bool
    info: str
    body: list[str]


@dataclasses.dataclass
class _Outcome:
    start: int  # the first line of the edit: the prose before it describes the idea
    files: dict[str, str | None]
    error: str | None = None


class _Repo:
    """The files an answer's edits apply to, as its earlier edits left them."""

    def __init__(self, files: Mapping[str, str], read: Callable[[str], str | None]) -> None:
        self.surface = {normalize(p) or p: t for p, t in files.items()}
        self.only = next(iter(self.surface)) if len(self.surface) == 1 else None
        self.changed: dict[str, str | None] = {}
        self._read = read
        self._cache: dict[str, str | None] = {}

    def original(self, path: str) -> str | None:
        clean = normalize(path)
        if clean is None:
            return None  # never read outside the repository
        if clean in self.surface:
            return self.surface[clean]
        if clean not in self._cache:
            self._cache[clean] = self._read(clean)
        return self._cache[clean]

    def current(self, path: str) -> str | None:
        return self.changed[path] if path in self.changed else self.original(path)

    def resolve(self, raw: str) -> str:
        """A clean path; one that is no file but is near exactly one surface path (a folder
        prefixed or dropped, the same file name elsewhere) is that path."""
        clean = normalize(raw)
        if clean is None or self.original(clean) is not None or clean in self.changed:
            return clean or raw
        return near_path(clean, self.surface) or clean


def parse_answer(text: str, files: Mapping[str, str], read: Callable[[str], str | None]) -> Proposal:
    """The proposal in a model's answer; never raises (a broken answer is a proposal with ``error``)."""
    try:
        return _parse(text, files, read)
    except Exception as exc:  # noqa: BLE001 - any failure is an invalid trial, not a crash
        return Proposal("unreadable answer", error=f"the answer could not be read ({type(exc).__name__}: {exc})")


def _parse(text: str, files: Mapping[str, str], read: Callable[[str], str | None]) -> Proposal:
    lines = labelled(_clean(unescaped(str(text), files)).split("\n"))
    repo = _Repo(files, read)
    fences = _fences(lines)
    outcome = _blocks(lines, repo) or _diff(lines, fences, repo) or _whole_files(lines, fences, repo)
    only, closed = repo.only, fences and all(f.closed for f in fences)
    if outcome and outcome.error and not repo.changed and only and only.endswith(".py") and closed:  # definitions restated
        mine = [f for f in fences if _fits(_language(f.info), only)]
        if mine and (new := apply_fragments([f.body for f in mine], repo.original(only) or "")) is not None:
            outcome = _Outcome(mine[0].open, {only: new})
    if outcome is None:
        return Proposal(_describe(lines, {}), error=f"the answer contains no edit: {_FORMAT_HINT}")
    description = _describe(lines[: outcome.start], outcome.files)
    if outcome.error:
        return Proposal(description, error=outcome.error)
    return Proposal(description, outcome.files)


def _clean(text: str) -> str:
    """Unify newlines and drop the model's thinking, which may hold draft edits."""
    text = str(text).replace("\r\n", "\n")
    text = re.sub(r"<(think|thinking)>.*?</\1>", "", text, flags=re.DOTALL | re.IGNORECASE)
    close = max(text.rfind("</think>"), text.rfind("</thinking>"))
    if close >= 0:  # the opening tag was eaten by the chat template
        text = text[text.index(">", close) + 1 :]
    opened = re.search(r"<think(ing)?>", text)
    return text[: opened.start()] if opened else text


# --- paths -------------------------------------------------------------------------------------


def _looks_like_path(token: str, repo: _Repo) -> bool:
    if not token or len(token) > 300 or not _PATH_CHARS.fullmatch(token) or token.strip(".") == "":
        return False
    if "/" in token or re.search(r"\.[A-Za-z][A-Za-z0-9]*$", token):
        return True
    return repo.original(token) is not None  # Makefile, Dockerfile, ...


def _path_from_line(line: str, repo: _Repo) -> str | None:
    """The path a line names by itself (`model.py:`, **model.py**, ### File: model.py), or the
    one path-like `code span` in a sentence such as "Change `model.py` as follows:"."""
    bare = line.strip().lstrip("#>").strip()
    for _ in range(2):
        bare = bare.strip("*_`'\" ").rstrip(":").strip("*_`'\" ")
        bare = re.sub(r"^(?:file|filename|path)\s*:\s*", "", bare, flags=re.IGNORECASE)
    if _looks_like_path(bare, repo):
        return bare
    spans = {s for s in re.findall(r"`([^`\s]+)`", line) if _looks_like_path(s, repo)}
    return spans.pop() if len(spans) == 1 else None


def _path_from_info(info: str, repo: _Repo) -> str | None:
    """The path in a fence's info string: ```model.py, ```python model.py, title="model.py",
    path=model.py, ```python:model.py."""
    for token in info.split():
        token = re.sub(r"^(?:title|path|file|filename)=", "", token).strip("\"'`")
        if ":" in token and _looks_like_path(token.partition(":")[2], repo):
            return token.partition(":")[2]
        if _looks_like_path(token, repo):
            return token
    return None


def _path_above(lines: list[str], i: int, repo: _Repo) -> tuple[str | None, int]:
    """The path named just above line ``i`` (past blank lines and an opening fence), and the
    line where the edit starts."""
    j = _nonblank_above(lines, i)
    if j < 0:
        return None, i
    fence = _FENCE.match(lines[j])
    if fence and (path := _path_from_info(fence.group(3), repo)):
        return path, j
    k = _nonblank_above(lines, j) if fence else j
    path = _path_from_line(lines[k], repo) if k >= 0 else None
    return (path, k) if path else (None, j if fence else i)


def _nonblank_above(lines: list[str], i: int) -> int:
    return next((j for j in range(i - 1, -1, -1) if lines[j].strip()), -1)


# --- SEARCH/REPLACE blocks ---------------------------------------------------------------------


def _blocks(lines: list[str], repo: _Repo) -> _Outcome | None:
    markers = [i for i, line in enumerate(lines) if _SEARCH.match(line)]
    if not markers:
        return None
    outcome = _Outcome(_path_above(lines, markers[0], repo)[1], {})
    path: str | None = None
    i, number, unchanged_blocks, echoed = markers[0], 0, 0, []
    try:
        while i < len(lines):
            if not _SEARCH.match(lines[i]):
                i += 1
                continue
            number += 1
            named = _path_above(lines, i, repo)[0]
            path = repo.resolve(named) if named else path or repo.only
            if path is None:
                raise _AnswerError(
                    f"SEARCH/REPLACE block {number} has no file path: put the path alone on the line above <<<<<<< SEARCH"
                )
            if (end := echo_end(lines, i + 1, repo.current(path), path in repo.surface)) is not None:
                echoed.append(path)  # a file of the prompt repeated under a SEARCH marker: no edit
                i = end
                continue
            search, replace, i = _block_body(lines, i + 1, f"SEARCH/REPLACE block {number} ({path})")
            if repo.only and path != repo.only and repo.current(path) is None and "".join(search).strip():
                path = repo.only if in_text(search, repo.current(repo.only) or "") else path  # a misnamed path
            where = f"SEARCH/REPLACE block {number} ({path})"
            if copies_example(search, replace) or path == EXAMPLE_PATH:
                raise _AnswerError(f"{where} copies the answer format's example: write the real lines of {_surface_names(repo)}")
            if "".join(search).strip() and unchanged(search, replace):
                unchanged_blocks += 1
                continue  # it changes nothing; the answer's other blocks may
            repo.changed[path] = _apply_block(repo.current(path), search, replace, where, path, repo)
        if echoed and not repo.changed and not unchanged_blocks:
            raise _AnswerError(f"the answer repeats {', '.join(sorted(set(echoed)))} from the prompt unchanged; {_FORMAT_HINT}")
        if unchanged_blocks and not repo.changed:
            one = "its REPLACE lines are" if number == 1 else "every block's REPLACE lines are"
            raise _AnswerError(f"the answer changes nothing: {one} the same as its SEARCH lines; change at least one line")
    except _AnswerError as exc:
        outcome.error = f"{exc}; nothing in the answer was applied" if number > 1 else str(exc)
    outcome.files = dict(repo.changed)
    return outcome


def _surface_names(repo: _Repo) -> str:
    return ", ".join(sorted(repo.surface)) or "the mutable files"


def _block_body(lines: list[str], i: int, where: str) -> tuple[list[str], list[str], int]:
    """The SEARCH and REPLACE lines of the block starting at ``i``, and the line after it.

    A block whose >>>>>>> REPLACE line lost its word, or is missing while the block's code fence
    closes (the model forgot it), ends there; one that runs off the end of the answer is cut off."""
    j = i
    while j < len(lines) and not _DIVIDER.match(lines[j]):
        if _REPLACE.match(lines[j]) or _SEARCH.match(lines[j]):
            raise _AnswerError(f"{where} has no ======= line between its SEARCH and REPLACE parts")
        j += 1
    if j == len(lines):
        raise _AnswerError(f"{where} is cut off: it has no ======= line and no >>>>>>> REPLACE line")
    k = j + 1
    while k < len(lines) and not (_REPLACE.match(lines[k]) or LOOSE_REPLACE.match(lines[k])) and not _SEARCH.match(lines[k]):
        k += 1
    if k < len(lines) and not _SEARCH.match(lines[k]):
        return lines[i:j], lines[j + 1 : k], k + 1
    closing = next((n for n in range(j + 1, k) if _FENCE.match(lines[n]) and not _FENCE.match(lines[n]).group(3)), None)  # type: ignore[union-attr]
    if closing is not None:
        return lines[i:j], lines[j + 1 : closing], closing + 1
    if k == len(lines):
        raise _AnswerError(f"{where} is cut off: the answer ends before its >>>>>>> REPLACE line; keep the answer short")
    raise _AnswerError(f"{where} is not terminated: end it with >>>>>>> REPLACE")


def _apply_block(current: str | None, search: list[str], replace: list[str], where: str, path: str, repo: _Repo) -> str:
    if not "".join(search).strip():
        if current:
            raise _AnswerError(
                f"{where}: an empty SEARCH creates a new file, but {path} exists; copy the lines to change into SEARCH"
            )
        return "".join(line + "\n" for line in replace)
    if current is None:
        raise _AnswerError(f"{where}: {path} does not exist; the mutable files are {_surface_names(repo)} (an empty SEARCH creates a new file)")
    lines = lines_of(current)
    found = find_matches(lines, search)
    eol = line_ending(current)
    if not found:
        loose = loose_match(lines, search)
        for repair in (respelled, restated):  # names in another case; settings an earlier trial changed
            if not isinstance(loose, tuple) and (repaired := repair(lines, search, replace)) is not None:
                (search, replace), loose = repaired, loose_match(lines, repaired[0])
        if isinstance(loose, tuple):  # the same lines, spaced differently
            start, end, shift = loose
            new = [reindent(line, shift) + eol for line in replace]
            return keep_final_newline(current, "".join(lines[:start] + new + lines[end:]))
        first, near = next(line.strip() for line in search if line.strip()), nearest_line(lines, search)
        now = f"; {path} {near}" if near else ""
        raise _AnswerError(f"{where}: the SEARCH text is not in {path} (its first line: {first[:80]!r}){now}; copy the current lines exactly")
    if len(found) > 1:
        places = f"matches {len(found)} places in {path}"
        raise _AnswerError(f"{where}: the SEARCH text {places}; include more context so that it matches one")
    match = found[0]
    new = [reindent(line, match.shift) + eol for line in replace]
    return keep_final_newline(current, "".join(lines[: match.start] + new + lines[match.start + len(search) :]))


# --- unified diffs -----------------------------------------------------------------------------


def _diff(lines: list[str], fences: list[_Fence], repo: _Repo) -> _Outcome | None:
    fenced = [f for f in fences if _language(f.info) in ("diff", "patch", "udiff") or _has_diff_header(f.body)]
    if fenced:
        start, patch = fenced[0].open, "\n".join("\n".join(f.body) for f in fenced) + "\n"
    else:
        start = next((i for i in range(len(lines)) if file_starts(lines, i)), -1)
        if start < 0:
            return None
        patch = "\n".join(lines[start:])
    try:
        return _Outcome(start, apply_unified_diff(patch, repo.original, tolerant=True))
    except PatchError as exc:
        return _Outcome(start, {}, f"the diff does not apply: {exc}")


def _has_diff_header(lines: list[str]) -> bool:
    return any(file_starts(lines, i) for i in range(len(lines)))


# --- whole files in fenced code blocks ---------------------------------------------------------


def _fences(lines: list[str]) -> list[_Fence]:
    """Fenced code blocks. Inside one, a fence line with an info string opens a nested block and
    a bare one closes the innermost, so a markdown file holding code blocks stays whole."""
    fences: list[_Fence] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening or (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            i += 1
            continue
        indent, mark, depth, j = len(opening.group(1)), opening.group(2), 0, i + 1
        while j < len(lines):
            inner = _FENCE.match(lines[j])
            if inner and inner.group(2)[0] == mark[0] and len(inner.group(2)) >= len(mark):
                if inner.group(3):
                    depth += 1
                elif depth:
                    depth -= 1
                else:
                    break
            j += 1
        body = [_dedent(line, indent) for line in lines[i + 1 : j]]
        fences.append(_Fence(i, j < len(lines), opening.group(3), body))
        i = j + 1
    return fences


def _dedent(line: str, indent: int) -> str:
    return line[min(indent, len(line) - len(line.lstrip(" "))) :]


def _whole_files(lines: list[str], fences: list[_Fence], repo: _Repo) -> _Outcome | None:
    if not fences:
        return None
    named: list[tuple[_Fence, str, int]] = []
    for fence in fences:
        path, at = _path_from_info(fence.info, repo), fence.open
        if path is None:
            path, at = _path_above(lines, fence.open + 1, repo)
            path = path if path and (_fits(_language(fence.info), path) or _language(fence.info) not in _KNOWN) else None
        if path is not None and (path := repo.resolve(path)) not in repo.surface and repo.only:
            path = repo.only if resembles(fence.body, repo.original(repo.only), repo.original(path)) else path
        if path is not None:
            named.append((fence, path, min(at, fence.open)))
    if not named:
        chosen = _unnamed_fence(fences, repo)
        if isinstance(chosen, str):
            return _Outcome(fences[0].open, {}, chosen)
        named = [(chosen, repo.only or "", chosen.open)]
    repeated = sorted({path for fence, path, _ in named if echoes(fence.body, repo.original(path))})
    if repeated and len(repeated) == len({path for _, path, _ in named}):
        return _Outcome(named[0][2], {}, f"the answer repeats {', '.join(repeated)} from the prompt unchanged; {_FORMAT_HINT}")
    named = [n for n in named if n[1] not in repeated]  # the echoes of the prompt around a real change
    outcome = _Outcome(min(at for _, _, at in named), {})
    try:
        for fence, path, _ in named:
            if path in outcome.files:
                raise _AnswerError(f"the answer has two code blocks for {path}; give each file once")
            outcome.files[path] = _whole_file(fence, path, repo.original(path))
    except _AnswerError as exc:
        outcome.error = str(exc)
    return outcome


def _unnamed_fence(fences: list[_Fence], repo: _Repo) -> _Fence | str:
    """The one fence that can only be the single surface file, or why there is none."""
    if repo.only is None:
        return f"the answer's code blocks name no file; {_FORMAT_HINT}"
    fits = [f for f in fences if _fits(_language(f.info), repo.only)]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        return f"no code block in the answer is in the language of {repo.only}; {_FORMAT_HINT}"
    return f"the answer has {len(fits)} code blocks without a file path, so none is taken as {repo.only}; {_FORMAT_HINT}"


def _fits(language: str, path: str) -> bool:
    suffix = path.rpartition(".")[2].lower()
    return language in ("", suffix) or language in _LANGUAGES.get(suffix, set())


def _language(info: str) -> str:
    return (info.split() or [""])[0].partition(":")[0].lower()


def _whole_file(fence: _Fence, path: str, current: str | None) -> str:
    if not fence.closed:
        raise _AnswerError(f"the code block for {path} is cut off (no closing fence); nothing was applied")
    old = len(lines_of(current)) if current is not None else 0
    if old > 20 and len(fence.body) * 2 < old:
        size = f"{len(fence.body)} of the file's {old} lines"
        raise _AnswerError(f"the code block for {path} ({size}) looks like a fragment, not the whole file; {_FORMAT_HINT}")
    new = "".join(line + "\n" for line in fence.body)
    if current is None:
        return new
    return keep_final_newline(current, new.replace("\n", line_ending(current)))


# --- description -------------------------------------------------------------------------------


def _describe(prose: list[str], files: Mapping[str, str | None]) -> str:
    """The first sentence of the prose before the edit, or the files it edits."""
    for line in prose:
        if _FENCE.match(line):
            continue
        plain = re.sub(r"\*\*|__|(?<!\w)[*_]|[*_](?!\w)", "", line.strip().lstrip("#>").strip())
        plain = _LABEL.sub("", re.sub(r"^(?:[-+]|\d+[.)])\s+", "", " ".join(plain.split())))
        if plain:
            sentence = re.match(r"(.+?[.!?])(?:\s+(?=[A-Z(\"'`])|$)", plain)
            return one_line(sentence.group(1) if sentence else plain, 200)
    return one_line("edit " + ", ".join(sorted(files)), 200) if files else "(no description)"
