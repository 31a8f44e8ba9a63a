"""The ``mutate`` agent: what it may touch, how it changes it, and that its search finds gains.

It is the offline baseline every LLM agent has to beat, so besides the mechanics these tests
run it in an in-process keep-if-better loop on two small seeded problems and require real
improvements within a dozen trials.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import random
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from helpers import FITNESS_TEST, Project, default_files

from pytest_autoresearch.agents import AgentError, AgentExhausted, ProposalContext
from pytest_autoresearch.agents.mutate import MutateAgent, find_targets, perturb
from pytest_autoresearch.core.records import MetricSpec, TrialRecord, is_better
from pytest_autoresearch.proposals.surface import Surface

METRIC = MetricSpec("tests/test_fit.py::test_fit", "mse", "min", True)


def make_context(
    files: Mapping[str, str], trial: int = 1, history: Sequence[TrialRecord] = (), score: float = 1.0
) -> ProposalContext:
    baseline = TrialRecord(0, "baseline", "baseline", score=score)
    kept = [r for r in history if r.status == "keep"]
    return ProposalContext(
        trial=trial,
        tag="test",
        rootdir=Path("."),
        workdir=Path("."),
        surface=Surface(sorted(files)),
        files=dict(files),
        program="",
        metric=METRIC,
        baseline=baseline,
        best=kept[-1] if kept else baseline,
        history=[baseline, *history],
        last_failure=None,
        trials_left=None,
        read=lambda path: None,
    )


def targets_of(path: str, text: str) -> dict[str, object]:
    return {t.name: t.value for t in find_targets({path: text})}


# --- what may be perturbed -------------------------------------------------------------------

PYTHON_MODEL = '''"""A model."""
import math

SEED = 1234
LR = 0.01
EPOCHS: int = 40
SHIFT = -3
OFFSET = -0.5
USE_BIAS = True
ADAM_BETAS = (0.9, 0.999)
LAYERS = [64, -1, "relu"]
NAME = "model"
IMAG = 2j
MASK = 0xFF


class Config:
    DROPOUT = 0.1


def train(xs):
    total = 0.0
    for i in range(10):
        total += xs[i] * 2
    return helper(total, scale=3.5)
'''


def test_python_targets_are_module_and_class_constants() -> None:
    assert targets_of("model.py", PYTHON_MODEL) == {
        "LR": 0.01,
        "EPOCHS": 40,
        "SHIFT": -3,
        "OFFSET": -0.5,
        "USE_BIAS": True,
        "ADAM_BETAS[0]": 0.9,
        "ADAM_BETAS[1]": 0.999,
        "LAYERS[0]": 64,
        "LAYERS[1]": -1,
        "Config.DROPOUT": 0.1,
    }


def test_keyword_arguments_only_when_a_file_has_no_constants() -> None:
    code = "import torch\n\ndef make(model):\n    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)\n"
    assert targets_of("train.py", code) == {"lr": 0.01, "momentum": 0.9}
    assert targets_of("train.py", "LR = 0.1\n" + code) == {"LR": 0.1}


def test_parameter_defaults_are_the_knobs_of_a_file_without_constants() -> None:
    """A library's knobs are often only its functions' defaults (cachetools' lru_cache(maxsize=128))."""
    code = (
        "def lru_cache(maxsize=128, typed=False):\n    return maxsize\n\n"
        "class Pool:\n    def __init__(self, workers=4, *, timeout=2.5, name='p'):\n        pass\n\n"
        "if __name__ == '__main__':\n    def main(n=3):\n        pass\n"
    )
    assert targets_of("func.py", code) == {"lru_cache(maxsize)": 128, "Pool.__init__(workers)": 4, "Pool.__init__(timeout)": 2.5}
    assert targets_of("func.py", "CACHE = 64\n" + code) == {"CACHE": 64}


def test_literals_inside_functions_are_never_touched() -> None:
    text = "def f(xs):\n    total = 0.0\n    for i in range(10):\n        total += xs[i] * 2\n    return total\n"
    assert targets_of("model.py", text) == {}


GUARDED = '''"""Guards and flags around the one real setting, LR."""
from __future__ import annotations

import sys
import typing
from typing import TYPE_CHECKING

__version__ = "1.0"
__version_info__ = (1, 0, 2)
VERSION = (2, 1)
TYPE_CHECKING_ = False
MYPY = False
DEBUG = True
_DEBUG = 0
IS_WINDOWS = False
PY3 = True
HAS_NUMPY = True
LR = 0.1

if TYPE_CHECKING:
    A = 1
if typing.TYPE_CHECKING:
    B = 2
if not TYPE_CHECKING:
    C = 3
if __debug__:
    D = 4
if False:
    E = 5
if 0:
    F = 6
if sys.version_info >= (3, 11):
    G = 7
else:
    G = 8
if sys.platform == "win32" or sys.platform.startswith("cygwin"):
    H = 9
if DEBUG:
    I = 10
if __name__ == "__main__":
    J = 11
'''


def test_guards_and_typing_or_debug_flags_are_never_targets() -> None:
    assert targets_of("model.py", GUARDED) == {"LR": 0.1}
    assert targets_of("model.py", GUARDED.replace("LR = 0.1\n", "")) == {}
    assert MutateAgent().preflight({"model.py": GUARDED.replace("LR = 0.1\n", "")}) is not None


def test_guards_are_never_flipped_over_many_proposals() -> None:
    """Only LR's literal ever changes, whatever the seed: every other line stays as it was."""
    other_lines = [line for line in GUARDED.splitlines() if not line.startswith("LR = ")]
    for seed in range(20):
        agent, files, history = MutateAgent(seed), {"model.py": GUARDED}, []
        for trial in range(1, 6):
            proposal = agent.propose(make_context(files, trial, history))
            assert proposal.description.startswith("model.py:18 LR 0.1 -> ")
            assert [line for line in proposal.files["model.py"].splitlines() if not line.startswith("LR = ")] == other_lines
            history.append(TrialRecord(trial, "discard", proposal.description, score=2.0))


def test_constants_under_an_ordinary_if_or_try_are_targets() -> None:
    """But not what a failed import or probe sets: WORKERS depends on whether torch is there."""
    text = (
        "import os\ntry:\n    import torch\n    WORKERS = 4\n    LR = 0.1\nexcept ImportError:\n    WORKERS = 1\n"
        "if os.environ.get('BIG'):\n    BATCH = 64\nelse:\n    BATCH = 16\n"
    )
    assert targets_of("model.py", text) == {"LR": 0.1, "BATCH (line 9)": 64, "BATCH (line 11)": 16}


CONTROL_FLOW = '''from itertools import islice


def windows(seq):
    for w in windowed(seq, 3, step=2):
        yield w
    while budget(n=3) > 0:
        pass
    if score(k=5) > 1:
        return list(islice(seq, 5))[::2]
    xs = [x for x in chunked(seq, size=4) if keep(x, limit=3)]
    head = seq[slice(0, 10, 2)]
    items = sorted(seq, key=len)[pick(offset=1)]
    time.sleep(timeout=0.5)
    return fit(xs, lr=0.01, momentum=0.9, step=2, n=4, axis=1, verbose=True)
'''


def test_literals_that_steer_control_flow_are_never_targets() -> None:
    """range/slice/loop steps, counts and indexes, and anything in a loop's iterable, a condition,
    a comparison or a subscript: only the optimiser's lr and momentum are settings here."""
    assert targets_of("more.py", CONTROL_FLOW) == {"lr": 0.01, "momentum": 0.9}


LIBRARY = '''import enum

TABLE = (1, 5, 9, 12, 40, 3, 3, 8, 2, 7)
RATIO = 0.75


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class Ansi:
    BLACK = 30
    RED = 31
    GREEN = 32
    YELLOW = 33
    RESET = 39


class Config:
    HIDDEN = 64
    LAYERS = 2
    HEADS = 4
'''


def test_enumerations_and_data_tables_are_not_settings() -> None:
    """What a library's modules are full of: codes numbered in a row and lookup tables."""
    assert targets_of("lib.py", LIBRARY) == {"RATIO": 0.75, "Config.HIDDEN": 64, "Config.LAYERS": 2, "Config.HEADS": 4}
    table = "_esc = dict(black=30, red=31)\n\ndef f(x):\n    return g(x, ratio=0.5, maxsize=128, default=0)\n"
    assert targets_of("tw.py", table) == {"ratio": 0.5}


def test_module_constants_are_chosen_before_call_arguments() -> None:
    """A surface with constants in one file and only keyword arguments in another draws the
    constants about four times as often (weights 1 and 0.25 per setting, two of each)."""
    files = {"config.py": "LR = 0.1\nDEPTH = 3\n", "train.py": "def go(m):\n    return fit(m, lr=0.01, momentum=0.9)\n"}
    touched = {"config.py": 0, "train.py": 0}
    for seed in range(300):
        for path in MutateAgent(seed).propose(make_context(files)).files:
            touched[path] += 1
    assert touched["config.py"] > 3 * touched["train.py"] > 0, touched


def test_repeated_names_get_their_line() -> None:
    assert targets_of("model.py", "N = 3\nN = 5\n") == {"N (line 1)": 3, "N (line 2)": 5}


def test_config_file_targets() -> None:
    toml = '[train]\nlr = 0.001\nepochs = 12\nname = "x"\nversion = "1.2.3"\nwhen = 2024-01-01\nzip = 01234\nseed = 3\n'
    assert targets_of("conf.toml", toml) == {"lr": 0.001, "epochs": 12}
    yaml = "model:\n  dropout: 0.5  # regularise\n  depth: -2\n  ratio: 1:2\n"
    assert targets_of("conf.yaml", yaml) == {"dropout": 0.5, "depth": -2}
    json = '{\n  "batch_size": 32,\n  "warmup": 1e-3\n}\n'
    assert targets_of("conf.json", json) == {"batch_size": 32, "warmup": 0.001}
    assert targets_of(".env", "export STEPS=100\nTOKEN=abc\n") == {"STEPS": 100}


def test_preflight_and_start_refuse_a_surface_without_targets() -> None:
    agent = MutateAgent()
    files = {"model.py": "def f():\n    return 1\n", "util.py": "TYPE_CHECKING = False\n"}
    reason = agent.preflight(files)
    assert reason is not None
    assert reason.startswith("mutate found nothing it can change in model.py, util.py: it changes numeric")
    assert "TYPE_CHECKING" in reason and "autoresearch_mutable" in reason and "litellm:MODEL" in reason
    with pytest.raises(AgentError, match=r"mutate found nothing it can change in model\.py"):
        agent.start(make_context({"model.py": "def f():\n    return 1\n"}))
    assert agent.preflight({"model.py": "K = 3\n"}) is None
    agent.start(make_context({"model.py": "K = 3\n"}))


# --- how it changes them -----------------------------------------------------------------------


def literal_values(text: str) -> dict[str, object]:
    """Module-level constants as Python evaluates them (tuples flattened like the agent's names)."""
    out: dict[str, object] = {}
    for stmt in ast.parse(text).body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            try:
                value = ast.literal_eval(stmt.value)
            except ValueError:
                continue
            if isinstance(value, (tuple, list)):
                out.update({f"{target.id}[{i}]": v for i, v in enumerate(value)})  # type: ignore[union-attr]
            else:
                out[target.id] = value  # type: ignore[union-attr]
    return out


TYPES_MODEL = "A = 3\nB = 40\nC = 0.9\nD = 2.5\nE = -7\nF = -0.25\nG = False\nH = 0\nI = 0.0\nJ = (0.5, 1)\n"


def test_types_signs_and_ranges_are_kept() -> None:
    before = literal_values(TYPES_MODEL)
    seen_changes: set[str] = set()
    for seed in range(12):
        agent = MutateAgent(seed)
        for trial in range(1, 9):
            proposal = agent.propose(make_context({"model.py": TYPES_MODEL}, trial))
            after = literal_values(proposal.files["model.py"])
            assert after.keys() == before.keys()
            for name, old in before.items():
                new = after[name]
                assert type(new) is type(old), (name, old, new)
                if new == old:
                    continue
                seen_changes.add(name)
                if isinstance(old, bool):
                    assert new is (not old)
                elif old == 0:
                    assert new != 0
                elif isinstance(old, float) and 0 < old < 1:
                    assert 0 < new < 1
                else:
                    assert (new > 0) == (old > 0), (name, old, new)
                    if isinstance(old, int):
                        assert abs(new) >= 1
    assert seen_changes == set(before)


def test_small_ints_step_and_counts_stay_positive() -> None:
    for seed in range(20):
        new = literal_values(MutateAgent(seed).propose(make_context({"m.py": "DEGREE = 1\n"})).files["m.py"])
        assert new["DEGREE"] in (2, 3)


def test_step_scale_widens_and_narrows_the_moves() -> None:
    def spread(scale: float) -> float:
        rng = random.Random(5)
        return sum(abs(math.log(perturb(2.0, rng, scale) / 2.0)) for _ in range(300)) / 300  # type: ignore[operator]

    assert spread(0.25) < 0.5 * spread(1.0) < 0.5 * spread(3.0)


def test_only_the_literal_span_changes() -> None:
    text = '# ünïcode heads the file\nÉTA = 0.5  # résumé\nPAIR = ("é", 7)\r\nK = 3\n'
    assert targets_of("m.py", text) == {"ÉTA": 0.5, "PAIR[1]": 7, "K": 3}
    targets = {t.name: t for t in find_targets({"m.py": text})}
    for seed in range(30):
        proposal = MutateAgent(seed).propose(make_context({"m.py": text}))
        new = proposal.files["m.py"]
        # Rebuild the new text from the old one by replacing only the described literals.
        expected = text
        for part in sorted(proposal.description.split(", "), key=lambda p: -targets[p.split(" ")[1]].start):
            place, name, old, arrow, value = part.split(" ")
            target = targets[name]
            assert place == f"m.py:{target.line}"
            assert (arrow, old) == ("->", target.text)
            expected = expected[: target.start] + value + expected[target.end :]
        assert new == expected


def test_description_format() -> None:
    proposal = MutateAgent(0).propose(make_context({"model.py": "SAMPLES = 40\n"}))
    assert re.fullmatch(r"model\.py:1 SAMPLES 40 -> \d+", proposal.description)
    files = {"model.py": "LAMBDA = 1.0\nDEGREE = 1\n", "conf.toml": "[fit]\nlr = 0.5\n"}
    places = {"model.py:1 LAMBDA", "model.py:2 DEGREE", "conf.toml:2 lr"}
    for seed in range(10):
        description = MutateAgent(seed).propose(make_context(files)).description
        for part in description.split(", "):
            place, old, arrow, new = part.rsplit(" ", 3)
            assert place in places and arrow == "->" and old != new, description
    text = "def train(model):\n    return fit(model, lr=0.01)\n"
    assert MutateAgent(0).propose(make_context({"src/train.py": text})).description.startswith("src/train.py:2 lr 0.01 -> ")
    twice = MutateAgent(0).propose(make_context({"m.py": "N = 3\nN = 5\n"})).description
    assert re.fullmatch(r"m\.py:(1 N 3|2 N 5) -> \d+(, m\.py:2 N 5 -> \d+)?", twice)


def test_same_seed_same_proposals_other_seeds_differ() -> None:
    files = {"model.py": "LAMBDA = 1.0\nDEGREE = 1\nALPHA = 0.3\n"}

    def sequence(seed: int) -> list[str]:
        agent = MutateAgent(seed)
        return [agent.propose(make_context(files, trial)).description for trial in range(1, 6)]

    assert sequence(0) == sequence(0)
    assert sequence(0) != sequence(1) != sequence(2)
    assert MutateAgent(3).describe() == "mutate (seed 3)"


def test_no_proposal_repeats_or_leaves_the_files_as_they_are() -> None:
    files = {"model.py": "DEGREE = 2\nUSE_BIAS = True\nLR = 0.01\n"}
    agent = MutateAgent(0)
    history: list[TrialRecord] = []
    seen = {files["model.py"]}
    for trial in range(1, 31):
        proposal = agent.propose(make_context(files, trial, history))
        assert proposal.error is None
        assert set(proposal.files) == {"model.py"}
        assert proposal.files["model.py"] not in seen, (trial, proposal.description)
        seen.add(proposal.files["model.py"])
        history.append(TrialRecord(trial, "discard", proposal.description, score=2.0))


def test_an_exhausted_surface_says_so_instead_of_proposing_a_tree_again() -> None:
    agent = MutateAgent(0)
    files = {"m.py": "USE_BIAS = True\n"}
    first = agent.propose(make_context(files, 1))
    assert first.files == {"m.py": "USE_BIAS = False\n"} and first.description == "m.py:1 USE_BIAS True -> False"
    history = [TrialRecord(1, "discard", first.description, score=2.0)]
    with pytest.raises(AgentExhausted, match=r"^mutate: nothing new to propose: every change it can make to the current best \(trial 0\) was tried already \(1 setting: m\.py:1 USE_BIAS; 2 versions"):
        agent.propose(make_context(files, 2, history))
    # kept: flipping back would give the baseline's own version, tried already
    kept = [TrialRecord(1, "keep", first.description, score=0.5)]
    with pytest.raises(AgentExhausted, match="widen autoresearch_mutable or use another agent"):
        agent.propose(make_context(first.files, 2, kept))


def test_a_small_surface_gets_every_version_once_then_exhaustion() -> None:
    """DEGREE = 2 can become 1, 3 or 4 (steps of one or two, a count stays >= 1), USE_BIAS can
    flip: seven versions besides the start, each proposed once, in any order, then the end."""
    for seed in range(6):
        files = {"m.py": "DEGREE = 2\nUSE_BIAS = True\n"}
        agent, history, seen = MutateAgent(seed), [], {files["m.py"]}
        with pytest.raises(AgentExhausted):
            for trial in range(1, 20):
                proposal = agent.propose(make_context(files, trial, history))
                assert proposal.files["m.py"] not in seen, (seed, trial, proposal.description)
                seen.add(proposal.files["m.py"])
                history.append(TrialRecord(trial, "discard", proposal.description, score=2.0))
        assert len(seen) == 8, (seed, sorted(seen))


def _commit(repo: Path, rel: str, text: str) -> str:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for args in (["add", "-A"], ["commit", "-q", "--allow-empty", "-m", "v"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_a_resumed_agent_never_proposes_a_version_the_log_tried(tmp_path: Path) -> None:
    """Six of the seven versions within reach were tried before the run stopped (their trial
    commits are in the log); the fresh agent of the resumed run proposes the seventh, then ends."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    start = "DEGREE = 2\r\nUSE_BIAS = True\r\n"  # CRLF in git, LF as the worktree's reader (read_text) sees it
    history = [TrialRecord(0, "baseline", "baseline", commit=_commit(repo, "proj/m.py", start), score=1.0)]
    versions = [f"DEGREE = {d}\nUSE_BIAS = {b}\n" for d in (1, 3, 4, 2) for b in (True, False)]
    untried = "DEGREE = 4\nUSE_BIAS = False\n"
    for trial, text in enumerate([v for v in versions if v not in (untried, "DEGREE = 2\nUSE_BIAS = True\n")], 1):
        crlf = text.replace("\n", "\r\n")
        history.append(TrialRecord(trial, "discard", f"try {trial}", commit=_commit(repo, "proj/m.py", crlf), score=2.0))
    history.append(TrialRecord(7, "invalid", "refused before it ran"))
    _commit(repo, "proj/m.py", start.replace("\r\n", "\n"))  # the current best, checked out
    notes: list[str] = []
    context = dataclasses.replace(
        make_context({"m.py": start.replace("\r\n", "\n")}, 8), workdir=repo / "proj", history=history, note=notes.append
    )
    agent = MutateAgent(0)
    agent.start(context)
    assert agent.propose(context).files == {"m.py": untried}
    with pytest.raises(AgentExhausted):
        agent.propose(dataclasses.replace(context, trial=9))
    assert notes == []


def test_an_unreadable_log_is_said_and_the_search_goes_on(tmp_path: Path) -> None:
    history = [TrialRecord(1, "discard", "x", commit="0" * 40, score=2.0)]
    notes: list[str] = []
    context = dataclasses.replace(make_context({"m.py": "LR = 0.1\n"}, 2), workdir=tmp_path, history=history, note=notes.append)
    agent = MutateAgent(0)
    agent.start(context)
    assert agent.propose(context).files["m.py"] != "LR = 0.1\n"
    assert len(notes) == 1 and notes[0].startswith("mutate: could not read the earlier trials' files (git rev-parse")


def test_a_kept_move_is_tried_again() -> None:
    """About half the time; a blind draw would repeat it by chance in about a quarter."""
    repeated = 0
    for seed in range(40):
        agent = MutateAgent(seed)
        first = agent.propose(make_context({"m.py": "DEGREE = 1\n"}, 1))
        step = int(first.description.split()[-1]) - 1
        history = [TrialRecord(1, "keep", first.description, score=0.5)]
        second = agent.propose(make_context(first.files, 2, history))
        if second.description == f"m.py:1 DEGREE {1 + step} -> {1 + 2 * step}":
            repeated += 1
    assert 20 <= repeated < 40


def test_only_surface_files_change() -> None:
    files = {"model.py": "K = 3\n", "notes.md": "No numbers here.\n"}
    for seed in range(5):
        assert set(MutateAgent(seed).propose(make_context(files)).files) == {"model.py"}


# --- does the search find gains ---------------------------------------------------------------

RIDGE_MODEL = '''"""Polynomial ridge regression, solved in pure Python."""

DEGREE = 1
LAMBDA = 1.0


def fit(xs, ys):
    n = DEGREE + 1
    a = [[0.0] * n for _ in range(n)]
    b = [0.0] * n
    for x, y in zip(xs, ys):
        row = [x**k for k in range(n)]
        for i in range(n):
            b[i] += row[i] * y
            for j in range(n):
                a[i][j] += row[i] * row[j]
    for i in range(1, n):
        a[i][i] += LAMBDA
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        b[col], b[pivot] = b[pivot], b[col]
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            for c in range(col, n):
                a[r][c] -= f * a[col][c]
            b[r] -= f * b[col]
    w = [0.0] * n
    for i in range(n - 1, -1, -1):
        w[i] = (b[i] - sum(a[i][j] * w[j] for j in range(i + 1, n))) / a[i][i]
    return lambda x: sum(wk * x**k for k, wk in enumerate(w))
'''


def _ridge_data() -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    rng = random.Random(7)
    points = []
    for _ in range(120):
        x = rng.uniform(-1.5, 1.5)
        points.append((x, math.sin(3 * x) + 0.5 * x * x + rng.gauss(0.0, 0.2)))
    return points[:80], points[80:]


TRAIN, VALID = _ridge_data()


def ridge_mse(text: str) -> float:
    namespace: dict[str, object] = {}
    exec(compile(text, "model.py", "exec"), namespace)
    predict = namespace["fit"]([x for x, _ in TRAIN], [y for _, y in TRAIN])  # type: ignore[operator]
    return sum((predict(x) - y) ** 2 for x, y in VALID) / len(VALID)


SMOOTHING_MODEL = '''"""Exponential smoothing, then a centred moving average."""

ALPHA = 0.9
WINDOW = 9


def smooth(signal):
    level = signal[0]
    levels = []
    for value in signal:
        level = ALPHA * value + (1 - ALPHA) * level
        levels.append(level)
    half = WINDOW // 2
    out = []
    for i in range(len(levels)):
        window = levels[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out
'''


def _signal() -> tuple[list[float], list[float]]:
    rng = random.Random(11)
    clean = [math.sin(t / 15) for t in range(200)]
    return clean, [c + rng.gauss(0.0, 0.5) for c in clean]


CLEAN, NOISY = _signal()


def smoothing_mse(text: str) -> float:
    namespace: dict[str, object] = {}
    exec(compile(text, "model.py", "exec"), namespace)
    out = namespace["smooth"](NOISY)  # type: ignore[operator]
    return sum((a - b) ** 2 for a, b in zip(out, CLEAN)) / len(CLEAN)


def search(text: str, score: Callable[[str], float], agent: MutateAgent, trials: int) -> tuple[int | None, float, float]:
    """A keep-if-strictly-better loop like the driver's: (first improving trial, baseline, best)."""
    files = {"model.py": text}
    best = baseline = score(text)
    history: list[TrialRecord] = []
    first: int | None = None
    context = make_context(files, 1, history, baseline)
    agent.start(context)
    for trial in range(1, trials + 1):
        context = make_context(files, trial, history, baseline)
        proposal = agent.propose(context)
        assert proposal.error is None and set(proposal.files) <= set(files)
        candidate = {**files, **proposal.files}
        assert candidate != files
        try:
            value = score(candidate["model.py"])
            status = "keep" if math.isfinite(value) and is_better(value, best, "min") else "discard"
        except (ArithmeticError, OverflowError):
            value, status = math.nan, "crash"
        history.append(TrialRecord(trial, status, proposal.description, score=value))
        if status == "keep":
            files, best = candidate, value
            first = trial if first is None else first
    return first, baseline, best


def test_default_seed_improves_the_ridge_fit_within_ten_trials() -> None:
    first, baseline, best = search(RIDGE_MODEL, ridge_mse, MutateAgent(), 10)
    assert first is not None and first <= 10
    assert best < 0.25 * baseline  # a higher degree, not a rounding-level gain


@pytest.mark.parametrize("seed", range(5))
def test_every_seed_improves_the_ridge_fit_within_twelve_trials(seed: int) -> None:
    first, baseline, best = search(RIDGE_MODEL, ridge_mse, MutateAgent(seed), 12)
    assert first is not None and first <= 12
    assert best < 0.25 * baseline


@pytest.mark.parametrize("seed", range(5))
def test_every_seed_improves_the_smoothing_within_twelve_trials(seed: int) -> None:
    first, baseline, best = search(SMOOTHING_MODEL, smoothing_mse, MutateAgent(seed), 12)
    assert first is not None and first <= 12
    assert best < 0.9 * baseline


# --- in a real run -----------------------------------------------------------------------------

NO_SETTINGS_MODEL = '''"""A model with nothing mutate can change: its numbers are code, its flag is for typing."""
TYPE_CHECKING = False


def predict(x):
    return sum(2.5 * x for _ in range(1)) + 3.0
'''

SLOW_FITNESS = FITNESS_TEST.replace("def test_error(fitness):\n", "def test_error(fitness):\n    time.sleep(30)\n").replace("import pytest\n", "import time\n\nimport pytest\n", 1)


def test_a_surface_with_nothing_to_change_stops_before_the_baseline(project: Project) -> None:
    """The baseline would take a minute (two runs of a 30 s fitness test): the run refuses in
    seconds, says what mutate looked for in which file and what to do, and leaves nothing."""
    project.init({**default_files(), "model.py": NO_SETTINGS_MODEL, "tests/test_fitness.py": SLOW_FITNESS})
    refs = project.git("for-each-ref")
    result = project.loop("--autoresearch-trials=3", timeout=120)
    assert result.ret != 0, result.stdout.str()
    result.stderr.fnmatch_lines(
        ["ERROR: autoresearch: agent mutate: mutate found nothing it can change in model.py: it changes numeric*"
         "*TYPE_CHECKING*Name files with such settings in autoresearch_mutable*or use an agent that edits code*"]
    )
    assert "Traceback" not in result.stderr.str()
    assert result.duration < 25, result.duration  # the baseline did not run
    assert not [line for line in result.outlines if line.startswith(("trial ", "autoresearch: run "))]
    assert not (project.path / ".autoresearch").exists()  # no run folder, no baseline log
    assert project.git("for-each-ref") == refs
    assert project.git("worktree", "list").count("\n") == 0


FLAG_MODEL = '''"""One switch: the only change mutate can make, and a worse one."""

EXACT = True


def predict(x):
    return 2.5 * x + 3.0 if EXACT else 2.0 * x
'''


def test_a_resumed_run_does_not_propose_what_it_tried_before_it_stopped(project: Project) -> None:
    """The first session flips the switch (discarded); the resumed one has nothing new to try
    and says so, rather than running the same version again."""
    project.init({**default_files(), "model.py": FLAG_MODEL})
    first = project.loop("--autoresearch-trials=1")
    assert first.ret == 0, first.stdout.str()
    assert [(r["status"], r["description"]) for r in project.rows()] == [("baseline", "baseline"), ("discard", "model.py:3 EXACT True -> False")]
    second = project.loop("--autoresearch-trials=1")
    assert second.ret == 0, second.stdout.str()
    second.stdout.fnmatch_lines(["stopped: mutate: nothing new to propose: every change it can make to the current best (trial 0) was tried already (1 setting: model.py:3 EXACT; 2 versions of the surface seen); widen autoresearch_mutable or use another agent to go on"])
    assert project.statuses() == ["baseline", "discard"]


def test_settings_in_reviewed_files_keep_their_values_while_others_are_left() -> None:
    """A blind perturbation of a file a person reviews would park every better trial for them;
    mutate changes the other files' settings, and says so once; it changes them when they are all there is."""
    files = {"model.py": "A = 4\nB = 0.5\n", "loss.py": "WEIGHT = 2.0\nSMOOTH = 0.1\n"}
    notes: list[str] = []
    agent = MutateAgent(seed=0)
    context = dataclasses.replace(make_context(files), reviewed=lambda path: path == "loss.py", note=notes.append)
    agent.start(context)
    touched = {part.split(":")[0] for n in range(1, 30) for part in agent.propose(dataclasses.replace(context, trial=n)).description.split(", ")}
    assert touched == {"model.py"}
    assert notes == ["mutate: the settings of loss.py stay as they are (autoresearch_review): it changes the others"]
    alone = dataclasses.replace(make_context({"loss.py": files["loss.py"]}), reviewed=lambda path: True)
    assert MutateAgent(seed=0).propose(alone).description.startswith("loss.py:")
