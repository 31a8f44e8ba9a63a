"""Files git does not track but the suite needs: carried into each worktree, or built there.

A worktree holds only what git tracks, so a generated ``_version.py``, compiled catalogues or
built extensions are missing in it. These tests use real repositories whose packages import
such files, and check what the user sees: the hint with the line to add, the run that works
once it is added, and the refusals of what must not be carried.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import FITNESS_TEST, GATE_TEST, GIT_ENV, MODEL, PYPROJECT, Project, default_files

from pytest_autoresearch.config_file import ConfigFile, of
from pytest_autoresearch.engine import carry, evaluator_imports
from pytest_autoresearch.proposals.surface import Surface
from pytest_autoresearch.store.gitstate import Repository

ONE_BASELINE_RUN = ("-o", "autoresearch_baseline_runs=1")  # the evaluator is deterministic: quicker
VERSIONED = {
    **default_files(),
    ".gitignore": "pkg/_version.py\n",
    "pkg/__init__.py": "from ._version import version\n",
    "tests/test_version.py": "import pkg\n\n\ndef test_the_package_has_a_version():\n    assert pkg.version == '1.2.3'\n",
}


def _state(project: Project) -> dict[str, object]:
    """What a refused run must leave as it was: the checkout, refs, worktrees, run folder."""
    return {
        **project.snapshot(),
        "refs": project.git("for-each-ref", check=False),
        "worktrees": project.git("worktree", "list", "--porcelain", check=False),
        "run_dir": (project.path / ".autoresearch").exists(),
    }


def _refused(project: Project, result: pytest.RunResult, before: dict[str, object]) -> str:
    assert result.ret != 0, result.stdout.str()
    assert "Traceback (most recent call last)" not in result.stderr.str(), result.stderr.str()
    assert _state(project) == before
    return result.stderr.str()


def test_an_ignored_version_file_gets_the_line_that_carries_it_and_then_runs(project: Project) -> None:
    project.init(VERSIONED)
    (project.path / "pkg" / "_version.py").write_text("version = '1.2.3'\n")
    before = _state(project)
    err = _refused(project, project.loop(project.replay({"description": "x", "files": project.model_with(SCALE=2.0)})), before)
    assert "ERROR: autoresearch: the baseline" in err
    assert "pkg/_version.py, which is git-ignored in your checkout" in err
    assert 'pyproject.toml under [tool.pytest.ini_options]: autoresearch_carry = ["pkg/_version.py"]' in err

    project.write({"pyproject.toml": PYPROJECT + 'autoresearch_carry = ["pkg/_version.py"]\n'})
    project.git("commit", "-qam", "carry the version file")
    result = project.loop(project.replay({"description": "steeper", "files": project.model_with(SCALE=2.0)}), "--autoresearch-trials=1", *ONE_BASELINE_RUN)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "keep"]
    result.stdout.fnmatch_lines(["*carried into each worktree (linked to your checkout): pkg/_version.py*"])
    assert "makes mutable" not in result.stdout.str()  # model.py is named in autoresearch_mutable: no warning


def test_a_folder_mixing_tracked_and_ignored_files_and_a_glob_carry_only_untracked_files(project: Project) -> None:
    files = {
        **default_files(),
        ".gitignore": "*.mo\npkg/weights.bin\n",
        "pkg/__init__.py": "",
        "pkg/locale/de.po": "msgid \"\"\n",
        "tests/test_files.py": (
            "from pathlib import Path\n\n\ndef test_the_untracked_files_are_there():\n"
            "    assert Path('pkg/weights.bin').read_bytes() == b'w'\n"
            "    assert Path('pkg/locale/de.mo').read_bytes() == b'mo'\n"
            "    assert Path('other/fr.mo').read_bytes() == b'fr'\n"
        ),
        "pyproject.toml": PYPROJECT + 'autoresearch_carry = ["pkg", "**/*.mo", "other/fr.mo"]\n',
    }
    project.init(files)
    (project.path / ".venv" / "lib").mkdir(parents=True)
    (project.path / ".venv" / "lib" / "babel.mo").write_bytes(b"not the project's")
    (project.path / "pkg" / "weights.bin").write_bytes(b"w")
    (project.path / "pkg" / "locale" / "de.mo").write_bytes(b"mo")
    (project.path / "other").mkdir()
    (project.path / "other" / "fr.mo").write_bytes(b"fr")
    result = project.loop(
        project.replay(
            {"description": "steeper", "files": project.model_with(SCALE=2.0)},
            {"description": "steeper still", "files": project.model_with(SCALE=2.5)},  # after a reset: still there
        ),
        "--autoresearch-trials=2",
        *ONE_BASELINE_RUN,
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "keep", "keep"], project.rows()
    out = result.stdout.str()
    assert "carried into each worktree" in out and ".venv" not in out
    assert "pkg/weights.bin" in out and "other/fr.mo" in out and "pkg/locale/de.mo" in out
    assert "pkg/__init__" not in out and "pkg/, " not in out  # tracked files come from git, the folder is not linked whole


@pytest.mark.parametrize(
    "entry, make, message",
    [
        ("model.py", None, "autoresearch_carry path 'model.py' is committed*"),
        ("link.py", "link-to-tracked", "autoresearch_carry path 'link.py' is a link to the tracked tests/test_gate.py*"),
        ("extra.py", "mutable", "autoresearch_carry path 'extra.py' matches autoresearch_mutable*"),
        ("missing", None, "autoresearch_carry path 'missing' does not exist under *"),
    ],
)
def test_what_may_not_be_carried_is_refused_and_nothing_is_left(project: Project, entry: str, make: str | None, message: str) -> None:
    pyproject = PYPROJECT.replace('["model.py"]', '["model.py", "extra.py"]') + f'autoresearch_carry = ["{entry}"]\n'
    project.init({**default_files(), ".gitignore": "link.py\nextra.py\n", "pyproject.toml": pyproject})
    if make == "link-to-tracked":
        (project.path / "link.py").symlink_to(project.path / "tests" / "test_gate.py")
    elif make == "mutable":
        (project.path / "extra.py").write_text("X = 1\n")
    before = _state(project)
    err = _refused(project, project.loop("--autoresearch-trials=1"), before)
    assert pytest.RunResult(1, [], err.splitlines(), 0).stderr.fnmatch_lines([f"ERROR: autoresearch: {message}"]) is None


GENERATE = '''"""Writes the package's build product, as a build step would (git ignores it)."""
from pathlib import Path

