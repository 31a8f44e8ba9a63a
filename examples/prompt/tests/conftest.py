"""The task model for the evaluator: the scripted one on 127.0.0.1 unless a real one is named.

PROMPT_MODEL (a litellm model string) and PROMPT_API_BASE choose a real model; with neither set,
the scripted model of scripted_model.py is started for the session and answers every request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness import SCRIPTED_MODEL
from scripted_model import ScriptedModel


@pytest.fixture(scope="session")
def task_model() -> Iterator[dict]:
    """What harness.complete() needs to reach the model: its name, api base and key."""
    model, api_base = os.environ.get("PROMPT_MODEL"), os.environ.get("PROMPT_API_BASE")
    if model:  # a real model: its key comes the way litellm reads it (OPENAI_API_KEY, ...)
        yield {"model": model, "api_base": api_base, "api_key": None, "server": None}
        return
    if api_base:  # the scripted model, served elsewhere (python tests/scripted_model.py)
        yield {"model": SCRIPTED_MODEL, "api_base": api_base, "api_key": "not-needed", "server": None}
        return
    with ScriptedModel() as server:
        yield {"model": SCRIPTED_MODEL, "api_base": server.url, "api_key": "not-needed", "server": server}
