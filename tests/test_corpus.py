"""The acceptance corpus: real PyPI projects, their own suites as the gates (issue 14).

Each project (``tests/corpus/projects.py``) is fetched as its pinned sdist with pip into a cache,
unpacked into a fresh git repository (its ``.gitignore`` respected: a generated ``_version.py`` is
ignored yet present, as for a user who built it), and then used as a user would:

1. its own tests give the same outcomes with the plugin installed as without it, and with the
   fitness test and the README's ini lines added, the same plus one passed fitness test;
2. ``pytest --autoresearch`` with ``mutate`` runs a baseline and trials, and whatever it kept
   passes the project's own suite (on toolz and cachetools, whose only numeric knobs are
   functions' defaults, those are what it tunes);
3. with ``replay``, a change that improves the score and passes is kept, one that improves the
   score but fails a test of the project's is not;

and in both loops the user's checkout is left as it was. Beside those: a missing surface is asked
for in the project's own config file and table; ``-p no:cacheprovider`` works under the project's
``--strict-config``; pebble's pool tests, whose workers get SIGTERM, pass in a trial. The sdists
are cached in ``$AUTORESEARCH_CORPUS_CACHE`` (default ``~/.cache/pytest-autoresearch-corpus``); a
project that pip cannot fetch is skipped with the reason. The project runs wait for ``--slow``
(about 70 s with ``-n 2`` on two cores, once the sdists are cached); the harness's own checks at
the end are quick.

Cases that need a fix not yet on main are ``xfail(strict=True)`` with the fix named (``NEEDS``),
so that each flips to a failure, to be unmarked, the day its fix lands.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from corpus.projects import PROJECTS, Corpus, Edit
from helpers import GIT_ENV

CACHE = Path(os.environ.get("AUTORESEARCH_CORPUS_CACHE") or Path.home() / ".cache" / "pytest-autoresearch-corpus")

#: case -> project -> the fix it waits for (see the module docstring); each reason quotes what main says.
NEEDS: dict[str, dict[str, str]] = {
    "plain": {},
    "mutate": {},
    "replay": {},
    "hint": {},
    "sigterm": {},
    "no-cache": {},
}

#: The projects whose own pytest configuration has --strict-config.
STRICT_CONFIG = ("hepunits", "exceptiongroup")


def cases(kind: str) -> list[object]:
    return [
        pytest.param(p, id=p.name, marks=[pytest.mark.xfail(strict=True, reason=NEEDS[kind][p.name])] if p.name in NEEDS[kind] else [])
        for p in PROJECTS
    ]


# --- fetching and unpacking -----------------------------------------------------------------------


def sdist(project: Corpus) -> Path:
    """The project's pinned sdist from the cache, fetched with pip the first time."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[-_.]+", "_", project.name).lower()
    with (CACHE / f".{stem}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the mutate and replay tests of one project may fetch at once
        found = _cached(stem, project.version)
        if found is None:
            fetch = CACHE / f".fetch-{stem}-{os.getpid()}"
            shutil.rmtree(fetch, ignore_errors=True)
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                     f"{project.name}=={project.version}", "-d", str(fetch)],
                    capture_output=True, text=True, timeout=300,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                pytest.skip(f"corpus: pip could not fetch {project.name}=={project.version} in 300 s; put its sdist in {CACHE}")
            got = list(fetch.glob("*.tar.gz")) if proc.returncode == 0 else []
            if not got:
                why = (proc.stderr.strip().splitlines() or ["no sdist"])[-1]
                shutil.rmtree(fetch, ignore_errors=True)
                pytest.skip(f"corpus: pip could not fetch {project.name}=={project.version} ({why}); put its sdist in {CACHE}")
            got[0].replace(CACHE / got[0].name)
            shutil.rmtree(fetch, ignore_errors=True)
            found = _cached(stem, project.version)
            assert found is not None, f"pip fetched {got[0].name}, not an sdist of {project.name} {project.version}"
    digest = hashlib.sha256(found.read_bytes()).hexdigest()
    assert digest == project.sha256, f"{found} has SHA-256 {digest}, not the pinned {project.sha256}: remove it to fetch again"
    return found


