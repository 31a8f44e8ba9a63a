"""Where a ``litellm:`` agent's model server is, whether it answers, and what a failure to reach
it is called.

A mistyped ``autoresearch_api_base`` or a server that is not running used to show up only after
the baseline, as "InternalServerError" retried for ten minutes. This module lets the agent check
the endpoint with one cheap request before anything runs, and name a dead one the way a person
would ("connection refused to 127.0.0.1:9"). It also asks a local server how large a context
window it was started with (:func:`served_window`), so that the prompt budget fits it. Stdlib only (``socket``, ``urllib``): it must not
wait for litellm's import to say that nothing listens.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import urllib.request
from typing import Any
from urllib.parse import urlparse

#: seconds for the connect and for the models list before the baseline
PROBE_TIMEOUT = 10.0

#: where litellm sends a provider's requests when no api_base is given (the common hosted ones)
HOSTED = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "openrouter": "https://openrouter.ai/api/v1",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "deepseek": "https://api.deepseek.com",
}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    url: str
    host: str
    port: int
    given: bool  # named by the user (autoresearch_api_base, OPENAI_API_BASE) rather than the provider's own

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def endpoint_for(provider: str, api_base: str | None) -> Endpoint | None:
    """The server a model's requests go to, or None when it is not known here."""
    given = bool(api_base)
    if not api_base and provider == "openai":
        api_base = os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
        given = bool(api_base)
    url = api_base or HOSTED.get(provider)
    if not url:
        return None
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        return None
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return None
    return Endpoint(url=url.rstrip("/"), host=parsed.hostname, port=port, given=given)


def unreachable(exc: BaseException, endpoint: Endpoint | None) -> str | None:
    """"connection refused to HOST:PORT" (or "cannot resolve HOST") when ``exc`` (or what caused
    it) is a refused connection or a name that does not resolve; None for anything else."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused to {endpoint.address}" if endpoint else "connection refused by the model endpoint"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host {endpoint.host!r}" if endpoint else "cannot resolve the model endpoint's host"
        cause = cause.__cause__ or cause.__context__
    return None


def _proxied(endpoint: Endpoint) -> bool:
    return bool(urllib.request.getproxies()) and not urllib.request.proxy_bypass(endpoint.host)


def connect_problem(endpoint: Endpoint, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why nothing answers at the endpoint's host and port, or None if a connection opens."""
    if _proxied(endpoint):
        return None  # the proxy makes the connection; what it says comes back on the request
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve the host {endpoint.host!r}"
    except ConnectionRefusedError:
        return f"connection refused to {endpoint.address}"
    except TimeoutError:
        return f"no answer from {endpoint.address} within {timeout:.0f}s"
    except OSError as exc:
        return f"cannot connect to {endpoint.address}: {exc.strerror or exc}"


def _get_json(url: str, api_key: str | None, timeout: float) -> object:
    """The JSON a GET returns, or None on any failure (no such route, another format, an error)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read(4 << 20))
    except (OSError, ValueError):  # HTTPError and URLError are OSErrors
        return None


@dataclasses.dataclass(frozen=True)
class Served:
    """What a server's models list says: each model's entry as sent."""

    entries: list[dict[str, object]]

    @property
    def names(self) -> list[str]:
        return [n for n in map(_name, self.entries) if n and n != "None"]

    def entry(self, model: str) -> dict[str, object] | None:
        """The entry for ``model``; a server listing one model serves it under any name (llama.cpp)."""
        mine = [e for e in self.entries if lists([_name(e)], model)]
        return mine[0] if mine else self.entries[0] if len(self.entries) == 1 else None


def _name(entry: dict[str, object]) -> str:
    return str(entry.get("id") or entry.get("name") or entry.get("model"))


def served_models(endpoint: Endpoint, provider: str, api_key: str | None, timeout: float = PROBE_TIMEOUT) -> Served | None:
    """The models the server lists (OpenAI's ``/models``, Ollama's ``/api/tags``), or None when
    it lists none (no such endpoint, another format, an error): then nothing is known."""
    path = "/api/tags" if provider in ("ollama", "ollama_chat") else "/models"
    payload = _get_json(endpoint.url + path, api_key, timeout)
    entries = payload.get("data") if isinstance(payload, dict) else None
    if entries is None and isinstance(payload, dict):
        entries = payload.get("models")
    return Served([e for e in entries if isinstance(e, dict)]) if isinstance(entries, list) else None


#: where servers put the context window they run with: vLLM's ``max_model_len``, OpenRouter's and
#: LM Studio's ``context_length`` / ``loaded_context_length``, llama.cpp's ``n_ctx`` (under
#: ``default_generation_settings`` in its ``/props``). Not ``n_ctx_train``: a server may run with a
#: smaller window than the model was trained for.
WINDOW_KEYS = ("loaded_context_length", "max_model_len", "n_ctx", "context_length", "context_window", "max_context_length")


def _window_in(data: object) -> int | None:
    if not isinstance(data, dict):
        return None
    for key in WINDOW_KEYS:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    for nested in ("meta", "default_generation_settings"):
        if (found := _window_in(data.get(nested))) is not None:
            return found
    return None


def served_window(
    endpoint: Endpoint, served: Served, model: str, api_key: str | None, timeout: float = PROBE_TIMEOUT
) -> int | None:
    """The context window in tokens the server runs ``model`` with, or None when it does not say.

    Read from the model's entry in the models list; for llama.cpp's own server (its entries are
    ``owned_by: llamacpp``) from ``GET /props`` at its root. llama-cpp-python's server reports
    none: its window is the ``--n_ctx`` it was started with."""
    entry = served.entry(model)
    if entry is None:
        return None
    if (window := _window_in(entry)) is not None:
        return window
    if entry.get("owned_by") == "llamacpp":
        return _window_in(_get_json(endpoint.url.removesuffix("/v1") + "/props", api_key, timeout))
    return None


def lists(names: list[str], model: str) -> bool:
    """Whether a server listing ``names`` serves ``model`` (Ollama's ``:latest`` tag implied)."""
    return model in names or f"{model}:latest" in names or any(n.removesuffix(":latest") == model for n in names)


def probe_model(litellm: Any, model: str, bare_model: str, endpoint: Endpoint, names: list[str], api_base: str | None, model_args: dict[str, object]) -> str | None:
    """Why the server does not serve ``model``, or None. Only when it lists other models is the
    model asked for one token, since some servers (llama.cpp) answer for any name."""
    if lists(names, bare_model):
        return None
    try:
        litellm.completion(
            model=model,
            messages=[{"role": "user", "content": "Reply with one word."}],
            api_base=api_base,
            timeout=PROBE_TIMEOUT,
            num_retries=0,
            max_retries=0,
            **{**model_args, "max_tokens": 1},
        )
    except litellm.NotFoundError:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        return (
            f"the server at {endpoint.url} does not serve the model {bare_model!r} "
            f"(it lists: {shown or 'none'}): name one of those in --autoresearch-agent=litellm:..."
        )
    except Exception:  # anything else is for the first trial's request to tell
        return None
    return None
