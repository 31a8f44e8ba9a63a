"""A surface too large for the prompt: its outline, the excerpts shown with it, and a run of the
real loop with the litellm agent on a 5,000-line file whose every request fits the default budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import GATE_TEST, PYPROJECT, Project
from llm_server import answer, scripted_server

from pytest_autoresearch.agents.base import ProposalContext
from pytest_autoresearch.agents.fitting import excerpt_regions, fit_prompt
from pytest_autoresearch.agents.outline import entries, outline
from pytest_autoresearch.core import defaults
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.proposals.surface import Surface

SMALL = '''"""Signal tools.

Longer text."""
import math

RATE = 0.1
WIDTH: int = 3


@dataclass(frozen=True)
class Filter(Base):
    gain = 1.0

    @property
    def name(self) -> str:
        return "f"

    async def run(self, values, *rest, scale=2.0, **options):
        return values


def smooth(values: list[float], width: int = 3) -> list[float]:
    return values
'''


def test_a_python_outline_has_signatures_decorators_nested_methods_and_exact_line_ranges() -> None:
    text = outline("tools.py", SMALL)
    assert text.splitlines() == [
        f"23 lines, {len(SMALL.encode())} bytes",
        'L1-L3  """Signal tools."""',
        "L6-L7  names: RATE, WIDTH",
        "L10-L19  @dataclass(frozen=True) class Filter(Base)",
        "  L12-L12  names: gain",
        "  L14-L16  @property def name(self) -> str",
        "  L18-L19  async def run(self, values, *rest, scale=2.0, **options)",
        "L22-L23  def smooth(values: list[float], width: int=3) -> list[float]",
    ]
    lines = SMALL.splitlines()  # each range starts at its first decorator and ends at its last line
    assert [lines[i - 1].strip()[:10] for i in (10, 14, 18, 22)] == ["@dataclass", "@property", "async def ", "def smooth"]
    assert [lines[i - 1].strip() for i in (16, 19, 23)] == ['return "f"', "return values", "return values"]
    assert [(e.start, e.end, e.depth) for e in entries("tools.py", SMALL)][3:6] == [(12, 12, 1), (14, 16, 1), (18, 19, 1)]


def test_coarser_outlines_drop_names_methods_then_signatures() -> None:
    assert outline("tools.py", SMALL, detail=1).splitlines()[1:] == ['L1-L3  """Signal tools."""', "L10-L19  class Filter", "L22-L23  def smooth"]
    assert outline("tools.py", SMALL, detail=0).splitlines()[1:] == ['L1-L3  """Signal tools."""']


def test_a_file_that_does_not_parse_gets_the_generic_outline() -> None:
    broken = SMALL + "def half(:\n    pass\n"
    shown = outline("tools.py", broken).splitlines()
    assert shown[0] == f"25 lines, {len(broken.encode())} bytes"
    assert shown[1] == 'L1-L25  """Signal tools.'  # one block of lines, with its first line


def test_markdown_headings_toml_sections_and_sql_statements_have_their_ranges() -> None:
    md = "# Title\ntext\n## Part\n```\n# not a heading\n```\n# Next\nend\n"
    assert outline("notes.md", md).splitlines()[1:] == ["L1-L6  # Title", "  L3-L6  ## Part", "L7-L8  # Next"]
    toml = "[tool.a]\nx = 1\n\n[tool.b]\ny = 2\n"
    assert outline("c.toml", toml).splitlines()[1:] == ["L1-L3  [tool.a]", "L4-L5  [tool.b]"]
    sql = "create table t (\n  a int\n);\nselect a\nfrom t;\n"
    assert outline("q.sql", sql).splitlines()[1:] == ["L1-L3  create table t (", "L4-L5  select a"]


# -- a surface of real-code size -------------------------------------------------------------

TARGET = "    return 1.0 * x  # the slope\n"


def big_model(functions: int = 720) -> str:
    """A module of 5,000+ lines: many functions and a few classes, `predict` deep in it."""
    parts = ['"""A large tunable model."""\n\nBASE = 0.0\n\n']
    for i in range(functions):
        if i == 580:
            parts.append(f"def predict(x):\n    \"\"\"The model.\"\"\"\n{TARGET}\n\n")
        if i % 100 == 50:
            parts.append(f"class Stage{i}:\n    def apply(self, values):\n        return [v + {i} for v in values]\n\n\n")
        parts.append(f"def helper_{i:04d}(values, scale=1.0):\n    \"\"\"Sum of the values times {i}.\"\"\"\n    total = 0.0\n"
                     f"    for v in values:\n        total += v * scale * {i}\n    return total\n\n\n")
    return "".join(parts)