def _cached(stem: str, version: str) -> Path | None:
    for path in CACHE.glob("*.tar.gz"):
        if path.name.lower().replace("-", "_").replace(".", "_").startswith(f"{stem}_") and path.name.endswith(f"-{version}.tar.gz"):
            return path
    return None


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, f"git {' '.join(args)} failed in {cwd}: {proc.stderr}"
    return proc.stdout.strip()


def apply(root: Path, edits: tuple[Edit, ...]) -> dict[str, str]:
    """The edits applied to the files under ``root`` (each must match once); the new texts."""
    texts: dict[str, str] = {}
    for rel, old, new in edits:
        text = texts.get(rel) or (root / rel).read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{root.name}: {old!r} is not found exactly once in {rel}"
        texts[rel] = text.replace(old, new)
    return texts


def checkout(project: Corpus, tmp_path: Path, *, user: bool) -> Path:
    """The project as a user's git repository: unpacked, committed; with ``user``, the fitness
    test and the README's ini lines added and committed too (README, step 5)."""
    root = tmp_path / project.name
    with tarfile.open(sdist(project)) as archive:
        top = archive.getnames()[0].split("/")[0]
        archive.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (tmp_path / "unpacked" / top).rename(root)
    for rel, text in apply(root, project.convert).items():
        (root / rel).write_text(text, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"{project.name} {project.version}")
    for rel in project.generated:  # the build wrote it and git ignores it: present, untracked
        assert (root / rel).is_file(), f"the sdist of {project.name} has no {rel}"
        assert not git(root, "ls-files", rel), f"{rel} is tracked: the project's .gitignore should cover it"
    if user:
        add_what_the_readme_says(project, root)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "autoresearch: a fitness test and the surface")
    return root


def add_what_the_readme_says(project: Corpus, root: Path) -> None:
    (root / project.fitness_path).write_text(project.fitness_source, encoding="utf-8")
    rel, header, lines = project.config
    path = root / rel
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if header in text.splitlines():
        start = text.splitlines(keepends=True)
        at = next(i for i, line in enumerate(start) if line.rstrip("\n") == header) + 1
        text = "".join(start[:at] + [lines] + start[at:])
    else:
        text = text.rstrip("\n") + f"\n\n{header}\n{lines}"
    path.write_text(text, encoding="utf-8")


# --- running --------------------------------------------------------------------------------------

_COUNT = re.compile(r"(\d+) ((?:subtests )?[a-z]+)")


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """The counts of pytest's closing line (``216 passed, 1 skipped, 15 warnings in 1.82s``)."""
    for line in reversed(result.outlines):
        if re.search(r"\d+ (passed|failed|skipped|error|errors|deselected|xfailed|xpassed)\b.* in [\d.]+s", line):
            found = {word.replace("errors", "error"): int(n) for n, word in _COUNT.findall(line.split(" in ")[0])}
            return found
    raise AssertionError("no closing line in pytest's output:\n" + "\n".join(result.outlines[-30:] + result.errlines[-30:]))


