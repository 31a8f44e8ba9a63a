"""The litellm agent's endpoint: checked with one cheap request before the baseline, named
plainly when it is dead, and given up on within seconds when it goes away during a run.

The real litellm client against the scripted server of ``llm_server.py`` and against ports and
hosts where nothing listens."""

from __future__ import annotations

import os
import socket
import time

import pytest
from helpers import Project
from llm_server import answer, error, scripted_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download in this process
pytest.importorskip("litellm")  # at collection: see test_llm_agent.py

EDIT = "Steeper.\n\nmodel.py\n<<<<<<< SEARCH\nSCALE = 1.0\n=======\nSCALE = 2.5\n>>>>>>> REPLACE\n"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loop(project: Project, url: str, *args: str) -> pytest.RunResult:
    return project.loop(
        "--autoresearch-agent=litellm:openai/test-model", f"--autoresearch-api-base={url}", *args, env={"OPENAI_API_KEY": "sk-test"}
    )


def _nothing_created(project: Project) -> None:
    assert not (project.path / ".autoresearch").exists()
    assert project.git("branch", "--list", "autoresearch/*") == ""


def test_a_refused_connection_stops_before_the_baseline_with_one_clear_line(project: Project) -> None:
    project.init()
    port = closed_port()
    start = time.monotonic()
    result = _loop(project, f"http://127.0.0.1:{port}/v1", "--autoresearch-trials=3")
    assert result.ret != 0
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: autoresearch: agent litellm:openai/test-model: connection refused to 127.0.0.1:{port} "
        f"(the model endpoint http://127.0.0.1:{port}/v1): start the model server or correct autoresearch_api_base"
    ]
    assert "InternalServerError" not in result.stdout.str() + result.stderr.str()
    assert "trial   0" not in result.stdout.str()  # no baseline ran
    _nothing_created(project)
    assert time.monotonic() - start < 60  # litellm's import is most of it; no retries


def test_a_host_that_does_not_resolve_is_named(project: Project) -> None:
    project.init()
    result = _loop(project, "http://no-such-model-host.invalid:8080/v1", "--autoresearch-trials=1")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["ERROR: autoresearch: agent litellm:openai/test-model: cannot resolve the host 'no-such-model-host.invalid' (the model endpoint *"]
    )
    _nothing_created(project)


def test_a_model_the_server_does_not_serve_stops_before_the_baseline(project: Project) -> None:
    project.init()
    with scripted_server(error(404, "The model `test-model` does not exist.", "model_not_found"), models=["qwen2.5-coder:7b", "llama3"]) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        [
            f"ERROR: autoresearch: agent litellm:openai/test-model: the server at {server.url} does not serve the model "
            "'test-model' (it lists: qwen2.5-coder:7b, llama3): name one of those in --autoresearch-agent=litellm:..."
        ]
    )
    assert server.gets == ["/v1/models"]
    assert [r["body"]["max_tokens"] for r in server.requests] == [1]  # one one-token request to be sure
    _nothing_created(project)


def test_a_server_that_lists_another_name_but_answers_runs(project: Project) -> None:
    """llama.cpp lists its model file's name and answers for any model name: not an error."""
    project.init()
    with scripted_server(answer("pong", 5, 1), answer(EDIT), models=["qwen2.5-coder-7b-q4_k_m.gguf"]) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "keep"]
    assert [r["body"].get("max_tokens") for r in server.requests] == [1, 2048]  # a local server's answers are bounded


def test_a_listed_model_costs_no_completion_before_the_baseline(project: Project) -> None:
    project.init()
    with scripted_server(answer(EDIT), models=["test-model"]) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert server.gets == ["/v1/models"] and len(server.requests) == 1
    assert project.statuses() == ["baseline", "keep"]
    assert "model calls: 100 tokens in, 50 out, cost unknown" in result.stdout.str().splitlines()  # as the README says


def test_an_endpoint_that_goes_away_during_the_run_is_given_up_on_in_seconds(project: Project) -> None:
    project.init()
    with scripted_server(models=["test-model"], close_after_models=True) as server:
        port = server.httpd.server_address[1]
        result = _loop(project, server.url, "--autoresearch-trials=5")
    assert result.ret != 0
    out = result.stdout.str()
    assert f"connection refused to 127.0.0.1:{port}; retrying in " in out
    assert "InternalServerError" not in out + result.stderr.str()
    result.stderr.fnmatch_lines(
        [f"ERROR: autoresearch: *connection refused to 127.0.0.1:{port}: the model endpoint stopped answering (4 attempts in *s)"]
    )
    assert project.statuses() == ["baseline"]  # the log keeps what finished
    assert server.requests == []
    assert result.duration < 90  # the baseline and four quick attempts, not 10 minutes of backoff


# -- the pieces, without a loop ---------------------------------------------------------------


def test_where_requests_go(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_autoresearch.agents.endpoint import endpoint_for

    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    local = endpoint_for("openai", "http://127.0.0.1:8080/v1/")
    assert local and (local.url, local.address, local.given) == ("http://127.0.0.1:8080/v1", "127.0.0.1:8080", True)
    hosted = endpoint_for("anthropic", None)
    assert hosted and (hosted.address, hosted.given) == ("api.anthropic.com:443", False)
    assert endpoint_for("some-provider-without-a-known-base", None) is None
    assert endpoint_for("openai", "http://[::1]:11434").address == "[::1]:11434"  # type: ignore[union-attr]
    monkeypatch.setenv("OPENAI_API_BASE", "http://gpu-box:8000/v1")
    env = endpoint_for("openai", None)
    assert env and (env.address, env.given) == ("gpu-box:8000", True)


def test_a_refusal_is_named_through_the_exceptions_that_wrap_it() -> None:
    from pytest_autoresearch.agents.endpoint import endpoint_for, unreachable

    where = endpoint_for("openai", "http://127.0.0.1:9/v1")
    try:
        try:
            socket.create_connection(("127.0.0.1", closed_port()), timeout=5)
        except ConnectionRefusedError as refused:
            raise RuntimeError("InternalServerError: Connection error.") from refused
    except RuntimeError as wrapped:
        assert unreachable(wrapped, where) == "connection refused to 127.0.0.1:9"
    assert unreachable(RuntimeError("503 overloaded"), where) is None
    assert unreachable(socket.gaierror(-2, "Name or service not known"), where) == "cannot resolve the host '127.0.0.1'"


def test_a_listed_model_is_found_with_ollamas_latest_tag() -> None:
    from pytest_autoresearch.agents.endpoint import lists

    assert lists(["qwen2.5-coder:latest"], "qwen2.5-coder")
    assert lists(["qwen2.5-coder:7b", "llama3"], "qwen2.5-coder:7b")
    assert not lists(["qwen2.5-coder:7b"], "qwen2.5-coder")
