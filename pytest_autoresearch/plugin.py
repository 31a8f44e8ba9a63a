"""The pytest entry point: options, the fitness marker and fixture, and opt-in registration.

This module loads in every pytest run of every project that installs the plugin, so it
stays light: the driver (and GitPython, tabulate) is imported only under ``--autoresearch``,
the trial-side reporter only inside a trial subprocess.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .fitness import MARKER_HELP, FitnessPlugin
from .fitness import fitness as fitness  # the fixture: pytest finds it on this module
from .names import RUN_DIR_NAME, TRIAL_ENV

# Taken when this entry point is imported, before any conftest or test module runs, so that
# candidate code in a trial never sees where the result goes or the nonce that makes it valid.
_trial_channel: dict | None = None
if TRIAL_ENV in os.environ:
    from .trial_plugin import arm, receive

    _trial_channel = receive(os.environ.pop(TRIAL_ENV))
    arm()

ENABLE_HELP = (
    "run the research loop: a baseline, then trials in which an agent changes the mutable "
    "files; a change is kept (committed to branch autoresearch/<tag>) only if the primary "
    "fitness score improves and every test passes"
)
AGENT_HELP = (
    "the agent that proposes changes: 'mutate[:SEED]' (offline, perturbs numeric constants; "
    "the default), 'litellm:MODEL' (any model litellm knows, e.g. openai/gpt-5-mini, "
    "ollama/qwen2.5-coder), 'cmd:COMMAND' (an external coding agent run in the worktree) or "
    "'replay:PATH' (JSON Lines of proposals)"
)
TRIALS_HELP = "stop after this many trials (the baseline not counted); default: run until interrupted"
TIMEOUT_HELP = (
    "hard wall-clock limit in seconds for one trial; the whole process group is killed when it "
    "passes (default: 3x the baseline's time, at least 60)"
)
TAG_HELP = "name of the run: branch autoresearch/<TAG>, folder .autoresearch/<TAG>/ (default: the date, e.g. nov26)"
PROGRAM_HELP = "the agent's policy file (default: program.md at the rootdir when present, else the built-in policy)"
MUTABLE_HELP = "globs (relative to the rootdir) of the files the agent may change; required by --autoresearch"
MAX_COST_HELP = "end the run cleanly once the agent's model calls have cost this many US dollars"
API_BASE_HELP = "the endpoint of the model server for litellm agents (e.g. http://localhost:11434 for Ollama)"
MODEL_ARGS_HELP = "extra arguments for the model call, as key=value (e.g. temperature=0.7 max_tokens=4096)"
CONTEXT_HELP = "globs (relative to the rootdir) of read-only files shown to the agent, e.g. the evaluator"
AGENT_TIMEOUT_HELP = "seconds one proposal may take (a model request, or an external agent command); default 600"
MAX_PROMPT_TOKENS_HELP = "the prompt budget in tokens (default: the model's input limit from litellm, else 32000)"
CARRY_HELP = (
    "paths (relative to the rootdir) of untracked files or folders the trials need, e.g. a data folder git "
    "ignores: linked into the worktree and kept when a trial's leftovers are cleaned"
)
PASS_ENV_HELP = (
    "environment variables passed to trials although they look like secrets (*_API_KEY, *_TOKEN, ...), "
    "e.g. the key of the task model a prompt-optimisation evaluator calls"
)
MEMORY_HELP = "kill a trial whose processes together use more than this many MiB of resident memory"
SANDBOX_HELP = (
    "run each trial in a bubblewrap sandbox (bwrap must be installed): frozen files read-only, no network, "
    "only the worktree and a private /tmp writable, the home folder hidden"
)
ALLOW_DELETE_HELP = "let agents delete surface files (by default a proposal that deletes one is invalid)"
MAX_FILE_HELP = "the largest file a proposal may write, in KiB (default 1024)"
BASELINE_RUNS_HELP = (
    "how many times the baseline runs (default 2): identical scores mean a deterministic evaluator; "
    "differing scores mean noise, and then the baseline runs 5 times in all"
)
MIN_DELTA_HELP = "the smallest gain of the primary score worth keeping (default 0: any gain)"
NOISE_K_HELP = "with a noisy evaluator, a gain must exceed this many noise spreads (default 2)"
CONFIRM_HELP = "with a noisy evaluator, extra runs of a promising candidate before it is judged (default 2)"
REVIEW_HELP = (
    "globs of files a human reviews: a trial that would be kept but touches one is parked on "
    "autoresearch/<tag>/review/NNN instead of the branch"
)
TIME_HELP = "stop starting trials after this long (e.g. 45m, 8h, 1h30m, 3600)"
TARGET_HELP = "stop once the primary score reaches this value"
PATIENCE_HELP = "stop after this many trials in a row without a keep"
SAVE_HELP = "write fitness.json at the rootdir: each fitness test's score and goal (for --autoresearch-check)"
CHECK_HELP = "fail a fitness test whose score is worse than fitness.json's beyond autoresearch_tolerance"
TOLERANCE_HELP = "how much worse than fitness.json a score may be under --autoresearch-check: 0.01, or 2% (default 0)"
WORKERS_HELP = (
    "trials in flight at once, each in its own worktree (default 1; with autoresearch_devices, one per device)"
)
DEVICES_HELP = (
    "accelerators to share among the workers, e.g. 0,1,2,3: worker i gets CUDA_VISIBLE_DEVICES set to "
    "the i-th (round robin)"
)
BACKEND_HELP = (
    "where trials run: 'local' (subprocesses on this machine, the default) or 'ray[:ADDRESS]' (tasks on a "
    "Ray cluster; needs pytest-autoresearch[ray])"
)
REMOTE_HELP = (
    "the bare git repository distributed workers fetch candidates from and push trial refs to "
    "(default: .autoresearch/<tag>/remote.git, which suits a cluster sharing this file system)"
)
TRIM_HELP = (
    "leave plugins a trial does not need (anyio's, xdist's) out of its pytest start-up when that is "
    "safe (default true)"
)
REPORT_HELP = (
    "print the trial table and summary of a run (--autoresearch-tag) from its log, or list every run; runs nothing"
)
KEPT_HELP = "with --autoresearch-report: show only the baseline and the kept trials"
FINALIZE_HELP = (
    "turn the kept commits of a run (--autoresearch-tag) into branch autoresearch-review/<tag> and write "
    "its pull-request summary, .autoresearch/<tag>/SUMMARY.md; runs nothing"
)
TESTS_HELP = (
    "arguments selecting the tests each trial runs (default: what plain pytest runs here, i.e. "
    "the command line's paths or testpaths)"
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autoresearch", "autonomous research loop over fitness tests")
    group.addoption("--autoresearch", action="store_true", default=False, help=ENABLE_HELP)
    group.addoption("--autoresearch-agent", metavar="SPEC", default=None, help=AGENT_HELP)
    group.addoption("--autoresearch-trials", metavar="N", default=None, help=TRIALS_HELP)
    group.addoption("--autoresearch-timeout", metavar="SECONDS", default=None, help=TIMEOUT_HELP)
    group.addoption("--autoresearch-tag", metavar="TAG", default=None, help=TAG_HELP)
    group.addoption("--autoresearch-program", metavar="PATH", default=None, help=PROGRAM_HELP)
    group.addoption("--autoresearch-max-cost", metavar="USD", default=None, help=MAX_COST_HELP)
    group.addoption("--autoresearch-api-base", metavar="URL", default=None, help=API_BASE_HELP)
    group.addoption("--autoresearch-time", metavar="DURATION", default=None, help=TIME_HELP)
    group.addoption("--autoresearch-target", metavar="SCORE", default=None, help=TARGET_HELP)
    group.addoption("--autoresearch-patience", metavar="N", default=None, help=PATIENCE_HELP)
    group.addoption("--autoresearch-workers", metavar="K", default=None, help=WORKERS_HELP)
    group.addoption("--autoresearch-devices", metavar="LIST", default=None, help=DEVICES_HELP)
    group.addoption("--autoresearch-backend", metavar="BACKEND", default=None, help=BACKEND_HELP)
    group.addoption("--autoresearch-report", action="store_true", default=False, help=REPORT_HELP)
    group.addoption("--autoresearch-kept", action="store_true", default=False, help=KEPT_HELP)
    group.addoption("--autoresearch-finalize", action="store_true", default=False, help=FINALIZE_HELP)
    group.addoption("--autoresearch-save", action="store_true", default=False, help=SAVE_HELP)
    group.addoption("--autoresearch-check", action="store_true", default=False, help=CHECK_HELP)
    parser.addini("autoresearch_mutable", MUTABLE_HELP, type="args", default=[])
    parser.addini("autoresearch_agent", AGENT_HELP, default="")
    parser.addini("autoresearch_trials", TRIALS_HELP, default="")
    parser.addini("autoresearch_timeout", TIMEOUT_HELP, default="")
    parser.addini("autoresearch_program", PROGRAM_HELP, default="")
    parser.addini("autoresearch_tests", TESTS_HELP, type="args", default=[])
    parser.addini("autoresearch_max_cost", MAX_COST_HELP, default="")
    parser.addini("autoresearch_api_base", API_BASE_HELP, default="")
    parser.addini("autoresearch_model_args", MODEL_ARGS_HELP, type="args", default=[])
    parser.addini("autoresearch_context", CONTEXT_HELP, type="args", default=[])
    parser.addini("autoresearch_agent_timeout", AGENT_TIMEOUT_HELP, default="")
    parser.addini("autoresearch_max_prompt_tokens", MAX_PROMPT_TOKENS_HELP, default="")
    parser.addini("autoresearch_carry", CARRY_HELP, type="args", default=[])
    parser.addini("autoresearch_pass_env", PASS_ENV_HELP, type="args", default=[])
    parser.addini("autoresearch_memory_mb", MEMORY_HELP, default="")
    parser.addini("autoresearch_sandbox", SANDBOX_HELP, type="bool", default=False)
    parser.addini("autoresearch_allow_delete", ALLOW_DELETE_HELP, type="bool", default=False)
    parser.addini("autoresearch_max_file_kb", MAX_FILE_HELP, default="")
    parser.addini("autoresearch_baseline_runs", BASELINE_RUNS_HELP, default="")
    parser.addini("autoresearch_min_delta", MIN_DELTA_HELP, default="")
    parser.addini("autoresearch_noise_k", NOISE_K_HELP, default="")
    parser.addini("autoresearch_confirm_runs", CONFIRM_HELP, default="")
    parser.addini("autoresearch_review", REVIEW_HELP, type="args", default=[])
    parser.addini("autoresearch_time", TIME_HELP, default="")
    parser.addini("autoresearch_target", TARGET_HELP, default="")
    parser.addini("autoresearch_patience", PATIENCE_HELP, default="")
    parser.addini("autoresearch_tolerance", TOLERANCE_HELP, default="")
    parser.addini("autoresearch_workers", WORKERS_HELP, default="")
    parser.addini("autoresearch_devices", DEVICES_HELP, type="args", default=[])
    parser.addini("autoresearch_backend", BACKEND_HELP, default="")
    parser.addini("autoresearch_remote", REMOTE_HELP, default="")
    parser.addini("autoresearch_trim_plugins", TRIM_HELP, type="bool", default=True)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--autoresearch-report`` and ``--autoresearch-finalize`` read a run and exit, like ``--fixtures``."""
    if config.getoption("autoresearch_report") or config.getoption("autoresearch_finalize"):
        from .ui import report_command as report

        return report.finalize_command(config) if config.getoption("autoresearch_finalize") else report.report(config)
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.pluginmanager.register(FitnessPlugin(config), "autoresearch-fitness")
    if config.getoption("autoresearch_save") or config.getoption("autoresearch_check"):
        from .fitness_json import CiGuard

        config.pluginmanager.register(CiGuard(config), "autoresearch-ciguard")
    global _trial_channel
    channel, _trial_channel = _trial_channel, None  # once: pytest runs inside the trial do not report
    if channel is not None:
        from .trial_plugin import TrialReporter

        config.pluginmanager.register(TrialReporter(config, channel), "autoresearch-trial")
    elif config.getoption("autoresearch") and not hasattr(config, "workerinput"):
        from .ui.driver import Driver

        config.pluginmanager.register(Driver(config), "autoresearch-driver")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Run folders hold worktrees full of copies of the user's tests.
    if collection_path.name == RUN_DIR_NAME and collection_path.parent == config.rootpath:
        return True
    return None