def pytest_in(root: Path, *args: str, timeout: float) -> pytest.RunResult:
    """``python -m pytest ARGS`` in ``root`` as a user's shell runs it: without the variables
    of the xdist worker this test may run in (pytest-benchmark, for one, turns itself off when it
    sees them, which hid a failure that a user's run has)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=root, capture_output=True, text=True, timeout=timeout, env=env)
    return pytest.RunResult(proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines(), time.monotonic() - start)


def own_suite(project: Corpus, root: Path, *extra: str, pristine: bool) -> pytest.RunResult:
    """The project's own tests, run as its developers do (``pythonpath=src`` standing in for an
    install where the untouched project has a src layout; no cache written into the checkout)."""
    args = ["-p", "no:cacheprovider", *project.own_tests]
    if pristine and project.src:
        args += ["-o", "pythonpath=src"]
    return pytest_in(root, *args, *extra, timeout=300)


def loop(root: Path, *args: str, tag: str) -> pytest.RunResult:
    """``pytest --autoresearch`` as the README has a user type it (pytest's cache provider on)."""
    return pytest_in(root, "--autoresearch", f"--autoresearch-tag={tag}", *args, timeout=420)


def rows(root: Path, tag: str) -> list[dict[str, str]]:
    """results.tsv, checked whole: every row has every column, trials numbered from 0."""
    path = root / ".autoresearch" / tag / "results.tsv"
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header, *body = list(reader)
    assert body, f"{path} has no rows"
    for number, row in enumerate(body):
        assert len(row) == len(header), f"row {number} of {path} has {len(row)} cells, not {len(header)}: {row}"
    table = [dict(zip(header, row)) for row in body]
    assert [r["trial"].lstrip("0") or "0" for r in table] == [str(i) for i in range(len(table))], [r["trial"] for r in table]
    return table


def snapshot(root: Path) -> dict[str, object]:
    """What the loop must leave alone: HEAD, the branch, the index, git status, every file."""
    files = {}
    for here, dirs, names in os.walk(root):
        # .pytest_cache: pytest's own, written by any pytest run in the folder (the driver's too)
        dirs[:] = [d for d in dirs if d not in (".git", ".autoresearch", ".pytest_cache")]
        for name in names:
            full = Path(here) / name
            files[full.relative_to(root).as_posix()] = hashlib.sha256(full.read_bytes()).hexdigest()
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "symbolic-ref", "HEAD"),
        "index": git(root, "ls-files", "-s"),
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "ignored": [
            line
            for line in git(root, "status", "--porcelain", "--ignored", "--untracked-files=all").splitlines()
            if line.startswith("!!") and not line[3:].startswith((".autoresearch/", ".pytest_cache/"))
        ],
        "files": files,
    }


def passes_own_suite_at(project: Corpus, root: Path, ref: str, tmp_path: Path) -> dict[str, int]:
    """The project's own tests on ``ref`` in a fresh clone (the generated files copied, as a
    build would make them): what a user who merges the branch gets."""
    clone = tmp_path / f"clone-{ref.replace('/', '-')}"
    subprocess.run(["git", "clone", "-q", "--branch", ref, str(root), str(clone)], check=True, capture_output=True)
    for rel in project.generated:
        shutil.copy2(root / rel, clone / rel)
    result = own_suite(project, clone, pristine=False)
    counts = outcomes(result)
    assert result.ret == 0 and not counts.get("failed") and not counts.get("error"), (
        f"{ref} fails {project.name}'s own tests:\n" + "\n".join(result.outlines[-40:])
    )
    return counts


def why(result: pytest.RunResult, root: Path, tag: str) -> str:
    """What a failed assertion shows: the run's output and the last trial's log."""
    logs = sorted((root / ".autoresearch" / tag / "trials").glob("*.log"))
    tail = logs[-1].read_text(encoding="utf-8", errors="replace").splitlines()[-40:] if logs else []
    return "\n".join(result.outlines[-40:] + result.errlines[-20:] + ([f"--- {logs[-1].name}"] + tail if logs else []))


