"""The built-in ``pytest_autoresearch_make_agent``: agent specs to agents.

Registered ``trylast`` by the driver, so a plugin that knows a spec answers first. Each agent
module is imported only when its spec is asked for (litellm's import alone takes seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..settings import SETTINGS_KEY
from .base import Agent, AgentError


@pytest.hookimpl(trylast=True)
def pytest_autoresearch_make_agent(config: pytest.Config, spec: str) -> Agent | None:
    name, _, arg = spec.partition(":")
    if name == "mutate":
        from .mutate import MutateAgent

        try:
            seed = int(arg) if arg else 0
        except ValueError:
            raise pytest.UsageError(f"autoresearch: agent 'mutate:SEED' needs an integer seed, got {arg!r}") from None
        return MutateAgent(seed=seed)
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
