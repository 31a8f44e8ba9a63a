"""The option table: every setting registered and documented from it, every default defined once.

``pytest_autoresearch.options.OPTIONS`` lists each flag and ini key; ``plugin.pytest_addoption``
registers them, ``settings.load_settings`` reads them, and the defaults (in the help texts, the
``Settings`` dataclass, the table and the agents) all come from ``core/defaults.py``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path

import pytest

from pytest_autoresearch import settings
from pytest_autoresearch.core import defaults
from pytest_autoresearch.options import OPTION, OPTIONS, stated
from pytest_autoresearch.settings import Settings, load_settings
from pytest_autoresearch.plugin import _UNIONS

#: options -> the Settings field each fills, where the table gives a default
FIELDS = {
    "autoresearch_agent": "agent_spec",
    "autoresearch_agent_timeout": "agent_timeout",
    "autoresearch_agent_tools": "agent_tools",
    "autoresearch_agent_turns": "agent_turns",
    "autoresearch_agent_corrections": "agent_corrections",
    "autoresearch_max_file_kb": "max_file_kb",
    "autoresearch_baseline_runs": "baseline_runs",
    "autoresearch_min_delta": "min_delta",
    "autoresearch_noise_k": "noise_k",
    "autoresearch_confirm_runs": "confirm_runs",
    "autoresearch_workers": "workers",
    "autoresearch_backend": "backend",
    "autoresearch_trim_plugins": "trim_plugins",
    "autoresearch_sandbox": "sandbox",
    "autoresearch_allow_delete": "allow_delete",
    "autoresearch_hybrid_every": "hybrid_every",
    "autoresearch_hybrid_tuner": "hybrid_tuner",
}

#: options whose help states a default -> the defaults.py constants it states
STATED = {
    "autoresearch_agent": ["AGENT"],
    "autoresearch_timeout": ["TIMEOUT_FACTOR", "MIN_TIMEOUT"],
    "autoresearch_program": ["POLICY_FILE"],
    "autoresearch_agent_timeout": ["AGENT_TIMEOUT"],
    "autoresearch_max_prompt_tokens": ["PROMPT_TOKENS"],
    "autoresearch_agent_tools": ["AGENT_TOOLS"],
    "autoresearch_agent_turns": ["AGENT_TURNS"],
    "autoresearch_agent_corrections": ["AGENT_CORRECTIONS"],
    "autoresearch_agent_tokens": ["AGENT_TOKENS_FACTOR"],
    "autoresearch_agent_seconds": ["AGENT_SECONDS"],
    "autoresearch_max_file_kb": ["MAX_FILE_KB"],
    "autoresearch_baseline_runs": ["BASELINE_RUNS", "NOISY_BASELINE_RUNS"],
    "autoresearch_min_delta": ["MIN_DELTA"],
    "autoresearch_noise_k": ["NOISE_K"],
    "autoresearch_confirm_runs": ["CONFIRM_RUNS"],
    "autoresearch_tolerance": ["TOLERANCE"],
    "autoresearch_workers": ["WORKERS"],
    "autoresearch_backend": ["BACKEND"],
    "autoresearch_trim_plugins": ["TRIM_PLUGINS"],
    "autoresearch_hybrid_every": ["HYBRID_EVERY"],
    "autoresearch_hybrid_tuner": ["HYBRID_TUNER"],
}

#: odd values for a run with changed defaults (none equal to a real default or to each other)
CHANGED = {
    "AGENT": "replay",
    "TIMEOUT_FACTOR": 4,
    "MIN_TIMEOUT": 91.0,
    "POLICY_FILE": "policy.md",
    "AGENT_TIMEOUT": 123.0,
    "PROMPT_TOKENS": 12345,
    "AGENT_TOOLS": "off",
    "AGENT_TURNS": 13,
    "AGENT_CORRECTIONS": 4,
    "AGENT_TOKENS_FACTOR": 11,
    "AGENT_SECONDS": 321.0,
    "MAX_FILE_KB": 77.0,
    "BASELINE_RUNS": 3,
    "NOISY_BASELINE_RUNS": 9,
    "MIN_DELTA": 0.25,
    "NOISE_K": 3.5,
    "CONFIRM_RUNS": 7,
    "TOLERANCE": 0.125,
    "WORKERS": 6,
    "BACKEND": "ray",
    "TRIM_PLUGINS": False,
    "HYBRID_EVERY": 7,
    "HYBRID_TUNER": "optuna:random",
}

def squeezed(text: str) -> str:
    """Text without whitespace: argparse and pytest wrap help texts at any space (or hyphen)."""
    return "".join(text.split())


def help_of(out: str, name: str) -> str:
    """The help of the ini key ``name`` in ``pytest --help`` output, unwrapped."""
    match = re.search(rf"^  {name} \([\w |]+\):\n((?: {{4,}}\S.*\n)+)", out, re.MULTILINE)
    assert match, f"{name} is not in the ini section of --help"
    return " ".join(match.group(1).split())


@pytest.fixture
def bare(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini("[pytest]\n")
    return pytester


def test_the_table_names_each_setting_once_and_only_known_kinds() -> None:
    names = [option.name for option in OPTIONS]
    assert len(names) == len(set(names)) == len(OPTION)
    for option in OPTIONS:
        assert option.name.startswith("autoresearch"), option
        assert option.cli is not None or option.ini is not None, f"{option.name} is neither a flag nor an ini key"
        assert option.ini in (None, "string", "args", "linelist", "bool"), option
        assert option.help and option.help == option.help.strip(), option.name
        if option.cli == "":
            assert option.ini is None and option.default is False, f"the switch {option.name} defaults to False"
    for name, constants in STATED.items():
        assert OPTION[name].help.count("default") >= 1, name
        for constant in constants:
            assert stated(getattr(defaults, constant)) in OPTION[name].help, (name, constant)


def test_every_option_is_in_the_help_with_its_default(bare: pytest.Pytester) -> None:
    result = bare.runpytest_subprocess("--help")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    flat = squeezed(out)
    for option in OPTIONS:
        if option.cli == "":
            assert re.search(rf"^  {option.flag}(\s|$)", out, re.MULTILINE), option.flag
        elif option.cli is not None:
            assert f"  {option.flag}={option.cli}" in out, option.flag
        if option.ini is not None:
            shown = "string | int | float" if option.ini == "string" and _UNIONS else option.ini  # a TOML number too
            assert f"  {option.name} ({shown}):" in out, option.name
        assert squeezed(option.help) in flat, f"the help of {option.name} is not in --help"
    assert f"default {defaults.CONFIRM_RUNS}" in help_of(out, "autoresearch_confirm_runs")
    assert f"default {defaults.NOISE_K:g}" in help_of(out, "autoresearch_noise_k")
    assert f"default {defaults.AGENT_TIMEOUT:g}" in help_of(out, "autoresearch_agent_timeout")
    assert f"runs {defaults.NOISY_BASELINE_RUNS} times" in help_of(out, "autoresearch_baseline_runs")


def test_flags_default_to_unset_and_ini_keys_to_their_table_defaults(bare: pytest.Pytester) -> None:
    """An unset flag must read None (a switch False), or it would hide its ini twin."""
    config = bare.parseconfig()
    for option in OPTIONS:
        if option.cli is not None:
            assert config.getoption(option.name) is (False if option.cli == "" else None), option.name
        if option.ini is not None:
            assert config.getini(option.name) == option.ini_default, option.name


def test_nothing_set_loads_the_defaults_of_core_defaults(bare: pytest.Pytester) -> None:
    loaded = load_settings(bare.parseconfigure())
    assert loaded.confirm_runs == defaults.CONFIRM_RUNS
    assert loaded.noise_k == defaults.NOISE_K
    assert loaded.baseline_runs == defaults.BASELINE_RUNS
    assert loaded.min_delta == defaults.MIN_DELTA
    assert loaded.agent_timeout == defaults.AGENT_TIMEOUT
    assert loaded.max_file_kb == defaults.MAX_FILE_KB
    assert loaded.workers == defaults.WORKERS
    assert loaded.backend == defaults.BACKEND
    assert loaded.trim_plugins is defaults.TRIM_PLUGINS
    assert loaded.agent_spec == defaults.AGENT
    for name, field in FIELDS.items():
        assert getattr(loaded, field) == OPTION[name].default, name
    declared = {f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING}
    assert {name: getattr(loaded, name) for name in declared} == declared


def test_the_ini_file_and_the_command_line_still_set_them(bare: pytest.Pytester) -> None:
    bare.makeini("[pytest]\nautoresearch_noise_k = 0\nautoresearch_confirm_runs = 5\nautoresearch_workers = 3\n")
    loaded = load_settings(bare.parseconfigure("--autoresearch-workers=4"))
    assert (loaded.noise_k, loaded.confirm_runs, loaded.workers) == (0.0, 5, 4)
    bare.makeini("[pytest]\nautoresearch_confirm_runs = 0\n")
    with pytest.raises(pytest.UsageError, match="number of confirmation runs from ini autoresearch_confirm_runs must be >= 1"):
        load_settings(bare.parseconfigure())


CHANGED_RUN = """
import sys
from pytest_autoresearch.core import defaults
for key, value in {changed!r}.items():
    assert hasattr(defaults, key), key
    setattr(defaults, key, value)
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""

