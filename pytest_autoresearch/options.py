"""Every setting of the plugin, once: its command-line flag, its ini key, its default and its help.

``plugin.pytest_addoption`` registers what this table lists and ``settings.load_settings`` reads
it; the help texts that state a default format it from :mod:`.core.defaults`. The plugin imports
this module in every pytest run, so it imports nothing but that leaf.
"""

from __future__ import annotations

from typing import NamedTuple

from .core import defaults as d


class Option(NamedTuple):
    """One setting: ``--autoresearch-x`` (a flag) and/or ``autoresearch_x`` (an ini key)."""

    #: the ini key and the flag's dest (``autoresearch_noise_k``); the flag is its dashed form
    name: str
    help: str
    #: the flag's metavar; "" for a switch (store_true); None: no command-line flag
    cli: str | None = None
    #: the ini key's type: "string", "args", "linelist" or "bool"; None: no ini key
    ini: str | None = None
    #: the value when neither the command line nor the ini file sets it
    default: object = None

    @property
    def flag(self) -> str | None:
        return None if self.cli is None else "--" + self.name.replace("_", "-")

    @property
    def ini_default(self) -> object:
        """What ``config.getini`` answers when the ini file does not set the key."""
        return {"args": [], "linelist": [], "bool": self.default}.get(self.ini or "", "")


