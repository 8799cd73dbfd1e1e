"""The chat-completion types and the model-client interface every role talks through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it
    #: set when the call was recovered from text the server did not parse ("hermes", ...)
    recovered: str | None = None


class RetryBudget:
    """Retries one episode may still spend, shared by all its model calls."""

    __slots__ = ("left", "used")

    def __init__(self, total: int) -> None:
        self.left = total
        self.used = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    budget: RetryBudget | None = None


@dataclass
class ChatResponse:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None
    retries: int = 0
    #: the reply came from a scripted model (in-process, or the mock server over HTTP)
    synthetic: bool = False

    def message(self) -> dict[str, Any]:
        """The assistant message to append to an OpenAI-style history."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return msg


class ModelClient(ABC):
    """One role's model. Implementations must be safe to call from many episodes at once."""

    #: True for in-process scripted models; their results are labelled synthetic
    synthetic: bool = False

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """One chat completion. Raise :class:`emotau.errors.InfraError` for transport faults."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