REPORTING_CONFTEST = """
import dataclasses, inspect, json

def pytest_configure(config):
    from pytest_autoresearch.agents import llm
    from pytest_autoresearch.options import OPTIONS
    from pytest_autoresearch.settings import Settings, load_settings

    loaded = load_settings(config)
    report = {
        "loaded": {f.name: getattr(loaded, f.name) for f in dataclasses.fields(Settings) if f.name != "program_path"},
        "declared": {f.name: f.default for f in dataclasses.fields(Settings) if f.default is not dataclasses.MISSING},
        "help": {option.name: option.help for option in OPTIONS},
        "llm_timeout": inspect.signature(llm.LitellmAgent).parameters["timeout"].default,
        "llm_prompt_tokens": llm.DEFAULT_PROMPT_TOKENS,
        "program": str(loaded.program_path),
    }
    (config.rootpath / "report.json").write_text(json.dumps(report, default=str))
"""


def test_a_changed_default_changes_the_settings_the_help_and_the_agents(bare: pytest.Pytester) -> None:
    assert all(getattr(defaults, key) != value for key, value in CHANGED.items())
    bare.makeconftest(REPORTING_CONFTEST)
    bare.path.joinpath("policy.md").write_text("the policy\n")
    code = CHANGED_RUN.format(changed=CHANGED)

    result = bare.run(sys.executable, "-c", code, "--co", "-q")
    assert result.ret in (0, 5), result.stdout.str() + result.stderr.str()  # 5: no tests
    report = json.loads(bare.path.joinpath("report.json").read_text())
    for name, field in FIELDS.items():
        if name in STATED:
            constant = STATED[name][0]
            if field in report["declared"]:  # agent_spec has no default: load_settings always gives it
                assert report["declared"][field] == CHANGED[constant], f"Settings.{field} does not default to defaults.{constant}"
            assert report["loaded"][field] == CHANGED[constant], f"load_settings' {field} does not fall back to defaults.{constant}"
    assert report["loaded"]["confirm_runs"] == 7 and report["declared"]["confirm_runs"] == 7
    assert report["llm_timeout"] == CHANGED["AGENT_TIMEOUT"]
    assert report["llm_prompt_tokens"] == CHANGED["PROMPT_TOKENS"]
    assert report["program"] == str(bare.path / "policy.md")
    for name, constants in STATED.items():
        now, before = report["help"][name], OPTION[name].help
        for constant in constants:
            assert stated(CHANGED[constant]) in now, f"the help of {name} does not state defaults.{constant}"
        assert now != before, name
    unchanged = {name for name in OPTION if report["help"][name] == OPTION[name].help}
    for name in unchanged:  # a help that still states a number as a default has it as a literal
        assert not re.search(r"\bdefault:? \d|\bat least \d|\d+x\b|runs \d+ times", OPTION[name].help), name

    result = bare.run(sys.executable, "-c", code, "--help")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert "(default 7)" in help_of(out, "autoresearch_confirm_runs")
    assert "(default 3.5)" in help_of(out, "autoresearch_noise_k")
    assert "default 123" in help_of(out, "autoresearch_agent_timeout")
    assert "4x the baseline's time, at least 91" in " ".join(out.split())


