"""One trial as a bounded conversation: the model calls tools (:mod:`.tools`), then answers with edits.

A model that reads what it needs can work on a surface larger than its prompt, but a
conversation left alone can run for ever and cost without limit. So it is capped per trial on
requests (turns), tokens (prompt and completion of all its requests) and seconds. When the next
request would pass a cap, it is the last: it offers no tools and tells the model to answer now.
A model that still calls a tool then has given no answer, and the trial is invalid with a reason
naming the cap.

A tool call that cannot be carried out (arguments that are not JSON, an unknown tool, a missing
argument, a path the rules refuse) is answered with a tool result that explains the error, and
the conversation goes on.

Some servers never show the model a tool result (llama-cpp-python's ``chatml-function-calling``
format renders no ``tool`` message), and a small model then asks for the same call again and
again, or goes on writing calls as text when told to answer, copying its own earlier turns. So a
turn that only repeats earlier calls ends the tool phase too, and the last request is always
*condensed*: the opening messages (the cacheable prefix), then everything the calls returned as
plain text, and the request to answer, with no tool-call turns to copy.

Everything is kept for the trial's record: the messages, each tool call
and result, and each request's usage.

Nothing here knows litellm: the agent passes the request (its retries included) and the reading
of a response's usage.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import time
from collections.abc import Callable
from typing import Any

from ..core.records import Usage
from .tools import NAMES, READ_LINES, SCHEMAS, Toolbox

#: one request: (messages, extra completion arguments, seconds it may take) -> the response, or
#: None when the provider's content filter refused it
Request = Callable[[list[dict[str, Any]], dict[str, Any], float], Any]

#: the setting behind each cap, named in the reason a conversation ended without an answer
CAP_SETTINGS = {"turns": "autoresearch_agent_turns", "tokens": "autoresearch_agent_tokens", "seconds": "autoresearch_agent_seconds"}


@dataclasses.dataclass(frozen=True)
class Caps:
    """What one trial's conversation may use."""

    turns: int
    tokens: int
    seconds: float


class ToolsRejected(Exception):
    """The server refuses requests that define tools (it was started without function calling)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a conversation ended: with the model's answer, or with the reason there is none."""

    answer: str | None
    error: str | None
    usage: Usage
    transcript: dict[str, Any]


def instructions(caps: Caps) -> str:
    """The system prompt's part on tools: what they do, the caps, and how the conversation ends.
    The same in every trial, so the system prompt stays a cacheable prefix."""
    return (
        "## Tools\n\n"
        "Before you answer you may call tools on the mutable files and the read-only context files "
        "(no other file can be read):\n\n"
        "- list(): the files, with their line counts;\n"
        f"- read(path, start_line, end_line): a file's lines as exact text, at most {READ_LINES} lines per call: "
        "copy SEARCH text from it exactly;\n"
        "- search(pattern, path): lines matching a regular expression, as path:line: text.\n\n"
        f"The conversation may take at most {caps.turns} requests, {caps.tokens} tokens and {caps.seconds:g} seconds; "
        "the last request allows no tool calls. End it with your answer: a message without tool calls, in the "
        "answer format above, holding your edits."
    )


def last_call(cap: str) -> str:
    """What ends the last request: why it is the last, and what to answer."""
    why = "you asked again for what you were given" if cap == "repeat" else f"its {cap} are almost used up"
    return (
        f"No more tool calls: this is the conversation's last request ({why}). "
        "Answer now with your change as SEARCH/REPLACE blocks, in the answer format."
    )


#: the reason a conversation ends when the provider's content filter refuses a request
FILTERED = "the model's content filter refused the request"

#: what the model is told after an empty reply to a request that offered tools
EMPTY_REPLY = "Your reply was empty. Answer now, without tool calls: your change as SEARCH/REPLACE blocks, in the answer format."


def condensed(opening: list[dict[str, Any]], results: dict[str, str], cap: str) -> list[dict[str, Any]]:
    """The last request: the opening messages, what the tool calls returned (each distinct call
    once, in order) as text, and why this request is the last and what to answer."""
    shown = "".join(f"### {call}\n{result}\n\n" for call, result in results.items())
    told = f"What your tool calls returned:\n\n{shown}" if results else ""
    return [*opening, {"role": "user", "content": told + last_call(cap)}]


def written_call(content: str | None) -> bool:
    """Whether a reply writes a tool call as text (``functions.list:\n{ }``) instead of answering."""
    return re.match(r"\s*functions\.\w+:", content or "") is not None