BIG_FITNESS = '''import pytest

import model


@pytest.mark.fitness(goal="min")
def test_error(fitness):
    fitness(sum((model.predict(x) - 2.5 * x) ** 2 for x in range(10)) / 10)
'''


def _context(files: dict[str, str], trial: int, failure: str | None = None) -> ProposalContext:
    base = TrialRecord(trial=0, commit="", status="baseline", score=1.0, description="baseline")
    return ProposalContext(
        trial=trial, tag="t", rootdir=Path("."), workdir=Path("."), surface=Surface(list(files)), files=files, program="Be good.",
        metric=MetricSpec("tests/test_fitness.py::test_error", "test_error", "min", True), baseline=base, best=base,
        history=[base], last_failure=failure, trials_left=None, read=files.get, note=lambda line: None,
    )


def test_the_excerpts_go_round_the_whole_file_over_successive_trials() -> None:
    text = big_model()
    size = len(text.splitlines())
    seen: set[int] = set()
    for trial in range(1, size // 120 + 2):
        for _, first, last in excerpt_regions(_context({"model.py": text}, trial), ("model.py",), 1, 120):
            seen.update(range(first, last + 1))
    assert seen == set(range(1, size + 1))


def test_the_last_failure_points_an_excerpt_at_the_line_it_names() -> None:
    text = big_model()
    line = text.splitlines().index(TARGET.rstrip("\n")) + 1
    failure = f'Traceback:\n  File "/tmp/wt/model.py", line {line}, in predict\nNameError: name "y" is not defined'
    regions = excerpt_regions(_context({"model.py": text}, 3, failure), ("model.py",), 2, 80)
    assert ("model.py", line - 2, line) in regions  # the whole function, from its def


def test_even_a_prompt_over_the_budget_at_its_smallest_is_sent_with_a_note() -> None:
    text = big_model()
    notes: list[str] = []
    context = _context({"model.py": text}, 1)
    context = ProposalContext(**{**context.__dict__, "note": notes.append})
    fitted = fit_prompt(context, "Answer.", lambda prompt: len(prompt.text()) // 3, 50)
    assert not fitted.fits and fitted.outlined == ("model.py",)
    assert "over the budget of 50" in notes[0] and "sent as it is" in notes[0]


pytest.importorskip("litellm")


def test_a_5000_line_surface_fits_the_default_budget_and_an_edit_deep_in_it_is_kept(project: Project) -> None:
    import litellm

    text = big_model()
    lines = text.splitlines()
    line = lines.index(TARGET.rstrip("\n")) + 1
    assert len(lines) > 5000 and line > 4000
    assert litellm.token_counter(model="openai/test-model", text=text) > defaults.PROMPT_TOKENS  # too large to send whole
    project.init({"model.py": text, "tests/test_fitness.py": BIG_FITNESS, "tests/test_gate.py": GATE_TEST, "pyproject.toml": PYPROJECT})
    broken = f"Try a bias.\n\nmodel.py\n<<<<<<< SEARCH\n{TARGET}=======\n    return 1.0 * x + bias  # the slope\n>>>>>>> REPLACE\n"
    steeper = f"A steeper slope.\n\nmodel.py\n<<<<<<< SEARCH\n{TARGET}=======\n    return 2.5 * x  # the slope\n>>>>>>> REPLACE\n"
    with scripted_server(answer(broken), answer(steeper)) as server:
        result = project.loop(
            "--autoresearch-agent=litellm:openai/test-model", "-o", f"autoresearch_api_base={server.url}", "--autoresearch-trials=2",
            env={"OPENAI_API_KEY": "sk-test"},
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "crash", "keep"], project.rows()
    assert "return 2.5 * x  # the slope" in project.git("show", "autoresearch/t:model.py")
    for request in server.requests:
        assert litellm.token_counter(model="openai/test-model", messages=request["body"]["messages"]) <= defaults.PROMPT_TOKENS
    first, second = server.prompts()
    assert "Too large to show whole here: model.py" in first and "copied exactly from the lines of an excerpt" in first
    assert f"L{line - 2}-L{line}  def predict(x)" in first  # the outline says where predict is
    # the failure named the broken line: the next prompt shows it, exactly, with its range
    shown = [(int(a), int(b)) for a, b in re.findall(r"### model\.py lines (\d+)-(\d+) \(excerpt\)", second)]
    assert any(a <= line <= b for a, b in shown), shown
    assert TARGET in second
