"""``hybrid:SPEC``: a model (the agent SPEC) for structure, a tuner for the constants between.

Trial 1 and every Nth trial after it (``autoresearch_hybrid_every``, default 5: trials 1, 6,
11, ...) go to the agent SPEC, usually ``litellm:MODEL``; the trials between go to the tuner
(``autoresearch_hybrid_tuner``, default ``optuna``: TPE). The model is told so in its policy
(:data:`MODEL_NOTE`): spend proposals on structure, and expose new knobs as module constants.

The tuner follows the current best by itself: its studies are per program (:mod:`.studies`),
so after a model's keep that changes the code, its next trial starts a fresh study on the new
best's constants (a constant the model added among them), warm-started with the new best and
every logged evaluation of that program; a model's trial that only changed values joins the
current study as a trial of its own. Between model keeps the study goes on, whatever the model
proposed that was discarded. docs/search.md says why this design and not the other way round.

When the tuner has nothing to tune (no constant yet), its turns go to the model too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..core.records import TrialRecord
from ..proposals.proposal import Proposal
from .base import Agent, AgentError, ProposalContext

MODEL_NOTE = """

## Working with a tuner

Between your proposals a tuner (an automatic hyperparameter search) tunes the numeric and
boolean constants of the current best, and string constants with declared choices: a version of
the code with better constants than yours may be kept while your change is evaluated. Spend your
proposals on what a tuner cannot do: structural changes (new code, another method, a missing
mechanism), not on new values for existing constants. When your change has a knob worth tuning,
make it a module-level constant (`WARMUP = 100`) so the tuner can search it.
"""


class HybridAgent(Agent):
    name = "hybrid"

    def __init__(self, model: Agent, tuner: Agent, every: int, tuner_spec: str = "optuna") -> None:
        self.model = model
        self.tuner = tuner
        self.every = every
        self.tuner_spec = tuner_spec
        self.reports_usage = model.reports_usage
        self.edits_workdir = model.edits_workdir
        self.tuner_idle: str | None = None  # why the tuner has nothing to do, when it has not
        self.last: Agent | None = None  # who proposed last

    def describe(self) -> str:
        e = self.every
        when = "every trial" if e == 1 else f"trials 1, {1 + e}, {1 + 2 * e}, ..."
        return f"hybrid: {self.model.describe()} at {when}, {self.tuner.describe()} between"

    def preflight(self, files: Mapping[str, str]) -> str | None:
        tuner = self.tuner.preflight(files)
        if tuner is not None and tuner.startswith("declared choices"):
            return tuner
        return self.model.preflight(files)  # no constants yet is fine: the model can add some

    def runs_out(self) -> str | None:
        return self.model.runs_out()

    def start(self, context: ProposalContext) -> None:
        self.model.start(self._for_model(context))
        try:
            self.tuner.start(context)
        except AgentError as exc:
            self.tuner_idle = str(exc)
            context.note(f"hybrid: the tuner has nothing to tune yet; the model proposes every trial until it has ({exc})")

    def model_turn(self, trial: int) -> bool:
        """Whether trial ``trial`` is the model's: 1, 1 + N, 1 + 2N, ..."""
        return (trial - 1) % self.every == 0

    def propose(self, context: ProposalContext) -> Proposal:
        if not self.model_turn(context.trial) and self._tuner_ready(context):
            self.last = self.tuner
            return self.tuner.propose(context)
        self.last = self.model
        return self.model.propose(self._for_model(context))

    def _tuner_ready(self, context: ProposalContext) -> bool:
        if self.tuner_idle is None:
            return True
        if self.tuner.preflight(context.files) is not None:
            return False
        self.tuner_idle = None
        self.tuner.start(context)
        context.note("hybrid: the current best has constants now; the tuner takes its turns")
        return True

    def _for_model(self, context: ProposalContext) -> ProposalContext:
        return dataclasses.replace(context, program=context.program.rstrip("\n") + "\n" + MODEL_NOTE)

    def logged(self, record: TrialRecord) -> None:
        self.model.logged(record)
        self.tuner.logged(record)

    def close(self) -> None:
        try:
            self.model.close()
        finally:
            self.tuner.close()
