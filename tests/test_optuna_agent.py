"""The ``optuna`` agent: its specs, its search space, what its study is told for each outcome, and
that the study lives in the run folder, resumes with the run and works with several workers."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import FITNESS_TEST, Project, default_files

from pytest_autoresearch.agents import AgentExhausted, ProposalContext
from pytest_autoresearch.agents.builtin import optuna_spec, pytest_autoresearch_make_agent
from pytest_autoresearch.agents.space import dimension, skeleton, space_of
from pytest_autoresearch.agents.targets import find_targets
from pytest_autoresearch.agents.tuner import OptunaAgent
from pytest_autoresearch.core.records import MetricSpec, TrialRecord
from pytest_autoresearch.install_hint import pip_install
from pytest_autoresearch.proposals.surface import Surface

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

METRIC = MetricSpec("tests/test_fit.py::test_fit", "error", "min", True)
TEXT = '''"""Settings of every kind."""

X = 1.5
NEG = -2.0
RATE = 0.3
N = 8
ZERO = 0
USE = True
LOSS = "mse"  # autoresearch-choices: "mse", "huber", "l1"
LR = 0.01  # autoresearch-range: 1e-4, 1.0
'''


def study_of(root: Path, name: str = "t") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root}/.autoresearch/t/optuna.db")


class Driver:
    """A keep-if-better loop over the agent seam, as the engine runs it with one worker."""

    def __init__(self, root: Path, text: str, score: Callable[[dict[str, object]], float], agent: OptunaAgent, goal: str = "min") -> None:
        self.root, self.files, self.score, self.agent = root, {"model.py": text}, score, agent
        self.metric = dataclasses.replace(METRIC, goal=goal)  # type: ignore[arg-type]
        self.baseline = TrialRecord(0, "baseline", "baseline", score=self.evaluate(self.files))
        self.history: list[TrialRecord] = [self.baseline]
        self.best = self.baseline

    def evaluate(self, files: Mapping[str, str]) -> float:
        namespace: dict[str, object] = {}
        exec(files["model.py"], namespace)
        return self.score(namespace)

    def context(self, trial: int) -> ProposalContext:
        return ProposalContext(
            trial=trial, tag="t", rootdir=self.root, workdir=self.root, surface=Surface(["model.py"]), files=dict(self.files),
            program="", metric=self.metric, baseline=self.baseline, best=self.best, history=list(self.history), last_failure=None,
            trials_left=None, read=self.files.get, note=lambda line: None,
        )

    def trial(self, number: int) -> TrialRecord:
        proposal = self.agent.propose(self.context(number))
        candidate = {**self.files, **proposal.files}
        value = self.evaluate(candidate)
        better = value < self.best.score if self.metric.goal == "min" else value > self.best.score  # type: ignore[operator]
        record = TrialRecord(number, "keep" if better else "discard", proposal.description, score=value, parent=self.best.commit, parent_trial=self.best.trial)
        self.history.append(record)
        if better:
            self.files, self.best = candidate, record
        return record


def distance(ns: dict[str, object]) -> float:
    return (ns["X"] - 3.2) ** 2 + (ns["RATE"] - 0.7) ** 2 + (0.0 if ns["LOSS"] == "l1" else 1.0) + abs(ns["N"] - 20) / 10  # type: ignore[operator]


# --- specs -------------------------------------------------------------------------------------


def test_the_specs_name_a_sampler_and_a_seed() -> None:
    assert optuna_spec("") == ("tpe", 0)
    assert optuna_spec("5") == ("tpe", 5)
    assert optuna_spec("tpe:3") == ("tpe", 3)
    assert optuna_spec("cmaes") == ("cmaes", 0)
    assert optuna_spec("random:-2") == ("random", -2)
    for bad in ("gp", "tpe:x", "tpe:1:2", "cmaes:", "1:2"):
        with pytest.raises(pytest.UsageError, match=r"unknown agent 'optuna:.*': use 'optuna', 'optuna:SEED', 'optuna:tpe', 'optuna:cmaes' or 'optuna:random', each with an optional ':SEED' \(an integer\)"):
            optuna_spec(bad)
    config = SimpleNamespace(stash={})
    agent = pytest_autoresearch_make_agent(config=config, spec="optuna:cmaes:4")  # type: ignore[arg-type]
    assert isinstance(agent, OptunaAgent) and agent.describe() == "optuna cmaes (seed 4)"


def test_a_missing_optuna_is_one_line_with_a_hint_that_installs_it(project: Project) -> None:
    project.init()
    fake = project.outside / "nooptuna"
    (fake / "optuna").mkdir(parents=True)
    (fake / "optuna" / "__init__.py").write_text("raise ImportError('no optuna here')\n")
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH", "")) if p)
    result = project.loop("--autoresearch-agent=optuna:random", env={"PYTHONPATH": path})
    assert result.ret != 0
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: autoresearch: agent optuna:random: the optuna agent needs optuna: {pip_install('optuna')}"
    ]
    assert not (project.path / ".autoresearch").exists()


# --- the space ---------------------------------------------------------------------------------


def test_each_kind_of_setting_gets_its_dimension() -> None:
    dims = {d.name.split(":")[1]: d for d in space_of(find_targets({"model.py": TEXT})).dims}
    assert [d.describe() for d in dims.values()] == [
        "model.py:X float in [0.15, 15.0], log scale",
        "model.py:NEG float in [-20.0, -0.2], log scale",
        "model.py:RATE float in [0.0411, 0.811], logit scale",
        "model.py:N int in [2, 32], log scale",
        "model.py:ZERO int in [-4, 4]",
        "model.py:USE one of False, True",
        "model.py:LOSS one of 'mse', 'huber', 'l1'",
        "model.py:LR float in [0.0001, 1.0], log scale",
    ]
    assert dimension(find_targets({"m.py": "K = 3\n"})[0]).describe() == "m.py:K int in [1, 12], log scale"
    assert dimension(find_targets({"m.py": "K = 2\n"})[0]).describe() == "m.py:K int in [1, 8]"
    assert dimension(find_targets({"m.py": "W = 0.5  # autoresearch-range: 0.1, 5\n"})[0]).describe() == "m.py:W float in [0.1, 5.0]"
    assert dimension(find_targets({"m.py": "B = 32  # autoresearch-range: 1, 512\n"})[0]).describe() == "m.py:B int in [1, 512], log scale"


def test_every_draw_decodes_to_a_literal_of_the_type_and_sign_it_had() -> None:
    targets = find_targets({"model.py": TEXT})
    space = space_of(targets)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    dists = _dists(space)
    for _ in range(200):
        trial = study.ask(dists)
        values = space.literals(trial.params)
        study.tell(trial, 0.0)
        for target in targets:
            value = values[f"model.py:{target.name}"]
            assert type(value) is type(target.value), (target.name, value)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and target.value != 0:
                assert (value > 0) == (target.value > 0), (target.name, value)
        assert 0 < values["model.py:RATE"] < 1 and 1e-4 <= values["model.py:LR"] <= 1.0
        assert space.params(values) is not None  # what ran can be told back
    assert space.params({**space.literals(trial.params), "model.py:N": 1000}) is None


def _dists(space):  # the distributions the agent asks with
    from pytest_autoresearch.agents.studies import Studies

    return Studies._distributions(SimpleNamespace(optuna=optuna), space)  # type: ignore[arg-type]


def test_the_skeleton_is_the_program_without_its_values() -> None:
    def skel(text: str) -> str:
        return skeleton({"m.py": text}, find_targets({"m.py": text}))

    assert skel("A = 1\nB = 0.5\n") == skel("A = 7\nB = 0.25\n")
    assert skel("A = 1\nB = 0.5\n") != skel("A = 1\nB = 0.5\nC = 2\n")  # a new constant
    assert skel("A = 1\n") != skel("A = 1.0\n")  # another type: another dimension
    assert skel("A = 1\ndef f():\n    return A\n") != skel("A = 1\ndef f():\n    return -A\n")


# --- proposals and the study ------------------------------------------------------------------


def test_proposals_come_from_the_study_and_the_study_from_the_run_folder(tmp_path: Path) -> None:
    driver = Driver(tmp_path, TEXT, distance, OptunaAgent("tpe", seed=0))
    driver.agent.start(driver.context(1))
    records = [driver.trial(n) for n in range(1, 21)]
    assert driver.best.score < 0.75 * driver.baseline.score  # type: ignore[operator]
    for record in records:
        for part in record.description.split(", "):
            assert part.startswith("model.py:") and " -> " in part, part
    driver.agent.logged(records[-1])
    driver.agent.close()
    trials = study_of(tmp_path).trials
    assert trials[0].user_attrs["source"] == "start" and trials[0].value == driver.baseline.score
    assert trials[0].user_attrs["literals"] == {"model.py:X": 1.5, "model.py:NEG": -2.0, "model.py:RATE": 0.3, "model.py:N": 8, "model.py:ZERO": 0,
                                                 "model.py:USE": True, "model.py:LOSS": "mse", "model.py:LR": 0.01}
    asked = [t for t in trials if "trial" in t.user_attrs]
    assert [t.user_attrs["trial"] for t in asked] == list(range(1, 21))
    assert [t.value for t in asked] == [r.score for r in records]  # what each row says, in the study
    assert all(t.state.name == "COMPLETE" for t in asked)


def test_the_same_seed_proposes_the_same_and_others_differ(tmp_path: Path) -> None:
    def descriptions(seed: int, sampler: str, where: str) -> list[str]:
        (tmp_path / where).mkdir()
        driver = Driver(tmp_path / where, TEXT, distance, OptunaAgent(sampler, seed=seed))
        out = [driver.trial(n).description for n in range(1, 4)]
        driver.agent.close()
        return out

    for sampler in ("tpe", "random", "cmaes"):
        first = descriptions(1, sampler, f"{sampler}-a")
        assert descriptions(1, sampler, f"{sampler}-b") == first != descriptions(2, sampler, f"{sampler}-c")


def test_the_direction_follows_the_metric(tmp_path: Path) -> None:
    driver = Driver(tmp_path, "K = 5\n", lambda ns: -abs(ns["K"] - 17), OptunaAgent("tpe", seed=0), goal="max")  # type: ignore[operator]
    for n in range(1, 4):
        driver.trial(n)
    driver.agent.close()
    assert study_of(tmp_path).direction == optuna.study.StudyDirection.MAXIMIZE


OUTCOMES = [
    ("keep", "", 1.5, ("COMPLETE", 1.5)),
    ("discard", "error 3 is worse than the best 2", 3.0, ("COMPLETE", 3.0)),
    ("review", "touches model.py (autoresearch_review)", 1.0, ("COMPLETE", 1.0)),
    ("discard", "breaks a bound: size 12 is above its max 10", 1.0, ("FAIL", None)),
    ("crash", "tests/test_gate.py::test_x failed: AssertionError", None, ("FAIL", None)),
    ("timeout", "killed at the 60s trial deadline", None, ("FAIL", None)),
    ("tamper", "changed what a trial must not: tests/test_fit.py", 0.1, ("FAIL", None)),
    ("invalid", "the proposal leaves every file as it is", None, ("FAIL", None)),
]


@pytest.mark.parametrize(("status", "reason", "score", "told"), OUTCOMES, ids=[f"{o[0]}-{o[3][0]}" for o in OUTCOMES])
def test_each_outcome_is_told_to_the_study(tmp_path: Path, status: str, reason: str, score: float | None, told: tuple[str, float | None]) -> None:
    driver = Driver(tmp_path, TEXT, distance, OptunaAgent("random", seed=0))
    proposal = driver.agent.propose(driver.context(1))
    assert proposal.files
    driver.history.append(TrialRecord(1, status, proposal.description, score=score, reason=reason, parent_trial=0))
    driver.agent.propose(driver.context(2))  # it reads the row
    driver.agent.close()
    (asked,) = [t for t in study_of(tmp_path).trials if t.user_attrs.get("trial") == 1]
    assert (asked.state.name, asked.value) == told
    if told[0] == "FAIL":
        assert asked.user_attrs["outcome"] == f"{status}: {reason}"


def test_tpe_learns_from_a_trial_that_broke_a_bound_as_an_infeasible_one(tmp_path: Path) -> None:
    """Random search and CMA-ES cannot use constraints: for them it stays a failed trial (above)."""
    driver = Driver(tmp_path, TEXT, distance, OptunaAgent("tpe", seed=0))
    bounded = dataclasses.replace(driver.context(1), bounds={"size": (None, 10.0), "recall": (0.5, None)})
    proposal = driver.agent.propose(bounded)
    reason = "breaks a bound: size 12 is above its max 10"
    driver.history.append(TrialRecord(1, "discard", proposal.description, score=0.5, reason=reason, metrics={"size": 12.0, "recall": 0.7}, parent_trial=0))
    driver.agent.propose(dataclasses.replace(bounded, trial=2, history=list(driver.history)))
    driver.agent.close()
    (asked,) = [t for t in study_of(tmp_path).trials if t.user_attrs.get("trial") == 1]
    assert (asked.state.name, asked.value, asked.constraints) == ("COMPLETE", 0.5, {"bounds": 2.0})
    assert asked.user_attrs["outcome"] == reason


def test_a_repeated_draw_of_a_model_sampler_becomes_an_untried_neighbour(tmp_path: Path) -> None:
    """Nine versions and a flat score: once TPE's model settles it draws known versions; each
    such draw is followed by a neighbour of it, so every version runs before the space is
    called exhausted (random search draws again instead: it is the yardstick)."""
    text = 'A = "a"  # autoresearch-choices: "a", "b", "c"\nB = "x"  # autoresearch-choices: "x", "y", "z"\n'
    driver = Driver(tmp_path, text, lambda ns: 1.0, OptunaAgent("tpe", seed=0))
    tried = {version(driver.files)}
    with pytest.raises(AgentExhausted):
        for n in range(1, 20):
            proposal = driver.agent.propose(driver.context(n))
            tried.add(version({**driver.files, **proposal.files}))
            driver.history.append(TrialRecord(n, "discard", proposal.description, score=1.0, parent_trial=0))
    driver.agent.close()
    assert len(tried) == 9 and n == 9
    trials = study_of(tmp_path).trials
    neighbours = [t for t in trials if "neighbour_of" in t.user_attrs]
    assert neighbours and all(t.user_attrs.get("trial") for t in neighbours[:-1])  # each ran as a trial of the loop


def version(files: Mapping[str, str]) -> str:
    return "".join(line.split("#")[0] for line in files["model.py"].splitlines())


def test_settings_in_reviewed_files_keep_their_values_while_others_are_left(tmp_path: Path) -> None:
    files = {"model.py": "A = 4\nB = 0.5\n", "loss.py": "WEIGHT = 2.0\n"}
    notes: list[str] = []
    agent = OptunaAgent("random", seed=0)
    baseline = TrialRecord(0, "baseline", "baseline", score=1.0)

    def context(n: int, surface: Mapping[str, str], reviewed: Callable[[str], bool]) -> ProposalContext:
        return ProposalContext(
            trial=n, tag="t", rootdir=tmp_path, workdir=tmp_path, surface=Surface(sorted(surface)), files=dict(surface), program="",
            metric=METRIC, baseline=baseline, best=baseline, history=[baseline], last_failure=None, trials_left=None,
            read=surface.get, note=notes.append, reviewed=reviewed,
        )

    touched = {part.split(":")[0] for n in range(1, 6) for part in agent.propose(context(n, files, lambda p: p == "loss.py")).description.split(", ")}
    agent.close()
    assert touched == {"model.py"}
    assert notes[-1].endswith("; the settings of loss.py stay as they are (autoresearch_review)")
    (tmp_path / "only").mkdir()
    only = {"loss.py": "WEIGHT = 2.0\n"}
    agent = OptunaAgent("random", seed=0)
    proposal = agent.propose(dataclasses.replace(context(1, only, lambda p: True), rootdir=tmp_path / "only"))
    agent.close()
    assert proposal.description.startswith("loss.py:1 WEIGHT 2.0 -> ")  # all there is: tuned, and parked by the loop


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_a_reapplied_candidate_fails_as_asked_and_what_ran_is_added(tmp_path: Path) -> None:
    """Trial 1 was asked on the baseline; trial 2 was kept while it ran, so trial 1 ran merged
    into trial 2's best: other values than asked. Its commit says what ran."""
    _git(tmp_path, "init", "-q", "-b", "main")
    text = "A = 4\nB = 4\n"
    (tmp_path / "model.py").write_text(text)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "start")
    driver = Driver(tmp_path, text, lambda ns: (ns["A"] - 2) ** 2 + (ns["B"] - 9) ** 2, OptunaAgent("random", seed=0))  # type: ignore[operator]
    driver.baseline.commit = _git(tmp_path, "rev-parse", "HEAD")
    first, second = (driver.agent.propose(driver.context(n)) for n in (1, 2))
    (tmp_path / "model.py").write_text("A = 3\nB = 9\n")  # what trial 1 ran: its A on top of trial 2's B, say
    _git(tmp_path, "commit", "-q", "-am", "trial 1 re-applied")
    ran = _git(tmp_path, "rev-parse", "HEAD")
    driver.history += [
        TrialRecord(2, "keep", second.description, score=5.0, parent_trial=0, commit="0" * 40),
        TrialRecord(1, "keep", first.description, score=1.0, parent_trial=2, commit=ran, reason="re-applied on trial 2, kept while it ran"),
    ]
    driver.agent.propose(driver.context(3))
    driver.agent.close()
    trials = study_of(tmp_path).trials
    (asked,) = [t for t in trials if t.user_attrs.get("trial") == 1]
    assert asked.state.name == "FAIL" and asked.user_attrs["not_run"] is True
    assert "it ran with other values than asked" in asked.user_attrs["outcome"]
    (added,) = [t for t in trials if t.user_attrs.get("logged_trial") == 1]
    assert (added.state.name, added.value, added.user_attrs["source"]) == ("COMPLETE", 1.0, "ran")
    assert added.user_attrs["literals"] == {"model.py:A": 3, "model.py:B": 9}
    assert [t.value for t in trials if t.user_attrs.get("trial") == 2] == [5.0]


