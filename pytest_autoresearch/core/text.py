"""Text that goes into one TSV cell and one terminal line: descriptions, reasons, failures."""

from __future__ import annotations

import re

_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt|Failed|Warning)\b.*:")


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so a description or reason fits one TSV cell and one terminal line."""
    text = " ".join(str(text).split())
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
