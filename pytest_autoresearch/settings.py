"""One validated view of the loop's configuration: command line over ini over defaults.

Every problem is a ``pytest.UsageError`` that names the setting and where it came from, so
a misconfigured run stops before it touches anything.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from pathlib import Path

import pytest

_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


@dataclasses.dataclass(frozen=True)
class Settings:
    rootdir: Path
    invocation_dir: Path
    tag: str
    tag_given: bool
    agent_spec: str
    trials: int | None
    timeout: float | None
    program_path: Path | None
    mutable: tuple[str, ...]
    test_args: tuple[str, ...]
    test_args_dir: Path  # the directory test_args are relative to
    forward_args: tuple[str, ...]
    inifile: Path | None  # given with -c: trials use their worktree's copy of it
    rootdir_given: bool  # --rootdir was given: trials get their worktree's copy of the rootdir


def default_tag(today: datetime.date | None = None) -> str:
    """The date as karpathy's runs name themselves: ``nov26``."""
    today = today or datetime.date.today()
    return f"{_MONTHS[today.month - 1]}{today.day}"


def _value(config: pytest.Config, option: str, ini: str | None) -> tuple[str | None, str]:
    """Return (raw value, where it came from), command line first."""
    raw = config.getoption(option)
    if raw is not None:
        return str(raw), "--" + option.replace("_", "-")
    if ini is not None:
        value = config.getini(ini)
        if value not in (None, ""):
            return str(value), f"ini {ini}"
    return None, ""


def _int(raw: str, where: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"autoresearch: invalid number of trials {raw!r} from {where}") from None
    if value < 0:
        raise pytest.UsageError(f"autoresearch: number of trials from {where} must be >= 0, got {value}")
    return value


def _seconds(raw: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"autoresearch: invalid timeout {raw!r} from {where}") from None
    if not math.isfinite(value) or value <= 0:
        raise pytest.UsageError(f"autoresearch: timeout from {where} must be a positive number of seconds, got {raw}")
    return value


def validate_tag(tag: str, where: str) -> str:
    if not _TAG_RE.match(tag) or ".." in tag or tag.endswith((".lock", ".")):
        raise pytest.UsageError(
            f"autoresearch: invalid tag {tag!r} from {where}: use letters, digits, '.', '_' and '-' "
            "(it names a git branch and a folder)"
        )
    return tag


def _forwarded_options(config: pytest.Config) -> tuple[str, ...]:
    """Options of this invocation that shape which tests run and how, for each trial."""
    option = config.option
    args: list[str] = []
    for plugin in getattr(option, "plugins", None) or ():
        args += ["-p", plugin]
    if getattr(option, "keyword", ""):
        args += ["-k", option.keyword]
    if getattr(option, "markexpr", ""):
        args += ["-m", option.markexpr]
    for override in getattr(option, "override_ini", None) or ():
        args += ["-o", override]
    if getattr(option, "timeout", None) is not None:
        args += [f"--timeout={option.timeout}"]
    if getattr(option, "timeout_method", None):
        args += [f"--timeout-method={option.timeout_method}"]
    return tuple(args)


def load_settings(config: pytest.Config) -> Settings:
    rootdir = Path(config.rootpath)
    invocation_dir = Path(config.invocation_params.dir)

    raw_tag = config.getoption("autoresearch_tag")
    tag = validate_tag(raw_tag, "--autoresearch-tag") if raw_tag else default_tag()

    agent, _ = _value(config, "autoresearch_agent", "autoresearch_agent")
    raw, where = _value(config, "autoresearch_trials", "autoresearch_trials")
    trials = _int(raw, where) if raw is not None else None
    raw, where = _value(config, "autoresearch_timeout", "autoresearch_timeout")
    timeout = _seconds(raw, where) if raw is not None else None

    program: Path | None
    if config.getoption("autoresearch_program"):
        program = invocation_dir / config.getoption("autoresearch_program")
        where = "--autoresearch-program"
    elif config.getini("autoresearch_program"):
        program = rootdir / config.getini("autoresearch_program")
        where = "ini autoresearch_program"
    else:
        program = rootdir / "program.md" if (rootdir / "program.md").is_file() else None
        where = ""
    if program is not None and not program.is_file():
        raise pytest.UsageError(f"autoresearch: the policy file {program} (from {where}) does not exist")

    test_args = tuple(config.getini("autoresearch_tests"))
    test_args_dir = rootdir
    if not test_args and config.args_source == pytest.Config.ArgsSource.ARGS:
        test_args = tuple(config.args)
        test_args_dir = invocation_dir
    elif not test_args and config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR:
        test_args_dir = invocation_dir  # no paths and no testpaths: pytest collects from where it runs

    return Settings(
        rootdir=rootdir,
        invocation_dir=invocation_dir,
        tag=tag,
        tag_given=bool(raw_tag),
        agent_spec=(agent or "mutate").strip(),
        trials=trials,
        timeout=timeout,
        program_path=program,
        mutable=tuple(config.getini("autoresearch_mutable")),
        test_args=test_args,
        test_args_dir=test_args_dir,
        forward_args=_forwarded_options(config),
        inifile=Path(config.inipath) if getattr(config.option, "inifilename", None) and config.inipath else None,
        rootdir_given=bool(getattr(config.option, "rootdir", None)),
    )