def test_a_version_the_study_knows_is_not_proposed_again(tmp_path: Path) -> None:
    """One switch: its one flip, then every draw repeats a known version and the agent says so."""
    driver = Driver(tmp_path, "USE = True\n", lambda ns: 1.0 if ns["USE"] else 2.0, OptunaAgent("random", seed=0))
    assert driver.trial(1).description == "model.py:1 USE True -> False"
    with pytest.raises(AgentExhausted, match=r"^optuna: 50 draws in a row were versions tried already \(2 versions of the 1 settings known in study t\)"):
        driver.trial(2)
    driver.agent.close()
    duplicates = [t for t in study_of(tmp_path).trials if "duplicate_of" in t.user_attrs]
    assert len(duplicates) == 50 and all(t.state.name == "FAIL" for t in duplicates)


def test_a_trial_asked_but_never_logged_fails_when_the_run_resumes(tmp_path: Path) -> None:
    driver = Driver(tmp_path, TEXT, distance, OptunaAgent("random", seed=0))
    driver.agent.propose(driver.context(1))
    driver.agent.close()  # the driver was killed: trial 1 never got its row
    again = OptunaAgent("random", seed=0)
    again.start(driver.context(1))
    proposal = again.propose(driver.context(1))  # the number is free again
    driver.history.append(TrialRecord(1, "discard", proposal.description, score=9.0, parent_trial=0))
    again.logged(driver.history[-1])
    again.close()
    lost, told = [t for t in study_of(tmp_path).trials if t.user_attrs.get("trial") == 1]
    assert (lost.state.name, lost.user_attrs["outcome"]) == ("FAIL", "lost: the run stopped before trial 1 was logged")
    assert (told.state.name, told.value) == ("COMPLETE", 9.0)


