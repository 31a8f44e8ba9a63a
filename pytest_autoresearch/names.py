"""Names the loop gives things, in one place: the trial's environment variable, the run folder,
and every branch and ref a run writes. A leaf: it imports nothing of the package.
"""

from __future__ import annotations

#: Environment variable through which the driver hands a trial subprocess its channel.
TRIAL_ENV = "PYTEST_AUTORESEARCH_TRIAL"

#: The folder under the rootdir that holds every run (``.autoresearch/<tag>/``).
RUN_DIR_NAME = ".autoresearch"

#: The trailer that marks a commit as made by ``--autoresearch-finalize`` (its value is the tag).
FINALIZE_TRAILER = "Autoresearch-Finalize"


def branch(tag: str) -> str:
    """The run's branch, which only ever moves to a kept commit."""
    return f"autoresearch/{tag}"


def branch_ref(tag: str) -> str:
    return f"refs/heads/{branch(tag)}"


def trial_ref(tag: str, number: int) -> str:
    """Where every trial's commit stays reachable, kept or not."""
    return f"refs/autoresearch/{tag}/trials/{number:03d}"


def review_ref(tag: str, number: int) -> str:
    """A would-be keep parked for a person's review (``autoresearch_review``)."""
    return f"refs/autoresearch/{tag}/review/{number:03d}"


def review_name(tag: str, number: int) -> str:
    """:func:`review_ref` as a user types it (``git show autoresearch/<tag>/review/NNN``)."""
    return f"autoresearch/{tag}/review/{number:03d}"


def candidate_ref(tag: str, number: int) -> str:
    """A candidate pushed to the shared remote for a distributed worker."""
    return f"refs/autoresearch/{tag}/candidates/{number:03d}"


def evaluated_ref(tag: str, number: int, suffix: str = "") -> str:
    """What a distributed worker pushes back once it ran a candidate (``suffix``: ``.runK``)."""
    return f"refs/autoresearch/{tag}/evaluated/{number:03d}{suffix}"


def finalized_branch(tag: str) -> str:
    """The review branch ``--autoresearch-finalize`` builds: it cannot clash with the run's refs."""
    return f"autoresearch-review/{tag}"


def finalized_ref(tag: str) -> str:
    return f"refs/heads/{finalized_branch(tag)}"


def trial_ref_pattern(tag: str) -> str:
    """:func:`trial_ref` with ``NNN`` for the number, as help text shows it."""
    return trial_ref(tag, 0).rpartition("/")[0] + "/NNN"
