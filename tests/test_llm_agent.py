"""The litellm agent end to end: the real litellm client, over HTTP, against a scripted
OpenAI-compatible server on 127.0.0.1 that each test starts and stops."""

from __future__ import annotations

import pytest
from helpers import MODEL, Project
from llm_server import SEARCH_REPLACE, answer, error, scripted_server

# imported at collection, not in a test: litellm imported while a test runs leaves this process's
# importlib.metadata finding no distribution, which the in-process pytester runs of later tests need
pytest.importorskip("litellm")


DIFF = """Add the missing offset.

```diff
--- a/model.py
+++ b/model.py
@@ -3,2 +3,2 @@
 SCALE = 2.5
-OFFSET = 0
+OFFSET = 2
```
"""

WHOLE_FILE = "Finish the offset.\n\n```python model.py\n" + MODEL.replace("SCALE = 1.0", "SCALE = 2.5").replace("OFFSET = 0", "OFFSET = 3") + "```\n"


def _loop(project: Project, url: str, *args: str, model: str = "openai/test-model") -> pytest.RunResult:
    return project.loop(
        f"--autoresearch-agent=litellm:{model}",
        "-o",
        f"autoresearch_api_base={url}",
        *args,
        env={"OPENAI_API_KEY": "sk-test"},
    )


def test_each_answer_format_is_applied_and_kept(project: Project) -> None:
    project.init()
    with scripted_server(answer(SEARCH_REPLACE), answer(DIFF), answer(WHOLE_FILE)) as server:
        result = _loop(
            project,
            server.url,
            "--autoresearch-trials=3",
            "-o",
            "autoresearch_model_args=temperature=0.3 max_tokens=512",
            "-o",
            "autoresearch_context=tests/test_fitness.py",
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "keep", "keep", "keep"]
    assert [r["description"] for r in rows[1:]] == [
        "The slope is too shallow; make it steeper.",
        "Add the missing offset.",
        "Finish the offset.",
    ]
    assert float(rows[3]["score"]) == 0.0
    assert "OFFSET = 3" in project.git("show", "autoresearch/t:model.py")
    assert len(server.requests) == 3
    # the prompt carries the policy, the task and the current file; the answer is kept beside it
    first = server.prompts()[0]
    assert "Never stop" in first and "test_error (min: lower is better)" in first and "SCALE = 1.0" in first
    assert "## Read-only context (frozen: do not edit)\n\n### tests/test_fitness.py" in first
    body = server.requests[0]["body"]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 512 and body["model"] == "test-model"
    trials = project.path / ".autoresearch" / "t" / "trials"
    assert (trials / "001.answer.md").read_text() == SEARCH_REPLACE
    assert "SCALE = 1.0" in (trials / "001.prompt.md").read_text()