# --- the cases ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("project", cases("plain"))
def test_the_projects_own_tests_give_the_same_outcomes_with_the_plugin(project: Corpus, tmp_path: Path) -> None:
    root = checkout(project, tmp_path, user=False)
    without = own_suite(project, root, "-p", "no:autoresearch", pristine=True)
    assert without.ret == 0, f"{project.name}'s own tests fail without the plugin:\n" + "\n".join(without.outlines[-30:])
    bare = outcomes(without)
    installed = own_suite(project, root, pristine=True)
    assert outcomes(installed) == bare, "\n".join(installed.outlines[-30:])
    assert installed.ret == without.ret

    add_what_the_readme_says(project, root)
    added = own_suite(project, root, *([project.fitness_path] if project.own_tests else []), pristine=False)
    expected = {**bare, "passed": bare.get("passed", 0) + 1}
    assert added.ret == 0 and outcomes(added) == expected, "\n".join(added.outlines[-40:] + added.errlines[-10:])
    assert any(project.fitness_path in line for line in added.outlines), "no fitness table:\n" + added.stdout.str()


@pytest.mark.slow
@pytest.mark.parametrize("project", cases("mutate"))
def test_mutate_keeps_only_what_passes_the_projects_own_tests(project: Corpus, tmp_path: Path) -> None:
    root = checkout(project, tmp_path, user=True)
    before = snapshot(root)
    result = loop(root, "--autoresearch-agent=mutate:1", "--autoresearch-trials=2", tag="m")
    assert result.ret == 0, why(result, root, "m")
    table = rows(root, "m")
    statuses = [r["status"] for r in table]
    assert statuses[0] == "baseline" and len(statuses) == 3, (statuses, [r["reason"] for r in table], why(result, root, "m"))
    assert all(s in ("keep", "discard", "crash", "timeout", "invalid") for s in statuses[1:]), statuses
    assert snapshot(root) == before, "the loop changed the user's checkout"
    if "keep" in statuses:
        passes_own_suite_at(project, root, "autoresearch/m", tmp_path)
    else:
        assert git(root, "rev-parse", "autoresearch/m") == before["head"]


