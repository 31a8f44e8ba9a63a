"""The mutable surface: glob matching against rootdir-relative paths, and path normalisation.

The surface is the only thing standing between an agent and the rest of the repository, so
these tests pin both what a glob admits and which paths are refused before any glob is tried.
"""

from __future__ import annotations

import pytest

from pytest_autoresearch.proposals.surface import Surface, normalize

# --- glob matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        # a plain path matches itself, anchored at both ends, with a literal dot
        ("src/model.py", "src/model.py", True),
        ("src/model.py", "src/model_py", False),
        ("src/model.py", "other/src/model.py", False),
        ("src/model.py", "src/model.py.bak", False),
        # `*` stays inside one segment
        ("src/*.py", "src/model.py", True),
        ("src/*.py", "src/brand_new.py", True),
        ("src/*.py", "src/sub/model.py", False),
        ("src/*.py", "src/model.txt", False),
        ("*.py", "model.py", True),
        ("*.py", "src/model.py", False),
        ("src/*/model.py", "src/a/model.py", True),
        ("src/*/model.py", "src/a/b/model.py", False),
        # `**` spans any number of segments, zero included
        ("src/**/*.py", "src/model.py", True),
        ("src/**/*.py", "src/a/model.py", True),
        ("src/**/*.py", "src/a/b/c/model.py", True),
        ("src/**/*.py", "lib/model.py", False),
        ("src/**/*.py", "src/a/model.txt", False),
        ("**/*.py", "model.py", True),
        ("**/*.py", "a/b/model.py", True),
        ("**/model.py", "deep/er/model.py", True),
        ("**/model.py", "deep/er/other_model.py", False),
        ("src/**", "src/a/b/c.txt", True),
        ("src/**", "lib/a.txt", False),
        # `?` is exactly one character, never a slash
        ("model?.py", "model1.py", True),
        ("model?.py", "model12.py", False),
        ("model?.py", "model.py", False),
        ("src?model.py", "src/model.py", False),
        # character classes
        ("model[abc].py", "modelb.py", True),
        ("model[abc].py", "modeld.py", False),
        ("model[!a].py", "modelb.py", True),
        ("model[!a].py", "modela.py", False),
        ("model[0-9].py", "model7.py", True),
        ("model[0-9].py", "modelx.py", False),
        # leading "./" and "/" in a glob mean the rootdir
        ("./src/*.py", "src/model.py", True),
        ("/src/*.py", "src/model.py", True),
        ("./model.py", "model.py", True),
    ],
)
def test_glob_matching(glob: str, path: str, expected: bool) -> None:
    assert Surface([glob]).matches(path) is expected


def test_negated_class_does_not_match_a_slash() -> None:
    # meant for model_a.py-style siblings of model.py, not for anything under model/
    assert not Surface(["model[!_]*.py"]).matches("model/evil.py")


@pytest.mark.parametrize(
    "path",
    ["./src/model.py", "src//model.py", "src/./model.py", "src/sub/../model.py", "src\\model.py"],
)
def test_paths_are_normalised_before_matching(path: str) -> None:
    assert Surface(["src/*.py"]).matches(path)


@pytest.mark.parametrize(
    "path",
    ["../src/model.py", "src/../../src/model.py", "/src/model.py", "C:/src/model.py", "src/model.py\0"],
)
def test_paths_that_leave_the_tree_never_match(path: str) -> None:
    assert not Surface(["**"]).matches(path)
    assert not Surface(["src/*.py"]).matches(path)


def test_any_glob_may_match() -> None:
    surface = Surface(["src/*.py", "config.toml"])
    assert surface.matches("src/model.py")
    assert surface.matches("config.toml")
    assert not surface.matches("README.md")


# --- normalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("model.py", "model.py"),
        ("src/model.py", "src/model.py"),
        ("./src/model.py", "src/model.py"),
        ("src//model.py", "src/model.py"),
        ("src/./model.py", "src/model.py"),
        ("src/sub/../model.py", "src/model.py"),
        ("src/model.py/", "src/model.py"),
        ("src\\model.py", "src/model.py"),
        ("..hidden/x.py", "..hidden/x.py"),  # a name that merely starts with dots stays inside
        ("src/..x", "src/..x"),
    ],
)
def test_normalize_cleans_relative_paths(path: str, expected: str) -> None:
    assert normalize(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        ".",
        "./",
        "..",
        "../model.py",
        "src/../../model.py",
        "src/..",
        "..\\model.py",
        "/etc/passwd",
        "/src/model.py",
        "\\src\\model.py",
        "\\\\server\\share\\model.py",
        "C:/src/model.py",
        "C:\\src\\model.py",
        "c:model.py",
        "src/mo\0del.py",
    ],
)
def test_normalize_rejects_paths_outside_the_tree(path: str) -> None:
    assert normalize(path) is None


# --- the Surface object ------------------------------------------------------------------------


def test_blank_globs_are_dropped_and_globs_are_stripped() -> None:
    surface = Surface(["  src/*.py  ", "", "   "])
    assert surface.globs == ("src/*.py",)
    assert surface
    assert not Surface(["", "  "])
    assert not Surface([])


def test_select_returns_the_matching_paths_sorted() -> None:
    surface = Surface(["src/*.py", "config.toml"])
    paths = ["src/z.py", "README.md", "config.toml", "src/a.py", "src/sub/b.py", "tests/test_x.py"]
    assert surface.select(paths) == ["config.toml", "src/a.py", "src/z.py"]


def test_select_accepts_any_iterable_and_may_return_nothing() -> None:
    assert Surface(["*.py"]).select(iter(["a.py", "b.txt"])) == ["a.py"]
    assert Surface(["*.py"]).select(["a.txt"]) == []


def test_unmatched_globs_lists_globs_that_match_no_path_in_order() -> None:
    surface = Surface(["src/*.py", "missing/*.py", "config.toml", "docs/**"])
    paths = ["src/model.py", "config.toml", "README.md"]
    assert surface.unmatched_globs(paths) == ["missing/*.py", "docs/**"]
    assert surface.unmatched_globs(iter(paths)) == ["missing/*.py", "docs/**"]


def test_unmatched_globs_with_no_paths_lists_every_glob() -> None:
    assert Surface(["a.py", "b/*.py"]).unmatched_globs([]) == ["a.py", "b/*.py"]


def test_repr_shows_the_globs() -> None:
    assert repr(Surface(["src/*.py"])) == "Surface(['src/*.py'])"