def test_answers_without_an_applicable_edit_are_invalid_and_the_loop_goes_on(project: Project) -> None:
    project.init()
    stale = SEARCH_REPLACE.replace("SCALE = 1.0\n=", "SCALE == 7.0\n=")  # not a setting: nothing to set all the same
    with scripted_server(
        answer("I think we should make the slope steeper, but I am not sure how."),
        answer(stale),
        answer(SEARCH_REPLACE),
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=3", "-o", "autoresearch_agent_corrections=0")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "invalid", "invalid", "keep"]
    assert "no edit" in rows[1]["reason"]
    assert "model.py" in rows[2]["reason"]
    prompts = server.prompts()
    # each rejection reaches the next prompt
    assert "trial 1 was rejected before running" in prompts[1]
    assert "trial 2 was rejected before running" in prompts[2] and "model.py" in prompts[2]


def test_transport_failures_are_retried_and_never_count_as_trials(project: Project) -> None:
    project.init()
    with scripted_server(
        error(429, "slow down", "rate_limit_exceeded", headers={"Retry-After": "0"}),
        error(500, "the server fell over"),
        error(503, "overloaded", headers={"Retry-After": "0"}),
        answer(SEARCH_REPLACE),
    ) as server:
        result = _loop(project, server.url, "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert len(server.requests) == 4
    assert project.statuses() == ["baseline", "keep"]
    result.stdout.fnmatch_lines(["*RateLimitError from openai/test-model; retrying in 0.0s*", "*InternalServerError*retrying*"])


def test_an_authentication_failure_stops_the_run_cleanly(project: Project) -> None:
    project.init()
    with scripted_server(answer(SEARCH_REPLACE), error(401, "Incorrect API key provided", "invalid_api_key")) as server:
        result = _loop(project, server.url, "--autoresearch-trials=5")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: autoresearch: agent litellm:openai/test-model: AuthenticationError from openai/test-model: *Incorrect API key*"])
    assert len(server.requests) == 2  # no retry of a 401
    assert project.statuses() == ["baseline", "keep"]  # the log keeps what finished
    text = (project.path / ".autoresearch" / "t" / "results.tsv").read_text()
    assert text.endswith("\n") and all(len(line.split("\t")) == len(text.splitlines()[0].split("\t")) for line in text.splitlines())
    assert project.git("status", "--porcelain") == ""


def test_an_unknown_model_is_a_setup_error(project: Project) -> None:
    project.init()
    result = project.loop("--autoresearch-agent=litellm:no-such-provider-model")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["ERROR: autoresearch: agent litellm:no-such-provider-model: litellm does not know the model*"])
    assert not (project.path / ".autoresearch").exists()
    assert project.git("branch", "--list", "autoresearch/*") == ""


def test_later_prompts_carry_the_history_and_the_last_failure(project: Project) -> None:
    project.init()
    breaks_gate = SEARCH_REPLACE.replace("SCALE = 2.5", 'SCALE = "2.5"')
    with scripted_server(answer(breaks_gate), answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "crash", "keep"]
    second = server.prompts()[1]
    assert "| 1 | crash |" in second
    assert "## The last failed trial" in second
    assert "trial 1 (crash): tests/test_gate.py::test_predict_returns_a_float failed" in second
    assert "TypeError" in second  # the failure text itself, not just its summary


def test_a_long_history_is_summarised_to_fit_the_prompt_budget(project: Project) -> None:
    project.init()
    import litellm

    budget = 1300  # the first prompt takes about 1,150 tokens; five trials of history push it past 1,300
    worse = [answer(SEARCH_REPLACE.replace("SCALE = 2.5", f"SCALE = {v}")) for v in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
    with scripted_server(*worse) as server:
        result = _loop(project, server.url, "--autoresearch-trials=6", "-o", f"autoresearch_max_prompt_tokens={budget}")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses()[1:] == ["discard"] * 6
    prompts = server.prompts()
    assert "are summarised" not in prompts[0]
    assert "Trials 1-5 are summarised: 5 discard." in prompts[-1]
    assert "SCALE = 1.0" in prompts[-1]  # the mutable file is never cut
    sizes = [litellm.token_counter(model="openai/test-model", messages=r["body"]["messages"]) for r in server.requests]
    assert max(sizes) <= budget, sizes


def test_a_context_window_error_shrinks_the_history_and_tries_once_more(project: Project) -> None:
    project.init()
    overflow = error(400, "This model's maximum context length is 1000 tokens. However, your messages resulted in 2000 tokens.", "context_length_exceeded")
    first = SEARCH_REPLACE.replace("SCALE = 2.5", "SCALE = 0.5")
    with scripted_server(answer(first), overflow, answer(SEARCH_REPLACE)) as server:
        result = _loop(project, server.url, "--autoresearch-trials=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "discard", "keep"]
    assert len(server.requests) == 3
    before, after = server.prompts()[1], server.prompts()[2]
    assert "| 1 | discard |" in before and "| 1 | discard |" not in after
    assert len(after) < len(before)
    result.stdout.fnmatch_lines(["*context window was exceeded; shortening the history*"])


def test_tokens_and_cost_are_logged_and_max_cost_ends_the_run(project: Project) -> None:
    project.init()
    worse = [answer(SEARCH_REPLACE.replace("SCALE = 2.5", f"SCALE = {v}"), 1000, 500) for v in (0.5, 0.6, 0.7, 0.8)]
    with scripted_server(*worse) as server:
        result = _loop(project, server.url, "--autoresearch-max-cost=0.0008", model="openai/gpt-4o-mini")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "discard", "discard"]
    assert rows[0]["tokens_in"] == "" and rows[0]["cost_usd"] == ""
    assert rows[1]["tokens_in"] == "1000" and rows[1]["tokens_out"] == "500"
    cost = float(rows[1]["cost_usd"])
    assert cost == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)  # gpt-4o-mini's listed prices
    assert len(server.requests) == 2
    result.stdout.fnmatch_lines(
        [
            "model calls: 2000 tokens in, 1000 out, $0.0009",
            "stopped: the agent's model calls cost $0.0009*reaching --autoresearch-max-cost $0.0008*",
        ]
    )
