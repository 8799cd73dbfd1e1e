"""The chat-completion types and the model-client interface every role talks through."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it
    #: set when the call was recovered from text the server did not parse ("hermes", ...)
    recovered: str | None = None
    #: set when the call was written as text that could not be read (a cut or broken
    #: ``<tool_call>`` block): why; ``arguments`` then holds that text as it was written
    error: str | None = None


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
    #: why the model stopped, as the server said (``stop``, ``length``, ``tool_calls``, ...)
    finish_reason: str | None = None
    #: False when the server gave no token counts (the two counts above are then 0)
    usage_reported: bool = True
    #: the token ids of the prompt and of the reply, when the server returned them (vLLM does
    #: for ``"return_token_ids": true`` in the role's ``extra_body``); None otherwise
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None

    @property
    def blank(self) -> bool:
        """No tool call and no visible text (None, empty or whitespace only)."""
        return not self.tool_calls and not (self.content or "").strip()

    def ending(self) -> dict[str, Any]:
        """How the call ended, as an episode's turns keep it: ``finish_reason``,
        ``prompt_tokens`` and ``completion_tokens`` (None where the server did not say), and
        ``token_ids`` and ``prompt_token_ids`` when the server returned them."""
        known = self.usage_reported
        out: dict[str, Any] = {
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens if known else None,
            "completion_tokens": self.completion_tokens if known else None,
        }
        if self.token_ids is not None:  # only when asked for: a prompt is thousands of ids
            out["token_ids"] = self.token_ids
        if self.prompt_token_ids is not None:
            out["prompt_token_ids"] = self.prompt_token_ids
        return out

    def describe_ending(self) -> str:
        """The same for messages: ``finish_reason='length', 812 prompt and 64 completion
        tokens``."""
        tokens = (
            f"{self.prompt_tokens} prompt and {self.completion_tokens} completion tokens"
            if self.usage_reported
            else "no token counts reported"
        )
        return f"finish_reason={self.finish_reason!r}, {tokens}"

    def message(self) -> dict[str, Any]:
        """The assistant message to append to an OpenAI-style history. A call that could not
        be read (``error`` set, or arguments that are not a JSON object: a malformed native
        call) goes in with ``{}`` as its arguments: servers such as vLLM parse the arguments of
        every call in the history and refuse a request whose arguments are not JSON, which
        would turn the agent's own mistake into a server error on every later request. The
        record keeps what the model wrote."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": c.arguments if _readable(c) else "{}",
                    },
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


def _readable(call: ToolCall) -> bool:
    """Whether a call's arguments can go back to a server as they are: a JSON object."""
    if call.error is not None:
        return False
    try:
        return isinstance(json.loads(call.arguments or ""), dict)
    except ValueError:
        return False