@pytest.mark.slow
@pytest.mark.parametrize("project", cases("replay"))
def test_replay_keeps_the_passing_change_and_discards_the_breaking_one(project: Corpus, tmp_path: Path) -> None:
    root = checkout(project, tmp_path, user=True)
    proposals = tmp_path / "proposals.jsonl"
    lines = [
        {"description": "better, and breaks a test of the project's", "files": apply(root, project.breaks)},
        {"description": "better, and passes", "files": apply(root, project.keep)},
    ]
    proposals.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    before = snapshot(root)
    result = loop(root, f"--autoresearch-agent=replay:{proposals}", tag="r")
    assert result.ret == 0, why(result, root, "r")
    table = rows(root, "r")
    assert [r["status"] for r in table] == ["baseline", "crash", "keep"], ([(r["status"], r["reason"]) for r in table], why(result, root, "r"))
    better = float(table[2]["score"]) - float(table[0]["score"])
    assert better < 0 if project.goal == "min" else better > 0, (table[0]["score"], table[2]["score"])
    assert snapshot(root) == before, "the loop changed the user's checkout"
    changed = git(root, "diff", "--name-only", "main", "autoresearch/r").splitlines()
    assert changed == [rel for rel, _, _ in project.keep]
    passes_own_suite_at(project, root, "autoresearch/r", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("project", cases("hint"))
def test_a_missing_surface_is_asked_for_in_the_projects_own_config(project: Corpus, tmp_path: Path) -> None:
    """A user who added the fitness test but no surface is told where to put it: in the file and
    table pytest reads for this project (pyproject.toml's [tool.pytest.ini_options] or [tool.pytest],
    setup.cfg's [tool:pytest], tox.ini's [pytest]); with no pytest configuration yet, pyproject.toml."""
    root = checkout(project, tmp_path, user=False)
    rel, header, _ = project.config
    if header not in (root / rel).read_text(encoding="utf-8").splitlines():
        rel, header = "pyproject.toml", "[tool.pytest"
    (root / project.fitness_path).write_text(project.fitness_source, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a fitness test")
    before = snapshot(root)
    result = loop(root, "--autoresearch-trials=1", tag="h")
    errors = [line for line in result.errlines + result.outlines if line.startswith("ERROR: autoresearch:")]
    assert result.ret != 0 and len(errors) == 1, why(result, root, "h")
    assert "autoresearch_mutable" in errors[0] and rel in errors[0] and header in errors[0], errors[0]
    assert snapshot(root) == before and not (root / ".autoresearch" / "h").exists()


@pytest.mark.slow
@pytest.mark.parametrize("project", [p for p in cases("no-cache") if p.id in STRICT_CONFIG])
def test_a_loop_with_the_cache_provider_off_under_strict_config(project: Corpus, tmp_path: Path) -> None:
    """``-p no:cacheprovider`` (common in CI) with ``--strict-config`` in the project's addopts:
    the loop runs as it does with the cache on."""
    root = checkout(project, tmp_path, user=True)
    proposals = tmp_path / "proposals.jsonl"
    proposals.write_text(json.dumps({"description": "better, and passes", "files": apply(root, project.keep)}) + "\n", encoding="utf-8")
    result = loop(root, "-p", "no:cacheprovider", f"--autoresearch-agent=replay:{proposals}", tag="c")
    assert result.ret == 0, why(result, root, "c")
    assert [r["status"] for r in rows(root, "c")] == ["baseline", "keep"]


@pytest.mark.slow
@pytest.mark.parametrize("project", [p for p in cases("sigterm") if p.values[0].terminated])
def test_multiprocessing_workers_stopped_with_sigterm_do_not_end_the_trial(project: Corpus, tmp_path: Path) -> None:
    """The project's own tests whose pools stop their workers with SIGTERM pass in a trial as
    they do in a plain run."""
    root = checkout(project, tmp_path, user=True)
    plain = own_suite(project, root, *project.terminated, pristine=False)
    assert plain.ret == 0, "\n".join(plain.outlines[-30:])
    proposals = tmp_path / "proposals.jsonl"
    proposals.write_text(json.dumps({"description": "better, and passes", "files": apply(root, project.keep)}) + "\n", encoding="utf-8")
    tests = " ".join((*project.terminated, project.fitness_path))
    result = loop(root, "-o", f"autoresearch_tests={tests}", f"--autoresearch-agent=replay:{proposals}", tag="s")
    assert result.ret == 0, why(result, root, "s")
    assert [r["status"] for r in rows(root, "s")] == ["baseline", "keep"]


# --- the harness itself (quick) --------------------------------------------------------------------


def test_a_project_pip_cannot_fetch_is_skipped_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CACHE", tmp_path / "cache")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as it is where no index can be reached
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # and no local folder of packages either
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        sdist(PROJECTS[1])
    message = str(skipped.value)
    assert message.startswith(f"corpus: pip could not fetch {PROJECTS[1].name}=={PROJECTS[1].version} (")
    assert f"put its sdist in {tmp_path / 'cache'}" in message


def test_a_cached_sdist_that_is_not_the_pinned_one_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CACHE", tmp_path)
    project = PROJECTS[1]
    (tmp_path / f"{project.name}-{project.version}.tar.gz").write_bytes(b"not the release")
    with pytest.raises(AssertionError, match=f"not the pinned {project.sha256}: remove it to fetch again"):
        sdist(project)


def test_the_closing_line_is_read_whole() -> None:
    lines = ["tests/test_x.py ..s", "==== 670 passed, 1 skipped, 2 xfailed, 8 warnings, 12037 subtests passed in 42.71s ===="]
    assert outcomes(pytest.RunResult(0, lines, [], 1.0)) == {
        "passed": 670, "skipped": 1, "xfailed": 2, "warnings": 8, "subtests passed": 12037,
    }  # fmt: skip
    assert outcomes(pytest.RunResult(1, ["1 failed, 2 errors in 0.1s"], [], 1.0)) == {"failed": 1, "error": 2}
