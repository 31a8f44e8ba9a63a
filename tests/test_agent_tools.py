"""The litellm agent's tool-using conversation, end to end: the real litellm client, over HTTP,
against the scripted OpenAI-compatible server on 127.0.0.1, which answers with tool calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, default_files
from llm_server import SEARCH_REPLACE, answer, delayed, error, scripted_server, tool_calls

from pytest_autoresearch.agents.conversation import EMPTY_REPLY

pytest.importorskip("litellm")  # at collection (see test_llm_agent.py)


SECRET = "holdout points the agent never sees: forty to fifty"
HOLDOUT_TEST = f'''import pytest

import model


@pytest.mark.fitness(goal="min", holdout=True)
def test_holdout_error(fitness):
    # {SECRET}
    fitness(sum((model.predict(x) - (2.5 * x + 3)) ** 2 for x in range(40, 50)) / 10)
'''


def _loop(project: Project, url: str, *args: str, tools: str = "on", model: str = "openai/test-model") -> pytest.RunResult:
    return project.loop(
        f"--autoresearch-agent=litellm:{model}",
        "-o",
        f"autoresearch_api_base={url}",
        "-o",
        f"autoresearch_agent_tools={tools}",
        *args,
        env={"OPENAI_API_KEY": "sk-test"},
    )


def _out(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def _trials(project: Project) -> Path:
    return project.path / ".autoresearch" / "t" / "trials"


def _tool_results(request: dict[str, Any]) -> dict[str, str]:
    """The tool results a request carries back for the model's last tool calls, by tool_call_id."""
    messages = request["body"]["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {m["tool_call_id"]: m["content"] for m in messages[last:] if m["role"] == "tool"}


def test_the_model_reads_a_range_then_an_edit_applies_and_is_kept(project: Project) -> None:
    project.init()
    with scripted_server(
        tool_calls(("list", {}), ("read", {"path": "model.py", "start_line": 3, "end_line": 4})),
        tool_calls(("search", {"pattern": r"def \w+", "path": None})),
        answer(SEARCH_REPLACE, 300, 80),
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_context=tests/test_fitness.py")
    assert result.ret == 0, _out(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep"]
    assert rows[1]["description"] == "The slope is too shallow; make it steeper."
    assert "SCALE = 2.5" in project.git("show", "autoresearch/t:model.py")
    # the conversation's usage is the sum of its three requests
    assert (rows[1]["tokens_in"], rows[1]["tokens_out"]) == ("500", "180")
    result.stdout.fnmatch_lines(["*litellm openai/test-model at * (prompt budget * tokens, tools: up to 8 requests a trial)*"])

    assert len(server.requests) == 3
    first = server.requests[0]["body"]
    assert [t["function"]["name"] for t in first["tools"]] == ["list", "read", "search"]
    assert first["tool_choice"] == "auto"
    assert "## Tools" in first["messages"][0]["content"] and "at most 8 requests" in first["messages"][0]["content"]
    second = server.requests[1]["body"]["messages"]
    asked = [m for m in second if m["role"] == "assistant"][0]
    assert asked["content"] == ""  # never null: some servers' chat templates read it
    calls = asked["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [("call_0_list", "list"), ("call_1_read", "read")]
    results = _tool_results(server.requests[1])
    assert results["call_0_list"] == "model.py: 8 lines, mutable\ntests/test_fitness.py: 8 lines, read-only"
    assert results["call_1_read"] == "model.py lines 3-4 of 8 (the exact text, to copy into SEARCH blocks):\nSCALE = 1.0\nOFFSET = 0\n"
    found = _tool_results(server.requests[2])["call_0_search"]
    assert found == "model.py:7: def predict(x):\ntests/test_fitness.py:7: def test_error(fitness):"

    trials = _trials(project)
    assert (trials / "001.answer.md").read_text() == SEARCH_REPLACE
    prompt = (trials / "001.prompt.md").read_text()
    assert "SCALE = 1.0" in prompt and "## Tools" in prompt
    conversation = json.loads((trials / "001.conversation.json").read_text())
    assert conversation["model"] == "openai/test-model" and conversation["ended"] == "answer"
    tool_messages = [m for m in conversation["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_0_list", "call_1_read", "call_0_search"]
    assert tool_messages[1]["content"] == results["call_1_read"]
    assert conversation["messages"][-1] == {"role": "assistant", "content": SEARCH_REPLACE}
    assert [r["usage"]["prompt_tokens"] for r in conversation["requests"]] == [100, 100, 300]
    audit = [json.loads(line) for line in (project.path / ".autoresearch" / "t" / "audit.jsonl").read_text().splitlines()]
    assert audit[0]["conversation_file"] is None
    assert audit[1]["conversation_file"] == "trials/001.conversation.json"
    assert audit[1]["conversation_sha256"] in audit[1]["files"].values()


def test_a_tool_named_without_its_arguments_is_asked_for_by_name(project: Project) -> None:
    """llama-cpp-python's function-calling format answers "functions.read:" when the model picks a
    tool, with no call and no arguments; asked for that tool by name, it sends them."""
    project.init()
    with scripted_server(
        answer("functions.read:"),
        tool_calls(("read", {"path": "model.py", "start_line": 3, "end_line": 3})),
        answer(SEARCH_REPLACE),
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep"]
    choices = [r["body"]["tool_choice"] for r in server.requests]
    assert choices == ["auto", {"type": "function", "function": {"name": "read"}}, "auto"]
    assert _tool_results(server.requests[2]) == {"call_0_read": "model.py lines 3-3 of 8 (the exact text, to copy into SEARCH blocks):\nSCALE = 1.0\n"}
    conversation = json.loads((_trials(project) / "001.conversation.json").read_text())
    assert [r.get("asked_for") for r in conversation["requests"]] == [None, "read", None]


def test_an_empty_reply_is_asked_again_with_tools_off(project: Project) -> None:
    """The same format lets the model answer only with a tool or nothing: an empty reply is
    asked once more with tools off, and that answer is the trial's."""
    project.init()
    with scripted_server(answer(""), answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep"]
    assert [r["body"].get("tool_choice") for r in server.requests] == ["auto", "none"]
    assert server.requests[1]["body"]["messages"][-1] == {"role": "user", "content": EMPTY_REPLY}


def test_malformed_tool_calls_get_an_error_result_and_the_conversation_goes_on(project: Project) -> None:
    project.init()
    with scripted_server(
        tool_calls(("read", '{"path": "model.py", "start_line": '), ("delete", {"path": "model.py"}), ("read", {"start_line": 1})),
        tool_calls(("read", {"path": "model.py", "start_line": "three"}), ("read", {"path": "model.py", "start_line": 99})),
        answer(SEARCH_REPLACE),
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep"]
    first, second = _tool_results(server.requests[1]), _tool_results(server.requests[2])
    assert first["call_0_read"].startswith("error: the arguments are not valid JSON")
    assert first["call_1_delete"] == "error: there is no tool 'delete': the tools are list, read, search"
    assert first["call_2_read"] == "error: the argument 'path' is missing"
    assert second["call_0_read"] == "error: the argument 'start_line' must be a line number, got 'three'"
    assert second["call_1_read"] == "error: model.py has 8 lines: start_line 99 is past its end"


def test_paths_outside_the_surface_and_holdout_files_are_refused_by_rule(project: Project) -> None:
    project.init({**default_files(), "tests/test_holdout.py": HOLDOUT_TEST, "notes.txt": "not for the agent\n"})
    refused = [
        ("../outside.txt", "error: '../outside.txt' is outside the repository"),
        ("/etc/passwd", "error: '/etc/passwd' is outside the repository"),
        (".git/config", "error: .git/config is inside .git, which no agent reads"),
        ("notes.txt", "error: notes.txt is neither a mutable file nor a read-only context file"),
        ("tests/test_holdout.py", "error: tests/test_holdout.py is a holdout test file: agents never see it"),
        ("missing.py", "error: there is no file missing.py"),
    ]
    with scripted_server(
        tool_calls(*[("read", {"path": path}) for path, _ in refused]),
        tool_calls(("search", {"pattern": "forty", "path": "tests/test_holdout.py"}), ("search", {"pattern": "forty"})),
        answer(SEARCH_REPLACE),
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_context=tests/*.py")
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep"]
    results = list(_tool_results(server.requests[1]).values())
    assert len(results) == len(refused)
    for got, (_, expected) in zip(results, refused):
        assert got.startswith(expected), got
    searched = list(_tool_results(server.requests[2]).values())
    assert searched == ["error: tests/test_holdout.py is a holdout test file: agents never see it", "no match for 'forty'"]
    assert "tests/test_fitness.py" in server.prompts()[0]  # the glob's other files are context
    for request in server.requests:
        assert SECRET not in json.dumps(request["body"])
    assert SECRET not in (_trials(project) / "001.conversation.json").read_text()


def test_running_out_of_turns_asks_for_the_answer_without_tools_then_the_trial_is_invalid(project: Project) -> None:
    project.init()
    reads = [("read", {"path": "model.py", "start_line": n, "end_line": n + 1}) for n in (1, 2, 3)]
    with scripted_server(*(tool_calls(read) for read in reads)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_agent_turns=3")
    assert result.ret == 0, _out(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"]
    assert "the cap on turns, autoresearch_agent_turns, was reached after 3 requests" in rows[1]["reason"]
    assert rows[1]["tokens_in"] == "300"
    assert len(server.requests) == 3
    assert [r["body"].get("tool_choice") for r in server.requests] == ["auto", "auto", None]
    # the last request offers no tools and holds no tool-call turns: the results are text in it
    last = server.requests[2]["body"]
    assert "tools" not in last and not any(m.get("tool_calls") or m["role"] == "tool" for m in last["messages"])
    told = last["messages"][-1]["content"]
    assert told.startswith('What your tool calls returned:\n\n### read(path="model.py", start_line=1, end_line=2)\n')
    assert "### read(path=\"model.py\", start_line=2, end_line=3)" in told and told.endswith(
        "No more tool calls: this is the conversation's last request (its turns are almost used up). "
        "Answer now with your change as SEARCH/REPLACE blocks, in the answer format."
    )
    conversation = json.loads((_trials(project) / "001.conversation.json").read_text())
    assert "autoresearch_agent_turns" in conversation["ended"]


def test_the_token_cap_makes_the_next_request_the_last(project: Project) -> None:
    project.init()
    read = ("read", {"path": "model.py"})
    with scripted_server(
        tool_calls(read, prompt_tokens=200),  # 250 used, and the next request would take about as many again
        answer(SEARCH_REPLACE.replace("2.5", "2.0")),
        tool_calls(read, prompt_tokens=200),
        tool_calls(read, prompt_tokens=200),  # calls a tool though told not to
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=2", "-o", "autoresearch_agent_tokens=400")
    assert result.ret == 0, _out(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "invalid"]
    assert "the cap on tokens, autoresearch_agent_tokens, was reached after 2 requests" in rows[2]["reason"]
    assert [r["body"].get("tool_choice") for r in server.requests] == ["auto", None, "auto", None]
    assert "its tokens are almost used up" in server.requests[1]["body"]["messages"][-1]["content"]


def test_the_time_cap_makes_the_next_request_the_last(project: Project) -> None:
    project.init()
    read = ("read", {"path": "model.py"})
    # the first request takes 3.5 s of the 6: too little is left for another as long, but for the last
    with scripted_server(delayed(tool_calls(read), 3.5), tool_calls(read)) as server:
        result = _loop(
            project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_agent_seconds=6", "-o", "autoresearch_agent_timeout=6"
        )
    assert result.ret == 0, _out(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"]
    assert "the cap on seconds, autoresearch_agent_seconds, was reached after 2 requests" in rows[1]["reason"]
    assert [r["body"].get("tool_choice") for r in server.requests] == ["auto", None]


def test_a_model_without_tool_support_gets_the_one_shot_prompt(project: Project) -> None:
    project.init()
    with scripted_server(answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1", tools="auto")  # litellm: test-model calls no functions
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep"]
    body = server.requests[0]["body"]
    assert "tools" not in body and "tool_choice" not in body
    assert "## Tools" not in body["messages"][0]["content"]
    assert not (_trials(project) / "001.conversation.json").exists()
    assert "tools: up to" not in result.stdout.str()


def test_a_server_rejecting_tools_gets_the_one_shot_prompt_for_the_rest_of_the_run(project: Project) -> None:
    project.init()
    rejected = error(400, "tools param requires --jinja flag", "invalid_request_error")
    with scripted_server(rejected, answer(SEARCH_REPLACE.replace("2.5", "2.0")), answer(SEARCH_REPLACE.replace("1.0", "2.0"))) as server:
        result = _loop(project, server.url, "--autoresearch-trials=2")
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep", "keep"]
    assert "tools" in server.requests[0]["body"]
    assert ["tools" in r["body"] for r in server.requests[1:]] == [False, False]
    assert "## Tools" not in server.requests[1]["body"]["messages"][0]["content"]
    notes = [line for line in result.stdout.lines if "rejects tool calls" in line]
    assert len(notes) == 1 and "one prompt and one answer per trial from now on" in notes[0]


def test_a_bad_tools_setting_is_a_usage_error(project: Project) -> None:
    project.init()
    result = _loop(project, "http://127.0.0.1:9/v1", tools="sometimes")
    assert result.ret != 0
    assert "autoresearch_agent_tools from ini autoresearch_agent_tools must be auto, on or off, got 'sometimes'" in _out(result)
    assert not (project.path / ".autoresearch").exists()


def test_a_model_that_repeats_a_call_gets_the_results_as_text_and_answers(project: Project) -> None:
    """llama-cpp-python's function-calling format shows the model no tool result, so a small model
    asks for the same read again and again: the repeat ends the tool phase, and the last request
    carries what the calls returned as text, with no tool-call turns for the model to copy."""
    project.init()
    read = ("read", {"path": "model.py"})
    with scripted_server(tool_calls(read), tool_calls(("read", '{ "path" : "model.py" }')), answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, _out(result)
    assert project.statuses() == ["baseline", "keep"]
    assert len(server.requests) == 3
    last = server.requests[2]["body"]
    assert "tools" not in last and [m["role"] for m in last["messages"]] == ["system", "user", "user"]
    told = last["messages"][-1]["content"]
    assert told.count("### read(") == 1 and "SCALE = 1.0" in told
    assert told.endswith("(you asked again for what you were given). Answer now with your change as SEARCH/REPLACE blocks, in the answer format.")
    conversation = json.loads((_trials(project) / "001.conversation.json").read_text())
    assert conversation["ended"] == "answer" and conversation["requests"][-1]["condensed"] is True


def test_a_last_request_answered_with_a_call_written_as_text_is_invalid(project: Project) -> None:
    project.init()
    read = ("read", {"path": "model.py"})
    with scripted_server(tool_calls(read), tool_calls(read), answer("functions.list:\n{ }")) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, _out(result)
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid"]
    assert "the model called tools on the conversation's last request instead of answering (it asked again for what it was given after 3 requests)" in rows[1]["reason"]
