"""An answer the loop would refuse goes back to the model once, in the same trial, with the reason:
the real litellm client against a scripted server, and the exchange's rules on their own."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from helpers import Project
from llm_server import SEARCH_REPLACE, answer, scripted_server, tool_calls

from pytest_autoresearch.agents.correction import SHOWN_CHARS, Unanswered, correct, shown
from pytest_autoresearch.core.records import Usage
from pytest_autoresearch.proposals.proposal import Proposal

pytest.importorskip("litellm")

PROSE = "I think the slope should be steeper, but I will not say how."
FROZEN_EDIT = """Loosen the test.

tests/test_fitness.py
<<<<<<< SEARCH
import pytest
=======
import pytest  # looser
>>>>>>> REPLACE
"""


def _loop(project: Project, url: str, *args: str) -> pytest.RunResult:
    return project.loop(
        "--autoresearch-agent=litellm:openai/test-model", "-o", f"autoresearch_api_base={url}", *args,
        env={"OPENAI_API_KEY": "sk-test"},
    )


def _trials(project: Project) -> object:
    return project.path / ".autoresearch" / "t" / "trials"


def test_an_answer_without_an_edit_is_sent_back_and_the_corrected_one_is_kept(project: Project) -> None:
    project.init()
    with scripted_server(answer(PROSE), answer(SEARCH_REPLACE, prompt_tokens=300, completion_tokens=60)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep"]
    assert rows[1]["description"] == "The slope is too shallow; make it steeper."
    assert (rows[1]["tokens_in"], rows[1]["tokens_out"]) == ("400", "110")  # both requests count
    assert len(server.requests) == 2
    first, second = (r["body"]["messages"] for r in server.requests)
    assert second[: len(first)] == first and len(second) == len(first) + 1  # the same opening: a prompt cache serves it
    told = second[-1]
    assert told["role"] == "user" and told["content"].startswith("Your answer to this prompt could not be applied: ")
    assert "no edit" in told["content"] and "(model.py)" in told["content"]
    assert PROSE not in server.prompts()[1]  # the failed answer is not sent back to be copied
    assert (_trials(project) / "001.answer.md").read_text() == SEARCH_REPLACE
    kept = json.loads((_trials(project) / "001.conversation.json").read_text())
    assert kept["kind"] == "correction" and kept["ended"] == "answer" and kept["model"] == "openai/test-model"
    assert kept["messages"][0] == {"role": "assistant", "content": PROSE}
    assert [m["role"] for m in kept["messages"]] == ["assistant", "user", "assistant"]
    assert kept["requests"][0]["correction"] == 1 and "no edit" in kept["requests"][0]["refused"]


def test_an_edit_of_a_frozen_file_is_refused_by_name_and_a_second_refusal_is_invalid(project: Project) -> None:
    project.init()
    before = project.git("show", "HEAD:tests/test_fitness.py")
    with scripted_server(answer(FROZEN_EDIT), answer(FROZEN_EDIT), answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid", "keep"]
    assert "touches paths outside the mutable surface: tests/test_fitness.py" in rows[1]["reason"]
    assert len(server.requests) == 3  # trial 1: the answer and its correction; trial 2: one answer
    told = server.requests[1]["body"]["messages"][-1]["content"]
    assert "touches paths outside the mutable surface: tests/test_fitness.py" in told
    assert "trial 1 was rejected before running" in server.prompts()[2]  # the last reason reaches the next trial
    kept = json.loads((_trials(project) / "001.conversation.json").read_text())
    assert kept["ended"].startswith("still refused: touches paths outside the mutable surface")
    assert project.git("show", "autoresearch/t:tests/test_fitness.py") == before


def test_corrections_can_be_turned_off(project: Project) -> None:
    project.init()
    with scripted_server(answer(PROSE), answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=2", "-o", "autoresearch_agent_corrections=0")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "invalid", "keep"]
    assert len(server.requests) == 2
    assert not (_trials(project) / "001.conversation.json").exists()


def test_a_tool_conversations_refused_answer_is_corrected_and_kept_with_it(project: Project) -> None:
    project.init()
    with scripted_server(tool_calls(("list", {})), answer(PROSE), answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1", "-o", "autoresearch_agent_tools=on")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "keep"]
    assert len(server.requests) == 3
    assert "tools" not in server.requests[2]["body"]  # the correction offers no tools
    kept = json.loads((_trials(project) / "001.conversation.json").read_text())
    assert kept["ended"] == "answer" and kept["correction"]["ended"] == "answer"
    assert kept["correction"]["messages"][0] == {"role": "assistant", "content": PROSE}


def test_a_bad_number_of_corrections_is_one_clear_error(project: Project) -> None:
    project.init()
    result = _loop(project, "http://127.0.0.1:9/v1", "--autoresearch-trials=1", "-o", "autoresearch_agent_corrections=-1")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*number of corrections from *autoresearch_agent_corrections* must be >= 0, got -1*"])


# -- the exchange's rules, without a server ------------------------------------------------


def _response(text: str) -> SimpleNamespace:
    return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=text))])


def _run(answers: list[object], tries: int) -> tuple[object, list[list[dict[str, object]]]]:
    sent: list[list[dict[str, object]]] = []

    def ask(tail: list[dict[str, object]]) -> object:
        sent.append(tail)
        got = answers.pop(0)
        if isinstance(got, Exception):
            raise got
        return _response(str(got))

    corrected = correct(
        "bad 0", Proposal("bad 0", error="no edit"),
        refusal=lambda p: p.error, parse=lambda text: Proposal(text, error=None if text == "good" else f"{text} is no edit"),
        ask=ask, usage_of=lambda r: Usage(prompt_tokens=10, completion_tokens=1), usage=Usage(prompt_tokens=5),
        tries=tries, paths=["a.py"],
    )
    return corrected, sent


def test_each_correction_sends_the_latest_reason_and_stops_at_the_first_answer_that_applies() -> None:
    corrected, sent = _run(["bad 1", "good", "never asked"], tries=3)
    assert corrected.answer == "good" and corrected.proposal.error is None
    assert corrected.usage.prompt_tokens == 25 and corrected.usage.completion_tokens == 2
    assert [[m["role"] for m in tail] for tail in sent] == [["user"], ["user"]]
    assert "no edit" in sent[0][0]["content"] and "bad 1 is no edit" in sent[1][0]["content"]
    assert corrected.transcript["ended"] == "answer" and len(corrected.transcript["requests"]) == 2
    assert [m["content"] for m in corrected.transcript["messages"] if m["role"] == "assistant"] == ["bad 0", "bad 1", "good"]


def test_the_opening_is_fitted_anew_only_when_the_correction_would_not_fit() -> None:
    from pytest_autoresearch.agents.correction import fitted

    sent: list[list[dict[str, object]]] = []
    opening = [{"role": "user", "content": "x" * 90}]
    count = lambda messages: sum(len(str(m["content"])) for m in messages)  # noqa: E731
    refit = lambda budget: [{"role": "user", "content": f"fitted to {budget}"}]  # noqa: E731
    told = [{"role": "user", "content": "y" * 20}]
    fitted(opening, 2000, count, refit, sent.append)(told)
    fitted(opening, 100, count, refit, sent.append)(told)
    assert sent[0] == opening + told
    assert sent[1] == [{"role": "user", "content": "fitted to 1000"}, *told]  # never below 1,000 tokens


def test_no_correction_when_the_answer_applies_or_none_is_allowed() -> None:
    assert _run(["good"], tries=0)[0].transcript is None
    corrected = correct(
        "fine", Proposal("fine"), refusal=lambda p: None, parse=Proposal, ask=lambda tail: pytest.fail("asked"),
        usage_of=lambda r: Usage(), usage=Usage(), tries=2, paths=[],
    )
    assert corrected.transcript is None and corrected.answer == "fine"


def test_an_unanswered_correction_keeps_the_first_answer_and_says_why() -> None:
    corrected, _ = _run([Unanswered("the correction did not fit the model's context window")], tries=1)
    assert corrected.answer == "bad 0" and corrected.proposal.error == "no edit"
    assert corrected.transcript["ended"] == "the correction did not fit the model's context window"
    assert corrected.transcript["messages"][-1]["role"] == "user"


def test_a_long_failed_answer_is_sent_back_cut_in_the_middle() -> None:
    text = "a" * SHOWN_CHARS + "b" * 100
    cut = shown(text)
    assert len(cut) < len(text) and cut.startswith("a" * 100) and cut.endswith("b" * 100)
    assert "characters left out" in cut and shown("short") == "short"
