"""Prompt caching end to end: the real litellm client, over HTTP, against scripted servers speaking
Anthropic's Messages API (explicit cache markers) and OpenAI's chat API (a stable prefix, cached by
the provider on its own), and the cached tokens they report, in results.tsv, the summary, junit
and the audit record."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from anthropic_server import anthropic_server, message
from helpers import Project
from llm_server import answer, scripted_server

# imported at collection, not in a test (see tests/test_llm_agent.py)
litellm = pytest.importorskip("litellm")

from pytest_autoresearch.agents.caching import cached_tokens, explicit_markers, messages_for  # noqa: E402
from pytest_autoresearch.agents.prompt import Prompt  # noqa: E402


def _edit(scale: str) -> str:
    return f"Try SCALE {scale}.\n\nmodel.py\n<<<<<<< SEARCH\nSCALE = 1.0\n=======\nSCALE = {scale}\n>>>>>>> REPLACE\n"


def _loop(project: Project, model: str, url: str, *args: str, env: dict[str, str]) -> pytest.RunResult:
    return project.loop(
        f"--autoresearch-agent=litellm:{model}",
        "-o", f"autoresearch_api_base={url}",
        "-o", "autoresearch_context=tests/test_fitness.py",
        *args,
        env=env,
        timeout=600,  # a shared machine under load: a run of a few trials is seconds when idle
    )


def _audit(project: Project) -> list[dict[str, object]]:
    path = project.path / ".autoresearch" / "t" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _junit(path: Path) -> list[dict[str, str | None]]:
    return [{p.get("name"): p.get("value") for p in case.iter("property")} for case in ET.parse(path).getroot().iter("testcase")]


def test_anthropic_requests_mark_the_stable_prefix_and_cached_tokens_are_logged(project: Project) -> None:
    project.init()
    script = [
        message(_edit("0.5"), input_tokens=100, output_tokens=40, cache_creation=900),  # the cache written
        message(_edit("2.5"), input_tokens=120, output_tokens=50, cache_read=900),  # read back: nothing kept since
        message(_edit("0.5").replace("SCALE = 1.0", "SCALE = 2.5"), input_tokens=130, output_tokens=60, cache_creation=950),
    ]
    with anthropic_server(*script) as server:
        result = _loop(
            project, "anthropic/claude-sonnet-4-5", server.url, "--autoresearch-trials=3",
            f"--junitxml={project.outside / 'junit.xml'}", env={"ANTHROPIC_API_KEY": "sk-ant-test"},
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "discard", "keep", "discard"]
    bodies = server.bodies()
    assert len(bodies) == 3 and all(r["path"] == "/v1/messages" for r in server.requests)

    # the system part and the stable block carry the marker, the recent part does not
    for body in bodies:
        (system,) = body["system"]
        assert system["cache_control"] == {"type": "ephemeral"} and "## How to answer" in system["text"]
        (user,) = body["messages"]
        stable, recent = user["content"]
        assert stable["cache_control"] == {"type": "ephemeral"}
        assert stable["text"].startswith("## Read-only context (frozen: do not edit)\n\n### tests/test_fitness.py")
        assert "## Mutable files (the current best)" in stable["text"] and "## Task" not in stable["text"]
        assert "cache_control" not in recent and "## Task" in recent["text"] and "Propose one change" in recent["text"]
    # the model reads what the trial's prompt file shows, markers aside
    for number, body in enumerate(bodies, start=1):
        sent = body["system"][0]["text"] + "\n\n" + "".join(b["text"] for b in body["messages"][0]["content"])
        assert sent == (project.path / ".autoresearch" / "t" / "trials" / f"{number:03d}.prompt.md").read_text()

    def prefix(body: dict) -> str:
        return json.dumps([body["system"], body["messages"][0]["content"][0]])

    assert prefix(bodies[0]) == prefix(bodies[1])  # nothing kept between trials 1 and 2: the cache hits
    assert bodies[0]["system"] == bodies[2]["system"] and prefix(bodies[1]) != prefix(bodies[2])  # trial 2 kept
    assert "SCALE = 2.5" in bodies[2]["messages"][0]["content"][0]["text"]
    assert bodies[0]["messages"][0]["content"][1] != bodies[1]["messages"][0]["content"][1]  # the log moved on

    rows = project.rows()
    header = list(rows[0])
    assert header[header.index("tokens_in") : header.index("tokens_in") + 4] == ["tokens_in", "tokens_cached", "tokens_out", "cost_usd"]
    assert rows[0]["tokens_in"] == rows[0]["tokens_cached"] == ""
    # tokens in count every prompt token, those read from and written to the cache included
    assert [(r["tokens_in"], r["tokens_cached"], r["tokens_out"]) for r in rows[1:]] == [
        ("1000", "0", "40"), ("1020", "900", "50"), ("1080", "0", "60")
    ]
    # priced at claude-sonnet-4-5's listed rates: a cache read at a tenth, a cache write at 1.25 times
    assert float(rows[2]["cost_usd"]) == pytest.approx(120 * 3e-6 + 900 * 0.3e-6 + 50 * 15e-6)
    assert float(rows[1]["cost_usd"]) == pytest.approx(100 * 3e-6 + 900 * 3.75e-6 + 40 * 15e-6)
    result.stdout.fnmatch_lines(["model calls: 3100 tokens in (900 cached), 150 out, $0.01*"])

    props = _junit(project.outside / "junit.xml")
    assert [p.get("tokens_cached") for p in props] == [None, "0", "900", "0"]
    assert [e["tokens_cached"] for e in _audit(project)] == [None, 0, 900, 0]

    report = project.run("--autoresearch-report", "--autoresearch-tag=t")  # reprinted from results.tsv
    report.stdout.fnmatch_lines(["model calls: 3100 tokens in (900 cached), 150 out, $0.01*"])


@pytest.mark.slow  # two trials; the Anthropic test above is its quicker neighbour
def test_openai_style_requests_are_plain_with_the_stable_prefix_first(project: Project) -> None:
    project.init()
    script = [answer(_edit("0.5"), 1000, 500), answer(_edit("0.6"), 1000, 500, cached_tokens=768)]
    with scripted_server(*script) as server:
        result = _loop(project, "openai/gpt-4o-mini", server.url, "--autoresearch-trials=2", env={"OPENAI_API_KEY": "sk-test"})
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "discard", "discard"]
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 2
    for body in bodies:
        # no marker anywhere (a local OpenAI-compatible server may refuse an unknown field), plain text
        assert "cache_control" not in json.dumps(body)
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert all(isinstance(m["content"], str) for m in body["messages"])
        assert body["messages"][1]["content"].startswith("## Read-only context (frozen: do not edit)")
    first, second = (b["messages"][1]["content"] for b in bodies)
    stable = first[: first.index("## Task")]
    assert "## Mutable files (the current best)" in stable and "SCALE = 1.0" in stable
    assert second.startswith(stable) and bodies[0]["messages"][0] == bodies[1]["messages"][0]  # the same prefix
    assert first != second

    rows = project.rows()
    assert [(r["tokens_in"], r["tokens_cached"]) for r in rows[1:]] == [("1000", "0"), ("1000", "768")]
    # gpt-4o-mini's cached input is listed at half its input price
    assert float(rows[2]["cost_usd"]) == pytest.approx(232 * 0.15e-6 + 768 * 0.075e-6 + 500 * 0.6e-6)
    result.stdout.fnmatch_lines(["model calls: 2000 tokens in (768 cached), 1000 out, $0.00*"])


@pytest.mark.slow  # two runs
def test_a_resumed_run_whose_log_predates_the_column_keeps_its_columns(project: Project) -> None:
    project.init()
    with scripted_server(answer(_edit("0.5"), 1000, 500)) as server:
        first = _loop(project, "openai/gpt-4o-mini", server.url, "--autoresearch-trials=1", env={"OPENAI_API_KEY": "sk-test"})
    assert first.ret == 0, first.stdout.str() + first.stderr.str()
    # the log as a version before tokens_cached wrote it
    log = project.path / ".autoresearch" / "t" / "results.tsv"
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    at = lines[0].index("tokens_cached")
    older = "".join("\t".join(cells[:at] + cells[at + 1 :]) + "\n" for cells in lines)
    log.write_text(older)
    with scripted_server(answer(_edit("0.6"), 1000, 500, cached_tokens=600), answer(_edit("0.7"), 900, 100)) as server:
        second = _loop(project, "openai/gpt-4o-mini", server.url, "--autoresearch-trials=2", env={"OPENAI_API_KEY": "sk-test"})
    assert second.ret == 0, second.stdout.str() + second.stderr.str()
    text = log.read_text()
    assert text.startswith(older)  # append-only: what was there is there, byte for byte
    header, *body = [line.split("\t") for line in text.splitlines()]
    assert "tokens_cached" not in header and header == older.split("\n", 1)[0].split("\t")
    assert len(body) == 4 and all(len(cells) == len(header) for cells in body)  # every row whole
    rows = project.rows()
    assert [r["status"] for r in rows] == ["baseline", "discard", "discard", "discard"]
    assert [(r["tokens_in"], r["tokens_out"]) for r in rows[1:]] == [("1000", "500"), ("1000", "500"), ("900", "100")]
    assert float(rows[2]["cost_usd"]) == pytest.approx(400 * 0.15e-6 + 600 * 0.075e-6 + 500 * 0.6e-6)


@pytest.mark.parametrize(
    ("model", "marked"),
    [
        ("anthropic/claude-sonnet-4-5", True),
        ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", True),
        ("vertex_ai/claude-sonnet-4-5", True),
        ("openrouter/anthropic/claude-sonnet-4.5", True),
        ("vertex_ai/gemini-2.5-pro", False),  # a marker would create a stored context, billed by the hour
        ("gemini/gemini-2.5-flash", False),
        ("openai/gpt-4o-mini", False),
        ("deepseek/deepseek-chat", False),
        ("ollama/qwen2.5-coder", False),
    ],
)
def test_which_providers_get_cache_markers(model: str, marked: bool) -> None:
    bare, provider, _, _ = litellm.get_llm_provider(model=model)  # as the agent names the provider
    prompt = Prompt(system="policy", stable="files", recent="task")
    messages = messages_for(prompt, provider, bare)
    assert explicit_markers(provider, bare) is marked
    assert ("cache_control" in json.dumps(messages)) is marked
    if not marked:
        assert messages == [{"role": "system", "content": "policy"}, {"role": "user", "content": "files\n\ntask"}]


def test_cached_tokens_read_from_each_providers_usage() -> None:
    from litellm.types.utils import Usage

    assert cached_tokens(Usage(prompt_tokens=10, completion_tokens=1, prompt_tokens_details={"cached_tokens": 7})) == 7
    assert cached_tokens(Usage(prompt_tokens=10, completion_tokens=1, cache_read_input_tokens=6)) == 6  # Anthropic
    assert cached_tokens(Usage(prompt_tokens=10, completion_tokens=1, prompt_cache_hit_tokens=5)) == 5  # DeepSeek
    assert cached_tokens({"prompt_tokens": 10, "cache_read_input_tokens": 4}) == 4
    assert cached_tokens(Usage(prompt_tokens=10, completion_tokens=1)) == 0
    assert cached_tokens(None) == 0
