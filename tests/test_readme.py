"""The README is true: what a user copies from it runs, what it shows is what the program prints.

Every fenced block of README.md (and the workflows of docs/ci.md) has a kind in :data:`KINDS`:
blocks a user copies to try the plugin offline run (steps 2 to 5 in a real git repository, the
quickstart command); the others are parsed (YAML workflows, a command that needs a model server,
a snippet that needs the user's own modules); output blocks are compared with what the program
prints, numbers, hashes and paths aside. A block of no known kind fails the test, so a new one
cannot go unchecked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pytest_autoresearch.options import OPTIONS

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_DOC = REPO / "docs" / "ci.md"

#: What the README leaves to the user: the code the fitness test of step 2 imports.
MODEL = '''"""A polynomial fitted by least squares: the agent may change DEGREE and RIDGE."""

DEGREE = 1
RIDGE = 0.001


def fit(xs, ys):
    n = DEGREE + 1
    rows = [[x**i for i in range(n)] for x in xs]
    a = [[sum(r[i] * r[j] for r in rows) + (RIDGE if i == j else 0.0) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(n)]
    for col in range(n):  # Gauss-Jordan elimination
        pivot = max(range(col, n), key=lambda k: abs(a[k][col]))
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for k in range(n):
            if k != col:
                f = a[k][col] / a[col][col]
                a[k] = [u - f * v for u, v in zip(a[k], a[col])]
                b[k] -= f * b[col]
    return [b[i] / a[i][i] for i in range(n)]


def predict(coef, x):
    return sum(c * x**i for i, c in enumerate(coef))
'''

DATA = '''"""Fixed data: a smooth curve with a little deterministic noise."""

import math

POINTS = [(i / 20 - 1, math.sin(2.5 * (i / 20 - 1)) + 0.05 * math.sin(37 * i)) for i in range(41)]
TRAIN = POINTS[0::2]
VALID = POINTS[1::2]
'''

GIT_ENV = {
    "GIT_AUTHOR_NAME": "readme",
    "GIT_AUTHOR_EMAIL": "readme@localhost",
    "GIT_COMMITTER_NAME": "readme",
    "GIT_COMMITTER_EMAIL": "readme@localhost",
}


@dataclasses.dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence, 1-based

    def where(self, path: Path) -> str:
        return f"{path.relative_to(REPO)} line {self.line} (```{self.lang})"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    found, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        found.append(Block(fence.group(1), "\n".join(lines[i + 1 : end]) + "\n", i + 1))
        i = end + 1
    return found


#: kind -> (what identifies a block of it, what the tests do with it)
KINDS: dict[str, tuple[Callable[[Block], bool], str]] = {
    "quickstart": (lambda b: b.lang == "sh" and "examples/run.py quickstart" in b.text and "ollama" not in b.text, "run"),
    "fitness test": (lambda b: b.lang == "python" and b.text.startswith("# tests/test_fitness.py"), "run"),
    "config": (lambda b: b.lang == "toml" and "autoresearch_mutable" in b.text, "run"),
    "plain output": (lambda b: b.lang == "" and " fitness " in b.text.splitlines()[0], "compared"),
    "live output": (lambda b: b.lang == "" and b.text.startswith("autoresearch: run "), "compared"),
    "summary output": (lambda b: b.lang == "" and "  inspect: git log" in b.text, "compared"),
    "isolated scoring": (lambda b: b.lang == "python" and "pytest_autoresearch.isolate" in b.text, "compiled"),
    "time as the score": (lambda b: b.lang == "python" and "fitness.time(" in b.text, "compiled"),
    "model server": (lambda b: b.lang == "sh" and "ollama" in b.text, "bash -n"),
    "workflow": (lambda b: b.lang == "yaml" and "jobs:" in b.text, "parsed"),
}


def kind(block: Block) -> str | None:
    kinds = [name for name, (test, _) in KINDS.items() if test(block)]
    return kinds[0] if len(kinds) == 1 else None


def the(name: str) -> Block:
    found = [b for b in blocks(README) if kind(b) == name]
    assert len(found) == 1, f"README.md has {len(found)} blocks of kind {name!r}"
    return found[0]


def test_every_block_has_a_kind() -> None:
    readme = blocks(README)
    assert len(readme) >= 9  # the parser sees the blocks: it cannot pass by finding none
    unknown = [b.where(README) for b in readme if kind(b) is None]
    unknown += [b.where(CI_DOC) for b in blocks(CI_DOC) if kind(b) != "workflow"]
    assert not unknown, f"blocks this test does not know (say in KINDS whether each runs, parses or is output): {unknown}"
    assert {kind(b) for b in readme} == set(KINDS)


# -- what the program prints, numbers aside -------------------------------------------------

_PATH = re.compile(r"(?<![\w.])(?:\.\.\.)?/[\w.\-/]+")
_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")


def normal(line: str) -> str:
    """A line with its paths, commit hashes and numbers replaced, rules and spacing collapsed."""
    line = _PATH.sub("PATH", line)
    line = _HASH.sub("N", line)
    line = _NUMBER.sub("N", line)
    line = re.sub(r"-{2,}", "-", line)
    return " ".join(line.split())


def assert_printed(sample: Block, output: str, unless: str = "\0") -> None:
    """Each line of the README's sample (but those starting with ``unless``) appears in the
    output, in the same order."""
    printed = [normal(line) for line in output.splitlines()]
    at = 0
    for line in sample.text.splitlines():
        if line.startswith(unless):
            continue
        want = normal(line)
        try:
            at = printed.index(want, at) + 1
        except ValueError:
            raise AssertionError(
                f"{sample.where(README)}: the program no longer prints\n  {line}\n(as {want!r}); it printed:\n{output}"
            ) from None


def test_normal_tells_shapes_apart() -> None:
    assert normal("trial   1  keep   0.0789968 (-6.459e-05)    0.9s  DEGREE 1 -> 2") == normal(
        "trial  12  keep  0.5 (+3e-1)  10.0s  DEGREE 3 -> 4"
    )
    assert normal("folder .../.autoresearch/nov26, at 235c72b491") == normal("folder /tmp/x/.autoresearch/nov26, at 0bdeca2c94")
    assert normal("trial 1 keep 0.5") != normal("trial 1 discard 0.5")
    assert normal("10 trials: 5 keep, 5 discard") != normal("10 trials: 5 keep")


# -- steps 2 to 5, run as written -------------------------------------------------------------


def _pytest(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env.update(GIT_ENV, COLUMNS="80")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _project(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_fitness.py").write_text(the("fitness test").text)
    (repo / "pyproject.toml").write_text(the("config").text)
    (repo / "model.py").write_text(MODEL)
    (repo / "data.py").write_text(DATA)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "a fitness test"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**os.environ, **GIT_ENV})
    return repo


def test_steps_2_to_5_run_as_written_and_print_what_the_readme_shows(tmp_path: Path) -> None:
    repo = _project(tmp_path)
    plain = _pytest(repo)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert_printed(the("plain output"), plain.stdout)

    step5 = re.search(r"\*\*5\. Commit, then start the loop:\*\* `(pytest [^`]+)`", README.read_text(encoding="utf-8"))
    assert step5, "README step 5 names the command that starts the loop"
    command = shlex.split(step5.group(1))
    assert command[:2] == ["pytest", "--autoresearch"]
    # the README's command, shortened to four trials; the sample's tag, so its lines compare
    args = [a for a in command[1:] if not a.startswith("--autoresearch-trials")]
    loop = _pytest(repo, *args, "--autoresearch-trials=4", "--autoresearch-tag=nov26")
    assert loop.returncode == 0, loop.stdout + loop.stderr
    from pytest_autoresearch.ui.plot import available

    assert_printed(the("live output"), loop.stdout)
    assert_printed(the("summary output"), loop.stdout, unless="\0" if available() else "progress plot:")
    run = repo / ".autoresearch" / "nov26"
    assert len((run / "results.tsv").read_text().splitlines()) == 1 + 5  # the header, the baseline, four trials
    if available():
        assert (run / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the quickstart ---------------------------------------------------------------------------


def _quickstart_words() -> list[list[str]]:
    lines = [line.split("#")[0].strip() for line in the("quickstart").text.splitlines()]
    command = next(line for line in lines if "examples/run.py quickstart" in line)
    return [shlex.split(part) for part in command.split("&&")]


def test_the_first_command_installs_the_plot_extra_and_runs_the_quickstart() -> None:
    venv, install, run = _quickstart_words()
    assert venv == ["python3", "-m", "venv", ".venv"]
    assert install[:2] == [".venv/bin/pip", "install"] and "-e" in install
    target = install[install.index("-e") + 1]
    assert Requirement("pytest-autoresearch" + target[1:]).extras >= {"plot"}, "the README shows progress.png: install [plot]"
    assert target.startswith(".[") and (REPO / "pyproject.toml").is_file()
    assert run[:3] == [".venv/bin/python", "examples/run.py", "quickstart"] and (REPO / run[1]).is_file()
    assert (REPO / "examples" / "quickstart" / "pyproject.toml").is_file()


def test_the_quickstart_says_where_its_copy_is_and_leaves_the_plot_there() -> None:
    _, _, run = _quickstart_words()
    proc = subprocess.run(
        [sys.executable, *run[1:], "--autoresearch-trials=2"], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    copy = Path(proc.stdout.strip().splitlines()[-1].rsplit(": ", 1)[1])
    try:
        run_folder = copy / ".autoresearch" / "demo"
        assert len((run_folder / "results.tsv").read_text().splitlines()) == 1 + 3
        from pytest_autoresearch.ui.plot import available

        if available():
            assert (run_folder / "progress.png").is_file()
            assert f"progress plot: {run_folder / 'progress.png'}" in proc.stdout
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


@pytest.mark.slow
def test_the_first_command_as_typed_in_a_fresh_clone(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The README's first line, word for word, in a clone of this repository: a new venv, the
    install, twenty trials, and the chart the README promises."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    command = next(line for line in the("quickstart").text.splitlines() if "examples/run.py quickstart" in line)
    proc = subprocess.run(["bash", "-c", command], cwd=clone, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    copy = Path(proc.stdout.strip().splitlines()[-1].rsplit(": ", 1)[1])
    request.addfinalizer(lambda: shutil.rmtree(copy.parent, ignore_errors=True))
    assert (copy / ".autoresearch" / "demo" / "progress.png").is_file()
    assert len((copy / ".autoresearch" / "demo" / "results.tsv").read_text().splitlines()) == 1 + 21
    # the figures the README gives for it
    said = re.search(r"takes the RMSE from ([\d.]+) to about ([\d.]+)", README.read_text(encoding="utf-8"))
    done = re.search(r"baseline ([\d.]+) -> best ([\d.]+)", proc.stdout)
    assert said and done, proc.stdout[-4000:]
    assert round(float(done.group(1)), 4) == float(said.group(1))
    assert abs(float(done.group(2)) - float(said.group(2))) <= 0.01 * float(said.group(2)), done.group(0)


# -- what is parsed, not run ------------------------------------------------------------------


def test_snippets_that_need_more_than_this_readme_compile_and_commands_parse() -> None:
    compile(the("isolated scoring").text, "README.md:isolated scoring", "exec")
    compile(the("time as the score").text, "README.md:time as the score", "exec")
    server = the("model server")
    check = subprocess.run(["bash", "-n"], input=server.text, capture_output=True, text=True)
    assert check.returncode == 0, f"{server.where(README)}: {check.stderr}"
    flags = {o.flag for o in OPTIONS if o.flag}
    used = set(re.findall(r"--autoresearch-[a-z-]+", server.text))
    assert used and used <= flags, f"{server.where(README)} uses flags the plugin does not have: {used - flags}"


def _workflows() -> list[tuple[Path, Block]]:
    return [(README, the("workflow"))] + [(CI_DOC, b) for b in blocks(CI_DOC)]


def _load(text: str) -> dict[str, object]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _plugin_requirement(words: list[str]) -> Requirement | None:
    """The plugin among ``pip install`` arguments, as pip will read it."""
    for word in words:
        if word.startswith("-") or word == ".":
            continue
        requirement = Requirement(word)  # pip's own grammar (PEP 508): a bad argument raises here
        if requirement.name == "pytest-autoresearch":
            return requirement
    return None


@pytest.mark.parametrize("index", range(3))
def test_ci_workflows_install_the_plugin_in_a_way_that_works(index: int) -> None:
    path, block = _workflows()[index]
    workflow = _load(block.text)
    assert {"name", "jobs"} <= set(workflow) and (True in workflow or "on" in workflow)  # YAML 1.1 reads `on` as True
    flags = {o.flag for o in OPTIONS if o.flag}
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict) and jobs
    for job in jobs.values():
        env = {**(workflow.get("env") or {}), **(job.get("env") or {})}
        installed = None
        for step in job["steps"]:
            assert set(step) & {"uses", "run"}, f"{block.where(path)}: a step that neither uses nor runs: {step}"
            script = step.get("run")
            if not script:
                continue
            plain = re.sub(r"\$\{\{[^}]*\}\}", "x", script)
            check = subprocess.run(["bash", "-n"], input=plain, capture_output=True, text=True)
            assert check.returncode == 0, f"{block.where(path)}: {script!r}: {check.stderr}"
            for line in plain.splitlines():
                if line.strip().startswith("pip install"):
                    expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: str(env.get(m.group(1), m.group(0))), line)
                    requirement = _plugin_requirement(shlex.split(expanded)[2:])
                    if requirement:
                        # not on PyPI: a bare name cannot install it; a URL (git, a file) can
                        assert requirement.url, f"{block.where(path)}: {line.strip()!r} asks an index for the plugin, which is on none"
                        assert requirement.url.startswith(("git+", "file:", "https:")), requirement.url
                        installed = requirement
                used = set(re.findall(r"--autoresearch-[a-z-]+", line))
                assert used <= flags, f"{block.where(path)}: {line.strip()!r} uses flags the plugin does not have: {used - flags}"
        assert installed is not None, f"{block.where(path)}: the job never installs the plugin"
        if "--autoresearch " in str(job) or "--autoresearch\n" in str(job):
            assert "llm" in installed.extras, "a job with a litellm agent installs the llm extra"


def test_the_workflows_are_the_ones_the_docs_describe() -> None:
    assert len(_workflows()) == 3
    names = [_load(b.text)["name"] for _, b in _workflows()]
    assert names == ["fitness", "fitness", "autoresearch nightly"]