def test_a_file_that_is_no_study_storage_is_one_clear_error(tmp_path: Path) -> None:
    db = tmp_path / ".autoresearch" / "t" / "optuna.db"
    db.parent.mkdir(parents=True)
    db.write_text("not a database")
    driver = Driver(tmp_path, TEXT, distance, OptunaAgent())
    with pytest.raises(Exception, match=r"^optuna: cannot use .*optuna\.db as its study storage \(.*\); move it away to start afresh$"):
        driver.agent.start(driver.context(1))


# --- in a real run -------------------------------------------------------------------------------


def _asked(project: Project) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study_of(project.path).trials if "trial" in t.user_attrs]


def test_a_run_keeps_its_study_in_the_run_folder(project: Project) -> None:
    project.init()
    result = project.loop("--autoresearch-agent=optuna", "--autoresearch-trials=1", "-o", "autoresearch_baseline_runs=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([
        "*agent optuna tpe (seed 0)*",
        "autoresearch: optuna: study t (1 logged trials as its start): model.py:SCALE float in [0.1, 10.0], log scale; model.py:OFFSET int in [-4, 4]",
    ])
    rows = project.rows()
    assert [t.value for t in study_of(project.path).trials] == [float(r["score"]) for r in rows]


def test_a_resumed_run_resumes_its_study(project: Project) -> None:
    """Three trials, then three more in a second session: one study, the baseline as its start
    and six asked trials, each told the score its row has."""
    project.init()
    for _ in range(2):
        result = project.loop("--autoresearch-agent=optuna:3", "--autoresearch-trials=3")
        assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = project.rows()
    assert [r["trial"] for r in rows] == [str(n) for n in range(7)]
    studies = optuna.get_all_study_names(f"sqlite:///{project.path}/.autoresearch/t/optuna.db")
    assert studies == ["t"]
    trials = study_of(project.path).trials
    assert [t.user_attrs.get("source") for t in trials if "logged_trial" in t.user_attrs] == ["start"]
    asked = _asked(project)
    assert [t.user_attrs["trial"] for t in asked] == [1, 2, 3, 4, 5, 6]
    by_row = {int(r["trial"]): r for r in rows}
    for t in asked:
        row = by_row[t.user_attrs["trial"]]
        if row["status"] in ("keep", "discard"):
            assert t.state.name == "COMPLETE" and math.isclose(t.value, float(row["score"]), rel_tol=1e-9)
        else:
            assert t.state.name == "FAIL", row
    assert len({repr(sorted(t.user_attrs["literals"].items())) for t in asked}) == 6  # no version twice, across the sessions