def _is_named_default(node: ast.expr) -> bool:
    """``defaults.NAME`` (a constant of core/defaults.py), or the no-default values None, False, ()."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "defaults":
        return hasattr(defaults, node.attr)
    if isinstance(node, ast.Constant):
        return node.value is None or node.value is False
    if isinstance(node, ast.Tuple):
        return not node.elts
    if isinstance(node, ast.Call):  # dataclasses.field(default_factory=dict)
        return all(k.arg == "default_factory" and isinstance(k.value, ast.Name) for k in node.keywords) and not node.args
    return False


def test_no_literal_default_remains_in_settings() -> None:
    tree = ast.parse(Path(settings.__file__).read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    fields = [n for n in cls.body if isinstance(n, ast.AnnAssign)]
    with_defaults = [n for n in fields if n.value is not None]
    assert len(with_defaults) > 20
    for node in with_defaults:
        assert _is_named_default(node.value), f"Settings.{node.target.id} = {ast.unparse(node.value)}: use core/defaults.py"
    # and load_settings has no number literal as a fallback (``or 600.0``, ``_default(..., 2)``)
    for node in ast.walk(tree):
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            for value in node.values[1:]:
                assert not (isinstance(value, ast.Constant) and isinstance(value.value, (int, float, str)) and value.value), (
                    f"a literal fallback in settings.py: {ast.unparse(node)}"
                )


def test_the_llm_agent_defaults_come_from_core_defaults() -> None:
    from pytest_autoresearch.agents import llm

    assert llm.DEFAULT_PROMPT_TOKENS == defaults.PROMPT_TOKENS
    assert inspect.signature(llm.LitellmAgent).parameters["timeout"].default == defaults.AGENT_TIMEOUT
    source = Path(llm.__file__).read_text()
    assert "timeout: float = defaults.AGENT_TIMEOUT" in source
    assert re.search(r"^DEFAULT_PROMPT_TOKENS = defaults\.PROMPT_TOKENS$", source, re.MULTILINE)
