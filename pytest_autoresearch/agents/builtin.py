"""The built-in ``pytest_autoresearch_make_agent``: agent specs to agents.

Registered ``trylast`` by the driver, so a plugin that knows a spec answers first. Each agent
module is imported only when its spec is asked for (litellm's import alone takes seconds, and
optuna's is an optional extra).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..settings import SETTINGS_KEY, Settings
from .base import Agent, AgentError

#: The samplers ``optuna:NAME`` knows; ``optuna`` alone is the first.
SAMPLERS = ("tpe", "cmaes", "random")
OPTUNA_FORMS = "'optuna', 'optuna:SEED', 'optuna:tpe', 'optuna:cmaes' or 'optuna:random', each with an optional ':SEED' (an integer)"


@pytest.hookimpl(trylast=True)
def pytest_autoresearch_make_agent(config: pytest.Config, spec: str) -> Agent | None:
    name, _, arg = spec.partition(":")
    settings: Settings | None = config.stash.get(SETTINGS_KEY, None)
    choices = settings.choices if settings is not None else {}
    if name == "mutate":
        from .mutate import MutateAgent

        try:
            seed = int(arg) if arg else 0
        except ValueError:
            raise pytest.UsageError(f"autoresearch: agent 'mutate:SEED' needs an integer seed, got {arg!r}") from None
        return MutateAgent(seed=seed, choices=choices)
    if name == "optuna":
        sampler, seed = optuna_spec(arg)
        from .tuner import OptunaAgent

        return OptunaAgent(sampler, seed=seed, choices=choices)
    if name == "hybrid":
        return _hybrid(config, settings, arg)
    if name in ("litellm", "cmd"):
        settings = config.stash[SETTINGS_KEY]
        if not arg:
            raise pytest.UsageError(f"autoresearch: agent '{name}:...' needs a {'model' if name == 'litellm' else 'command'}")
        if name == "litellm":
            from .llm import LitellmAgent

            return LitellmAgent(
                arg,
                api_base=settings.api_base,
                model_args=settings.model_args,
                timeout=settings.agent_timeout,
                max_prompt_tokens=settings.max_prompt_tokens,
                tools=settings.agent_tools,
                turns=settings.agent_turns,
                corrections=settings.agent_corrections,
                max_tokens=settings.agent_tokens,
                max_seconds=settings.agent_seconds,
            )
        from .command import CommandAgent

        return CommandAgent(arg, timeout=settings.agent_timeout)
    if name == "replay":
        from .replay import ReplayAgent

        if not arg:
            raise pytest.UsageError("autoresearch: agent 'replay:PATH' needs the path of a JSON Lines file")
        path = Path(config.invocation_params.dir) / arg
        if not path.is_file():
            raise pytest.UsageError(f"autoresearch: replay file {path} does not exist")
        return ReplayAgent(path)
    return None


def optuna_spec(arg: str) -> tuple[str, int]:
    """``optuna``'s argument as (sampler, seed): ``""``, ``5``, ``tpe``, ``cmaes:3``, ..."""
    parts = arg.split(":") if arg else []
    sampler = parts.pop(0) if parts and not _is_int(parts[0]) else SAMPLERS[0]
    if sampler not in SAMPLERS or len(parts) > 1 or (parts and not _is_int(parts[0])):
        raise pytest.UsageError(f"autoresearch: unknown agent 'optuna:{arg}': use {OPTUNA_FORMS}")
    return sampler, int(parts[0]) if parts else 0


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _hybrid(config: pytest.Config, settings: Settings | None, inner: str) -> Agent:
    """``hybrid:SPEC``: the agent SPEC (a model, usually) every Nth trial, the tuner between."""
    from ..core import defaults
    from .hybrid import HybridAgent

    if not inner or inner.partition(":")[0] == "hybrid":
        raise pytest.UsageError("autoresearch: agent 'hybrid:SPEC' needs the spec of another agent, e.g. hybrid:litellm:openai/gpt-5-mini")
    every = settings.hybrid_every if settings is not None else defaults.HYBRID_EVERY
    tuner_spec = settings.hybrid_tuner if settings is not None else defaults.HYBRID_TUNER
    return HybridAgent(_made(config, inner), _made(config, tuner_spec), every=every, tuner_spec=tuner_spec)


def _made(config: pytest.Config, spec: str) -> Agent:
    """The agent for ``spec`` as the hook makes it (a plugin's first); this module's when the
    caller passed no plugin manager (a benchmark's in-process loop)."""
    hook = getattr(config, "hook", None)
    agent = hook.pytest_autoresearch_make_agent(config=config, spec=spec) if hook is not None else pytest_autoresearch_make_agent(config, spec)
    if agent is None:
        raise pytest.UsageError(f"autoresearch: unknown agent {spec!r} in a hybrid")
    return agent
