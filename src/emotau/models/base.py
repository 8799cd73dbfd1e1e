"""The model-client interface: one chat completion, OpenAI-shaped, async.

Every role (agent, user, judge) talks to its model through a :class:`ModelClient`. Requests
and responses use OpenAI chat-completions message dicts so that an HTTP client, the in-process
scripted models and a mock server are interchangeable.

``ChatRequest.metadata`` carries the episode context (domain, task id, variant, trial, role,
purpose). Real servers ignore it; scripted models and the mock server use it to play an oracle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emotau.registry import Registry

if TYPE_CHECKING:
    from emotau.domains import Domain
    from emotau.spec import ModelConfig


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ChatResponse:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

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


#: provider name -> factory(role, config, domain) -> ModelClient
ClientFactory = Callable[[str, "ModelConfig", "Domain"], ModelClient]
PROVIDERS: Registry[ClientFactory] = Registry("model provider")


def _scripted(role: str, config: ModelConfig, domain: Domain) -> ModelClient:
    from emotau.models.scripted import scripted_client

    return scripted_client(role, config, domain)


PROVIDERS.add("scripted", _scripted)


def provider_for(config: ModelConfig) -> str:
    """Which provider serves a model config (``scripted`` for the offline models)."""
    if config.provider:
        return config.provider
    return "scripted" if config.model.startswith("scripted") else "openai"


def create_client(role: str, config: ModelConfig, domain: Domain) -> ModelClient:
    return PROVIDERS.get(provider_for(config))(role, config, domain)
