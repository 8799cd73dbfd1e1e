"""The model-client interface: one chat completion, OpenAI-shaped, async.

Every role (agent, user, judge) talks to its model through a :class:`ModelClient`. Requests
and responses use OpenAI chat-completions message dicts so that an HTTP client, the in-process
scripted models and a mock server are interchangeable.

``ChatRequest.metadata`` carries the episode context (domain, task id, variant, trial, role,
purpose). Real servers ignore it; scripted models and the mock server use it to play an oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emotau.core import ChatRequest, ChatResponse, ModelClient, Registry, RetryBudget, a_callable

if TYPE_CHECKING:
    from emotau.core import EpisodeHooks
    from emotau.models._config import ModelConfig
    from emotau.models._openai import ClientSettings


#: provider name -> factory(role, config, domain, settings) -> ModelClient; ``domain`` is the
#: run's :class:`emotau.domains.Domain` (the scripted models read its tasks)
ClientFactory = Callable[[str, "ModelConfig", Any, "ClientSettings | None"], ModelClient]


#: entry-point group ``emotau.providers``
PROVIDERS: Registry[ClientFactory] = Registry("model provider", check=a_callable)


def provider_for(config: ModelConfig) -> str:
    """Which provider serves a model config.

    ``model = "scripted"`` is the in-process offline model (even when a base URL is set for
    other roles); any other name is served over the OpenAI-compatible API, including the mock
    server's ``scripted-agent`` and ``scripted-user``.
    """
    if config.provider:
        return config.provider
    return "scripted" if config.model == "scripted" else "openai"


def create_client(
    role: str, config: ModelConfig, domain: Any, settings: ClientSettings | None = None
) -> ModelClient:
    return PROVIDERS.get(provider_for(config))(role, config, domain, settings)


class EpisodeClient(ModelClient):
    """One episode's view of a shared client: adds the episode's retry budget, meters usage,
    and shows each call to the episode's hooks (as ``role``, at turn ``len(turns)``)."""

    def __init__(
        self,
        inner: ModelClient,
        budget: RetryBudget | None,
        hooks: EpisodeHooks | None = None,
        role: str = "",
        turns: list[Any] | None = None,
    ) -> None:
        self.inner = inner
        self.budget = budget
        self.hooks = hooks
        self.role = role
        self.turns = turns if turns is not None else []
        self.synthetic = inner.synthetic
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = None
        self.latency_s = 0.0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        request.budget = self.budget
        r = await self.inner.complete(request)
        self.calls += 1
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        self.latency_s += r.latency_s
        self.synthetic = self.synthetic or r.synthetic
        if r.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + r.cost_usd
        if self.hooks is not None:
            await self.hooks.model_call(self.role, len(self.turns), request, r)
        return r

    def usage(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 6),
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
        }
