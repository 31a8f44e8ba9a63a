"""Prompt caching: the request's messages shaped so that a provider serves the part of the prompt
that does not change between trials (the policy, the read-only context, the unchanged surface)
from its cache, and the cached tokens it reports read back for the log.

Two kinds of provider cache a prompt's prefix. Anthropic's Claude (directly, on Bedrock, on Vertex
AI, through OpenRouter) caches only up to an explicit ``cache_control`` marker, so the system part
and the stable block each carry one and the recent part (the task, the log, the last failure) none.
OpenAI, DeepSeek, Gemini (implicitly), xAI and local servers with a prefix cache (llama.cpp, vLLM)
cache whatever prefix two requests share, so they get plain messages with the stable part first,
which is the order :class:`~.prompt.Prompt` already has; a marker there is at best dropped and at
worst refused (a local OpenAI-compatible server may reject an unknown content field).

Caching changes what a request costs, never what the model is shown: both shapes carry the same
text in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.records import Usage
from .prompt import Prompt

#: Anthropic's only cache type (five minutes, renewed on each hit): trials a few minutes apart hit it
EPHEMERAL: Mapping[str, str] = {"type": "ephemeral"}
#: providers (as litellm names them) that host Claude and take its cache markers, translated by litellm
CLAUDE_HOSTS = frozenset({"bedrock", "bedrock_converse", "vertex_ai", "vertex_ai_beta", "openrouter"})


def explicit_markers(provider: str, model: str = "") -> bool:
    """Whether this provider caches only what a ``cache_control`` marker closes: Anthropic, and
    Claude where another provider hosts it (elsewhere a marker means something else, or nothing:
    on Gemini it would create a stored context, which is billed by the hour)."""
    return provider == "anthropic" or (provider in CLAUDE_HOSTS and "claude" in model.lower())


def _text(text: str, *, cached: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cached:
        block["cache_control"] = dict(EPHEMERAL)
    return block


def messages_for(prompt: Prompt, provider: str, model: str = "") -> list[dict[str, Any]]:
    """The request's first messages for ``provider`` (and the ``model`` it hosts): the system part
    and the stable block marked as cacheable where the provider needs markers; plain messages,
    stable part first, where it caches a shared prefix by itself."""
    if not explicit_markers(provider, model):
        return prompt.messages()
    user = [_text(prompt.stable, cached=True)] if prompt.stable else []
    # the blocks join as Prompt.user joins them: the model reads the same text either way
    user.append(_text(f"\n\n{prompt.recent}" if prompt.stable else prompt.recent, cached=False))
    return [{"role": "system", "content": [_text(prompt.system, cached=True)]}, {"role": "user", "content": user}]


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def cached_tokens(usage: Any) -> int:
    """The prompt tokens a response says were read from the provider's cache (0 when it says
    nothing): OpenAI's ``prompt_tokens_details.cached_tokens``, into which litellm also maps
    Anthropic's ``cache_read_input_tokens`` and DeepSeek's ``prompt_cache_hit_tokens``; those two
    read directly when the details are missing. Tokens written to the cache are not counted: they
    were sent in full (and cost more)."""
    if usage is None:
        return 0
    for value in (
        _field(_field(usage, "prompt_tokens_details"), "cached_tokens"),
        _field(usage, "cache_read_input_tokens"),
        _field(usage, "prompt_cache_hit_tokens"),
    ):
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    return 0


def usage_of(response: Any, litellm: Any) -> Usage:
    """Tokens and cost of one response; litellm's cost prices cached tokens at their rate."""
    usage = getattr(response, "usage", None)
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # the model is not in litellm's price list
            cost = None
    return Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost=float(cost) if cost is not None else None,
        cached_tokens=cached_tokens(usage),
    )