KNOB_MODEL = '''"""Two knobs the fitness test scores, each between lines of its own."""

# --- A ---
A = 4
# end of A
# -
# -
# --- B ---
B = 4
# end of B
'''

KNOB_FITNESS = FITNESS_TEST.replace("sum((model.predict(x) - (2.5 * x + 3)) ** 2 for x in range(10)) / 10", "float((model.A - 2) ** 2 + (model.B - 9) ** 2)")


def test_two_workers_ask_two_trials_and_each_is_told_its_own_row(project: Project) -> None:
    project.init({**default_files(), "model.py": KNOB_MODEL, "tests/test_fitness.py": KNOB_FITNESS, "tests/test_gate.py": "def test_ok():\n    pass\n"})
    result = project.loop("--autoresearch-agent=optuna", "--autoresearch-trials=6", "--autoresearch-workers=2")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    rows = {int(r["trial"]): r for r in project.rows()}
    asked = _asked(project)
    assert sorted(t.user_attrs["trial"] for t in asked) == [1, 2, 3, 4, 5, 6]
    added = {t.user_attrs["logged_trial"]: t for t in study_of(project.path).trials if "logged_trial" in t.user_attrs}
    for t in asked:
        row = rows[t.user_attrs["trial"]]
        if "re-applied" in row["reason"]:  # it ran merged into a best kept meanwhile: what ran is its own trial
            assert t.state.name == "FAIL" and t.user_attrs["not_run"]
            ran = added[t.user_attrs["trial"]]
            assert ran.user_attrs["source"] == "ran" and math.isclose(ran.value, float(row["score"]), rel_tol=1e-9)
            assert f"A = {ran.user_attrs['literals']['model.py:A']}\n" in project.git("show", f"{row['commit']}:model.py")
        elif row["status"] in ("keep", "discard"):
            assert t.state.name == "COMPLETE" and math.isclose(t.value, float(row["score"]), rel_tol=1e-9), row
    assert len({t.user_attrs["parent_trial"] for t in asked[:2]}) == 1  # the first two were asked together
    assert asked[0].user_attrs["literals"] != asked[1].user_attrs["literals"]
