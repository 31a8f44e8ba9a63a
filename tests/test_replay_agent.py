"""The ``replay`` agent: one proposal per JSON line, in order; a bad line is an invalid trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Project

from pytest_autoresearch.agents import AgentExhausted, ProposalContext
from pytest_autoresearch.agents.replay import ReplayAgent
from pytest_autoresearch.proposals.proposal import Proposal, check
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.proposals.surface import Surface

CURRENT = {"src/model.py": "LR = 0.1\nEPOCHS = 10\n", "src/util.py": "def f():\n    return 1\n"}

PATCH = """\
diff --git a/src/model.py b/src/model.py
index 3b18e51..a9b1c2d 100644
--- a/src/model.py
+++ b/src/model.py
@@ -1,2 +1,2 @@
-LR = 0.1
+LR = 0.05
 EPOCHS = 10
"""


def make_context(files: dict[str, str] = CURRENT) -> ProposalContext:
    baseline = TrialRecord(0, "baseline", "baseline", score=1.0)
    return ProposalContext(
        trial=1,
        tag="test",
        rootdir=Path("."),
        workdir=Path("."),
        surface=Surface(["src/*.py"]),
        files=dict(files),
        program="",
        metric=MetricSpec("tests/test_fit.py::test_fit", "loss", "min", True),
        baseline=baseline,
        best=baseline,
        history=[baseline],
        last_failure=None,
        trials_left=None,
        read=files.get,
    )


def write(tmp_path: Path, *lines: str | object) -> Path:
    """Write a replay file: strings go in as they are, anything else as compact JSON."""
    path = tmp_path / "proposals.jsonl"
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def propose_all(path: Path) -> list[Proposal]:
    agent, context, out = ReplayAgent(path), make_context(), []
    while True:
        try:
            out.append(agent.propose(context))
        except AgentExhausted:
            return out


def test_files_and_patch_lines_become_proposals_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"description": "rewrite util", "files": {"src/util.py": "def f():\n    return 2\n"}},
        {"description": "lower lr", "patch": PATCH},
        {"description": "two files", "files": {"src/model.py": "LR = 1\n", "src/new.py": "X = 1\n"}},
    )
    assert propose_all(path) == [
        Proposal("rewrite util", {"src/util.py": "def f():\n    return 2\n"}),
        Proposal("lower lr", {"src/model.py": "LR = 0.05\nEPOCHS = 10\n"}),
        Proposal("two files", {"src/model.py": "LR = 1\n", "src/new.py": "X = 1\n"}),
    ]


def test_a_patch_line_applies_against_the_contexts_files(tmp_path: Path) -> None:
    agent = ReplayAgent(write(tmp_path, {"description": "lower lr", "patch": PATCH}))
    other = {"src/model.py": "# header\nLR = 0.1\nEPOCHS = 10\n"}
    proposal = agent.propose(make_context(other))
    assert proposal == Proposal("lower lr", {"src/model.py": "# header\nLR = 0.05\nEPOCHS = 10\n"})


def test_a_patch_that_does_not_apply_is_an_invalid_proposal(tmp_path: Path) -> None:
    agent = ReplayAgent(write(tmp_path, {"description": "stale", "patch": PATCH}))
    proposal = agent.propose(make_context({"src/model.py": "LR = 7\n"}))
    assert proposal.description == "stale"
    assert proposal.files == {}
    assert proposal.error is not None and "does not apply" in proposal.error


def test_replayed_proposals_pass_the_surface_check(tmp_path: Path) -> None:
    agent = ReplayAgent(write(tmp_path, {"description": "lower lr", "patch": PATCH}))
    context = make_context()
    changes, reason = check(agent.propose(context), context.surface, context.read)
    assert reason is None
    assert changes == {"src/model.py": "LR = 0.05\nEPOCHS = 10\n"}


def test_blank_lines_are_skipped_but_keep_their_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "",
        {"description": "one", "files": {"src/util.py": "A\n"}},
        "   ",
        "\t",
        "not json",
        "",
    )
    agent = ReplayAgent(path)
    assert "(2 proposals)" in agent.describe()
    context = make_context()
    assert agent.propose(context) == Proposal("one", {"src/util.py": "A\n"})
    bad = agent.propose(context)
    assert bad.error is not None and "proposals.jsonl line 5" in bad.error
    with pytest.raises(AgentExhausted):
        agent.propose(context)


def test_invalid_json_is_an_invalid_proposal(tmp_path: Path) -> None:
    path = write(tmp_path, {"description": "ok", "files": {"src/util.py": "A\n"}}, '{"description": "cut off", "files": {')
    good, bad = propose_all(path)
    assert good.error is None
    assert bad.files == {}
    assert bad.description == "(proposals.jsonl line 2)"
    assert bad.error is not None
    assert "proposals.jsonl line 2" in bad.error and "not valid JSON" in bad.error


@pytest.mark.parametrize("line", ["[1, 2]", '"just a string"', "42", "null", "true"])
def test_a_line_that_is_not_an_object_is_an_invalid_proposal(tmp_path: Path, line: str) -> None:
    [proposal] = propose_all(write(tmp_path, line))
    assert proposal.files == {}
    assert proposal.error == "proposals.jsonl line 1 is not a JSON object"


@pytest.mark.parametrize(
    "entry",
    [
        {"description": "both", "files": {"src/util.py": "A\n"}, "patch": PATCH},
        {"description": "neither"},
        {"description": "neither", "files": None, "patch": None},
    ],
)
def test_exactly_one_of_files_and_patch_is_required(tmp_path: Path, entry: dict[str, object]) -> None:
    [proposal] = propose_all(write(tmp_path, entry))
    assert proposal.description == entry["description"]
    assert proposal.files == {}
    assert proposal.error == 'proposals.jsonl line 1 needs exactly one of "files" and "patch"'


@pytest.mark.parametrize("patch", [42, ["--- a/x"], {"diff": PATCH}, True])
def test_a_patch_that_is_not_a_string_is_an_invalid_proposal(tmp_path: Path, patch: object) -> None:
    [proposal] = propose_all(write(tmp_path, {"description": "d", "patch": patch}))
    assert proposal.files == {}
    assert proposal.error == 'proposals.jsonl line 1: "patch" must be a string'


@pytest.mark.parametrize(
    "files",
    [
        {"src/util.py": 3},
        {"src/util.py": ["A\n"]},
        {"src/util.py": {"text": "A\n"}},
        {"src/model.py": "LR = 1\n", "src/util.py": False},
        ["src/util.py"],
        "src/util.py",
        7,
    ],
)
def test_files_must_map_paths_to_text(tmp_path: Path, files: object) -> None:
    [proposal] = propose_all(write(tmp_path, {"description": "d", "files": files}))
    assert proposal.files == {}
    assert proposal.error == 'proposals.jsonl line 1: "files" must map paths to text'


def test_a_null_file_is_passed_on_as_a_deletion_for_the_check_to_refuse(tmp_path: Path) -> None:
    [proposal] = propose_all(write(tmp_path, {"description": "rm", "files": {"src/util.py": None}}))
    assert proposal == Proposal("rm", {"src/util.py": None})
    _, reason = check(proposal, Surface(["src/*.py"]), CURRENT.get)
    assert reason is not None and "src/util.py" in reason


@pytest.mark.parametrize("description", [None, "", "   ", 5, ["x"]])
def test_a_missing_description_falls_back_to_a_placeholder(tmp_path: Path, description: object) -> None:
    entry: dict[str, object] = {"files": {"src/util.py": "A\n"}}
    if description is not None:
        entry["description"] = description
    path = write(tmp_path, "", "", entry)
    [proposal] = propose_all(path)
    assert proposal == Proposal("(proposals.jsonl line 3)", {"src/util.py": "A\n"})


def test_a_bad_line_loses_nothing_else(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"description": "a", "files": {"src/util.py": "A\n"}},
        "{oops",
        {"description": "c", "files": {"src/util.py": "C\n"}},
    )
    a, b, c = propose_all(path)
    assert a == Proposal("a", {"src/util.py": "A\n"})
    assert b.error is not None
    assert c == Proposal("c", {"src/util.py": "C\n"})


def test_agent_is_exhausted_after_the_last_line_and_stays_so(tmp_path: Path) -> None:
    agent = ReplayAgent(write(tmp_path, {"description": "a", "files": {"src/util.py": "A\n"}}))
    context = make_context()
    agent.propose(context)
    for _ in range(2):
        with pytest.raises(AgentExhausted, match=r"all 1 proposals of proposals\.jsonl"):
            agent.propose(context)


def test_an_empty_file_is_exhausted_at_once(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    agent = ReplayAgent(path)
    assert agent.describe() == f"replay {path} (0 proposals)"
    with pytest.raises(AgentExhausted):
        agent.propose(make_context())
    assert agent.preflight(CURRENT) == f"replay: {path} holds no proposals: write one JSON object per line (see the README's replay section)"


def test_describe_mentions_the_file_and_the_count(tmp_path: Path) -> None:
    entry = {"description": "a", "files": {"src/util.py": "A\n"}}
    path = write(tmp_path, entry, entry, "", entry)
    assert ReplayAgent(path).describe() == f"replay {path} (3 proposals)"
    assert ReplayAgent.name == "replay"
    assert ReplayAgent(path).runs_out() == "after the last of the 3 proposals in proposals.jsonl"
    assert ReplayAgent(path).preflight(CURRENT) is None


def test_the_run_header_says_a_replay_run_ends_with_its_file(project: Project) -> None:
    """Without a stop rule the run ends with the file's last proposal, not at Ctrl-C; with
    one, whichever comes first."""
    project.init()
    spec = project.replay(
        {"description": "one", "files": project.model_with(SCALE=2.0)},
        {"description": "two", "files": project.model_with(SCALE=2.5)},
    )
    result = project.loop(spec)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "autoresearch: surface model.py; agent replay * (2 proposals); stops after the last of the 2 proposals"
            " in proposals.jsonl (or on Ctrl-C or `touch */.autoresearch/t/STOP`), keeping every finished trial",
            "*stopped: replay: all 2 proposals of proposals.jsonl were used*",
        ]
    )
    assert "no stop rule" not in result.stdout.str()
    assert project.statuses() == ["baseline", "keep", "keep"]
    result = project.loop(spec, "--autoresearch-trials=5", tag="u")
    result.stdout.fnmatch_lines(["autoresearch: surface model.py; agent replay *; stops at 5 trials or after the last of the 2 proposals in proposals.jsonl"])


def test_non_ascii_text_survives(tmp_path: Path) -> None:
    entry = {"description": "caf\u00e9 \u2603", "files": {"src/util.py": "S = '\u00fcber \U0001f600'\n"}}
    path = tmp_path / "proposals.jsonl"
    path.write_text(json.dumps(entry, ensure_ascii=False) + "\n", encoding="utf-8")
    [proposal] = propose_all(path)
    assert proposal == Proposal(entry["description"], entry["files"])  # type: ignore[arg-type]


def test_a_raw_line_separator_inside_a_json_string_does_not_split_the_line(tmp_path: Path) -> None:
    entry = {"description": "sep", "files": {"src/util.py": "S = 'a\u2028b'\n"}}
    path = tmp_path / "proposals.jsonl"
    path.write_text(json.dumps(entry, ensure_ascii=False) + "\n", encoding="utf-8")
    assert propose_all(path) == [Proposal("sep", {"src/util.py": "S = 'a\u2028b'\n"})]