def stated(value: object) -> str:
    """A default as help texts state it: ``600``, ``2``, ``true``."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


# In the order pytest lists them: the flags in this order, then the ini keys in this order.
OPTIONS: tuple[Option, ...] = (
    Option(
        "autoresearch",
        "run the research loop: a baseline, then trials in which an agent changes the mutable "
        "files; a change is kept (committed to branch autoresearch/<tag>) only if the primary "
        "fitness score improves and every test passes",
        cli="",
        default=False,
    ),
    Option(
        "autoresearch_mutable",
        "globs (relative to the rootdir) of the files the agent may change; required by --autoresearch",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_agent",
        "the agent that proposes changes: 'mutate[:SEED]' (offline, perturbs numeric constants), "
        "'optuna[:tpe|cmaes|random][:SEED]' (offline, an Optuna study over the same constants; the optuna extra), "
        "'litellm:MODEL' (any model litellm knows, e.g. openai/gpt-5-mini, ollama/qwen2.5-coder), "
        "'cmd:COMMAND' (an external coding agent run in the worktree), 'replay:PATH' (JSON Lines "
        "of proposals) or 'hybrid:SPEC' (the agent SPEC every Nth trial, a tuner between); "
        f"default: {d.AGENT}",
        cli="SPEC",
        ini="string",
        default=d.AGENT,
    ),
    Option(
        "autoresearch_choices",
        "declared choices for settings of the surface, one per line: path.py:NAME = \"a\", \"b\" (Python "
        "literals); the offline agents (mutate, optuna) move such a setting only among them, and a string "
        "constant becomes a setting. The same as a comment on the constant's line: # autoresearch-choices: "
        "\"a\", \"b\" (or # autoresearch-range: LOW, HIGH for a number)",
        ini="linelist",
        default=(),
    ),
    Option(
        "autoresearch_hybrid_every",
        f"with --autoresearch-agent=hybrid:SPEC, the agent SPEC proposes trial 1 and every Nth trial after it "
        f"(default {stated(d.HYBRID_EVERY)}); the tuner proposes the others",
        ini="string",
        default=d.HYBRID_EVERY,
    ),
    Option(
        "autoresearch_hybrid_tuner",
        f"with --autoresearch-agent=hybrid:SPEC, the agent that tunes the constants between SPEC's proposals "
        f"(default: {d.HYBRID_TUNER}; any optuna or mutate spec)",
        ini="string",
        default=d.HYBRID_TUNER,
    ),
    Option(
        "autoresearch_trials",
        "stop after this many trials (the baseline not counted); default: run until interrupted",
        cli="N",
        ini="string",
    ),
    Option(
        "autoresearch_timeout",
        "hard wall-clock limit in seconds for one trial; the whole process group is killed when it "
        f"passes (default: {stated(d.TIMEOUT_FACTOR)}x the baseline's time, at least {stated(d.MIN_TIMEOUT)})",
        cli="SECONDS",
        ini="string",
    ),
    Option(
        "autoresearch_tag",
        "name of the run: branch autoresearch/<TAG>, folder .autoresearch/<TAG>/ (default: the date, e.g. nov26)",
        cli="TAG",
    ),
    Option(
        "autoresearch_program",
        f"the agent's policy file (default: {d.POLICY_FILE} at the rootdir when present, else the built-in policy)",
        cli="PATH",
        ini="string",
    ),
    Option(
        "autoresearch_tests",
        "arguments selecting the tests each trial runs (default: what plain pytest runs here, i.e. "
        "the command line's paths or testpaths)",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_max_cost",
        "end the run cleanly once the agent's model calls have cost this many US dollars",
        cli="USD",
        ini="string",
    ),
    Option(
        "autoresearch_api_base",
        "the endpoint of the model server for litellm agents (e.g. http://localhost:11434 for Ollama)",
        cli="URL",
        ini="string",
    ),
    Option(
        "autoresearch_model_args",
        "extra arguments for the model call, as key=value (e.g. temperature=0.7 max_tokens=4096)",
        ini="args",
    ),
    Option(
        "autoresearch_context",
        "globs (relative to the rootdir) of read-only files shown to the agent, e.g. the evaluator",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_agent_timeout",
        "seconds one proposal may take (a model request, or an external agent command); "
        f"default {stated(d.AGENT_TIMEOUT)}",
        ini="string",
        default=d.AGENT_TIMEOUT,
    ),
    Option(
        "autoresearch_max_prompt_tokens",
        "the prompt budget in tokens (default: the model's input limit from litellm, else "
        f"{stated(d.PROMPT_TOKENS)})",
        ini="string",
    ),
    Option(
        "autoresearch_agent_tools",
        "whether the litellm agent's model may call tools (read a file's lines, search, list the files) "
        "before it answers: 'auto' (when litellm says the model supports function calling), 'on' (e.g. a "
        f"llama.cpp server with a function-calling chat format) or 'off' (one prompt, one answer); default {d.AGENT_TOOLS}",
        ini="string",
        default=d.AGENT_TOOLS,
    ),
    Option(
        "autoresearch_agent_turns",
        "model requests in one trial's tool-using conversation, the answer's included; the last one asks "
        f"for the answer without tools (default {stated(d.AGENT_TURNS)})",
        ini="string",
        default=d.AGENT_TURNS,
    ),
    Option(
        "autoresearch_agent_corrections",
        "times the litellm agent sends an answer the loop would refuse (it does not parse, or breaks the surface's "
        "rules) back to the model with the reason, within the same trial; 0: never "
        f"(default {stated(d.AGENT_CORRECTIONS)})",
        ini="string",
        default=d.AGENT_CORRECTIONS,
    ),
    Option(
        "autoresearch_agent_tokens",
        "prompt and completion tokens one trial's tool-using conversation may use in all; once the next "
        f"request would pass them, the model is asked for its answer (default {stated(d.AGENT_TOKENS_FACTOR)}x "
        "the prompt budget)",
        ini="string",
    ),
    Option(
        "autoresearch_agent_seconds",
        f"seconds one trial's tool-using conversation may take in all (default {stated(d.AGENT_SECONDS)}, "
        "never less than autoresearch_agent_timeout)",
        ini="string",
    ),
    Option(
        "autoresearch_carry",
        "paths, folders or globs (relative to the rootdir) of untracked files the trials need, e.g. a data folder "
        "git ignores, a generated _version.py, **/*.mo: linked into each worktree and kept when a trial's leftovers "
        "are cleaned (in a folder that also holds tracked files, only its untracked files)",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_setup",
        "a shell command run once in each new worktree, from the rootdir there, before anything is scored: "
        "builds what is git-ignored but needed (python setup.py build_ext --inplace, make, a version file); "
        "never an install",
        ini="string",
    ),
    Option(
        "autoresearch_pass_env",
        "environment variables passed to trials although they look like secrets (*_API_KEY, *_TOKEN, ...), "
        "e.g. the key of the task model a prompt-optimisation evaluator calls",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_memory_mb",
        "kill a trial whose processes together use more than this many MiB of resident memory",
        ini="string",
    ),
    Option(
        "autoresearch_sandbox",
        "run each trial in a bubblewrap sandbox (bwrap must be installed): frozen files read-only, no network, "
        "only the worktree and a private /tmp writable, the home folder hidden",
        ini="bool",
        default=False,
    ),
    Option(
        "autoresearch_allow_delete",
        "let agents delete surface files (by default a proposal that deletes one is invalid)",
        ini="bool",
        default=False,
    ),
    Option(
        "autoresearch_max_file_kb",
        f"the largest file a proposal may write, in KiB (default {stated(d.MAX_FILE_KB)})",
        ini="string",
        default=d.MAX_FILE_KB,
    ),
    Option(
        "autoresearch_baseline_runs",
        f"how many times the baseline runs (default {stated(d.BASELINE_RUNS)}): identical scores mean a "
        "deterministic evaluator; differing scores mean noise, and then the baseline runs "
        f"{stated(d.NOISY_BASELINE_RUNS)} times in all",
        ini="string",
        default=d.BASELINE_RUNS,
    ),
    Option(
        "autoresearch_min_delta",
        f"the smallest gain of the primary score worth keeping, 0 keeping any gain (default {stated(d.MIN_DELTA)})",
        ini="string",
        default=d.MIN_DELTA,
    ),
    Option(
        "autoresearch_noise_k",
        f"with a noisy evaluator, a gain must exceed this many noise spreads (default {stated(d.NOISE_K)})",
        ini="string",
        default=d.NOISE_K,
    ),
    Option(
        "autoresearch_confirm_runs",
        "with a noisy evaluator, extra runs of a promising candidate before it is judged "
        f"(default {stated(d.CONFIRM_RUNS)})",
        ini="string",
        default=d.CONFIRM_RUNS,
    ),
    Option(
        "autoresearch_review",
        "globs of files a human reviews: a trial that would be kept but touches one is parked on "
        "autoresearch/<tag>/review/NNN instead of the branch",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_time",
        "stop starting trials after this long (e.g. 45m, 8h, 1h30m, 3600)",
        cli="DURATION",
        ini="string",
    ),
    Option("autoresearch_target", "stop once the primary score reaches this value", cli="SCORE", ini="string"),
    Option("autoresearch_patience", "stop after this many trials in a row without a keep", cli="N", ini="string"),
    Option(
        "autoresearch_tolerance",
        "how much worse than fitness.json a score may be under --autoresearch-check: 0.01, or 2% "
        f"(default {stated(d.TOLERANCE)})",
        ini="string",
        default=d.TOLERANCE,
    ),
    Option(
        "autoresearch_workers",
        f"trials in flight at once, each in its own worktree (default {stated(d.WORKERS)}; "
        "with autoresearch_devices, one per device)",
        cli="K",
        ini="string",
        default=d.WORKERS,
    ),
    Option(
        "autoresearch_devices",
        "accelerators to share among the workers, e.g. 0,1,2,3: worker i gets CUDA_VISIBLE_DEVICES set to "
        "the i-th (round robin)",
        cli="LIST",
        ini="args",
        default=(),
    ),
    Option(
        "autoresearch_backend",
        "where trials run: 'local' (subprocesses on this machine) or 'ray[:ADDRESS]' (tasks on a "
        f"Ray cluster; needs the plugin's ray extra); default: {d.BACKEND}",
        cli="BACKEND",
        ini="string",
        default=d.BACKEND,
    ),
    Option(
        "autoresearch_remote",
        "the bare git repository distributed workers fetch candidates from and push trial refs to "
        "(default: .autoresearch/<tag>/remote.git, which suits a cluster sharing this file system)",
        ini="string",
    ),
    Option(
        "autoresearch_trim_plugins",
        "leave plugins a trial does not need (anyio's, xdist's) out of its pytest start-up when that is "
        f"safe (default {stated(d.TRIM_PLUGINS)})",
        ini="bool",
        default=d.TRIM_PLUGINS,
    ),
    Option(
        "autoresearch_report",
        "print the trial table and summary of a run (--autoresearch-tag) from its log, or list every run; runs nothing",
        cli="",
        default=False,
    ),
    Option(
        "autoresearch_kept",
        "with --autoresearch-report: show only the baseline and the kept trials",
        cli="",
        default=False,
    ),
    Option(
        "autoresearch_finalize",
        "turn the kept commits of a run (--autoresearch-tag) into branch autoresearch-review/<tag> and write "
        "its pull-request summary, .autoresearch/<tag>/SUMMARY.md; runs nothing",
        cli="",
        default=False,
    ),
    Option(
        "autoresearch_save",
        "write fitness.json at the rootdir: each fitness test's score and goal (for --autoresearch-check)",
        cli="",
        default=False,
    ),
    Option(
        "autoresearch_check",
        "fail a fitness test whose score is worse than fitness.json's beyond autoresearch_tolerance",
        cli="",
        default=False,
    ),
)

#: the table by name
OPTION: dict[str, Option] = {option.name: option for option in OPTIONS}
