"""One validated view of the loop's configuration: command line over ini over defaults.

The settings, their flags and ini keys are the table in :mod:`.options`; their defaults are the
constants of :mod:`.core.defaults`.

Every problem is a ``pytest.UsageError`` that names the setting and where it came from, so
a misconfigured run stops before it touches anything.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from .core import defaults
from .core.choices import Choice, parse_setting
from .options import OPTION

T = TypeVar("T")
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
    config_file: Path | None  # the file pytest read its configuration from (config.inipath): hints name its table
    max_cost: float | None = None
    api_base: str | None = None
    model_args: dict[str, object] = dataclasses.field(default_factory=dict)
    context: tuple[str, ...] = ()
    agent_timeout: float = defaults.AGENT_TIMEOUT
    max_prompt_tokens: int | None = None
    agent_tools: str = defaults.AGENT_TOOLS  # "auto", "on" or "off"
    agent_turns: int = defaults.AGENT_TURNS
    agent_corrections: int = defaults.AGENT_CORRECTIONS
    agent_tokens: int | None = None  # None: AGENT_TOKENS_FACTOR x the prompt budget
    agent_seconds: float | None = None  # None: AGENT_SECONDS, at least agent_timeout
    carry: tuple[str, ...] = ()
    setup: str | None = None  # autoresearch_setup: a shell command run once in each new worktree
    pass_env: tuple[str, ...] = ()
    memory_mb: float | None = None
    sandbox: bool = False
    allow_delete: bool = False
    max_file_kb: float = defaults.MAX_FILE_KB
    baseline_runs: int = defaults.BASELINE_RUNS
    min_delta: float = defaults.MIN_DELTA
    noise_k: float = defaults.NOISE_K
    confirm_runs: int = defaults.CONFIRM_RUNS
    review: tuple[str, ...] = ()
    time_limit: float | None = None
    target: float | None = None
    patience: int | None = None
    workers: int = defaults.WORKERS
    devices: tuple[str, ...] = ()
    trim_plugins: bool = defaults.TRIM_PLUGINS
    backend: str = defaults.BACKEND  # "local", or "ray" / "ray:ADDRESS"
    remote: str | None = None  # the shared bare repository distributed workers use
    #: autoresearch_choices: (path, NAME) -> the alternatives declared for that setting
    choices: dict[tuple[str, str], tuple[Choice, ...]] = dataclasses.field(default_factory=dict)
    hybrid_every: int = defaults.HYBRID_EVERY
    hybrid_tuner: str = defaults.HYBRID_TUNER


SETTINGS_KEY = pytest.StashKey[Settings]()


def default_tag(today: datetime.date | None = None) -> str:
    """The date as karpathy's runs name themselves: ``nov26``."""
    today = today or datetime.date.today()
    return f"{_MONTHS[today.month - 1]}{today.day}"


def _value(config: pytest.Config, option: str | None, ini: str | None) -> tuple[str | None, str]:
    """Return (raw value, where it came from), command line first."""
    raw = config.getoption(option) if option is not None else None
    if raw is not None:
        return str(raw), "--" + option.replace("_", "-")
    if ini is not None:
        try:
            value = config.getini(ini)
        except pytest.UsageError as exc:  # pytest 9's [tool.pytest] checks TOML types; unions came in 9.2
            if "expects a string" not in str(exc):
                raise
            raise pytest.UsageError(f"{exc}; with this pytest, write it as a TOML string ({ini} = \"...\") or upgrade to pytest 9.2") from None
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


def _model_args(entries: list[str]) -> dict[str, object]:
    """``key=value`` entries; values are JSON where they parse (numbers, booleans, objects)."""
    args: dict[str, object] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(f"autoresearch: autoresearch_model_args entry {entry!r} is not key=value")
        try:
            args[key.strip()] = json.loads(value)
        except ValueError:
            args[key.strip()] = value
    return args


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def _duration(raw: str, where: str) -> float:
    """Seconds from ``3600``, ``45m``, ``8h``, ``1h30m``, ``90s``."""
    match = _DURATION.match(raw.strip().lower())
    if not raw.strip() or not match or not any(match.groups()):
        raise pytest.UsageError(f"autoresearch: invalid duration {raw!r} from {where}: use e.g. 3600, 45m, 8h or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise pytest.UsageError(f"autoresearch: duration from {where} must be positive, got {raw!r}")
    return total


def _number(raw: str, where: str, what: str, minimum: float | None = None) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"autoresearch: invalid {what} {raw!r} from {where}") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise pytest.UsageError(f"autoresearch: {what} from {where} must be a finite number{bound}, got {raw}")
    return value


