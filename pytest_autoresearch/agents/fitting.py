"""A prompt fitted to a token budget: a run never dies because its surface is large.

The fullest prompt that fits is sent: the whole log, the read-only context and every surface
file first; then a shorter log; then the surface without the context, when the files alone fit.
A surface too large for the budget is shown as an outline (:mod:`.outline`) plus exact excerpts
of the parts that matter now: the lines the last failure's traceback names, the lines recent
trials changed (their descriptions' ``model.py:12``, their commits' diffs), and one window of
the file chosen by the trial number, so that successive trials see every part of it. Fewer and
shorter excerpts and a coarser outline follow until the prompt fits; when even the smallest
form does not, it is sent anyway (the model's server may still take it), with a note to the user.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Callable, Iterator

from .base import ProposalContext
from .outline import FULL, enclosing, entries, outline
from .prompt import Prompt, render_prompt

#: history lengths tried, longest first, while every file is shown whole
HISTORY_STEPS = (None, 100, 40, 15, 5, 0)
#: the log kept beside an outlined surface, then none at the coarsest levels
OUTLINED_HISTORY = 15
#: files shorter than this are shown whole as long as any outline can make room
OUTLINE_MIN_LINES = 200
#: (outline detail, excerpts at most, lines per excerpt at most), richest first
LEVELS = ((FULL, 4, 120), (FULL, 3, 80), (2, 2, 80), (1, 2, 60), (1, 1, 40), (0, 1, 30), (0, 0, 0))
#: recent trials whose diffs point excerpts at what they touched
DIFF_TRIALS = 5

_TRACEBACK = re.compile(r'File "([^"]+)", line (\d+)')
_SHORT = re.compile(r"(?m)^\s*([^\s:\"']+\.\w+):(\d+)\b")
_MENTION = re.compile(r"([\w./\\-]+\.\w+):(\d+)")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclasses.dataclass(frozen=True)
class Fitted:
    """The prompt chosen, its size, and what was left out to fit it."""

    prompt: Prompt
    tokens: int
    history_limit: int | None
    context_files: bool
    outlined: tuple[str, ...] = ()
    fits: bool = True


def fit_prompt(context: ProposalContext, instructions: str, count_tokens: Callable[[Prompt], int], budget: int) -> Fitted:
    """The fullest prompt for ``context`` within ``budget`` tokens (see the module's text)."""
    last: Fitted | None = None
    for form in _forms(context, instructions, count_tokens, budget):
        if form.fits:
            return form
        last = form
    assert last is not None
    context.note(
        f"the prompt takes {last.tokens} tokens even outlined and without history, over the budget of {budget}: "
        f"sent as it is (trial {context.trial}; raise autoresearch_max_prompt_tokens if the model allows)"
    )
    return last


def _forms(context: ProposalContext, instructions: str, count: Callable[[Prompt], int], budget: int) -> Iterator[Fitted]:
    def form(limit: int | None, with_context: bool, outlined: tuple[str, ...] = (), level: int = 0) -> Fitted:
        detail, most, span = LEVELS[level]
        outlines = {p: outline(p, context.files[p], detail) for p in outlined}
        excerpts = excerpt_regions(context, outlined, most, span) if outlined else []
        prompt = render_prompt(
            context, instructions, history_limit=limit, include_context_files=with_context, outlines=outlines, excerpts=excerpts
        )
        tokens = count(prompt)
        return Fitted(prompt, tokens, limit, with_context, outlined, tokens <= budget)

    full = form(None, True)
    yield full
    whole = form(0, False)
    if whole.fits:  # every file can be shown whole: shorten the log, then drop the context
        for limit in HISTORY_STEPS[1:]:
            yield form(limit, True)
        yield whole
        return
    # a small file is never outlined: its outline saves little and hides the text a SEARCH must copy
    large = tuple(sorted((p for p, t in context.files.items() if t.count("\n") >= OUTLINE_MIN_LINES), key=lambda p: -len(context.files[p])))
    if not large:
        yield whole
        return
    for k in range(1, len(large) + 1):
        yield form(OUTLINED_HISTORY, True, large[:k])
    for level in range(1, len(LEVELS)):
        yield form(OUTLINED_HISTORY if level < 3 else 0, True, large, level)
    yield form(0, False, large, len(LEVELS) - 1)


# -- which parts of an outlined file to show -------------------------------------------------


def excerpt_regions(context: ProposalContext, outlined: tuple[str, ...], most: int, span: int) -> list[tuple[str, int, int]]:
    """Up to ``most`` regions (path, first line, last line) of the outlined files, at most
    ``span`` lines each: first where the trials point, then one window per file chosen by the
    trial number, so that the excerpts go round the whole file over successive trials."""
    if most <= 0 or span <= 0:
        return []
    sizes = {p: max(1, len(context.files[p].splitlines())) for p in outlined}
    outlines = {p: entries(p, context.files[p]) for p in outlined}
    regions: list[tuple[str, int, int]] = []
    for path, line in targets(context):
        if path not in outlined or any(p == path and a <= line <= b for p, a, b in regions):
            continue
        line = min(max(1, line), sizes[path])
        around = enclosing(outlines[path], line, span)
        first = around[0] if around else max(1, line - span // 2)
        regions.append((path, first, around[1] if around else min(sizes[path], first + span - 1)))
    for path in outlined:  # the window of this trial number: every part of the file in turn
        index = context.trial % -(-sizes[path] // span)
        regions.append((path, index * span + 1, min(sizes[path], (index + 1) * span)))
    return _merged(regions[:most])


def _merged(regions: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for path, first, last in sorted(regions):
        if out and out[-1][0] == path and first <= out[-1][2] + 1:
            out[-1] = (path, out[-1][1], max(out[-1][2], last))
        else:
            out.append((path, first, last))
    return out


def targets(context: ProposalContext) -> list[tuple[str, int]]:
    """The surface lines that matter now, most telling first: what the last failure's
    traceback names, what recent trials' descriptions name, what their diffs changed."""
    found: list[tuple[str, int]] = []
    if context.last_failure:
        hits = [(m.start(), m.group(1), int(m.group(2))) for m in _TRACEBACK.finditer(context.last_failure)]
        hits += [(m.start(), m.group(1), int(m.group(2))) for m in _SHORT.finditer(context.last_failure)]
        for _, name, line in sorted(hits, reverse=True):  # the innermost frame is printed last
            path = _surface_path(context, name)
            if path is not None:
                found.append((path, line))
    for record in reversed(list(context.history[1:])[-10:]):
        for m in _MENTION.finditer(record.description):
            path = _surface_path(context, m.group(1))
            if path is not None:
                found.append((path, int(m.group(2))))
    found += _diff_lines(context)
    return list(dict.fromkeys(found))


def _surface_path(context: ProposalContext, name: str) -> str | None:
    name = name.replace("\\", "/")
    for path in context.files:
        if name == path or name.endswith("/" + path):
            return path
    return None


def _diff_lines(context: ProposalContext) -> list[tuple[str, int]]:
    """The middle of each hunk recent trials changed, from their commits (a kept one's new side,
    any other's old side: the lines of the best it started from)."""
    found: list[tuple[str, int]] = []
    recent = [r for r in list(context.history[1:])[-DIFF_TRIALS:] if r.commit]
    for record in reversed(recent):
        try:
            proc = subprocess.run(
                ["git", "diff", "-U0", "--no-color", "--no-ext-diff", "--relative", f"{record.commit}^", record.commit, "--"],
                cwd=context.workdir, env={**os.environ, **context.git_env}, capture_output=True, text=True, timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return found
        if proc.returncode != 0:
            continue
        path: str | None = None
        for line in proc.stdout.splitlines():
            if line.startswith("+++ "):
                path = line[6:] if line.startswith("+++ b/") else None
                path = path if path in context.files else None
            elif path is not None and (m := _HUNK.match(line)):
                start, count = (m.group(3), m.group(4)) if record.status == "keep" else (m.group(1), m.group(2))
                n = 1 if count is None else int(count)
                found.append((path, int(start) + max(0, n - 1) // 2))
    return found
