"""The problems of ``bench/search.py``: cheap functions scored in-process, and bundled examples.

A function problem is a surface (files an operator may change, as a project would have them)
and an evaluator: a Python function of the surface files' text that returns the score, or None
when the files do not define what it reads (a crash, as a failed test would be). Every operator
sees the same surface; what it may change follows from the files alone (``agents/targets.py``),
so no operator is handed a search space the others lack.

- ``rosenbrock``: Rosenbrock's function from its classic start (-1.2, 1), shifted by 3 in both
  coordinates: start X = 1.8, Y = 4.0 (f = 24.2), minimum 0 at X = Y = 4. Shifted because every
  operator reads the same two float constants and each moves a positive float on a log scale:
  mutate keeps a constant's sign and treats a float in (0, 1) as a ratio (logit scale, never
  reaching 1), and the tuner's default range for a positive float is a factor of ten either way
  (X in [0.18, 18], Y in [0.4, 40]). With the shift the start, the valley between it and the
  minimum, and the minimum all lie above 1, inside every operator's space with room on each side.
- ``kmodule``: OpenEvolve's K-module problem: four module-level string constants with five
  declared choices each (``# autoresearch-choices:`` marker comments); the score is how many
  are right (0 to 4), nothing says which. The right combination is drawn per seed, each module's
  from the four options the start does not use, so every run starts at 0 of 4.

The example problems run the real loop on a copy of ``examples/<name>`` (``examples/run.py``).
"""

from __future__ import annotations

import ast
import dataclasses
import random
from collections.abc import Callable, Mapping

Files = Mapping[str, str]
Evaluator = Callable[[Files], "float | None"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One benchmark problem: what the operators search, how it is scored, when it is solved."""

    name: str
    title: str  # one line for the README and the plot
    goal: str  # "min" or "max"
    budget: int  # trials per run at full size
    target: float  # the score that counts as reaching the goal (<= for min, >= for max)
    kind: str = "function"  # "function": in-process; "example": the real loop on examples/<example>
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the surface at the start
    program: str = ""  # what a model agent is told
    evaluator: Callable[[int], Evaluator] | None = None  # seed -> the evaluator of that seed's run
    seeds: int = 5  # seeds at full size
    checkpoints: tuple[int, ...] = ()  # further trial counts the table reports (the K-module's 100)
    example: str = ""
    loop_args: tuple[str, ...] = ()  # more arguments for the example's loop
    continuous: bool = False  # CMA-ES runs only on continuous problems

    def reached(self, score: float | None) -> bool:
        if score is None:
            return False
        return score <= self.target if self.goal == "min" else score >= self.target


def constants(text: str) -> dict[str, object]:
    """The module-level ``NAME = literal`` assignments of a Python file (nothing is executed)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    found: dict[str, object] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            except ValueError:
                continue
    return found


# -- Rosenbrock --------------------------------------------------------------------------

ROSENBROCK_START = (1.8, 4.0)  # the classic (-1.2, 1), shifted
ROSENBROCK_SHIFT = 3.0  # the minimum of (1 - u)^2 + 100 (v - u^2)^2 is u = v = 1: X = Y = 4


def rosenbrock(x: float, y: float) -> float:
    u, v = x - ROSENBROCK_SHIFT, y - ROSENBROCK_SHIFT
    return (1.0 - u) ** 2 + 100.0 * (v - u * u) ** 2


def _rosenbrock_evaluator(seed: int) -> Evaluator:
    def evaluate(files: Files) -> float | None:
        found = constants(files.get("point.py", ""))
        x, y = found.get("X"), found.get("Y")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            return None
        return rosenbrock(float(x), float(y))  # type: ignore[arg-type]

    return evaluate


ROSENBROCK = Problem(
    name="rosenbrock",
    title="Rosenbrock, 2-D, start (1.8, 4.0) f = 24.2, minimum 0 at (4, 4)",
    goal="min",
    budget=100,
    target=1.0,
    files={
        "point.py": (
            '"""A point in the plane: the two coordinates the search moves."""\n\n'
            f"X = {ROSENBROCK_START[0]!r}\nY = {ROSENBROCK_START[1]!r}\n"
        )
    },
    program="Minimise the score: a smooth function of the two constants X and Y in point.py. Change only X and Y.\n",
    evaluator=_rosenbrock_evaluator,
    seeds=10,
    continuous=True,
)


# -- K-module ------------------------------------------------------------------------------

KMODULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "LOADER": ("csv_reader", "json_reader", "xml_reader", "parquet_reader", "sql_reader"),
    "PREPROCESS": ("normalize", "standardize", "minmax", "scale", "none"),
    "ALGORITHM": ("quicksort", "mergesort", "heapsort", "bubblesort", "insertion"),
    "FORMATTER": ("json", "xml", "csv", "yaml", "protobuf"),
}
#: OpenEvolve's initial program: 0 of 4 right wherever the right combination is drawn from the others
KMODULE_START = {"LOADER": "json_reader", "PREPROCESS": "standardize", "ALGORITHM": "mergesort", "FORMATTER": "xml"}


