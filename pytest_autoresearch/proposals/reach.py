"""What a candidate's own code reaches for: the static look at a would-be keep's added lines.

Code in one process can always reach that process's state, so a score can be forged from inside
the trial (the recorder's code objects, the test item's properties, a plugin registered through
``gc``, a patched builtin, the result channel found by walking objects). A kept commit is code
you will run later, unsandboxed: a candidate whose *added lines* reach for the plugin's or
pytest's internals, ``gc``'s object walks, ``ctypes``, ``sys.modules``, ``builtins``, frames and
code objects, ``/proc``, raw file descriptors, git, ``.git``, the run folder, or code built at run
time (``exec``, ``eval``, ``__import__``: what would hide the rest from this look) is parked for
review (``review``) instead of kept, with what it reached for. ``gc.collect()`` and the like,
which training code calls, are not flagged; neither is anything a library does (only the
candidate's own lines are read).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping

#: (what it reaches for, the pattern of an added line that reaches for it)
REACHES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (what, re.compile(pattern))
    for what, pattern in (
        ("gc's object walks", r"\bget_(?:objects|referrers|referents)\b"),
        ("ctypes", r"\bctypes\b|\bcffi\b"),
        ("sys.modules", r"\bsys\s*\.\s*modules\b|\bimportlib\s*\.\s*reload\b"),
        ("builtins", r"\b__builtins__\b|\bbuiltins\b"),
        ("frames", r"\b_getframe\b|\b_current_frames\b|\bf_(?:back|globals|locals|builtins)\b|\btb_frame\b|\bgi_frame\b|\bcurrentframe\b|\binspect\s*\.\s*(?:stack|getouterframes|getinnerframes)\b"),
        ("code objects", r"\b__code__\b|\bco_(?:code|consts|names)\b|\bCodeType\b|\bFunctionType\b|\b__closure__\b"),
        ("tracing hooks", r"\bset(?:trace|profile)\b|\baddaudithook\b"),
        ("/proc", r"/proc\b"),
        ("raw file descriptors", r"\bos\s*\.\s*(?:write|writev|dup2?|fdopen|pwrite|sendfile)\s*\(|\bopen\s*\(\s*\d+\b"),
        ("the plugin's or pytest's internals", r"\bpytest_autoresearch\b(?!\.torch\b)|\b_pytest\b|\bpluggy\b|\bpluginmanager\b|\buser_properties\b|\bconfig\s*\.\s*stash\b|\bStashKey\b"),
        ("git or .git", r"""["']git["']|\bgit\s+[a-z-]+|(?<![\w-])\.git\b|\bGIT_[A-Z_]+\b|\bgitpython\b|\bimport\s+git\b"""),
        ("dynamic code", r"(?<![\w.])(?:exec|eval|compile|__import__)\s*\(|\bimport_module\s*\(|\bmarshal\b|\bb64decode\b"),
        ("the run folder or the trial's markers", r"(?<![\w-])\.autoresearch\b|\b(?:PYTEST_)?AUTORESEARCH_\w+"),
    )
)


def added_lines(old: str | None, new: str | None) -> list[tuple[int, str]]:
    """The lines of ``new`` that ``old`` does not have, with their line numbers (1-based)."""
    if new is None:
        return []
    before, after = (old or "").splitlines(), new.splitlines()
    out = []
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            out += [(j + 1, after[j]) for j in range(j1, j2)]
    return out


def reached(changes: Mapping[str, str | None], parent: Callable[[str], str | None]) -> list[str]:
    """What the candidate's added lines reach for, one entry per kind: ``"gc's object walks
    (model.py:12: objs = gc.get_objects())"``; empty when nothing is."""
    found: dict[str, str] = {}
    for path in sorted(changes):
        for number, line in added_lines(parent(path), changes[path]):
            code = line.split("#", 1)[0] if not line.lstrip().startswith(("'", '"')) else line
            for what, pattern in REACHES:
                if what not in found and pattern.search(code):
                    shown = line.strip()
                    found[what] = f"{what} ({path}:{number}: {shown[:80] + ('...' if len(shown) > 80 else '')})"
    return [found[what] for what, _ in REACHES if what in found]
