"""A change to the surface's settings as text: each new value written the way the source writes
literals, spliced into its file in place of the old literal, and described for the log.

Shared by the offline operators (``mutate``, ``optuna``), so that both write ``LR = 0.05`` and
``LOSS = "huber"`` the same way and describe it as ``model.py:12 LR 0.1 -> 0.05``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .targets import Target, Value

#: One target and the value it gets.
Change = tuple[Target, Value]


def render(target: Target, value: Value) -> str:
    """Source text for ``value`` in ``target``'s place: :func:`format_value`, and a string in the
    quotes the literal had (double quotes where it was no string)."""
    if not isinstance(value, str):
        return format_value(value)
    quote = "'" if isinstance(target.value, str) and target.text.lstrip("uU")[:1] == "'" else '"'
    text = repr(value)
    if text[0] == quote:
        return text
    inner = text[1:-1].replace("\\'", "'") if text[0] == "'" else text[1:-1]
    return quote + inner.replace(quote, "\\" + quote) + quote


def format_value(value: Value) -> str:
    """Source text for a value; a float always shows '.' so every format reads it as a float."""
    if isinstance(value, (int, str)):  # bools too
        return repr(value)
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def apply_changes(files: Mapping[str, str], changes: Sequence[Change]) -> dict[str, str]:
    """The new text of each changed file: only the literals' spans are replaced."""
    out: dict[str, str] = {}
    for target, new in sorted(changes, key=lambda c: (c[0].path, -c[0].start)):
        text = out.get(target.path, files[target.path])
        out[target.path] = text[: target.start] + render(target, new) + text[target.end :]
    return out


def describe_changes(changes: Sequence[Change]) -> str:
    """``model.py:12 LR 0.1 -> 0.05, model.py:14 DEPTH 2 -> 3``: where, what, from and to."""
    ordered = sorted(changes, key=lambda c: (c[0].path, c[0].start))
    return ", ".join(f"{t.place} {''.join(t.text.split())} -> {render(t, new)}" for t, new in ordered)
