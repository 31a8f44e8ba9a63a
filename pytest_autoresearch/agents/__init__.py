"""The agents: the loop's mutation operators, and the seam a plugin implements to add one.

This is the package's face: ``from pytest_autoresearch.agents import Agent`` is how users and
plugins name the seam. The names live in :mod:`~pytest_autoresearch.agents.base`; the built-in
agents are ``mutate`` (offline), ``litellm`` (a model), ``cmd`` (an external coding agent) and
``replay`` (a file of proposals), made by :mod:`~pytest_autoresearch.agents.builtin`.
"""

from __future__ import annotations

from ..proposals.proposal import Proposal
from .base import Agent, AgentError, AgentExhausted, ProposalContext

__all__ = ["Agent", "AgentError", "AgentExhausted", "Proposal", "ProposalContext"]
