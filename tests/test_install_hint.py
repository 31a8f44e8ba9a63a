"""Install hints name the way the plugin was installed: the package is on no index, so
``pip install 'pytest-autoresearch[plot]'`` is right only for a copy that came from one.

Each kind of installation is a real ``.dist-info`` folder read by ``importlib.metadata``, with the
``direct_url.json`` pip writes for it (PEP 610); the commands are split as a shell would and their
requirement parsed as pip would."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pytest_autoresearch import install_hint
from pytest_autoresearch.install_hint import pip_install

REPO = Path(__file__).resolve().parents[1]


def installed(tmp_path: Path, direct_url: dict[str, object] | None) -> metadata.Distribution:
    """A distribution as pip leaves it in site-packages, with ``direct_url`` as its direct_url.json."""
    info = tmp_path / "pytest_autoresearch-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-autoresearch\nVersion: 0.1.0\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.Distribution.at(info)


def test_an_editable_checkout_gets_pip_install_e_of_its_path(tmp_path: Path) -> None:
    dist = installed(tmp_path, {"url": "file:///home/ada/src/my%20autoresearch", "dir_info": {"editable": True}})
    command = pip_install("plot", dist)
    assert command == "pip install -e '/home/ada/src/my autoresearch[plot]'"
    assert shlex.split(command) == ["pip", "install", "-e", "/home/ada/src/my autoresearch[plot]"]


def test_a_checkout_installed_without_e_gets_its_path(tmp_path: Path) -> None:
    dist = installed(tmp_path, {"url": "file:///opt/pytest-autoresearch", "dir_info": {}})
    assert pip_install("llm", dist) == "pip install '/opt/pytest-autoresearch[llm]'"


def test_a_git_url_gets_the_same_url_and_revision_with_the_extra(tmp_path: Path) -> None:
    dist = installed(
        tmp_path,
        {
            "url": "https://github.com/example/pytest-autoresearch.git",
            "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "v0.1"},
        },
    )
    command = pip_install("ray", dist)
    assert command == "pip install 'pytest-autoresearch[ray] @ git+https://github.com/example/pytest-autoresearch.git@v0.1'"
    requirement = Requirement(shlex.split(command)[2])
    assert requirement.name == "pytest-autoresearch" and requirement.extras == {"ray"}
    assert requirement.url == "git+https://github.com/example/pytest-autoresearch.git@v0.1"


def test_a_git_url_without_a_revision_and_in_a_subdirectory(tmp_path: Path) -> None:
    dist = installed(
        tmp_path,
        {"url": "https://git.example/mono.git", "vcs_info": {"vcs": "git", "commit_id": "b" * 40}, "subdirectory": "plugin"},
    )
    assert pip_install("plot", dist) == "pip install 'pytest-autoresearch[plot] @ git+https://git.example/mono.git#subdirectory=plugin'"


def test_an_archive_gets_its_url(tmp_path: Path) -> None:
    url = "file:///tmp/wheels/pytest_autoresearch-0.1.0-py3-none-any.whl"
    dist = installed(tmp_path, {"url": url, "archive_info": {"hashes": {"sha256": "0" * 64}}})
    command = pip_install("torch", dist)
    assert command == f"pip install 'pytest-autoresearch[torch] @ {url}'"
    assert Requirement(shlex.split(command)[2]).url == url


@pytest.mark.parametrize("direct_url", [None, "not json", {"dir_info": {}}])
def test_from_an_index_or_an_unreadable_record_the_name_with_the_extra(tmp_path: Path, direct_url: object) -> None:
    if isinstance(direct_url, str):
        dist = installed(tmp_path, None)
        (tmp_path / "pytest_autoresearch-0.1.0.dist-info" / "direct_url.json").write_text(direct_url)
    else:
        dist = installed(tmp_path, direct_url)  # type: ignore[arg-type]
    assert pip_install("plot", dist) == "pip install 'pytest-autoresearch[plot]'"


def test_this_installation_is_named_the_way_it_was_installed() -> None:
    """The project's own setup (``.ci/run``: ``pip install -e '.[...]'``) gets its checkout back."""
    dist = metadata.distribution("pytest-autoresearch")
    record = json.loads(dist.read_text("direct_url.json") or "null")
    if not (record and record.get("dir_info", {}).get("editable")):
        pytest.skip("the plugin is not installed editable here")
    words = shlex.split(pip_install("plot"))
    assert words[:3] == ["pip", "install", "-e"] and words[3].endswith("[plot]")
    checkout = Path(words[3][: -len("[plot]")])
    assert 'name = "pytest-autoresearch"' in (checkout / "pyproject.toml").read_text()


def test_a_checkout_on_sys_path_that_is_not_installed_gets_its_own_path(tmp_path: Path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    code = "from pytest_autoresearch.install_hint import pip_install; print(pip_install('plot'))"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    probe = subprocess.run([base, "-c", "import importlib.metadata as m; m.distribution('pytest-autoresearch')"], env=env, capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{base} has the plugin installed: it is not a bare interpreter")
    out = subprocess.run([base, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"pip install -e '{install_hint.CHECKOUT}[plot]'"
    assert install_hint.CHECKOUT == REPO


def test_no_hint_in_the_package_names_an_index_package() -> None:
    """Every hint goes through install_hint: a literal ``pip install 'pytest-autoresearch[x]'``
    (what pip cannot find) is nowhere else in the package."""
    package = REPO / "pytest_autoresearch"
    sources = [p for p in package.rglob("*.py") if p.name != "install_hint.py"]
    assert len(sources) > 20
    bare = re.compile(r"pip install \S*pytest-autoresearch\[")
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in sources for n, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert offenders == []
    users = [p.relative_to(REPO).as_posix() for p in sources if "install_hint import pip_install" in p.read_text()]
    assert sorted(users) == [
        "pytest_autoresearch/agents/llm.py", "pytest_autoresearch/agents/tuner.py", "pytest_autoresearch/engine/ray_backend.py", "pytest_autoresearch/ui/plot.py",
    ]


def test_a_missing_litellm_is_one_line_with_a_hint_that_installs_it(project) -> None:  # noqa: ANN001 (the conftest fixture)
    project.init()
    fake = project.outside / "nolitellm"
    (fake / "litellm").mkdir(parents=True)
    (fake / "litellm" / "__init__.py").write_text("raise ImportError('no litellm here')\n")
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH", "")) if p)
    result = project.loop("--autoresearch-agent=litellm:openai/gpt-5-mini", env={"PYTHONPATH": path})
    assert result.ret != 0
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: autoresearch: agent litellm:openai/gpt-5-mini: the litellm agent needs litellm: {pip_install('llm')}"
    ]
    assert not (project.path / ".autoresearch").exists()
