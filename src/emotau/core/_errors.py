"""Exceptions that carry a user-facing, one-line message.

The CLI turns :class:`UserError` into ``emotau: error: <message>`` and exit status 2;
everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

#: exit status of ``emotau run``/``resume`` (and of a job's ``shard-task``) when episodes of
#: its grid are still missing because they ended in infrastructure errors (a resume retries
#: them); README's "Exit status" lists every status
EXIT_INCOMPLETE = 4
#: exit status when a file or folder cannot be written or read (a full disk, a read-only or
#: immutable file): the message names the path and the cause; finished episodes are kept
EXIT_FILE_ERROR = 5
#: exit status of ``emotau run``/``resume`` when the circuit breaker gave up: episodes in a row
#: ended in infrastructure errors and the endpoints did not answer its probes in
#: ``retry.breaker_wait`` seconds; the rest of the grid is left for a resume
EXIT_ENDPOINT_DOWN = 6


class EmotauError(Exception):
    """Base class of every error emotau raises on purpose."""


class UserError(EmotauError):
    """A mistake in the user's input (flags, config, files). Exit status 2, no traceback."""


class SpecChangedError(UserError):
    """Resuming a run directory whose frozen spec differs from the requested one.

    ``diffs``: the fields that differ, as ``diff_identity`` words them (None when unknown)."""

    def __init__(self, message: str, diffs: list[str] | None = None) -> None:
        super().__init__(message)
        self.diffs = diffs


class InfraError(EmotauError):
    """A failure of the infrastructure (endpoint down, timeout, empty completion).

    An episode that ends in one is recorded but never scored, and is retried on resume.
    """


class UserSimulatorError(EmotauError):
    """The user simulator produced output that could not be used (e.g. an unparseable reply)."""


class EmptyReplyError(EmotauError):
    """A model answered with nothing (no tool call, only whitespace) because it spent its whole
    token budget (``finish_reason`` ``"length"``): the same request would get the same answer,
    so it is the model's failure, not the server's, and is not retried. The agent's ends the
    episode as ``agent_empty_reply``, scored as a failure."""
