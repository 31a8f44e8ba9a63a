"""A local server's context window sets the litellm agent's prompt budget.

A llama.cpp, vLLM or LM Studio server fixes its window when it starts; a prompt over it fails
every trial. When the server reports its window and the user set no
``autoresearch_max_prompt_tokens``, the budget is that window less room for the answer. The real
litellm client against the scripted server of ``llm_server.py``, reporting the window each way.
"""

from __future__ import annotations

import os

import pytest
from helpers import Project
from llm_server import answer, scripted_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download in this process
pytest.importorskip("litellm")  # at collection: see test_llm_agent.py

EDIT = "Steeper.\n\nmodel.py\n<<<<<<< SEARCH\nSCALE = 1.0\n=======\nSCALE = {}\n>>>>>>> REPLACE\n"


def _loop(project: Project, url: str, *args: str, timeout: float = 300) -> pytest.RunResult:
    return project.loop(
        "--autoresearch-agent=litellm:openai/test-model",
        f"--autoresearch-api-base={url}",
        *args,
        env={"OPENAI_API_KEY": "sk-test"},
        timeout=timeout,
    )


def _header(result: pytest.RunResult) -> str:
    return next(line for line in result.stdout.lines if line.startswith("autoresearch: surface "))


def test_a_window_in_the_models_list_sets_the_budget_and_every_prompt_fits_it(project: Project) -> None:
    import litellm

    project.init()
    worse = [answer(EDIT.format(v)) for v in (0.5, 0.6, 0.7)]
    with scripted_server(*worse, models=["test-model"], model_info={"max_model_len": 1500}) as server:
        result = _loop(project, server.url, "--autoresearch-trials=3", timeout=400)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "prompt budget 1125 tokens: the server's 1500-token context window less 375 for the answer" in _header(result)
    assert project.statuses()[1:] == ["discard"] * 3
    sizes = [litellm.token_counter(model="openai/test-model", messages=r["body"]["messages"]) for r in server.requests]
    assert max(sizes) <= 1125
    assert "are summarised" in server.prompts()[-1]  # the third prompt in full would not fit


def test_llama_cpps_server_reports_its_window_at_props(project: Project) -> None:
    project.init()
    llamacpp = {"owned_by": "llamacpp", "meta": {"n_ctx_train": 32768}}  # the training size is not the window
    with scripted_server(
        answer("pong", 5, 1), answer(EDIT.format(2.5)), models=["qwen.gguf"], model_info=llamacpp, props={"default_generation_settings": {"n_ctx": 8192}}
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_model_args=max_tokens=1000")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "prompt budget 7192 tokens: the server's 8192-token context window less 1000 for the answer" in _header(result)
    assert server.gets == ["/v1/models", "/props"]
    assert project.statuses() == ["baseline", "keep"]


def test_the_users_budget_is_kept_and_a_server_that_reports_no_window_keeps_the_default(project: Project) -> None:
    project.init()
    with scripted_server(answer(EDIT.format(2.5)), models=["test-model"], model_info={"max_model_len": 4096}) as server:
        given = _loop(project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_max_prompt_tokens=3000", "--autoresearch-tag=a")
    assert given.ret == 0, given.stdout.str() + given.stderr.str()
    assert _header(given).endswith("(prompt budget 3000 tokens); stops at 1 trial")
    with scripted_server(answer(EDIT.format(2.5)), models=["test-model"], model_info={"owned_by": "me"}) as server:
        silent = _loop(project, server.url, "--autoresearch-trials=1", "--autoresearch-tag=b")
    assert silent.ret == 0, silent.stdout.str() + silent.stderr.str()
    assert "(prompt budget 32000 tokens; the server does not report its context window: set autoresearch_max_prompt_tokens to fit it)" in _header(silent)
    assert server.gets == ["/v1/models"]  # llama-cpp-python's server ("owned_by": "me") has no /props


# -- the piece, without a loop ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "props", "window"),
    [
        ({"max_model_len": 16384}, None, 16384),  # vLLM
        ({"context_length": 4096, "loaded_context_length": 2048}, None, 2048),  # LM Studio: the loaded window
        ({"owned_by": "llamacpp"}, {"default_generation_settings": {"n_ctx": 4096}, "n_ctx": 8192}, 8192),
        ({"owned_by": "llamacpp"}, None, None),  # an older llama.cpp without /props
        ({"max_model_len": "16384"}, None, None),  # not a number of tokens
        ({"owned_by": "me"}, {"n_ctx": 8192}, None),  # not llama.cpp's own server: /props is not asked
    ],
)
def test_where_a_server_reports_its_window(info: dict[str, object], props: dict[str, object] | None, window: int | None) -> None:
    from pytest_autoresearch.agents.endpoint import endpoint_for, served_models, served_window

    with scripted_server(models=["test-model"], model_info=info, props=props) as server:
        endpoint = endpoint_for("openai", server.url)
        assert endpoint is not None
        served = served_models(endpoint, "openai", None)
        assert served is not None and served.names == ["test-model"]
        assert served_window(endpoint, served, "test-model", None) == window
