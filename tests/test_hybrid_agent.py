"""``hybrid:SPEC``: which trials go to the model and which to the tuner, the tuner's fresh study
after a model's keep changes the program, and a real run against the scripted model server."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import Project
from llm_server import answer, scripted_server

from pytest_autoresearch.agents import Agent, ProposalContext
from pytest_autoresearch.agents.builtin import pytest_autoresearch_make_agent
from pytest_autoresearch.agents.hybrid import MODEL_NOTE, HybridAgent
from pytest_autoresearch.agents.mutate import MutateAgent
from pytest_autoresearch.agents.tuner import OptunaAgent
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.proposals.proposal import Proposal
from pytest_autoresearch.proposals.surface import Surface
from pytest_autoresearch.settings import SETTINGS_KEY

optuna = pytest.importorskip("optuna")
#: the real run's model agent runs in the loop's own process, never in this one
needs_litellm = pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="the real run's model agent needs litellm")

METRIC = MetricSpec("tests/test_fitness.py::test_error", "error", "min", True)


class Scripted(Agent):
    """A model that answers with whole files, one per call, and remembers what it was shown."""

    name = "scripted"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.asked: list[ProposalContext] = []

    def propose(self, context: ProposalContext) -> Proposal:
        self.asked.append(context)
        return Proposal(f"model idea {len(self.asked)}", {"model.py": self.texts.pop(0)})


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


class Loop:
    """Keep-if-better over the agent seam, every candidate committed (as the engine does)."""

    def __init__(self, root: Path, text: str, score: Callable[[dict[str, object]], float], agent: Agent) -> None:
        self.root, self.score, self.agent, self.files = root, score, agent, {"model.py": text}
        _git(root, "init", "-q", "-b", "main")
        self.baseline = TrialRecord(0, "baseline", "baseline", score=self.evaluate(self.files), commit=self.commit(self.files))
        self.history, self.best = [self.baseline], self.baseline
        agent.start(self.context(1))

    def commit(self, files: dict[str, str]) -> str:
        (self.root / "model.py").write_text(files["model.py"])
        _git(self.root, "add", "-A")
        _git(self.root, "commit", "-q", "--allow-empty", "-m", "v")
        return _git(self.root, "rev-parse", "HEAD")

    def evaluate(self, files: dict[str, str]) -> float:
        namespace: dict[str, object] = {}
        exec(files["model.py"], namespace)
        return self.score(namespace)

    def context(self, trial: int) -> ProposalContext:
        return ProposalContext(
            trial=trial, tag="t", rootdir=self.root, workdir=self.root, surface=Surface(["model.py"]), files=dict(self.files),
            program="the policy", metric=METRIC, baseline=self.baseline, best=self.best, history=list(self.history), last_failure=None,
            trials_left=None, read=self.files.get, note=lambda line: None,
        )

    def run(self, trials: int) -> list[TrialRecord]:
        for number in range(len(self.history), len(self.history) + trials):
            proposal = self.agent.propose(self.context(number))
            candidate = {**self.files, **proposal.files}
            value = self.evaluate(candidate)
            keep = value < self.best.score  # type: ignore[operator]
            record = TrialRecord(number, "keep" if keep else "discard", proposal.description, score=value, commit=self.commit(candidate), parent_trial=self.best.trial)
            self.history.append(record)
            self.agent.logged(record)
            if keep:
                self.files, self.best = candidate, record
        self.agent.close()
        return self.history[1:]


START = "SCALE = 1.0\nOFFSET = 0\n\ndef predict(x):\n    return SCALE * x + OFFSET\n"
WORSE = START.replace("OFFSET = 0", "OFFSET = -1")
PERFECT = "SCALE = 2.5\nOFFSET = 3\nCURVE = 0.1\n\ndef predict(x):\n    return SCALE * x + OFFSET + CURVE * x * x\n"
CURVE_MOVED = PERFECT.replace("CURVE = 0.1", "CURVE = 0.25")


def error(ns: dict[str, object]) -> float:
    predict = ns["predict"]
    return sum((predict(x) - (2.5 * x + 3 + 0.1 * x * x)) ** 2 for x in range(10)) / 10  # type: ignore[operator]


def studies(root: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = f"sqlite:///{root}/.autoresearch/t/optuna.db"
    return {name: optuna.load_study(study_name=name, storage=storage).trials for name in optuna.get_all_study_names(storage)}


def test_the_model_proposes_trial_one_and_every_nth_the_tuner_the_rest(tmp_path: Path) -> None:
    model = Scripted(START.replace("SCALE = 1.0", "SCALE = 2.0"), START.replace("OFFSET = 0", "OFFSET = 1"), START)
    hybrid = HybridAgent(model, OptunaAgent("random", seed=1), every=3)
    records = Loop(tmp_path, START, error, hybrid).run(7)
    by = ["model" if r.description.startswith("model idea") else "tuner" for r in records]
    assert by == ["model", "tuner", "tuner", "model", "tuner", "tuner", "model"]
    assert [c.trial for c in model.asked] == [1, 4, 7]
    assert all(c.program == "the policy\n" + MODEL_NOTE for c in model.asked)  # the model is told of the tuner
    assert all(r.description.startswith("model.py:") for r, who in zip(records, by) if who == "tuner")
    assert "model.py:" in " ".join(r.description for r in model.asked[1].history)  # it sees the tuner's trials
    assert hybrid.describe() == "hybrid: scripted at trials 1, 4, 7, ..., optuna random (seed 1) between"


def test_a_model_keep_that_adds_a_constant_restarts_the_study_with_it(tmp_path: Path) -> None:
    """The tuner's study on the start, warm-started with the model's discarded trial 1 (the same
    program); the model's keep adds CURVE: the tuner's next trials are in a new study over SCALE,
    OFFSET and CURVE, started from that keep; the model's later change of CURVE's value only is
    an evaluation of the same program and joins that study."""
    hybrid = HybridAgent(Scripted(WORSE, PERFECT, CURVE_MOVED), OptunaAgent("random", seed=0), every=3)
    records = Loop(tmp_path, START, error, hybrid).run(7)
    assert [r.status for r in records[::3]] == ["discard", "keep", "discard"]  # the model's
    found = studies(tmp_path)
    assert sorted(found) == ["t", "t-2"]
    origin = lambda trials: [(t.user_attrs.get("source", "asked"), t.user_attrs.get("logged_trial", t.user_attrs.get("trial"))) for t in trials]
    assert origin(found["t"]) == [("start", 0), ("logged", 1), ("asked", 2), ("asked", 3)]
    assert origin(found["t-2"]) == [("start", 4), ("asked", 5), ("asked", 6), ("ran", 7)]
    assert set(found["t"][0].params) == {"model.py:SCALE", "model.py:OFFSET"}
    assert set(found["t-2"][0].params) == {"model.py:SCALE", "model.py:OFFSET", "model.py:CURVE"}
    assert found["t-2"][0].value == records[3].score == 0.0
    assert found["t-2"][3].user_attrs["literals"] == {"model.py:SCALE": 2.5, "model.py:OFFSET": 3, "model.py:CURVE": 0.25}


def test_without_constants_the_model_proposes_until_it_adds_one(tmp_path: Path) -> None:
    bare = "def predict(x):\n    return x\n"
    with_knob = "GAIN = 2.4\n\ndef predict(x):\n    return GAIN * x\n"
    model = Scripted(bare.replace("return x", "return 2 * x"), with_knob)
    hybrid = HybridAgent(model, OptunaAgent("random", seed=0), every=5)
    assert hybrid.preflight({"model.py": bare}) is None  # the model can add constants
    records = Loop(tmp_path, bare, lambda ns: abs(ns["predict"](1.0) - 2.5), hybrid).run(4)  # type: ignore[operator]
    assert [r.description.split(" ")[0] for r in records] == ["model", "model", "model.py:1", "model.py:1"]  # type: ignore[comparison-overlap]


def test_the_spec_makes_the_model_and_the_tuner_from_the_settings() -> None:
    settings = SimpleNamespace(choices={}, hybrid_every=4, hybrid_tuner="mutate:2")
    agent = pytest_autoresearch_make_agent(config=SimpleNamespace(stash={SETTINGS_KEY: settings}), spec="hybrid:optuna:random")  # type: ignore[arg-type]
    assert isinstance(agent, HybridAgent) and agent.every == 4
    assert isinstance(agent.model, OptunaAgent) and isinstance(agent.tuner, MutateAgent) and agent.tuner.seed == 2
    for bad in ("hybrid", "hybrid:", "hybrid:hybrid:mutate"):
        with pytest.raises(pytest.UsageError, match="agent 'hybrid:SPEC' needs the spec of another agent"):
            pytest_autoresearch_make_agent(config=SimpleNamespace(stash={}), spec=bad)  # type: ignore[arg-type]


BIAS_ANSWER = """Add a bias term the tuner can tune, and a steeper slope.

