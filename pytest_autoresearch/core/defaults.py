"""Every default of the loop, defined once: the settings, their help texts and the rules read them here.

A leaf with no imports. The noise defaults were chosen by ``bench/noise.py`` (see the README's
"Noise" section for the figures).
"""

from __future__ import annotations

#: the agent when none is named
AGENT = "mutate"
#: with hybrid:SPEC, the agent SPEC proposes trial 1 and every this many trials after it
HYBRID_EVERY = 5
#: with hybrid:SPEC, the agent that tunes the constants between SPEC's proposals
HYBRID_TUNER = "optuna"
#: baseline runs: identical scores mean a deterministic evaluator
BASELINE_RUNS = 2
#: baseline runs in all once the first ones differ (the noise needs a better estimate)
NOISY_BASELINE_RUNS = 5
#: extra runs of a promising candidate under noise, before it is judged
CONFIRM_RUNS = 2
#: under noise, a gain must exceed this many noise spreads
NOISE_K = 2.0
#: the smallest gain worth keeping (0: any gain)
MIN_DELTA = 0.0
#: seconds one proposal (a model request, an external agent command) may take
AGENT_TIMEOUT = 600.0
#: the largest file a proposal may write, in KiB
MAX_FILE_KB = 1024.0
#: the prompt budget in tokens when litellm does not know the model's input limit
PROMPT_TOKENS = 32000
#: whether the litellm agent lets the model call tools: "auto" (when litellm says it can), "on", "off"
AGENT_TOOLS = "auto"
#: model requests in one trial's tool-using conversation, the answer's included
AGENT_TURNS = 8
#: without autoresearch_agent_tokens, a conversation may use this many times the prompt budget
#: (prompt and completion tokens of all its requests)
AGENT_TOKENS_FACTOR = 4
#: times a trial's answer that the loop would refuse goes back to the model with the reason
AGENT_CORRECTIONS = 1
#: seconds one trial's conversation may take in all (never less than autoresearch_agent_timeout)
AGENT_SECONDS = 600.0
#: trials in flight at once
WORKERS = 1
#: where trials run
BACKEND = "local"
#: leave plugins a trial does not need out of its start-up
TRIM_PLUGINS = True
#: without --autoresearch-timeout, a trial may take this many times the baseline's time ...
TIMEOUT_FACTOR = 3
#: ... but never less than this many seconds
MIN_TIMEOUT = 60.0
#: how often a candidate that beat its parent is re-applied on a best that moved meanwhile
#: (each time means another trial was kept, so this only guards against a pathological run)
MAX_REAPPLY = 50
#: the policy file read at the rootdir when no autoresearch_program is given (else the built-in policy)
POLICY_FILE = "program.md"
#: how much worse than fitness.json a score may be under --autoresearch-check
TOLERANCE = 0
#: seconds the autoresearch_setup command may take in one new worktree
SETUP_TIMEOUT = 1800.0
