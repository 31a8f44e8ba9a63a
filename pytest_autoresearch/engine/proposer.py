"""Asking the agent: what it is shown of the run each trial, and what its answer must be.

The agent reads the current best (slot 0's worktree), never a holdout test file; its failures
are the run's (a reason from its preflight check: stop before the baseline; ``AgentError``:
stop with its message; ``AgentExhausted``: end normally; any other exception: stop, naming
where it was raised). The prompt and answer behind each proposal
are kept beside the trial's log, and what the model calls cost is counted for the stop rules.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from pathlib import Path

from ..agents import AgentError, AgentExhausted, ProposalContext
from ..core.history import History
from ..core.noise import Noise, NoiseRule
from ..core.records import FitnessResult, MetricSpec, RunResult
from ..core.text import neutralise
from ..errors import FatalError, SetupError
from ..proposals.proposal import Limits, Proposal, check
from ..proposals.surface import Surface, normalize
from ..settings import Settings
from .setup import Run


def limits_of(settings: Settings) -> Limits:
    """The user's limits on a proposal beyond the surface (deletions, file size)."""
    return Limits(allow_delete=settings.allow_delete, max_file_bytes=int(settings.max_file_kb * 1024))


def preflight(run: Run, spec: str) -> None:
    """Ask the agent whether it can propose anything for the surface at all, before a baseline
    that can take minutes. Its reason (or its check's failure) is a SetupError, and the run's
    set-up is undone first, so nothing is left behind."""
    try:
        files = {p: text for p in run.surface_files if (text := run.home.worktree.read(run.prefix + p)) is not None}
        try:
            reason = run.agent.preflight(files)
        except Exception as exc:
            raise SetupError(f"agent {spec}: its preflight check failed: {type(exc).__name__}: {exc}") from None
        if reason:
            raise SetupError(f"agent {spec}: {reason}")
    except BaseException:
        run.abandon()
        raise