def converse(
    messages: list[dict[str, Any]],
    toolbox: Toolbox,
    caps: Caps,
    request: Request,
    usage_of: Callable[[Any], Usage],
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run the conversation that starts with ``messages`` until the model answers or a cap ends it."""
    messages = list(messages)
    started = clock()
    deadline = started + caps.seconds
    used = Usage()
    requests: list[dict[str, Any]] = []
    longest = 0.0
    final: str | None = None  # the cap that makes the next request the last
    opening = list(messages)
    results: dict[str, str] = {}  # each distinct call ("read(...)") -> what it returned

    def ended(answer: str | None, error: str | None) -> Outcome:
        transcript = {
            "version": 1,
            "tools": list(NAMES),
            "caps": dataclasses.asdict(caps),
            "messages": copy.deepcopy(messages),
            "requests": requests,
            "usage": dataclasses.asdict(used),
            "seconds": round(clock() - started, 3),
            "ended": "answer" if error is None else error,
        }
        return Outcome(answer, error, used, transcript)

    def send(sent: list[dict[str, Any]], extra: dict[str, Any], seconds: float, **record: Any) -> tuple[Any, list[Any], Usage] | None:
        """One request: its message, tool calls and usage, counted and recorded; None when the
        provider's content filter refused it."""
        nonlocal used, longest
        began = clock()
        response = request(sent, extra, seconds)
        took = clock() - began
        longest = max(longest, took)
        if response is None:
            return None
        usage = usage_of(response)
        used = add(used, usage)
        message = response.choices[0].message
        calls = list(getattr(message, "tool_calls", None) or [])
        requests.append({**record, "seconds": round(took, 3), "usage": dataclasses.asdict(usage), "tool_calls": len(calls)})
        return message, calls, usage

    def last_request(turn: int, cap: str, remaining: float) -> Outcome:
        """The last request, condensed (see the module's docstring)."""
        sent = condensed(opening, results, cap)
        messages.append({**sent[-1], "condensed": True})  # the transcript says what this request held
        if (got := send(sent, {}, remaining, turn=turn, condensed=True)) is None:
            return ended(None, FILTERED)
        message, calls, _ = got
        content = message.content or ""
        messages.append({"role": "assistant", "content": content})
        if calls or written_call(content):
            why = "it asked again for what it was given" if cap == "repeat" else f"the cap on {cap}, {CAP_SETTINGS[cap]}, was reached"
            return ended(content or None, f"the model called tools on the conversation's last request instead of answering ({why} after {turn} requests)")
        return ended(content, None)

    for turn in range(1, caps.turns + 1):
        if final is None and turn == caps.turns:
            final = "turns"
        remaining = deadline - clock()
        if remaining <= 0:
            return ended(None, f"the conversation took its {caps.seconds:g} seconds ({CAP_SETTINGS['seconds']}) without an answer")
        if final is not None:
            return last_request(turn, final, remaining)
        if (got := send(messages, {"tools": SCHEMAS, "tool_choice": "auto"}, remaining, turn=turn)) is None:
            return ended(None, FILTERED)
        message, calls, usage = got
        named = None if calls else lost_call(message.content)
        empty = not (calls or named or (message.content or "").strip())
        if empty:  # llama-cpp-python's function-calling format allows no text beside tools: ask with tools off
            messages.append({"role": "user", "content": EMPTY_REPLY})
        if named or empty:  # asked for that tool by name, such a server sends the arguments
            choice = "none" if empty else {"type": "function", "function": {"name": named}}
            extra = {"tools": SCHEMAS, "tool_choice": choice}
            if (got := send(messages, extra, max(deadline - clock(), 1.0), turn=turn, asked_for=named or "answer")) is None:
                return ended(None, FILTERED)
            message, calls, usage = got
        if not calls:
            messages.append({"role": "assistant", "content": message.content or ""})
            return ended(message.content or "", None)
        entries = [_call_entry(call, turn, i) for i, call in enumerate(calls)]
        # content "" rather than null: chat templates that read every message's content (llama-cpp-python's) fail on null
        messages.append({"role": "assistant", "content": message.content or "", "tool_calls": entries})
        added = errors = 0
        repeats = True
        for entry in entries:
            name, arguments = entry["function"]["name"], entry["function"]["arguments"]
            result, failed = toolbox.call(name, arguments)
            messages.append({"role": "tool", "tool_call_id": entry["id"], "content": result})
            key = f"{name}({_arguments_text(arguments)})"
            repeats = repeats and key in results
            results.setdefault(key, result)
            added += len(result)
            errors += failed
        requests[-1]["tool_errors"] = errors
        if repeats:  # it did not see the results, or does not use them: ask for the answer, condensed
            final = "repeat"
            continue
        # the next request carries this one's prompt, its completion and the tool results
        estimate = usage.prompt_tokens + usage.completion_tokens + added // 3
        if tokens(used) + estimate > caps.tokens:
            final = "tokens"
        elif deadline - clock() < longest:
            final = "seconds"
    raise AssertionError("unreachable: the last turn always ends the conversation")


def lost_call(content: str | None) -> str | None:
    """The tool a reply names without calling it: ``functions.read:`` and nothing more, as
    llama-cpp-python's ``chatml-function-calling`` format answers when the model chooses a tool
    itself (the server ends the text at the colon and drops the arguments)."""
    match = re.fullmatch(r"\s*functions\.(\w+):?\s*", content or "")
    return match.group(1) if match and match.group(1) in NAMES else None


def tokens(usage: Usage) -> int:
    return usage.prompt_tokens + usage.completion_tokens


def add(total: Usage, more: Usage) -> Usage:
    """Two requests' usage summed, field by field (an unknown cost counts as none)."""
    values = {}
    for field in dataclasses.fields(Usage):
        a, b = getattr(total, field.name), getattr(more, field.name)
        values[field.name] = b if a is None else a if b is None else a + b
    return Usage(**values)


def _arguments_text(arguments: str) -> str:
    """A call's arguments as one line, the same for the same arguments however they were spaced."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return " ".join(str(arguments).split())
    if isinstance(parsed, dict):
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in parsed.items())
    return json.dumps(parsed)


def _call_entry(call: Any, turn: int, index: int) -> dict[str, Any]:
    """A tool call as the next request carries it back (an id made up where the server gave none)."""
    function = getattr(call, "function", None)
    arguments = getattr(function, "arguments", None) or ""
    if not isinstance(arguments, str):  # a provider that hands them over parsed
        arguments = json.dumps(arguments, default=str)
    return {
        "id": getattr(call, "id", None) or f"call_{turn}_{index}",
        "type": "function",
        "function": {"name": str(getattr(function, "name", "") or ""), "arguments": arguments},
    }
