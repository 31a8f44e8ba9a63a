"""The first error of a real pytest log: pytest's own output for each kind of failed session."""

from __future__ import annotations

import pytest

from pytest_autoresearch.core.pytest_log import first_error

NOISE = "import warnings\n\ndef pytest_collection_finish(session):\n    for i in range(50):\n        print(f'plugin chatter {i}')\n"


def _log(pytester: pytest.Pytester, *args: str) -> str:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return "\n".join(result.outlines + result.errlines)


def test_the_first_of_several_collection_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="import missing_module_aaa\n\ndef test_a():\n    pass\n",
        test_b="raise RuntimeError('second broken module')\n",
        test_c="def test_c():\n    pass\n",
    )
    text = first_error(_log(pytester))
    assert text is not None
    assert text.splitlines()[0].startswith("_") and "ERROR collecting test_a.py" in text.splitlines()[0]
    assert "ModuleNotFoundError: No module named 'missing_module_aaa'" in text
    assert "second broken module" not in text and "short test summary" not in text


def test_an_error_at_setup_with_its_traceback(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(NOISE)
    pytester.makepyfile(
        "import pytest\n\n@pytest.fixture\ndef data():\n    raise FileNotFoundError('data/train.csv')\n\n"
        "def test_one(data):\n    pass\n\ndef test_two():\n    assert 1 == 2\n"
    )
    text = first_error(_log(pytester))
    assert text is not None and "ERROR at setup of test_one" in text.splitlines()[0]
    assert "def data():" in text and "FileNotFoundError: data/train.csv" in text
    assert "test_two" not in text


def test_a_conftest_that_cannot_be_imported(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import helper_missing_xyz\n")
    pytester.makepyfile("def test_a():\n    pass\n")
    text = first_error(_log(pytester))
    assert text is not None and text.startswith("ImportError while loading conftest")
    assert "No module named 'helper_missing_xyz'" in text


def test_an_internal_error_after_chatter(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(NOISE + "\ndef pytest_collection_modifyitems(items):\n    raise ValueError('settings file missing')\n")
    pytester.makepyfile("def test_a():\n    pass\n")
    log = _log(pytester)
    text = first_error(log, limit=600)
    assert text is not None and text.startswith("INTERNALERROR>")
    assert text.endswith("INTERNALERROR> ValueError: settings file missing")
    assert len(text) <= 600 + len("\n...\n")
    assert "plugin chatter" in log and "plugin chatter" not in text


def test_a_log_without_an_error_gives_none(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    assert first_error(_log(pytester)) is None