def kmodule_answer(seed: int) -> dict[str, str]:
    """The right combination of a seed's run: for each module one of the options the start does not use."""
    rng = random.Random(f"kmodule:{seed}")
    return {name: rng.choice([o for o in options if o != KMODULE_START[name]]) for name, options in KMODULE_OPTIONS.items()}


def kmodule_score(files: Files, answer: Mapping[str, str]) -> float | None:
    """How many modules are right; None when a module's constant is missing or not one of its options."""
    found = constants(files.get("pipeline.py", ""))
    if any(found.get(name) not in options for name, options in KMODULE_OPTIONS.items()):
        return None
    return float(sum(found[name] == right for name, right in answer.items()))


def _kmodule_file() -> str:
    lines = ['"""The pipeline\'s four modules: one option each; the evaluator says only how many are right."""', ""]
    for name, options in KMODULE_OPTIONS.items():
        listed = ", ".join(f'"{o}"' for o in options)
        lines.append(f'{name} = "{KMODULE_START[name]}"  # autoresearch-choices: {listed}')
    return "\n".join(lines) + "\n"


def _kmodule_evaluator(seed: int) -> Evaluator:
    answer = kmodule_answer(seed)
    return lambda files: kmodule_score(files, answer)


KMODULE = Problem(
    name="kmodule",
    title="K-module: 4 modules x 5 options, score = how many are right",
    goal="max",
    budget=50,
    target=4.0,
    files={"pipeline.py": _kmodule_file()},
    program=(
        "Maximise the score: how many of the four module choices in pipeline.py are right (0 to 4). The score "
        "does not say which ones. Each constant must stay one of the options its comment lists.\n"
    ),
    evaluator=_kmodule_evaluator,
    seeds=10,
    checkpoints=(100,),
)


# -- the bundled examples --------------------------------------------------------------------

QUICKSTART = Problem(
    name="quickstart",
    title="examples/quickstart: RMSE of a denoiser, 3 constants (the real loop)",
    goal="min",
    budget=20,
    target=0.12,
    kind="example",
    example="quickstart",
)

CLINICAL = Problem(
    name="clinical",
    title="examples/clinical: validation AUC, 11 constants, 2 of 3 files reviewed (the real loop)",
    goal="max",
    budget=15,
    target=0.80,
    kind="example",
    example="clinical",
)

#: clinical without its review gate (``autoresearch_review`` emptied): every keep moves the branch.
#: Not in the default set; it shows what the tuner finds where no trial is parked for a person.
CLINICAL_OPEN = dataclasses.replace(
    CLINICAL,
    name="clinical-open",
    title="examples/clinical without autoresearch_review: every setting may be kept (the real loop)",
    loop_args=("-o", "autoresearch_review="),
)

#: not in the default set: its score is CPU time, and on a shared 2-core machine the noise rule
#: kept 0 or 1 of 12 trials per run (baseline runs from 62 to 83 ms), so it ranks no operator
SQLITE = Problem(
    name="sqlite",
    title="examples/sqlite: p95 query latency in ms, 7 index switches and cache_size (the real loop)",
    goal="min",
    budget=12,
    target=10.0,
    kind="example",
    example="sqlite",
)

PROBLEMS: dict[str, Problem] = {p.name: p for p in (ROSENBROCK, KMODULE, QUICKSTART, CLINICAL, CLINICAL_OPEN, SQLITE)}
DEFAULT = ("rosenbrock", "kmodule", "quickstart", "clinical")