```python model.py
\"\"\"A tiny tunable model: the mutable surface.\"\"\"

SCALE = 2.5
OFFSET = 0
BIAS = 3.0


def predict(x):
    return SCALE * x + OFFSET + BIAS
```
"""


@needs_litellm
def test_a_real_run_against_the_model_server(project: Project) -> None:
    """Trials 1 and 3 ask the server, 2 and 4 the tuner; the model's keep adds BIAS, so the
    tuner's trial 4 is in a second study that has it; only the model's rows carry tokens."""
    project.init()
    with scripted_server(answer("Nothing to change yet."), answer(BIAS_ANSWER)) as server:
        result = project.loop(
            "--autoresearch-agent=hybrid:litellm:openai/test-model", "--autoresearch-trials=4",
            "-o", f"autoresearch_api_base={server.url}", "-o", "autoresearch_hybrid_every=2", "-o", "autoresearch_hybrid_tuner=optuna:random",
            "-o", "autoresearch_agent_corrections=0", env={"OPENAI_API_KEY": "sk-test"},
        )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert rows[1]["status"] == "invalid" and rows[3]["status"] == "keep"  # the model's: no edit, then BIAS
    assert rows[3]["description"] == "Add a bias term the tuner can tune, and a steeper slope."
    assert rows[2]["description"].startswith("model.py:") and rows[4]["description"].startswith("model.py:")
    assert [r["tokens_in"] for r in rows] == ["", "100", "", "100", ""]
    assert len(server.requests) == 2
    assert "## Working with a tuner" in server.prompts()[0]
    assert rows[2]["description"] in server.prompts()[1]  # the model sees the tuner's trials
    found = studies(project.path)
    assert sorted(found) == ["t", "t-2"]
    assert set(found["t"][0].params) == {"model.py:SCALE", "model.py:OFFSET"}
    assert set(found["t-2"][0].params) == {"model.py:SCALE", "model.py:OFFSET", "model.py:BIAS"}
    assert [t.user_attrs.get("trial") for t in found["t"]] == [None, 2] and [t.user_attrs.get("trial") for t in found["t-2"]] == [None, 4]
    result.stdout.fnmatch_lines(["*agent hybrid: litellm openai/test-model*at trials 1, 3, 5, ..., optuna random (seed 0) between*"])