Path("pkg/_built.py").write_text("VALUE = 7\\n")
print("generated pkg/_built.py")
'''

REMOVES = MODEL.replace("SCALE = 1.0", "SCALE = 2.0") + "\nimport os as _os\n_os.remove(_os.path.join(_os.path.dirname(__file__), 'pkg', '_built.py'))\n"


def test_the_setup_command_builds_in_each_worktree_and_builds_again_what_a_trial_removed(project: Project) -> None:
    files = {
        **default_files(),
        ".gitignore": "pkg/_built.py\n",
        "gen.py": GENERATE,
        "pkg/__init__.py": "",
        "tests/test_built.py": "from pkg._built import VALUE\n\n\ndef test_built():\n    assert VALUE == 7\n",
        "pyproject.toml": PYPROJECT + 'autoresearch_setup = "python gen.py"\n',
    }
    project.init(files)
    assert not (project.path / "pkg" / "_built.py").exists()  # never built in the checkout
    result = project.loop(
        project.replay(
            {"description": "removes the build product", "files": {"model.py": REMOVES}},
            {"description": "steeper", "files": project.model_with(SCALE=2.5)},
        ),
        "--autoresearch-trials=2",
        *ONE_BASELINE_RUN,
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert project.statuses() == ["baseline", "keep", "keep"], project.rows()  # trial 2 imported it again
    result.stdout.fnmatch_lines(["*autoresearch_setup 'python gen.py' ran in each worktree and built pkg/_built.py (logs in *setup)*"])
    log = (project.path / ".autoresearch" / "t" / "setup" / "worktree.log").read_text()
    assert log.count("$ python gen.py") == 2 and log.count("generated pkg/_built.py") == 2, log  # built, then rebuilt
    assert "re-score of the best (trial 2) in a fresh clone outside the run" in result.stdout.str()  # built there too
    assert "generated pkg/_built.py" in (project.path / ".autoresearch" / "t" / "setup" / "rescore.log").read_text()
    assert not (project.path / "pkg" / "_built.py").exists()  # the checkout is left alone


def test_a_failing_setup_command_stops_the_run_naming_command_status_and_log(project: Project) -> None:
    project.init({**default_files(), "pyproject.toml": PYPROJECT + "autoresearch_setup = \"echo compiling; echo 'cc: no such file' >&2; exit 3\"\n"})
    before = _state(project)
    err = _refused(project, project.loop("--autoresearch-trials=1"), before)
    assert "ERROR: autoresearch: autoresearch_setup \"echo compiling; echo 'cc: no such file' >&2; exit 3\" exited with status 3" in err
    assert "cc: no such file" in err
    log = Path(err.split("full log in ", 1)[1].split(")", 1)[0])
    assert "compiling" in log.read_text() and not log.is_relative_to(project.path)
    log.unlink()


def test_a_setup_command_that_installs_is_refused(project: Project) -> None:
    project.init({**default_files(), "pyproject.toml": PYPROJECT + 'autoresearch_setup = "pip install -e ."\n'})
    before = _state(project)
    err = _refused(project, project.loop("--autoresearch-trials=1"), before)
    assert "autoresearch_setup 'pip install -e .' installs into your environment" in err


NATIVE = '''[tool.pytest]
testpaths = ["tests"]
pythonpath = ["."]
autoresearch_mutable = ["model.py"]
autoresearch_timeout = 120
'''


def test_a_native_tool_pytest_project_gets_hints_for_its_own_table(project: Project) -> None:
    """pytest 9's ``[tool.pytest]``: numbers are TOML numbers, and a hint never tells it to add
    an ``ini_options`` table (pytest refuses to start with both)."""
    if tuple(int(p) for p in pytest.__version__.split(".")[:2]) < (9, 2):
        pytest.skip("native TOML numbers for string settings need pytest 9.2")
    project.init({**VERSIONED, "pyproject.toml": NATIVE})
    (project.path / "pkg" / "_version.py").write_text("version = '1.2.3'\n")
    before = _state(project)
    err = _refused(project, project.loop("--autoresearch-trials=1"), before)
    assert 'pyproject.toml under [tool.pytest]: autoresearch_carry = ["pkg/_version.py"]' in err
    assert "ini_options" not in err

    project.write({"pyproject.toml": NATIVE.replace('autoresearch_mutable = ["model.py"]\n', "")})
    project.git("commit", "-qam", "no surface")
    err = _refused(project, project.loop("--autoresearch-trials=1"), _state(project))
    assert 'autoresearch_mutable is not set: list the files the agent may change, e.g. in pyproject.toml under [tool.pytest]: autoresearch_mutable = ["model.py"]' in err


@pytest.mark.parametrize(
    "name, text, where, line",
    [
        ("pyproject.toml", "[tool.pytest.ini_options]\nx = 1\n", "pyproject.toml under [tool.pytest.ini_options]", 'k = ["a", "b c"]'),
        ("pytest.toml", "[pytest]\n", "pytest.toml under [pytest]", 'k = ["a", "b c"]'),
        ("pytest.ini", "[pytest]\n", "pytest.ini under [pytest]", "k = a 'b c'"),
        ("tox.ini", "[pytest]\n", "tox.ini under [pytest]", "k = a 'b c'"),
        ("setup.cfg", "[tool:pytest]\n", "setup.cfg under [tool:pytest]", "k = a 'b c'"),
    ],
)
def test_a_setting_is_written_for_the_file_it_goes_in(tmp_path: Path, name: str, text: str, where: str, line: str) -> None:
    (tmp_path / name).write_text(text)
    config = of(tmp_path / name)
    assert config.where == where
    assert config.line("k", ["a", "b c"]) == line


def test_a_pyproject_without_a_pytest_table_gets_the_table_this_pytest_reads(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    native = tuple(int(p) for p in pytest.__version__.split(".")[:1]) >= (9,)
    assert of(tmp_path / "pyproject.toml").table == ("[tool.pytest]" if native else "[tool.pytest.ini_options]")
    assert ConfigFile("pyproject.toml", "[tool.pytest]", True).line("autoresearch_setup", 'echo "x"') == 'autoresearch_setup = "echo \\"x\\""'


FITNESS_IMPORTS_DATA = FITNESS_TEST.replace("import model\n", "import model\nfrom data import TARGET\n")


def test_a_fitness_test_importing_a_mutable_module_is_warned_about_once(project: Project) -> None:
    """``*.py`` as the surface takes in the evaluator's data module too."""
    files = {
        **default_files(),
        "data.py": "TARGET = 3\n",
        "tests/test_fitness.py": FITNESS_IMPORTS_DATA,
        "tests/test_gate.py": GATE_TEST,
        "pyproject.toml": PYPROJECT.replace('["model.py"]', '["*.py"]'),
    }
    project.init(files)
    result = project.loop(project.replay({"description": "steeper", "files": project.model_with(SCALE=2.0)}), "--autoresearch-trials=1")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    out = result.stdout.str()
    assert out.count("tests/test_fitness.py imports data.py, model.py, which autoresearch_mutable (*.py) makes mutable") == 1, out


def _repo_with_ignored(tmp_path: Path, ignored: dict[str, bytes]) -> Repository:
    files = {"pkg/__init__.py": b"", "pkg/core.py": b"X = 1\n", "pkg/locale/de.po": b"", ".gitignore": b"*.so\n*.mo\n_version.py\ndata/\n.venv/\n"}
    for rel, data in {**files, **ignored}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, env={**os.environ, **GIT_ENV})
    return Repository(tmp_path)


SO = "pkg/_speedups.cpython-311-x86_64-linux-gnu.so"


@pytest.mark.parametrize(
    "failure, named",
    [
        ("E   ModuleNotFoundError: No module named 'pkg._version'", ["pkg/_version.py"]),
        ("E   ImportError: cannot import name 'version' from 'pkg._version'", ["pkg/_version.py"]),
        ("E   ModuleNotFoundError: No module named 'pkg._speedups'", [SO]),
        ("E   FileNotFoundError: [Errno 2] No such file or directory: '/x/.autoresearch/t/worktree/data/train.bin'", ["data"]),
        ("E   FileNotFoundError: [Errno 2] No translation file found for domain: 'messages'", ["pkg/locale/de.mo"]),
        ("E   ModuleNotFoundError: No module named 'numpy'", []),  # in no file of the checkout (the venv's are not looked at)
    ],
)
def test_the_hint_names_the_ignored_file_the_failure_names(tmp_path: Path, failure: str, named: list[str]) -> None:
    ignored = {"pkg/_version.py": b"version = '1'\n", SO: b"\x7fELF", "data/train.bin": b"1", "pkg/locale/de.mo": b"mo", ".venv/lib/numpy/__init__.py": b""}
    repo = _repo_with_ignored(tmp_path, ignored)
    config = ConfigFile("pyproject.toml", "[tool.pytest]", True)
    hint = carry.missing_file_hint(repo, "", (), ["data2"] if named == ["data"] else [], Surface(["pkg/core.py"]), config, failure)
    if not named:
        assert hint == ""
        return
    assert f"the baseline needs {named[0]}, which is git-ignored in your checkout" in hint
    carried = ["data2", "data"] if named == ["data"] else named
    assert "add in pyproject.toml under [tool.pytest]: autoresearch_carry = [" + ", ".join(f'"{c}"' for c in carried) + "]" in hint
    assert ("autoresearch_setup" in hint) == named[0].endswith((".so", ".mo"))


def test_the_hint_for_a_mutable_ignored_file_says_it_cannot_be_carried(tmp_path: Path) -> None:
    repo = _repo_with_ignored(tmp_path, {"pkg/_version.py": b"version = '1'\n"})
    hint = carry.missing_file_hint(repo, "", (), [], Surface(["pkg/*.py"]), of(None), "No module named 'pkg._version'")
    assert "pkg/_version.py matches autoresearch_mutable, so it cannot be carried" in hint
    assert "autoresearch_carry = " not in hint


def test_the_editable_install_hint_of_a_native_tool_pytest_project_names_its_own_table(project: Project) -> None:
    """Code imported from the checkout instead of the worktree (as an editable install does):
    the hint says where pythonpath goes in this project, never an ``ini_options`` table."""
    if tuple(int(p) for p in pytest.__version__.split(".")[:2]) < (9, 2):
        pytest.skip("native TOML numbers for string settings need pytest 9.2")
    shadow = f"import sys\n\nsys.path.insert(0, {str(project.path)!r})  # what an editable install's .pth does\n"
    project.init({**default_files(), "pyproject.toml": NATIVE, "tests/conftest.py": shadow})
    before = _state(project)
    err = _refused(project, project.loop("--autoresearch-trials=1"), before)
    assert "from your checkout instead of the trial's worktree" in err
    assert 'e.g. in pyproject.toml under [tool.pytest]: pythonpath = ["."]' in err
    assert "ini_options" not in err


def test_imports_through_a_conftest_a_relative_import_and_a_pythonpath_root_are_found(tmp_path: Path) -> None:
    for rel, text in {
        "src/pkg/__init__.py": "",
        "src/pkg/metric.py": "",
        "src/pkg/model.py": "",
        "tests/__init__.py": "",
        "tests/scoring.py": "",
        "tests/conftest.py": "from pkg import metric\n",
        "tests/test_fit.py": "from . import scoring\nimport pkg.model\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    surface = Surface(["src/pkg/model.py", "src/pkg/*.py", "tests/scor*.py"])
    files = ["src/pkg/__init__.py", "src/pkg/metric.py", "src/pkg/model.py", "tests/scoring.py"]
    found = evaluator_imports.notes(tmp_path, ["tests/test_fit.py"], [tmp_path / "src"], surface, files)
    assert found == [
        "tests/test_fit.py imports src/pkg/__init__.py, src/pkg/metric.py, tests/scoring.py, which autoresearch_mutable "
        "(src/pkg/*.py, tests/scor*.py) makes mutable: "
        "the agent may change what the fitness test reads; if it is the evaluator's (its data, its metric), narrow the glob"
    ]  # model.py is named in autoresearch_mutable: the user's choice