def _count(raw: str, where: str, what: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"autoresearch: invalid {what} {raw!r} from {where}") from None
    if value < minimum:
        raise pytest.UsageError(f"autoresearch: {what} from {where} must be >= {minimum}, got {value}")
    return value


def _positive(raw: str, where: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"autoresearch: invalid {what} {raw!r} from {where}") from None
    if not math.isfinite(value) or value <= 0:
        raise pytest.UsageError(f"autoresearch: {what} from {where} must be a positive number, got {raw}")
    return value


def _seconds(raw: str, where: str) -> float:
    return _positive(raw, where, "timeout")


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


def _raw(config: pytest.Config, name: str) -> tuple[str | None, str]:
    """The table's setting ``name`` as given: its flag over its ini key; (None, "") if unset."""
    option = OPTION[name]
    return _value(config, name if option.cli is not None else None, name if option.ini is not None else None)


def _optional(config: pytest.Config, name: str, parse: Callable[[str, str], T]) -> T | None:
    """The table's setting ``name`` from the command line (if it has a flag) or the ini file, parsed; None if unset."""
    raw, where = _raw(config, name)
    return parse(raw, where) if raw is not None else None


def _setting(config: pytest.Config, name: str, parse: Callable[[str, str], T]) -> T:
    """As :func:`_optional`, but the table's default where the setting is unset."""
    return _default(_optional(config, name, parse), OPTION[name].default)


def load_settings(config: pytest.Config) -> Settings:
    rootdir = Path(config.rootpath)
    invocation_dir = Path(config.invocation_params.dir)

    raw_tag = config.getoption("autoresearch_tag")
    tag = validate_tag(raw_tag, "--autoresearch-tag") if raw_tag else default_tag()
    agent, _ = _raw(config, "autoresearch_agent")
    api_base, _ = _raw(config, "autoresearch_api_base")

    program: Path | None
    if config.getoption("autoresearch_program"):
        program = invocation_dir / config.getoption("autoresearch_program")
        where = "--autoresearch-program"
    elif config.getini("autoresearch_program"):
        program = rootdir / config.getini("autoresearch_program")
        where = "ini autoresearch_program"
    else:
        program = rootdir / defaults.POLICY_FILE if (rootdir / defaults.POLICY_FILE).is_file() else None
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

    max_prompt_tokens = _optional(config, "autoresearch_max_prompt_tokens", lambda r, w: _positive(r, w, "prompt budget"))
    return Settings(
        rootdir=rootdir,
        invocation_dir=invocation_dir,
        tag=tag,
        tag_given=bool(raw_tag),
        agent_spec=(agent or OPTION["autoresearch_agent"].default).strip(),
        trials=_optional(config, "autoresearch_trials", _int),
        timeout=_optional(config, "autoresearch_timeout", _seconds),
        program_path=program,
        mutable=tuple(config.getini("autoresearch_mutable")),
        test_args=test_args,
        test_args_dir=test_args_dir,
        forward_args=_forwarded_options(config),
        inifile=Path(config.inipath) if getattr(config.option, "inifilename", None) and config.inipath else None,
        rootdir_given=bool(getattr(config.option, "rootdir", None)),
        config_file=Path(config.inipath) if config.inipath else None,
        max_cost=_optional(config, "autoresearch_max_cost", lambda r, w: _positive(r, w, "maximum cost")),
        api_base=api_base or None,
        model_args=_model_args(list(config.getini("autoresearch_model_args"))),
        context=tuple(config.getini("autoresearch_context")),
        agent_timeout=_setting(config, "autoresearch_agent_timeout", _seconds),
        max_prompt_tokens=int(max_prompt_tokens) if max_prompt_tokens else None,
        **_conversation(config),
        carry=tuple(config.getini("autoresearch_carry")),
        setup=str(config.getini("autoresearch_setup")).strip() or None,
        pass_env=tuple(config.getini("autoresearch_pass_env")),
        memory_mb=_optional(config, "autoresearch_memory_mb", lambda r, w: _positive(r, w, "memory cap")),
        sandbox=bool(config.getini("autoresearch_sandbox")),
        allow_delete=bool(config.getini("autoresearch_allow_delete")),
        max_file_kb=_setting(config, "autoresearch_max_file_kb", lambda r, w: _positive(r, w, "file size limit")),
        baseline_runs=_setting(config, "autoresearch_baseline_runs", lambda r, w: _count(r, w, "number of baseline runs", 1)),
        min_delta=_setting(config, "autoresearch_min_delta", lambda r, w: _number(r, w, "minimum gain", 0.0)),
        noise_k=_setting(config, "autoresearch_noise_k", lambda r, w: _number(r, w, "noise factor", 0.0)),
        confirm_runs=_setting(
            config, "autoresearch_confirm_runs", lambda r, w: _count(r, w, "number of confirmation runs", 1)
        ),
        review=tuple(config.getini("autoresearch_review")),
        time_limit=_optional(config, "autoresearch_time", _duration),
        target=_optional(config, "autoresearch_target", lambda r, w: _number(r, w, "target score")),
        patience=_optional(config, "autoresearch_patience", lambda r, w: _count(r, w, "patience", 1)),
        **_throughput(config),
        **_search(config),
    )


