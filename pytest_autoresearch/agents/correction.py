"""A second try within the trial: an answer that does not apply goes back to the model with its reason.

A small model's answer often fails for a reason it can fix once told: the answer format's
example path copied, a SEARCH line not quite in the file, a block cut off, prose and no edit, a
frozen file edited. A trial spent on such an answer teaches the loop nothing, and the reason
reaches the model only in the next trial's prompt, among other news. aider answers the same
failure the same way: it sends the failed edit's error back, up to three times.

So when an answer is refused by the checks the loop itself will make (parsing, then the
surface's rules: :func:`pytest_autoresearch.proposals.proposal.check`), the model gets the same
prompt again (a prompt cache serves it) followed by the reason and how to write the edit, and
answers again, at most ``autoresearch_agent_corrections`` times (default 1; 0 turns this off).
The failed answer itself is not sent back: a small model shown its own answer writes it again
word for word (Qwen2.5-Coder 1.5B did), while the reason quotes what was wrong. Only answers that
do not apply are sent back: one that applies and then scores worse is the loop's to judge.
Every request's usage counts toward the trial's, and the whole exchange (each answer, each
reason) is kept as the trial's transcript (``trials/NNN.conversation.json``).

Nothing here knows litellm or how a prompt is fitted: the agent passes the functions that send
a request, count its tokens and fit a prompt to a budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..core.records import Usage
from ..proposals.proposal import Proposal
from .conversation import add

#: one correction request: the message after the opening ones -> the response; it raises
#: :class:`Unanswered` when none comes back (a content filter, a context window too small)
Ask = Callable[[list[dict[str, Any]]], Any]


class Unanswered(Exception):
    """A correction request got no answer; the message says why, for the trial's record."""

#: the longest failed answer kept whole in the transcript; a longer one is cut in the middle
SHOWN_CHARS = 6000


@dataclasses.dataclass(frozen=True)
class Corrected:
    """The answer that ends the trial's exchange, its proposal, all requests' usage, the record."""

    answer: str
    proposal: Proposal
    usage: Usage
    transcript: dict[str, Any] | None  # None when no correction was asked for


def telling(reason: str, paths: Sequence[str]) -> str:
    """What the model reads after an answer that does not apply: why, and how to write it again."""
    where = ", ".join(paths) if 0 < len(paths) <= 4 else "as this prompt's file headings give it"
    return (
        f"Your answer to this prompt could not be applied: {reason.rstrip('.')}.\n\n"
        "Write your change again, in the answer format: one short paragraph, then SEARCH/REPLACE blocks. "
        f"Put the file's real path ({where}) alone on the line above each <<<<<<< SEARCH, copy the SEARCH "
        "lines exactly as the file shows them, and make the REPLACE lines differ from them."
    )


def shown(answer: str) -> str:
    """A failed answer as the transcript keeps it: whole, or cut in the middle when very long."""
    if len(answer) <= SHOWN_CHARS:
        return answer
    half = SHOWN_CHARS // 2
    return f"{answer[:half]}\n[... {len(answer) - SHOWN_CHARS} characters left out ...]\n{answer[-half:]}"


def fitted(
    opening: list[dict[str, Any]],
    budget: int,
    count: Callable[[list[dict[str, Any]]], int],
    refit: Callable[[int], list[dict[str, Any]]],
    send: Callable[[list[dict[str, Any]]], Any],
) -> Ask:
    """The correction request: the first request's opening messages (a prompt cache serves them
    again) and the correction's own; when the answer sent back would take the request past the
    prompt budget, the opening is fitted anew to what is left (``refit``)."""

    def ask(tail: list[dict[str, Any]]) -> Any:
        sent = opening
        if count(opening + tail) > budget:
            sent = refit(max(1000, budget - count(tail)))
        return send(sent + tail)

    return ask


def correct(
    answer: str,
    proposal: Proposal,
    *,
    refusal: Callable[[Proposal], str | None],
    parse: Callable[[str], Proposal],
    ask: Ask,
    usage_of: Callable[[Any], Usage],
    usage: Usage,
    tries: int,
    paths: Sequence[str],
    clock: Callable[[], float] = time.monotonic,
) -> Corrected:
    """Send ``answer`` back with the reason it does not apply, up to ``tries`` times, until an
    answer applies; the last answer and its proposal end the exchange either way."""
    reason = refusal(proposal)
    if reason is None or tries <= 0:
        return Corrected(answer, proposal, usage, None)
    started = clock()
    history: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    unanswered: str | None = None
    for attempt in range(1, tries + 1):
        told = {"role": "user", "content": telling(reason, paths)}
        history += [{"role": "assistant", "content": shown(answer)}, told]
        began = clock()
        try:
            response = ask([told])
        except Unanswered as exc:
            unanswered = str(exc)
            break
        more = usage_of(response)
        usage = add(usage, more)
        answer = response.choices[0].message.content or ""
        proposal = parse(answer)
        requests.append({"correction": attempt, "refused": reason, "seconds": round(clock() - began, 3), "usage": dataclasses.asdict(more)})
        reason = refusal(proposal)
        if reason is None:
            break
    if unanswered is None:  # otherwise the record ends with the request that went unanswered
        history.append({"role": "assistant", "content": answer})
    ended = unanswered or ("answer" if reason is None else f"still refused: {reason}")
    transcript = {
        "version": 1,
        "kind": "correction",
        "messages": history,  # each answer and the reason sent after it (the answers are not sent)
        "requests": requests,
        "usage": dataclasses.asdict(usage),
        "seconds": round(clock() - started, 3),
        "ended": ended,
    }
    return Corrected(answer, proposal, usage, transcript)