class Proposer:
    def __init__(self, run: Run, settings: Settings, history: History, workdir: Path) -> None:
        self.run = run
        self.settings = settings
        self.history = history
        self.workdir = workdir  # the rootdir's copy in slot 0's worktree
        self.metric: MetricSpec | None = None  # known once the baseline stands
        self.holdout_files: set[str] = set()  # rootdir-relative files defining holdout tests: never shown
        self.last_failure: str | None = None  # what went wrong last, for the next prompt (neutralised there)
        self.session_start = 0  # this session's first trial (a resumed run continues the numbering)
        self.note: Callable[[str], None] = print
        self.spent = 0.0  # US dollars the agent's model calls cost so far (a resumed run: from its log)
        self._unpriced_noted = False
        # what decides a keep, as the loop knows it when the agent is asked (the loop wires them)
        self.noise: Callable[[], Noise] = Noise
        self.rule = NoiseRule(min_delta=settings.min_delta, k=settings.noise_k, confirm_runs=settings.confirm_runs)
        self.timeout: Callable[[], float | None] = lambda: settings.timeout
        self.fitness: list[FitnessResult] = []  # the baseline's fitness tests: their files and bounds
        self.review = Surface(settings.review)
        self.limits = limits_of(settings)

    def saw_baseline(self, result: RunResult) -> None:
        """Learn the fitness tests (their files are shown to the agent) and bounds from a baseline run."""
        self.fitness = list(result.fitness)

    def fitness_files(self) -> list[str]:
        """The files defining the fitness tests (the primary's first), never a holdout's: shown
        read-only by default, so the model knows what it is scored on."""
        nodeids = [f.nodeid for f in self.fitness]
        if not nodeids and self.run.meta is not None:  # a resumed run: the tests its log has columns for
            nodeids = [self.run.meta.metric.nodeid, *(key[0] for key in self.run.meta.column_keys)]
        if self.metric is not None:
            nodeids.insert(0, self.metric.nodeid)
        files = (normalize(n.split("::")[0]) for n in nodeids)
        return [f for f in dict.fromkeys(files) if f and f not in self.holdout_files and not self.run.surface.matches(f)]

    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """Each gated metric's (min, max), named as results.tsv's columns name it."""
        primary = self.metric.nodeid if self.metric is not None else None
        return {
            (name if fit.nodeid == primary else f"{fit.name}.{name}"): bound
            for fit in self.fitness if normalize(fit.nodeid.split("::")[0]) not in self.holdout_files
            for name, bound in fit.bounds.items()
        }

    @property
    def agent_name(self) -> str:
        return f"agent {self.settings.agent_spec}"

    def read(self, path: str) -> str | None:
        """A file of the current best, by rootdir-relative path (what agents may read)."""
        clean = normalize(path)
        if clean is None or ".git" in clean.lower().split("/") or clean in self.holdout_files:
            return None
        return self.run.home.worktree.read(self.run.prefix + clean)

    def context(self, number: int) -> ProposalContext:
        assert self.metric is not None
        s, run = self.settings, self.run
        noise = self.noise()
        return ProposalContext(
            trial=number,
            tag=run.tag,
            rootdir=s.rootdir,
            workdir=self.workdir,
            surface=run.surface,
            files={p: text for p in run.surface_files if (text := self.read(p)) is not None},
            program=run.program,
            metric=self.metric,
            baseline=self.history.baseline,
            best=self.history.best,
            history=tuple(self.history),
            last_failure=None if self.last_failure is None else neutralise(self.last_failure),
            trials_left=None if s.trials is None else s.trials - (number - self.session_start),
            read=self.read,
            context_files={p: text for p in self.context_paths() if (text := self.read(p)) is not None},
            note=self.note,
            git_env=run.home.worktree.git_env(),
            noise_spread=noise.spread if noise.observed else None,
            keep_gain=self.rule.threshold(noise),
            confirm_runs=self.rule.confirm_runs if noise.observed and not noise.deterministic else 0,
            timeout=self.timeout(),
            bounds=self.bounds(),
            reviewed=self.review.matches,
            refusal=lambda proposal: check(proposal, run.surface, self.read, self.limits)[1],
        )

    def context_paths(self) -> list[str]:
        """The read-only files shown: the fitness tests' own files first, then autoresearch_context's."""
        return list(dict.fromkeys([*self.fitness_files(), *self.run.context_paths]))

    def start(self) -> None:
        self.session_start = self.history.next_trial
        try:
            self.run.agent.start(self.context(self.session_start))
        except AgentError as exc:
            raise FatalError(f"{self.agent_name}: {exc}") from None

    def propose(self, number: int) -> Proposal:
        """Ask the agent; AgentExhausted ends the loop, AgentError (or a bug) becomes FatalError."""
        agent, home = self.run.agent, self.run.home
        if agent.edits_workdir and self.holdout_files:
            home.worktree.hide([self.run.prefix + p for p in sorted(self.holdout_files)])
        try:
            proposal = agent.propose(self.context(number))
        except AgentError as exc:
            raise FatalError(f"{self.agent_name}: {exc}") from None
        except (AgentExhausted, KeyboardInterrupt):
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise FatalError(f"{self.agent_name} failed: {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})") from None
        finally:
            if agent.edits_workdir:
                home.worktree.reset(self.history.best.commit, keep=self.run.carry)  # its edits are in the proposal now
        if not isinstance(proposal, Proposal):
            raise FatalError(f"{self.agent_name} returned {type(proposal).__name__}, not a Proposal")
        return proposal

    def received(self, number: int, proposal: Proposal) -> None:
        """Keep the prompt, the answer and a tool-using conversation beside the trial's log (for
        the audit); count the cost."""
        trials = self.run.folder.trials
        for kind, text in (("prompt", proposal.prompt), ("answer", proposal.answer)):
            if text is not None:
                (trials / f"{number:03d}.{kind}.md").write_text(text, encoding="utf-8")
        conversation = trials / f"{number:03d}.conversation.json"
        if proposal.transcript is not None:
            text = json.dumps(proposal.transcript, indent=1, ensure_ascii=False, default=str)
            conversation.write_text(text + "\n", encoding="utf-8")
        else:
            conversation.unlink(missing_ok=True)  # an interrupted earlier attempt at this trial number left it
        if proposal.usage is None:
            return
        if proposal.usage.cost is not None:
            self.spent += proposal.usage.cost
        elif self.settings.max_cost is not None and not self._unpriced_noted:
            self._unpriced_noted = True
            self.note("this model has no price in litellm's list: --autoresearch-max-cost cannot count its cost (tokens are logged)")
