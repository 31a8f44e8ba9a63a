"""Text that goes into one TSV cell and one terminal line: descriptions, reasons, failures.

Whatever an agent or a trial wrote reaches the terminal, results.tsv, commit messages and the
next prompt only through :func:`neutralise` (:func:`one_line` calls it): control characters
(C0, DEL, C1: ESC sequences, OSC titles, BEL, NUL, carriage returns) and the bidirectional
controls that reorder what a reader sees (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C)
become visible escapes such as ``\\x1b`` and ``\\u202e``. :class:`Redactor` replaces secret
values the driver knows (its scrubbed environment variables) wherever trial text shows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import AnyStr

_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt|Failed|Warning)\b.*:")

# C0 but \t and \n, DEL, C1, the bidi controls, lone surrogates (which no UTF-8 file can hold)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

#: Secret values shorter than this are not redacted (they would match ordinary text).
MIN_SECRET = 8


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escape_one_line(match: re.Match[str]) -> str:
    return " " if match.group() in "\t\n\r\x0b\x0c" else _escape(match)


def neutralise(text: str, newlines: bool = True) -> str:
    """``text`` with every control and bidi character as a visible escape (``\\x1b``, ``\\u202e``).

    ``newlines=True`` keeps ``\\n`` and ``\\t`` (and reads ``\\r\\n`` as ``\\n``), for multi-line
    failure texts; ``newlines=False`` makes them (and ``\\r``, ``\\v``, ``\\f``) spaces, for one
    cell or one terminal line.
    """
    text = str(text)
    if newlines:
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        return _UNSAFE.sub(_escape, text)
    return _UNSAFE_ONE_LINE.sub(_escape_one_line, text)


def is_clean(text: str, newlines: bool = True) -> bool:
    """Whether :func:`neutralise` would leave ``text`` as it is (``newlines=False``: no tab or newline either)."""
    return (_UNSAFE if newlines else _UNSAFE_ONE_LINE).search(str(text)) is None


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``1 trial``, ``2 trials``, ``0 trials``: a count with its noun in the right number."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so a description or reason fits one TSV cell and one terminal line;
    control and bidi characters become visible escapes (:func:`neutralise`)."""
    text = neutralise(" ".join(str(text).split()), newlines=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def crash_line(failure: str) -> str:
    """The line of a failure text that says what went wrong: the exception line pytest marks
    with ``E`` (the last one: chained and collection errors end with the cause), else the
    first ``E`` line, else the last line."""
    lines = [line.strip() for line in failure.splitlines() if line.strip()]
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    exceptions = [line for line in marked if _EXCEPTION_LINE.match(line)]
    if exceptions:
        return exceptions[-1]
    if marked:
        return marked[0]
    return lines[-1] if lines else ""


def _prefixes(value: str) -> str:
    """A pattern for the first :data:`MIN_SECRET` to 64 characters of ``value``, longest first."""
    head, rest = value[:MIN_SECRET], value[MIN_SECRET:64]
    pattern = ""
    for char in reversed(rest):
        pattern = f"(?:{re.escape(char)}{pattern})?"
    return re.escape(head) + pattern


class Redactor:
    """Replaces known secret values (``{value: the variable it came from}``) with
    ``<redacted NAME>``, in text and in bytes, and a secret's beginning cut short by an
    ellipsis (pytest's short summary cuts its lines to the terminal's width); values under
    :data:`MIN_SECRET` characters are left alone. Falsy when it has nothing to redact, so
    callers can skip the work."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        secrets = secrets or {}
        values = sorted({v for v in secrets if len(v) >= MIN_SECRET}, key=lambda v: (-len(v), v))
        self._names = {v: secrets[v] for v in values}
        # every match begins with one of these: a quick test before the pattern's slower scan
        self._heads = {v[:MIN_SECRET] for v in values}
        self._byte_heads = {h.encode("utf-8", "surrogateescape") for h in self._heads}
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        if values:
            whole = "|".join(map(re.escape, values))
            pattern = f"{whole}|(?:{'|'.join(map(_prefixes, values))})(?=\\.\\.\\.|\u2026)"
            self._text = re.compile(pattern)
            self._bytes = re.compile(pattern.encode("utf-8", "surrogateescape"))

    def __bool__(self) -> bool:
        return self._text is not None

    def _name(self, found: str) -> str:
        return self._names.get(found) or next(n for v, n in self._names.items() if v.startswith(found))

    def text(self, text: str) -> str:
        if self._text is None:
            return text
        return _sub(text, self._text, self._heads, lambda found: f"<redacted {self._name(found)}>")

    def tail(self, text: str) -> str:
        """:meth:`text` for the tail of a longer text, which may begin inside a secret: a
        secret's last four characters or more at its very start are redacted too."""
        text = self.text(text)
        for value, name in self._names.items():
            for cut in range(1, len(value) - 3):
                if text.startswith(value[cut:]):
                    return f"<redacted {name}>" + text[len(value) - cut :]
        return text

    def bytes(self, data: bytes) -> bytes:
        if self._bytes is None:
            return data
        name = lambda found: self._name(found.decode("utf-8", "surrogateescape"))
        return _sub(data, self._bytes, self._byte_heads, lambda found: f"<redacted {name(found)}>".encode())


def _sub(data: AnyStr, pattern: re.Pattern[AnyStr], heads: set[AnyStr], replace: Callable[[AnyStr], AnyStr]) -> AnyStr:
    """``pattern.sub`` for a pattern whose every match begins with one of ``heads``: the heads
    are found first (a fast search), so a long text without them costs one scan per head."""
    spots = set()
    for head in heads:
        at = data.find(head)
        while at != -1:
            spots.add(at)
            at = data.find(head, at + 1)
    if not spots:
        return data
    out, last = [], 0
    for at in sorted(spots):
        if at < last:
            continue
        match = pattern.match(data, at)
        if match:
            out += [data[last:at], replace(match.group())]
            last = match.end()
    out.append(data[last:])
    return data[:0].join(out)
