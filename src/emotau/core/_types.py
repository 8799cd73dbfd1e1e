"""Shared value types of tasks, tool results and rewards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Action:
    """A ground-truth tool call."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One customer scenario.

    ``instruction`` is the hidden goal given to the user simulator (never to the agent).
    ``opening`` is the customer's first request in plain words and ``facts`` what the customer
    knows about themselves (name, e-mail, booking id...); both are hints for the scripted user
    and may be empty for domains that have none.
    """

    id: int
    instruction: str
    actions: tuple[Action, ...] = ()
    outputs: tuple[str, ...] = ()
    opening: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    content: str
    error: bool = False


@dataclass(frozen=True)
class RewardResult:
    reward: float
    breakdown: Mapping[str, Any]
