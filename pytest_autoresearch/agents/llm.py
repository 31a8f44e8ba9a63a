"""``litellm:MODEL``: any model litellm can reach (OpenAI, Anthropic, Gemini, OpenRouter, or a
local OpenAI-compatible server such as vLLM, Ollama or llama.cpp) as the mutation operator.

Each trial is one request: the prompt (policy, task, files, history, last failure) fitted
to the model's context window, and one answer parsed into a proposal. Transport failures
(429, 5xx, timeouts, dropped connections) are retried here, with backoff, and never become
trials; litellm's and the SDK's own retries are switched off so attempts do not multiply.
Authentication and unknown-model errors stop the loop at once, and so does an endpoint that
refuses connections after a few quick tries. Before the baseline, :meth:`LitellmAgent.preflight`
checks the endpoint with one cheap request (:mod:`.endpoint`).

litellm takes seconds to import and is an optional extra, so it is imported only here.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Mapping
from typing import Any

from ..core import defaults
from ..proposals.proposal import Proposal
from ..core.records import Usage
from .base import Agent, AgentError, ProposalContext
from .endpoint import PROBE_TIMEOUT, Endpoint, Served, connect_problem, endpoint_for, lists, served_models, served_window, unreachable
from .prompt import Prompt, render_prompt

DEFAULT_PROMPT_TOKENS = defaults.PROMPT_TOKENS
#: history lengths tried, longest first, when a prompt does not fit the context window
HISTORY_STEPS = (None, 100, 40, 15, 5, 0)
#: tokens of a server's context window kept for the answer when the request sets no ``max_tokens``
#: (at most a quarter of the window)
ANSWER_TOKENS = 2048
MAX_TRANSPORT_WAIT = 600.0
#: attempts before a refused connection (or a host that does not resolve) ends the run: a server
#: that is down does not come back within a backoff, unlike one that sends 429 or 5xx
REFUSED_ATTEMPTS = 4


def import_litellm() -> Any:
    """Import litellm without letting it reach for the network or chatter on the terminal."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        from ..install_hint import pip_install

        raise AgentError(f"the litellm agent needs litellm: {pip_install('llm')}") from None
    litellm.suppress_debug_info = True
    return litellm


