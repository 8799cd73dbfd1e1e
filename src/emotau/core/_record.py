"""The episode record: what one episode leaves in a run's shard file, typed, in one place.

:class:`EpisodeRecord` is the one definition of a record's fields, their order on disk and
their schema version. The engine builds one per episode; the runner writes
:meth:`EpisodeRecord.to_dict` through the store. Readers that want typed access use
:meth:`EpisodeRecord.from_dict`; the fast reading paths (summaries, analyses of 100k episodes)
keep working on plain dicts, with the names below (:data:`LIGHT_FIELDS`, :func:`record_key`,
:func:`is_finished`, :class:`Termination`, :class:`Status`) instead of their own literals.

Schema versions:

- 1: records written by emotau 0.1.0. They have no ``schema_version`` key.
- 2: the same fields, plus ``schema_version: 2`` as the last key.

:meth:`EpisodeRecord.from_dict` reads both. A record keeps the version it was read with, so
writing it back does not relabel an old record. Keys it does not know are kept in
:attr:`EpisodeRecord.extra` and written back after the known ones. A record from a newer
schema than this emotau knows is refused with :class:`RecordError`, because its fields may
mean something else.

The nested parts of a trajectory (``reward_breakdown``, ``usage``, ``variant_info``, ``turns``,
``agent``, ``user``) stay plain JSON dicts and lists. Their shapes are described in
``docs/results.md``. Some of them are not emotau's to type: a domain defines its breakdown, and
the messages are in OpenAI format. Typing them would also mean building an object for every
turn and message when an episode is written, and again for every record an analysis reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from emotau.core._errors import UserError

#: the version :meth:`EpisodeRecord.to_dict` writes for new records
SCHEMA_VERSION = 2
#: the versions :meth:`EpisodeRecord.from_dict` reads (1: no ``schema_version`` key)
READABLE_VERSIONS = (1, 2)


class Termination(StrEnum):
    """Why an episode ended (the record's ``termination``)."""

    USER_GOAL_MET = "user_goal_met"  # the customer's ###STOP###
    USER_GAVE_UP = "user_gave_up"  # the customer's ###QUIT###
    TRANSFER_TO_HUMAN = "transfer_to_human"  # a transfer tool call that succeeded
    USER_TRANSFERRED = "user_transferred"  # a tau2 customer's ###TRANSFER###
    USER_OUT_OF_SCOPE = "user_out_of_scope"  # a tau2 customer's ###OUT-OF-SCOPE###
    MAX_STEPS = "max_steps"
    AGENT_ERROR = "agent_error"  # max_errors steps in a row whose every tool call failed
    #: the agent wrote nothing, having spent its whole token budget (finish_reason "length")
    AGENT_EMPTY_REPLY = "agent_empty_reply"
    USER_SIMULATOR_ERROR = "user_simulator_error"  # finished, never scored
    INFRA_ERROR = "infra_error"  # not finished: retried on resume, never scored


class Status(StrEnum):
    """The record's ``status``: whether the episode is finished (never run again)."""

    COMPLETED = "completed"
    INFRA_ERROR = Termination.INFRA_ERROR.value


class RecordError(UserError):
    """An episode record that :meth:`EpisodeRecord.from_dict` cannot read."""


#: (task_id, variant, trial): the key of a record; readers keep one record per key
Key = tuple[int, str, int]
#: the fields that make up :data:`Key`, in order; they start every line emotau writes, followed
#: by ``status`` (the store's fast prefix reader relies on that)
KEY_FIELDS = ("task_id", "variant", "trial")


@dataclass(slots=True, kw_only=True)
class EpisodeRecord:
    """One episode's record; the fields, in their order on disk, are those of
    ``docs/results.md``. Mutable only so the runner can set ``shard`` before writing it."""

    task_id: int
    variant: str
    trial: int
    status: Status
    scored: bool
    reward: float | None
    success: bool
    #: the domain's own breakdown of the reward (None when not scored)
    reward_breakdown: Mapping[str, Any] | None
    termination: Termination
    error: str | None
    num_turns: int
    num_agent_steps: int
    num_tool_calls: int
    started_at: float
    duration_s: float
    synthetic: bool
    #: per role (agent, user, judge when called): calls, tokens, latency, cost; and retries
    usage: dict[str, Any]
    #: label, components, the injected text and its sha256
    variant_info: dict[str, Any]
    #: the conversation in order: one dict per customer or agent turn
    turns: list[dict[str, Any]]
    #: the agent model's system prompt and messages
    agent: dict[str, Any]
    #: the user simulator's system prompt and messages
    user: dict[str, Any]
    #: the ``i/N`` shard that wrote it (set by the runner; None: not written by a runner)
    shard: str | None = None
    #: only when a lifecycle hook failed during the episode: ``{hook, event, error}`` each
    hook_errors: list[dict[str, Any]] | None = None
    schema_version: int = SCHEMA_VERSION
    #: keys this emotau does not know, kept as read and written back after the known ones
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.task_id, self.variant, self.trial)

    @property
    def finished(self) -> bool:
        """Finished episodes are never run again; infrastructure errors are retried."""
        return self.status == Status.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict the store writes, keys in :data:`FIELDS` order (``shard`` and
        ``hook_errors`` only when set), then any :attr:`extra` keys."""
        d: dict[str, Any] = {
            "task_id": self.task_id,
            "variant": self.variant,
            "trial": self.trial,
            "status": str(self.status),
            "scored": self.scored,
            "reward": self.reward,
            "success": self.success,
            "reward_breakdown": self.reward_breakdown,
            "termination": str(self.termination),
            "error": self.error,
            "num_turns": self.num_turns,
            "num_agent_steps": self.num_agent_steps,
            "num_tool_calls": self.num_tool_calls,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "synthetic": self.synthetic,
            "usage": self.usage,
            "variant_info": self.variant_info,
            "turns": self.turns,
            "agent": self.agent,
            "user": self.user,
        }
        if self.shard is not None:
            d["shard"] = self.shard
        if self.hook_errors:
            d["hook_errors"] = self.hook_errors
        d["schema_version"] = self.schema_version
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpisodeRecord:
        """Read a record of any version in :data:`READABLE_VERSIONS`; :class:`RecordError`
        for a newer version, a missing field, or a status or termination not known here."""
        if not isinstance(d, Mapping):
            raise RecordError(f"an episode record is a JSON object, not {type(d).__name__}")
        version = d.get("schema_version", 1)
        if type(version) is not int or version not in READABLE_VERSIONS:
            if type(version) is int and version > SCHEMA_VERSION:
                raise RecordError(
                    f"{_where(d)} has schema_version {version}; this emotau reads versions "
                    f"up to {SCHEMA_VERSION}: upgrade emotau to read this run"
                )
            raise RecordError(f"{_where(d)} has an invalid schema_version {version!r}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise RecordError(f"{_where(d)} lacks {', '.join(map(repr, missing))}")
        try:
            rec = cls(
                task_id=int(d["task_id"]),
                variant=str(d["variant"]),
                trial=int(d["trial"]),
                status=Status(d["status"]),
                scored=d["scored"],
                reward=d["reward"],
                success=d["success"],
                reward_breakdown=d["reward_breakdown"],
                termination=Termination(d["termination"]),
                error=d["error"],
                num_turns=d["num_turns"],
                num_agent_steps=d["num_agent_steps"],
                num_tool_calls=d["num_tool_calls"],
                started_at=d["started_at"],
                duration_s=d["duration_s"],
                synthetic=d["synthetic"],
                usage=d["usage"],
                variant_info=d["variant_info"],
                turns=d["turns"],
                agent=d["agent"],
                user=d["user"],
                shard=d.get("shard"),
                hook_errors=d.get("hook_errors"),
                schema_version=version,
            )
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{_where(d)} is not a valid episode record: {exc}") from None
        if len(d) > _N_KNOWN or not _KNOWN.issuperset(d):
            rec.extra = {k: v for k, v in d.items() if k not in _KNOWN}
        return rec


#: every key :meth:`EpisodeRecord.to_dict` writes, in order (``shard`` only when set)
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EpisodeRecord) if f.name != "extra")
_KNOWN = frozenset(FIELDS)
_N_KNOWN = len(FIELDS)
#: the fields every record of every version has (``shard``: only records a runner wrote)
_REQUIRED = tuple(k for k in FIELDS if k not in ("shard", "hook_errors", "schema_version"))
#: the fields kept when records are read for summaries (the heavy trajectory is dropped)
LIGHT_FIELDS: tuple[str, ...] = (
    *KEY_FIELDS,
    "status",
    "scored",
    "reward",
    "success",
    "termination",
    "error",
    "num_turns",
    "num_agent_steps",
    "num_tool_calls",
    "duration_s",
    "synthetic",
    "reward_breakdown",
    "usage",
)
assert FIELDS[:4] == (*KEY_FIELDS, "status") and _KNOWN.issuperset(LIGHT_FIELDS)


def record_key(rec: Mapping[str, Any]) -> Key:
    """The key of a record read as a dict; TypeError/KeyError/ValueError for anything else."""
    return (int(rec["task_id"]), str(rec["variant"]), int(rec["trial"]))


def is_finished(rec: Mapping[str, Any]) -> bool:
    """Whether a record read as a dict is finished (see :attr:`EpisodeRecord.finished`)."""
    return rec.get("status") == _COMPLETED


_COMPLETED = Status.COMPLETED.value  # a plain str: faster to compare than the member


def _where(d: Mapping[str, Any]) -> str:
    try:
        task, variant, trial = record_key(d)
    except (TypeError, KeyError, ValueError, AttributeError):
        return "an episode record"
    return f"the episode record of task {task}, variant {variant!r}, trial {trial}"