def _tools_mode(raw: str, where: str) -> str:
    value = raw.strip().lower()
    if value not in ("auto", "on", "off"):
        raise pytest.UsageError(f"autoresearch: autoresearch_agent_tools from {where} must be auto, on or off, got {raw!r}")
    return value


def _conversation(config: pytest.Config) -> dict[str, object]:
    """The litellm agent's tool use and the caps on one trial's conversation."""
    tokens = _optional(config, "autoresearch_agent_tokens", lambda r, w: _count(r, w, "token cap", 1))
    return {
        "agent_tools": _setting(config, "autoresearch_agent_tools", _tools_mode),
        "agent_turns": _setting(config, "autoresearch_agent_turns", lambda r, w: _count(r, w, "number of turns", 1)),
        "agent_corrections": _setting(config, "autoresearch_agent_corrections", lambda r, w: _count(r, w, "number of corrections", 0)),
        "agent_tokens": tokens,
        "agent_seconds": _optional(config, "autoresearch_agent_seconds", lambda r, w: _positive(r, w, "conversation time")),
    }


def _throughput(config: pytest.Config) -> dict[str, object]:
    """Workers, devices and the backend that runs trials."""
    devices = tuple(d for entry in config.getini("autoresearch_devices") for d in entry.split(",") if d.strip())
    raw_devices = config.getoption("autoresearch_devices")
    if raw_devices:
        devices = tuple(d.strip() for d in raw_devices.split(",") if d.strip())
    workers = _optional(config, "autoresearch_workers", lambda r, w: _count(r, w, "number of workers", 1))
    backend, where = _raw(config, "autoresearch_backend")
    backend = (backend or OPTION["autoresearch_backend"].default).strip()
    if backend.partition(":")[0] not in ("local", "ray"):
        raise pytest.UsageError(f"autoresearch: unknown backend {backend!r} from {where}: use 'local' or 'ray[:ADDRESS]'")
    return {
        "workers": workers if workers is not None else len(devices) or OPTION["autoresearch_workers"].default,
        "devices": devices,
        "trim_plugins": bool(config.getini("autoresearch_trim_plugins")),
        "backend": backend,
        "remote": config.getini("autoresearch_remote") or None,
    }


def _search(config: pytest.Config) -> dict[str, object]:
    """Declared choices and the hybrid agent's schedule: what the offline operators search."""
    try:
        choices = parse_setting(config.getini("autoresearch_choices"))
    except ValueError as exc:
        raise pytest.UsageError(f"autoresearch: {exc}") from None
    tuner, where = _raw(config, "autoresearch_hybrid_tuner")
    tuner = (tuner or OPTION["autoresearch_hybrid_tuner"].default).strip()
    if tuner.partition(":")[0] not in ("optuna", "mutate"):
        raise pytest.UsageError(f"autoresearch: autoresearch_hybrid_tuner from {where} must be an optuna or mutate spec, got {tuner!r}")
    return {
        "choices": choices,
        "hybrid_every": _setting(config, "autoresearch_hybrid_every", lambda r, w: _count(r, w, "hybrid interval", 1)),
        "hybrid_tuner": tuner,
    }


def _default(value: T | None, default: T) -> T:
    return default if value is None else value
