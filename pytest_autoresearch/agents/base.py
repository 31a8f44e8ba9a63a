"""The agent seam: what an agent sees each trial and what it must return.

An agent is the loop's mutation operator. The engine builds a :class:`ProposalContext`
(the current best files, the log so far, the policy text, the last failure) and asks the
agent for one :class:`~pytest_autoresearch.proposals.proposal.Proposal` per trial. Agents
are made from a spec string by the ``pytest_autoresearch_make_agent`` hook (the built-in
implementation is :mod:`~pytest_autoresearch.agents.builtin`), so a plugin can add one.
Every agent module imports the seam from here, never from the package's face.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..core.records import MetricSpec, TrialRecord
from ..proposals.proposal import Proposal
from ..proposals.surface import Surface


class AgentError(Exception):
    """The agent cannot go on (bad configuration, bad credentials): the loop stops with this
    message and a non-zero exit code; the log keeps every finished trial."""


class AgentExhausted(Exception):
    """The agent has nothing more to propose (a replay file ran out): the loop ends normally."""


@dataclasses.dataclass(frozen=True)
class ProposalContext:
    """Everything an agent may know when it proposes trial number ``trial``."""

    trial: int
    tag: str
    rootdir: Path  # the user's rootdir: read it, never write it
    workdir: Path  # the rootdir's copy in slot 0's worktree, at the current best
    surface: Surface
    files: Mapping[str, str]  # surface files at the current best, rootdir-relative -> text
    program: str
    metric: MetricSpec
    baseline: TrialRecord
    best: TrialRecord
    history: Sequence[TrialRecord]
    last_failure: str | None
    trials_left: int | None
    read: Callable[[str], str | None]  # any file of the current best, by rootdir-relative path
    context_files: Mapping[str, str] = dataclasses.field(default_factory=dict)  # read-only files to show
    note: Callable[[str], None] = print  # a status line for the user (retries, waits)
    #: GIT_DIR, GIT_COMMON_DIR, GIT_WORK_TREE of ``workdir``'s worktree and the safe config: an
    #: agent's git never finds the repository through a ``.git`` link that could be rewritten
    git_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: what decides a keep, as the loop knows it now: the spread (standard deviation) of one run
    #: of the evaluator (0.0: deterministic, None: not measured), the gain the primary metric
    #: must exceed (None: unknown), the confirmation runs a promising candidate gets, the
    #: trial's wall-clock limit in seconds (None: none), and each gated metric's (min, max) by
    #: its results.tsv column name
    noise_spread: float | None = None
    keep_gain: float | None = None
    confirm_runs: int = 0
    timeout: float | None = None
    bounds: Mapping[str, tuple[float | None, float | None]] = dataclasses.field(default_factory=dict)
    #: whether a surface file is under ``autoresearch_review`` (a keep that touches it is parked
    #: for a person): an agent that changes many settings at once can leave such files alone
    reviewed: Callable[[str], bool] = lambda path: False
    #: why the loop would refuse a proposal before running it (None: it applies), by the checks
    #: the loop makes itself: an agent can send a refused answer back to its model (:mod:`.correction`)
    refusal: Callable[[Proposal], str | None] = lambda proposal: proposal.error


class Agent:
    """Base class of agents. Subclasses implement :meth:`propose`."""

    name = "agent"
    #: True for agents that edit files in ``context.workdir`` to prepare a proposal (an external
    #: coding tool, say): the engine (:mod:`pytest_autoresearch.engine.proposer`) hides holdout
    #: test files from the worktree before :meth:`propose` and restores it after, and only the
    #: returned proposal, checked against the surface, is applied.
    edits_workdir = False
    #: True for agents whose proposals carry token counts and cost (results.tsv gets columns for them).
    reports_usage = False

    def describe(self) -> str:
        """One line for the run header."""
        return self.name

    def preflight(self, files: Mapping[str, str]) -> str | None:
        """Called before the baseline, with the surface files' text (rootdir-relative path ->
        text) where the run starts: the reason this agent can propose nothing for them, or None.

        The baseline can take minutes; an agent that can tell from the files alone that it has
        nothing to offer says so here, and the run stops with that reason before anything runs.
        Keep it cheap: at most one quick request (the litellm agent asks its endpoint for its models). The reason should say what the agent looked
        for, in which files, and what the user can do instead.
        """
        return None

    def runs_out(self) -> str | None:
        """When this agent ends the run by itself, for the run header ("after the last of the 3
        proposals in p.jsonl"), or None for an agent that proposes until the run is stopped."""
        return None

    def start(self, context: ProposalContext) -> None:
        """Called once per session, after the baseline (a resumed run: with the log so far);
        raise :class:`AgentError` if the agent cannot work on this surface. What the files alone
        tell belongs in :meth:`preflight`, which answers before the baseline runs."""

    def propose(self, context: ProposalContext) -> Proposal:
        raise NotImplementedError

    def logged(self, record: TrialRecord) -> None:
        """Called after each trial's row is written (the baseline's too, before :meth:`start`),
        with the final record: an agent that learns from outcomes (a tuner's study) hears of
        each as it comes, the last trials of a run included, which no later :meth:`propose`
        would show it. Every proposal's context still carries the whole history."""

    def close(self) -> None:
        """Called once when the loop ends, however it ends."""


