"""``litellm:MODEL``: any model litellm can reach (OpenAI, Anthropic, Gemini, OpenRouter, or a
local OpenAI-compatible server such as vLLM, Ollama or llama.cpp) as the mutation operator.

Each trial is one request: the prompt (policy, task, files, history, last failure) fitted
to the model's context window, and one answer parsed into a proposal. For a model that calls
functions (``autoresearch_agent_tools``), a trial is instead a bounded conversation in which the
model reads and searches the files with tools before it answers (:mod:`.conversation`); a server
that rejects tools gets the one-shot prompt for the rest of the run. Transport failures
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
from .conversation import Caps, ToolsRejected, converse, instructions
from .correction import Corrected, Unanswered, correct, fitted
from .endpoint import Endpoint, Served, connect_problem, endpoint_for, probe_model, served_models, served_window, unreachable
from .fitting import Fitted, fit_prompt
from .prompt import Prompt
from .tools import Toolbox

DEFAULT_PROMPT_TOKENS = defaults.PROMPT_TOKENS
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
        tools: str = defaults.AGENT_TOOLS,
        turns: int = defaults.AGENT_TURNS,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        corrections: int = defaults.AGENT_CORRECTIONS,
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
        self.tools = tools == "on" or (tools == "auto" and self._supports_tools())
        self.corrections = corrections
        self.tokens_given = max_tokens is not None
        self.caps = Caps(
            turns=turns,
            tokens=max_tokens or defaults.AGENT_TOKENS_FACTOR * self.prompt_budget,
            seconds=max(max_seconds or defaults.AGENT_SECONDS, timeout),
        )

    def _supports_tools(self) -> bool:
        """Whether litellm knows the model calls functions (an unknown local model: no)."""
        try:
            return bool(self.litellm.supports_function_calling(self.model))
        except Exception:
            return False

    def describe(self) -> str:
        where = f" at {self.api_base}" if self.api_base else ""
        tools = f", tools: up to {self.caps.turns} requests a trial" if self.tools else ""
        return f"litellm {self.model}{where} (prompt budget {self.prompt_budget} tokens{self.budget_source}{tools})"

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
        return probe_model(self.litellm, self.model, self.bare_model, endpoint, served.names, self.api_base, self.model_args)

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
        if not self.tokens_given:  # the conversation's cap follows the budget it was derived from
            self.caps = dataclasses.replace(self.caps, tokens=defaults.AGENT_TOKENS_FACTOR * self.prompt_budget)
        self.budget_source = f": the server's {window}-token context window less {room} for the answer"

    def _model_limit(self) -> int | None:
        try:
            info = self.litellm.get_model_info(self.model)
        except Exception:  # an unmapped (e.g. local) model
            return None
        return info.get("max_input_tokens") or info.get("max_tokens")

    # -- prompts -----------------------------------------------------------------------

    def _tokens(self, prompt: Prompt) -> int:
        return self._count(prompt.messages())

    def _count(self, messages: list[dict[str, Any]]) -> int:
        try:
            return int(self.litellm.token_counter(model=self.model, messages=messages))
        except Exception:  # a conservative estimate when no tokenizer applies
            return sum(len(str(m.get("content") or "")) for m in messages) // 3

    def _fit(self, context: ProposalContext) -> Fitted:
        """The fullest prompt within the budget (:mod:`.fitting`): the history shortened, the
        context files dropped, then the largest files outlined with excerpts; never an error."""
        from ..proposals.answers import ANSWER_FORMAT

        return fit_prompt(context, ANSWER_FORMAT, self._tokens, self.prompt_budget)

    def _messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The request's messages for this model's provider, shaped for its prompt cache: the
        unchanged part of every trial's prompt is then billed at the cached rate (:mod:`.caching`)."""
        from .caching import messages_for

        return messages_for(prompt, self.provider, self.bare_model)

    # -- the request -------------------------------------------------------------------

    def propose(self, context: ProposalContext) -> Proposal:
        if self.tools:
            proposal = self._converse(context)
            if proposal is not None:
                return proposal
        fitted = self._fit(context)
        prompt = fitted.prompt
        try:
            response = self._complete(prompt, context)
        except self.litellm.ContextWindowExceededError:
            # the model's real window is smaller than the budget: learn it, and fit again
            self.prompt_budget = max(1000, min(self.prompt_budget, fitted.tokens) * 2 // 3)
            context.note(
                f"the model's context window was exceeded; shortening the history and the prompt budget to "
                f"{self.prompt_budget} tokens (trial {context.trial})"
            )
            prompt = self._fit(context).prompt
            try:
                response = self._complete(prompt, context)
            except self.litellm.ContextWindowExceededError:
                return Proposal(
                    "(prompt too large)", prompt=prompt.text(),
                    error=f"the prompt does not fit {self.model}'s context window even outlined: set autoresearch_max_prompt_tokens below the model's real limit",
                )
        if response is None:
            return Proposal("(refused)", error="the model's content filter refused the request", prompt=prompt.text())
        corrected = self._correct(context, prompt, response.choices[0].message.content or "", self._usage(response))
        transcript = None if corrected.transcript is None else {"model": self.model, **corrected.transcript}
        return dataclasses.replace(corrected.proposal, usage=corrected.usage, prompt=prompt.text(), answer=corrected.answer, transcript=transcript)

    def _correct(self, context: ProposalContext, prompt: Prompt, answer: str, usage: Usage) -> Corrected:
        """The answer, or the model's corrected answer when the loop would refuse it (:mod:`.correction`)."""
        from ..proposals.answers import ANSWER_FORMAT, parse_answer

        def send(messages: list[dict[str, Any]]) -> Any:
            try:
                response = self._complete(messages, context)
            except self.litellm.ContextWindowExceededError:
                raise Unanswered("the correction did not fit the model's context window") from None
            if response is None:
                raise Unanswered("the model's content filter refused the correction")
            return response

        def refit(budget: int) -> list[dict[str, Any]]:
            return self._messages(fit_prompt(context, ANSWER_FORMAT, self._tokens, budget).prompt)

        def parse(text: str) -> Proposal:
            return parse_answer(text, context.files, context.read)

        return correct(
            answer, parse(answer), refusal=context.refusal, parse=parse, usage_of=self._usage,
            ask=fitted(self._messages(prompt), self.prompt_budget, self._count, refit, send),
            usage=usage, tries=self.corrections, paths=sorted(context.files),
        )

    def _converse(self, context: ProposalContext) -> Proposal | None:
        """The trial as a conversation with tools; None when the server rejects tools, after
        which this agent sends the one-shot prompt for the rest of the run."""

        prompt = self._fit(context).prompt
        prompt = dataclasses.replace(prompt, system=f"{prompt.system.rstrip()}\n\n{instructions(self.caps)}")
        first = prompt.text()

        def request(messages: list[dict[str, Any]], extra: dict[str, Any], seconds: float) -> Any:
            return self._complete(messages, context, timeout=min(self.timeout, seconds), **extra)

        try:
            outcome = converse(self._messages(prompt), Toolbox(context), self.caps, request, self._usage)
        except ToolsRejected as exc:
            self.tools = False
            context.note(f"{self.model} rejects tool calls ({exc}): one prompt and one answer per trial from now on")
            return None
        except self.litellm.ContextWindowExceededError:
            return Proposal(
                "(no answer)",
                error=f"the conversation outgrew {self.model}'s context window: lower autoresearch_agent_tokens",
                prompt=first,
            )
        transcript = {"model": self.model, **outcome.transcript}
        if outcome.answer is None or outcome.error is not None:
            return Proposal("(no answer)", error=outcome.error, answer=outcome.answer, usage=outcome.usage, prompt=first, transcript=transcript)
        corrected = self._correct(context, prompt, outcome.answer, outcome.usage)
        if corrected.transcript is not None:
            transcript["correction"] = corrected.transcript
        return dataclasses.replace(corrected.proposal, answer=corrected.answer, usage=corrected.usage, prompt=first, transcript=transcript)

    def _usage(self, response: Any) -> Usage:
        from .caching import usage_of

        return usage_of(response, self.litellm)

    def _complete(self, prompt: Prompt | list[dict[str, Any]], context: ProposalContext, timeout: float | None = None, **extra: Any) -> Any:
        """One completion of a prompt (or of a conversation's messages, with ``extra`` arguments
        such as tools), retrying transport failures with backoff; None if the content filter refused.
        A request with tools that the server rejects for them raises :class:`ToolsRejected`."""
        messages = self._messages(prompt) if isinstance(prompt, Prompt) else prompt
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
                    messages=messages,
                    api_base=self.api_base,
                    timeout=self.timeout if timeout is None else timeout,
                    num_retries=0,
                    max_retries=0,
                    **{**self.model_args, **extra},
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
                if extra.get("tools") and _names_tools(exc):
                    raise ToolsRejected(_message(exc)) from None
                raise AgentError(f"{self.model} rejected the request: {_message(exc)}") from None


def _message(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", exc)).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _names_tools(exc: BaseException) -> bool:
    """Whether a 400 is about the request's tools (a server without function calling)."""
    text = str(getattr(exc, "message", exc)).lower()
    return any(word in text for word in ("tool", "function"))


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