class LitellmAgent(Agent):
    name = "litellm"
    reports_usage = True

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        model_args: dict[str, object] | None = None,
        timeout: float = defaults.AGENT_TIMEOUT,
        max_prompt_tokens: int | None = None,
        max_transport_wait: float = MAX_TRANSPORT_WAIT,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.model_args = dict(model_args or {})
        self.timeout = timeout
        self.max_transport_wait = max_transport_wait
        self.litellm = import_litellm()
        try:
            self.bare_model, provider, _, served_at = self.litellm.get_llm_provider(model=model, api_base=api_base)
        except Exception as exc:  # litellm raises its own BadRequestError for unknown providers
            raise AgentError(
                f"litellm does not know the model {model!r}: give it as provider/model, e.g. "
                "openai/gpt-5-mini, anthropic/claude-sonnet-4-5, ollama/qwen2.5-coder "
                f"({type(exc).__name__})"
            ) from None
        self.provider = provider
        # litellm names the base of a local provider (Ollama's localhost:11434) when none is given
        self.endpoint = endpoint_for(provider, api_base or served_at)
        self.budget_given = max_prompt_tokens is not None  # the user's budget is never second-guessed
        self.prompt_budget = max_prompt_tokens or self._model_limit() or DEFAULT_PROMPT_TOKENS
        self.budget_source = ""  # where a budget learned from the server came from, for describe()
        if provider == "openai" and api_base and "api_key" not in self.model_args and not os.environ.get("OPENAI_API_KEY"):
            # a local OpenAI-compatible server needs no key, but the OpenAI client insists on one
            self.model_args["api_key"] = "no-key"

    def describe(self) -> str:
        where = f" at {self.api_base}" if self.api_base else ""
        return f"litellm {self.model}{where} (prompt budget {self.prompt_budget} tokens{self.budget_source})"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        """Why this agent cannot work, found with one cheap request before the baseline, or None:
        a dead, mistyped or wrong-model endpoint stops the run there with one clear line instead
        of after it, retried for minutes.

        A connection that is refused, a host that does not resolve, or no answer is a reason. A
        server named by ``api_base`` is asked for its models; only when it lists others is the
        model asked for one token, since some servers (llama.cpp) answer for any name.

        A local server's context window is fixed when it starts; when the server reports it and
        the user set no ``autoresearch_max_prompt_tokens``, the prompt budget becomes that window
        less room for the answer, so no prompt overflows it."""
        if self.endpoint is None:
            return None
        endpoint = self.endpoint
        problem = connect_problem(endpoint)
        if problem:
            fix = "start the model server or correct autoresearch_api_base" if endpoint.given else "check the network"
            return f"{problem} (the model endpoint {endpoint.url}): {fix}"
        if not endpoint.given:
            return None
        key = self.model_args.get("api_key") or (os.environ.get("OPENAI_API_KEY") if self.provider == "openai" else None)
        served = served_models(endpoint, self.provider, str(key) if key else None)
        if served is None:
            return None
        if not self.budget_given:
            self._fit_window(endpoint, served, str(key) if key else None)
        names = served.names
        if lists(names, self.bare_model):
            return None
        try:
            self.litellm.completion(
                model=self.model,
                messages=[{"role": "user", "content": "Reply with one word."}],
                api_base=self.api_base,
                timeout=PROBE_TIMEOUT,
                num_retries=0,
                max_retries=0,
                **{**self.model_args, "max_tokens": 1},
            )
        except self.litellm.NotFoundError:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            return (
                f"the server at {endpoint.url} does not serve the model {self.bare_model!r} "
                f"(it lists: {shown or 'none'}): name one of those in --autoresearch-agent=litellm:..."
            )
        except Exception:  # anything else is for the first trial's request to tell
            return None
        return None

    def _fit_window(self, endpoint: Endpoint, served: Served, key: str | None) -> None:
        """Fit the prompt budget to the context window the server reports, if it reports one."""
        window = served_window(endpoint, served, self.bare_model, key)
        asked = self.model_args.get("max_tokens") or self.model_args.get("max_completion_tokens")
        local = endpoint.host in ("127.0.0.1", "localhost", "::1")
        if local and not asked:  # a small local model can ramble to the end of its window, for many minutes
            self.model_args["max_tokens"] = min(ANSWER_TOKENS, window // 4) if window else ANSWER_TOKENS
        if window is None:
            if local:  # a local server's window is often small
                self.budget_source = "; the server does not report its context window: set autoresearch_max_prompt_tokens to fit it"
            return
        room = asked if isinstance(asked, int) and asked > 0 else min(ANSWER_TOKENS, window // 4)
        room = min(room, window // 2)  # a max_tokens near the window would leave no room for a prompt
        self.prompt_budget = window - room
        self.budget_source = f": the server's {window}-token context window less {room} for the answer"

    def _model_limit(self) -> int | None:
        try:
            info = self.litellm.get_model_info(self.model)
        except Exception:  # an unmapped (e.g. local) model
            return None
        return info.get("max_input_tokens") or info.get("max_tokens")

    # -- prompts -----------------------------------------------------------------------

    def _tokens(self, prompt: Prompt) -> int:
        try:
            return int(self.litellm.token_counter(model=self.model, messages=prompt.messages()))
        except Exception:
            return len(prompt.text()) // 3  # a conservative estimate when no tokenizer applies

    def _fit(self, context: ProposalContext) -> tuple[Prompt, int | None, bool]:
        """The fullest prompt within the budget: history shortened first, then context files
        dropped. Returns (prompt, history limit, context files included)."""
        from ..proposals.answers import ANSWER_FORMAT

        for limit in HISTORY_STEPS:
            prompt = render_prompt(context, ANSWER_FORMAT, history_limit=limit)
            if self._tokens(prompt) <= self.prompt_budget:
                return prompt, limit, True
        prompt = render_prompt(context, ANSWER_FORMAT, history_limit=0, include_context_files=False)
        size = self._tokens(prompt)
        if size > self.prompt_budget:
            raise AgentError(
                f"the prompt takes {size} tokens even without history and context files, more than the "
                f"budget of {self.prompt_budget}: narrow autoresearch_mutable or raise autoresearch_max_prompt_tokens"
            )
        return prompt, 0, False

    def _messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The request's messages for this model's provider."""
        return prompt.messages()

    # -- the request -------------------------------------------------------------------

    def propose(self, context: ProposalContext) -> Proposal:
        from ..proposals.answers import ANSWER_FORMAT, parse_answer

        prompt, limit, with_context = self._fit(context)
        try:
            response = self._complete(prompt, context)
        except self.litellm.ContextWindowExceededError:
            shown = len(context.history) - 1 if limit is None else min(limit, len(context.history) - 1)
            if shown == 0 and not with_context:
                raise AgentError(f"{self.model}'s context window is too small for the mutable files") from None
            context.note(f"the model's context window was exceeded; shortening the history (trial {context.trial})")
            prompt = render_prompt(context, ANSWER_FORMAT, history_limit=shown // 4, include_context_files=shown > 0)
            try:
                response = self._complete(prompt, context)
            except self.litellm.ContextWindowExceededError:
                raise AgentError(
                    f"the prompt does not fit {self.model}'s context window even with the history shortened; "
                    "set autoresearch_max_prompt_tokens below the model's real limit"
                ) from None
        if response is None:
            return Proposal("(refused)", error="the model's content filter refused the request", prompt=prompt.text())
        text = response.choices[0].message.content or ""
        proposal = parse_answer(text, context.files, context.read)
        return dataclasses.replace(proposal, usage=self._usage(response), prompt=prompt.text(), answer=text)

    def _usage(self, response: Any) -> Usage:
        usage = getattr(response, "usage", None)
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if cost is None:
            try:
                cost = self.litellm.completion_cost(completion_response=response)
            except Exception:  # the model is not in litellm's price list
                cost = None
        return Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=float(cost) if cost is not None else None,
        )

    def _complete(self, prompt: Prompt, context: ProposalContext) -> Any:
        """One completion, retrying transport failures with backoff; None if the content filter refused."""
        lit = self.litellm
        transient = (lit.RateLimitError, lit.InternalServerError, lit.ServiceUnavailableError, lit.APIConnectionError, lit.Timeout)
        fatal = (lit.AuthenticationError, lit.PermissionDeniedError, lit.NotFoundError)
        started = time.monotonic()
        deadline = started + self.max_transport_wait
        attempt = refused = 0
        while True:
            try:
                return lit.completion(
                    model=self.model,
                    messages=self._messages(prompt),
                    api_base=self.api_base,
                    timeout=self.timeout,
                    num_retries=0,
                    max_retries=0,
                    **self.model_args,
                )
            except lit.ContextWindowExceededError:
                raise
            except lit.ContentPolicyViolationError:
                return None
            except fatal as exc:
                raise AgentError(f"{type(exc).__name__} from {self.model}: {_message(exc)}") from None
            except transient as exc:
                attempt += 1
                down = unreachable(exc, self.endpoint)
                if down:
                    refused += 1
                    if refused >= REFUSED_ATTEMPTS:
                        raise AgentError(
                            f"{down}: the model endpoint stopped answering ({refused} attempts in "
                            f"{time.monotonic() - started:.0f}s)"
                        ) from None
                delay = None if down else _retry_after(exc)
                if delay is None:
                    delay = min(60.0, 0.5 * 2 ** ((refused if down else attempt) - 1)) * random.uniform(0.8, 1.2)
                what = down or f"{type(exc).__name__} from {self.model}"
                if time.monotonic() + delay > deadline:
                    raise AgentError(
                        f"the model endpoint kept failing for {self.max_transport_wait:.0f}s "
                        f"({attempt} attempts); last: {down or f'{type(exc).__name__}: {_message(exc)}'}"
                    ) from None
                context.note(f"{what}; retrying in {delay:.1f}s (attempt {attempt + 1})")
                time.sleep(delay)
            except lit.BadRequestError as exc:
                raise AgentError(f"{self.model} rejected the request: {_message(exc)}") from None


def _message(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", exc)).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return None if value is None else min(120.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None
